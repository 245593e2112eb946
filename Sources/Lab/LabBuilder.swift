#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import LinuxNetworking
import Topology

/// Executes a plan's build steps on the kernel.
///
/// Every node's steps run in one excursion of a namespace worker: the worker thread enters the
/// node's namespace, opens one rtnetlink socket there, does the node's links, addresses, routes and
/// sysctls synchronously, and returns to the host namespace. Nothing runs in the host namespace
/// itself. Once the namespaces exist, the routers' nftables rulesets load on a second worker while
/// the first does the links: a ruleset needs only its namespace (it names interfaces, which need not
/// exist yet), and libnftables spends most of its time in user space, on the other core. That worker
/// then helps with the nodes' configuration, from the end of the plan (`ConfigurationQueue`).
struct LabBuilder: Sendable {
    let lab: String
    let worker: NamespaceWorker
    /// Loads the rulesets alongside `worker` (nil: `worker` does everything, in order).
    let rulesetWorker: NamespaceWorker?
    /// Test hook (`NATLAB_TEST_STEP_DELAY_MS`): a pause before each namespace and each node's
    /// configuration, so a test can deliver SIGKILL/SIGINT, or take a name, half-way through a
    /// build. Zero in normal use.
    let delayBetweenNodes: useconds_t
    /// The netfilter sockets of the build's rulesets and conntrack flushes, closed by the caller once
    /// the rest of its work is done: closing one right after its commit would wait for nf_tables'
    /// RCU-delayed clean-up, once per router (`NetfilterSockets`).
    let netfilter: NetfilterSockets
    /// True when every namespace the steps touch is created by the same steps (`up`): the builder
    /// then gives each link an ifindex of its own choosing (`LinkIndexes`). False for steps that add
    /// links to namespaces which already hold some (`natlab verify`'s temporary nodes): the kernel
    /// picks, and later steps look them up by name.
    let choosesIndexes: Bool

    init(lab: String, worker: NamespaceWorker, rulesetWorker: NamespaceWorker? = nil, netfilter: NetfilterSockets,
         choosesIndexes: Bool = false) {
        self.lab = lab
        self.worker = worker
        self.rulesetWorker = rulesetWorker
        self.netfilter = netfilter
        self.choosesIndexes = choosesIndexes
        let ms = Environment.value("NATLAB_TEST_STEP_DELAY_MS").flatMap { UInt32($0) } ?? 0
        delayBetweenNodes = ms * 1000
    }

    func namespace(_ node: String) -> String { LabNaming.namespace(lab: lab, node: node) }

    /// Runs `steps`; `created` is told each namespace right after it exists.
    func build(_ steps: [BuildStep], created: (String) -> Void) throws {
        let nodes = steps.compactMap { step -> String? in if case .createNamespace(let node) = step { node } else { nil } }
        if let rulesetWorker, delayBetweenNodes == 0, nodes.count > 1 {
            // All at once, half on each worker (the kernel creates namespaces in parallel); all or
            // nothing, so only a success adds to `created`.
            try checkInterrupt()
            try createNamespaces(nodes, on: [worker, rulesetWorker])
            nodes.map(namespace).forEach(created)
        } else {
            // One by one: the test hook pauses between namespaces.
            for node in nodes {
                try checkInterrupt()
                if delayBetweenNodes > 0 { usleep(delayBetweenNodes) }
                try createNamespaces([node], on: [worker])
                created(namespace(node))
            }
        }
        let groups = Self.groups(Self.configurationOrder(steps))
        let rulesets = groups.filter(Self.isRuleset), others = groups.filter { !Self.isRuleset($0) }
        let indexes = choosesIndexes ? LinkIndexes(steps) : LinkIndexes()
        if let rulesetWorker, !rulesets.isEmpty, !others.isEmpty {
            // Both halves run to their end (or their first failure) before anything is thrown, so the
            // caller's clean-up never races a step still running.
            let failures = Mutex<[(any Error)?]>([nil, nil])
            let queue = ConfigurationQueue(others)
            SpareThread.pair { half in
                do {
                    if half == 0 {
                        try configure(queue, on: worker, indexes: indexes, take: queue.takeFront)
                    } else {
                        try configure(rulesets, on: rulesetWorker, indexes: indexes)
                        try configure(queue, on: rulesetWorker, indexes: indexes, take: queue.takeBack)
                    }
                } catch {
                    queue.stop()
                    failures.withLock { $0[half] = error }
                }
            }
            if let error = failures.withLock({ $0[0] ?? $0[1] }) { throw error }
        } else {
            try configure(groups, on: worker, indexes: indexes)
        }
        try checkInterrupt()
    }

    /// `nodes`' namespaces, over `workers` at once; all or nothing. A failure is reported against the
    /// node its error names (the only one, when there is one).
    private func createNamespaces(_ nodes: [String], on workers: [NamespaceWorker]) throws {
        let names = nodes.map(namespace)
        do {
            let what = names.count == 1 ? "create namespace \(names[0])" : "create \(names.count) namespaces on \(workers.count) threads"
            try Timing.measure(what) { try NetworkNamespace.create(names: names, workers: workers) }
        } catch {
            let failed = Self.node(namedIn: "\(error)", among: nodes, namespace: namespace) ?? nodes[0]
            throw LabError.step(.createNamespace(node: failed), namespace: namespace(failed), cause: error)
        }
    }

    private func configure(_ groups: [[BuildStep]], on worker: NamespaceWorker, indexes: LinkIndexes) throws {
        for group in groups { try configure(group, on: worker, indexes: indexes) }
    }

    /// The groups `take` hands out, until it hands out none.
    private func configure(_ queue: ConfigurationQueue, on worker: NamespaceWorker, indexes: LinkIndexes,
                           take: () -> Int?) throws {
        while let index = take() {
            try configure(queue.groups[index], on: worker, indexes: indexes)
            queue.finish(index)
        }
    }

    private func configure(_ group: [BuildStep], on worker: NamespaceWorker, indexes: LinkIndexes) throws {
        try checkInterrupt()
        if delayBetweenNodes > 0 { usleep(delayBetweenNodes) }
        try Timing.measure("configure \(group[0].node) (\(group.count) steps)") {
            try run(group, on: worker, indexes: indexes)
        }
    }

    /// The node whose namespace an error text names (a name clash or a failed mount says which), as a
    /// whole name: `lab.home1` is not named by a text about `lab.home10`.
    static func node(namedIn text: String, among nodes: [String], namespace: (String) -> String) -> String? {
        let nameCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789-.")
        return nodes.first { node in
            let name = namespace(node)
            var rest = text[...]
            while let range = rest.range(of: name) {
                if range.upperBound == text.endIndex || !nameCharacters.contains(text[range.upperBound]) { return true }
                rest = text[range.upperBound...]
            }
            return false
        }
    }

    static func isRuleset(_ group: [BuildStep]) -> Bool {
        group.allSatisfy { if case .applyNFTables = $0 { true } else { false } }
    }

    private func checkInterrupt() throws {
        if let sig = Interrupts.pending { throw LabError.interrupted(signal: sig) }
    }

    /// The configuration steps (namespace creation excluded) in the order the builder runs them: the
    /// nftables rulesets first, then everything else in plan order. A ruleset names interfaces
    /// (`oifname "wan"`), so it loads before they exist; loading it first starts the kernel's
    /// RCU-delayed clean-up of its commit early, so that it is over by the time the build closes its
    /// netfilter sockets (see `NetfilterSockets`) instead of being waited for.
    static func configurationOrder(_ steps: [BuildStep]) -> [BuildStep] {
        let configuration = steps.filter { if case .createNamespace = $0 { false } else { true } }
        let rulesets = configuration.filter { if case .applyNFTables = $0 { true } else { false } }
        return rulesets + configuration.filter { if case .applyNFTables = $0 { false } else { true } }
    }

    /// Consecutive steps of one node.
    static func groups(_ steps: [BuildStep]) -> [[BuildStep]] {
        var groups: [[BuildStep]] = []
        for step in steps {
            if let last = groups.last?.last, last.node == step.node {
                groups[groups.count - 1].append(step)
            } else {
                groups.append([step])
            }
        }
        return groups
    }

    private func run(_ group: [BuildStep], on worker: NamespaceWorker, indexes: LinkIndexes) throws {
        let node = group[0].node
        let ns = namespace(node)
        let file = try NetworkNamespace.open(name: ns)
        // Peer namespaces are opened here, on the calling thread: opening a file needs no excursion.
        var peers: [String: NamespaceFile] = [:]
        for case .addVeth(_, _, _, let peerNode, _) in group where peers[peerNode] == nil {
            peers[peerNode] = try NetworkNamespace.open(name: namespace(peerNode))
        }
        var failure: LabError?
        var stepTimes: [(BuildStep, UInt64)] = []
        try worker.run(in: file) {
            // A group of rulesets needs no rtnetlink socket.
            let link = Self.isRuleset(group) ? nil : try RouteNetlink()
            for step in group {
                let start = Timing.enabled ? Timing.now() : 0
                do {
                    try Self.apply(step, link: link, peers: peers, indexes: indexes, netfilter: netfilter)
                } catch {
                    failure = .step(step, namespace: ns, cause: error)
                    return
                }
                // Collected here, printed after the excursion: no I/O beyond the step inside it.
                if Timing.enabled { stepTimes.append((step, Timing.now() - start)) }
            }
        }
        for (step, ns) in stepTimes { Timing.report(ns, StepDescription.text(step), indent: 2) }
        if let failure { throw failure }
    }

    /// One step, on the worker thread inside the node's namespace.
    private static func apply(_ step: BuildStep, link: RouteNetlink?, peers: [String: NamespaceFile],
                              indexes: LinkIndexes, netfilter: NetfilterSockets) throws {
        switch step {
        case .createNamespace:
            break
        case .setUp(_, let name):
            try link!.setUp(name)
        case .sysctl(_, let key, let value):
            do {
                try Sysctl.write(key, value)
            } catch let error as LinuxNetworkingError where error.isNotFound && key.hasPrefix("net.bridge.") {
                // Without br_netfilter there is no bridge-nf-call-* switch, and bridged frames skip
                // the IP hooks anyway: the setting's purpose already holds.
            }
        case .addBridge(let node, let name):
            try link!.addBridge(name, index: indexes[node, name])
        case .addVeth(let node, let name, let master, let peerNode, let peerName):
            try link!.addVeth(name: name, index: indexes[node, name], master: master,
                              masterIndex: master.map { indexes[node, $0] } ?? 0,
                              peerName: peerName, peerIndex: indexes[peerNode, peerName], peerNamespace: peers[peerNode]!)
        case .addAddress(let node, let name, let cidr):
            // IPv6 addresses go in with `nodad`: the plan's addresses are unique by construction, and
            // duplicate address detection would keep them tentative (unusable) for about a second.
            try link!.addAddress(cidr, link: name, index: indexes[node, name], noDAD: BuildStep.isIPv6(cidr))
        case .addRoute(_, let destination, let gateway):
            try link!.addRoute(destination: destination, gateway: gateway)
        case .applyNFTables(_, let ruleset):
            try NFTables.apply(ruleset, deferClose: netfilter)
            // P3: entries made before the load keep their old translation and filtering; start clean.
            // The flush walks the kernel's whole conntrack hash, which all namespaces share (~0.2 ms);
            // a namespace without entries, as every router of a new lab is, has nothing to flush.
            if Conntrack.count() != 0 { try Conntrack.flush(deferClose: netfilter) }
        }
    }
}

/// The ifindex of every link a build creates, chosen before the build: a link whose index is known
/// needs no look-up by name before an address goes on it or a port joins it (an RTM_GETLINK round
/// trip, under the kernel's rtnl lock that paces the build: 16 of them in two-homes). Each link of
/// the lab gets an index of its own, from 2 up in plan order (`lo` is 1 in every namespace), so no
/// two links of a lab share one: `eth0@if9` in `ip link` names one interface of the whole lab.
/// Pure; empty (every index 0, "the kernel picks") when built without steps.
struct LinkIndexes: Sendable {
    private struct Key: Hashable { var node: String; var link: String }
    private var indexes: [Key: Int32] = [:]

    init() {}

    init(_ steps: [BuildStep]) {
        var next: Int32 = 2
        func assign(_ node: String, _ link: String) {
            indexes[Key(node: node, link: link)] = next
            next += 1
        }
        for step in steps {
            switch step {
            case .addBridge(let node, let name):
                assign(node, name)
            case .addVeth(let node, let name, _, let peerNode, let peerName):
                assign(node, name)
                assign(peerNode, peerName)
            default:
                break
            }
        }
    }

    /// The index chosen for `link` in `node`, 0 when none was (`lo`, or links made elsewhere).
    subscript(node: String, link: String) -> Int32 { indexes[Key(node: node, link: link)] ?? 0 }

    var count: Int { indexes.count }
}
