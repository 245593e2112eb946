#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LinuxNetworking
import NATModel
import Topology

/// Where `natlab verify` measures each router, so that one NAT layer is measured at a time.
///
/// - The RFC 5780 server runs in a temporary node attached to the router's *upstream* segment (the
///   internet core for a top-level router, the upstream router's LAN for a router behind a CGNAT),
///   with two addresses of that segment. The probe's packets cross exactly one translation: the
///   router under test. Routers sharing an upstream segment share one server.
/// - The probe runs in the first host attached to the router's LAN; a router without one gets a
///   temporary host on its LAN (said in the output), so a CGNAT with only routers below it is
///   measured too.
/// - Temporary nodes are namespaces `natlab-<lab>.<name>` written to the lab's journal before they
///   exist, so `natlab down` removes them even if verify was killed with SIGKILL.
public struct VerifySite: Sendable, Codable, Equatable {
    public var router: String
    public var profile: NATProfile
    /// The node owning the router's upstream segment (its parent).
    public var segment: String
    /// The server node on that segment (temporary).
    public var serverNode: String
    /// Two free addresses of the segment for the server, without prefix.
    public var serverAddresses: [String]
    /// The host the probe runs in.
    public var probeHost: String
    /// True when `probeHost` is a temporary node verify adds to the router's LAN.
    public var probeHostIsTemporary: Bool
}

/// A temporary node verify attaches to a segment.
public struct VerifyTemporaryNode: Sendable, Codable, Equatable {
    public var name: String
    /// Node owning the bridge it attaches to.
    public var parent: String
    public var bridge: String
    /// CIDRs.
    public var addresses: [String]
    public var gateway: String
}

public struct VerifyPlan: Sendable, Codable, Equatable {
    public var sites: [VerifySite]
    public var temporaryNodes: [VerifyTemporaryNode]

    /// Plans the measurement of every router of `plan`. Pure.
    public static func make(_ plan: LabPlan) -> VerifyPlan {
        let names = Set(plan.nodes.map(\.name))
        var counter = 0
        func freshName(_ prefix: String) -> String {
            while true {
                counter += 1
                let n = "\(prefix)\(counter)"
                if !names.contains(n) { return n }
            }
        }
        // Every address planned anywhere (repeated private subnets make this over-cautious, never wrong).
        var taken = Set(plan.nodes.flatMap { $0.interfaces.flatMap(\.addresses) }.compactMap { IPv4Address($0.prefix { $0 != "/" }) })

        func bridge(of node: PlannedNode) -> (name: String, network: IPv4Network, address: IPv4Address)? {
            guard let i = node.interfaces.first(where: { ($0.name == "ix" || $0.name == "lan") && $0.peer == nil }),
                  let cidr = i.addresses.first, let subnet = node.subnet, let network = IPv4Network(subnet),
                  let address = IPv4Address(cidr.prefix { $0 != "/" }) else { return nil }
            return (i.name, network, address)
        }
        func freeAddresses(_ network: IPv4Network, count: Int) -> [IPv4Address] {
            var out: [IPv4Address] = []
            var v = network.lastUsable.value
            while out.count < count, v >= network.firstUsable.value {
                let a = IPv4Address(v)
                if !taken.contains(a) { out.append(a); taken.insert(a) }
                v -= 1
            }
            return out
        }

        var temporary: [VerifyTemporaryNode] = []
        var serverOfSegment: [String: (String, [String])] = [:]
        var sites: [VerifySite] = []
        for router in plan.nodes where router.kind == .router {
            guard let profile = router.nat, let parentName = router.parent, let parent = plan.node(named: parentName),
                  let up = bridge(of: parent), let lan = bridge(of: router) else { continue }
            let server: (String, [String])
            if let s = serverOfSegment[parentName] {
                server = s
            } else {
                let addresses = freeAddresses(up.network, count: 2)
                guard addresses.count == 2 else { continue }
                let name = freshName("nlvs")
                temporary.append(VerifyTemporaryNode(name: name, parent: parentName, bridge: up.name,
                                                     addresses: addresses.map { up.network.cidr($0) }, gateway: "\(up.address)"))
                server = (name, addresses.map(\.description))
                serverOfSegment[parentName] = server
            }
            var host = plan.nodes.first { $0.kind == .host && $0.parent == router.name }?.name
            var temporaryHost = false
            if host == nil, let address = freeAddresses(lan.network, count: 1).first {
                let name = freshName("nlvh")
                temporary.append(VerifyTemporaryNode(name: name, parent: router.name, bridge: lan.name,
                                                     addresses: [lan.network.cidr(address)], gateway: "\(lan.address)"))
                host = name
                temporaryHost = true
            }
            guard let host else { continue }
            sites.append(VerifySite(router: router.name, profile: profile, segment: parentName, serverNode: server.0,
                                    serverAddresses: server.1, probeHost: host, probeHostIsTemporary: temporaryHost))
        }
        return VerifyPlan(sites: sites, temporaryNodes: temporary)
    }

    /// The build steps of the temporary nodes.
    public var steps: [BuildStep] {
        var steps: [BuildStep] = temporaryNodes.map { .createNamespace(node: $0.name) }
        for node in temporaryNodes {
            steps.append(.setUp(node: node.name, link: "lo"))
            steps.append(.addVeth(node: node.parent, name: node.name, master: node.bridge, peerNode: node.name, peerName: "eth0"))
            for a in node.addresses { steps.append(.addAddress(node: node.name, link: "eth0", cidr: a)) }
            steps.append(.addRoute(node: node.name, destination: nil, gateway: node.gateway))
        }
        return steps
    }
}

/// One process verify started in a lab node.
public struct VerifyProcess: Sendable {
    public var node: String
    public var pid: pid_t
    public var output: String
}

/// Builds the temporary nodes, runs processes in nodes, and removes everything again — on success,
/// failure and Ctrl-C/SIGTERM alike. Holds the lab's lock meanwhile (`down` waits for it).
public final class LabVerifier {
    public let lab: String
    public let record: LabRecord
    public let plan: VerifyPlan
    let engine: LabEngine
    let lock: FileLock
    let directory: String
    private var created: [String] = []
    private var processes: [VerifyProcess] = []

    public init(lab: String, engine: LabEngine = LabEngine()) throws {
        self.lab = lab
        self.engine = engine
        record = try engine.record(of: lab)
        guard let lock = try engine.store.claim(lab) else {
            throw LabError.labBusy(lab, detail: "another natlab process is using it; try again when it finishes")
        }
        self.lock = lock
        plan = VerifyPlan.make(record.plan)
        directory = engine.store.directory(of: lab) + "/verify"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    public func namespace(of node: String) -> String { LabNaming.namespace(lab: lab, node: node) }

    /// Creates the temporary nodes (journaled first).
    public func buildTemporaryNodes() throws {
        let names = plan.temporaryNodes.map { namespace(of: $0.name) }
        guard !names.isEmpty else { return }
        try engine.store.journal(names, of: lab)
        let netfilter = NetfilterSockets()
        defer { netfilter.close() }
        try LabBuilder(lab: lab, worker: try engine.worker(), rulesetWorker: try engine.rulesetWorker(), netfilter: netfilter)
            .build(plan.steps) { self.created.append($0) }
    }

    /// Starts `argv` in `node`; stdout and stderr go to a file in the lab's verify directory.
    @discardableResult
    public func spawn(_ argv: [String], in node: String, tag: String) throws -> VerifyProcess {
        let output = "\(directory)/\(tag).log"
        let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LabError.state("cannot open \(output): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devNull) }
        let pid = try NamespaceExec.spawn(namespacePath: NetworkNamespace.path(of: namespace(of: node)), argv: argv,
                                          stdin: devNull, stdout: fd, stderr: fd)
        let p = VerifyProcess(node: node, pid: pid, output: output)
        processes.append(p)
        return p
    }

    /// Waits for `process` (polling, so Ctrl-C is noticed); returns its exit status and output.
    public func wait(_ process: VerifyProcess, timeout: Double) throws -> (status: Int32, output: String) {
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while true {
            let r = waitpid(process.pid, &status, WNOHANG)
            if r == process.pid { break }
            if let sig = Interrupts.pending { throw LabError.interrupted(signal: sig) }
            if Date() > deadline {
                kill(process.pid, SIGKILL)
                _ = waitpid(process.pid, &status, 0)
                processes.removeAll { $0.pid == process.pid }
                throw LabError.state("\(process.node): process \(process.pid) did not finish within \(Int(timeout)) s")
            }
            usleep(10_000)
        }
        processes.removeAll { $0.pid == process.pid }
        let output = (try? String(contentsOfFile: process.output, encoding: .utf8)) ?? ""
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, output)
    }

    /// Stops every process verify started and deletes the temporary nodes. Safe to call twice.
    public func cleanUp() {
        for p in processes { kill(p.pid, SIGTERM) }
        var waited = 0
        while waited < 500, processes.contains(where: { LabEngine.isRunning($0.pid) }) {
            usleep(10_000); waited += 10
        }
        for p in processes {
            if LabEngine.isRunning(p.pid) { kill(p.pid, SIGKILL) }
            var status: Int32 = 0
            _ = waitpid(p.pid, &status, 0)
        }
        processes.removeAll()
        // Anything else still running in a temporary node (a server's own children).
        let pids = NetworkNamespace.processes(inNamespaces: created).values.flatMap { $0 }
        for pid in pids { kill(pid, SIGKILL) }
        for ns in created.reversed() { try? NetworkNamespace.delete(name: ns) }
        created.removeAll()
        engine.store.unjournal(plan.temporaryNodes.map { namespace(of: $0.name) }, of: lab)
        lock.unlock()
    }
}
