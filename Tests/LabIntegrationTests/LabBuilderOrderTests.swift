import Foundation
import Testing
import Topology
@testable import Lab

/// The builder's step order (pure: no kernel).
struct LabBuilderOrderTests {
    @Test("rulesets load first, then every other configuration step in plan order; namespaces are not configuration")
    func rulesetsFirst() throws {
        let plan = Planner.plan(try TopologyLoader.load(path: Harness.topology("cgnat.yaml")))
        let ordered = LabBuilder.configurationOrder(plan.steps)
        let isRuleset: (BuildStep) -> Bool = { if case .applyNFTables = $0 { true } else { false } }
        let isNamespace: (BuildStep) -> Bool = { if case .createNamespace = $0 { true } else { false } }
        let rulesets = plan.steps.filter(isRuleset)
        #expect(rulesets.count == 4, "cgnat.yaml has four NAT routers")
        #expect(Array(ordered.prefix(rulesets.count)) == rulesets)
        #expect(Array(ordered.dropFirst(rulesets.count)) == plan.steps.filter { !isRuleset($0) && !isNamespace($0) })
    }

    @Test("every link a build creates gets an ifindex of its own, from 2 up in plan order; others get 0")
    func linkIndexes() throws {
        let plan = Planner.plan(try TopologyLoader.load(path: Harness.topology("cgnat.yaml")))
        let indexes = LinkIndexes(plan.steps)
        var created: [(node: String, link: String)] = []
        for step in plan.steps {
            switch step {
            case .addBridge(let node, let name): created.append((node, name))
            case .addVeth(let node, let name, _, let peerNode, let peerName): created += [(node, name), (peerNode, peerName)]
            default: break
            }
        }
        let chosen = created.map { indexes[$0.node, $0.link] }
        #expect(chosen == (2..<Int32(2 + created.count)).map { $0 }, "consecutive from 2, in plan order")
        #expect(indexes.count == created.count)
        #expect(indexes["internet", "lo"] == 0, "lo keeps index 1: not chosen")
        #expect(indexes["internet", "nosuchlink"] == 0)
        #expect(LinkIndexes()["internet", "ix"] == 0, "without steps the kernel picks every index")
        // Addresses and masters only name links the steps create, so none of them is looked up.
        for step in plan.steps {
            if case .addAddress(let node, let link, _) = step { #expect(indexes[node, link] > 0, "\(node) \(link)") }
            if case .addVeth(let node, _, let master?, _, _) = step { #expect(indexes[node, master] > 0) }
        }
    }

    @Test("a failed creation of all namespaces at once is reported against the node its error names, by whole name")
    func failedNamespaceIsNamedByWholeName() {
        let namespace = { (node: String) in "natlab-x.\(node)" }
        let nodes = ["home1", "home10", "alice"]
        let clash = "create network namespace: 'natlab-x.home10': namespace already exists (/run/netns/natlab-x.home10)"
        #expect(LabBuilder.node(namedIn: clash, among: nodes, namespace: namespace) == "home10")
        #expect(LabBuilder.node(namedIn: "bind-mount onto /run/netns/natlab-x.alice", among: nodes, namespace: namespace) == "alice")
        #expect(LabBuilder.node(namedIn: "out of memory", among: nodes, namespace: namespace) == nil)
    }

    @Test("the record warm-up of `up` parses its built-in topology and encodes a record with nodes and a role")
    func warmUpEncodesARecord() throws {
        // If the schema drifts, the warm-up's `try?` would silently do nothing: the speed-up would be
        // lost without any failure. A record of three nodes and a role is well over 1 KB of JSON.
        #expect(BuildPreparation.warmUpRecordEncoding() > 1000)
        #expect(BuildPreparation.warmUpRecordCoding(), "the warm-up of `down` decodes what it encoded")
    }

    @Test("a record write returns the bytes of the file: pretty JSON (what `up --json` prints) that reads back as the record")
    func recordWriteReturnsTheFileBytes() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("natlab-store-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/labs/t", withIntermediateDirectories: true)
        let store = LabStore(root: root)
        let plan = Planner.plan(try TopologyLoader.load(path: Harness.topology("two-homes.yaml")))
        let record = LabRecord.building("t", from: plan, topologyFile: "/x.yaml")
        let written = try store.write(record)
        #expect(FileManager.default.contents(atPath: root + "/labs/t/lab.json") == written)
        #expect(written == (try LabStore.encoder.encode(record)))
        #expect(String(decoding: written, as: UTF8.self).contains("\n  \"name\" : \"t\""))
        #expect(store.record(of: "t")?.namespaces == record.namespaces)
    }

    @Test("the configuration queue: a node's group depends on the groups that create its veths' far ends")
    func configurationPrerequisites() throws {
        let plan = Planner.plan(try TopologyLoader.load(path: Harness.topology("two-homes.yaml")))
        let groups = LabBuilder.groups(LabBuilder.configurationOrder(plan.steps)).filter { !LabBuilder.isRuleset($0) }
        let queue = ConfigurationQueue(groups)
        let nodes = groups.map { $0[0].node }
        func prerequisites(_ node: String) -> [String] { queue.prerequisites[nodes.firstIndex(of: node)!].map { nodes[$0] } }
        #expect(prerequisites("internet") == [])
        #expect(prerequisites("home1") == ["internet"])
        #expect(prerequisites("alice") == ["home1"])
        #expect(prerequisites("stun") == ["internet"])
    }

    @Test("the configuration queue: the back is taken only when its prerequisites are done; every group is handed out once")
    func configurationQueueHandsOutEachGroupOnce() throws {
        let plan = Planner.plan(try TopologyLoader.load(path: Harness.topology("two-homes.yaml")))
        let groups = LabBuilder.groups(LabBuilder.configurationOrder(plan.steps)).filter { !LabBuilder.isRuleset($0) }
        let queue = ConfigurationQueue(groups)
        let last = try #require(groups.indices.last)
        // Nothing is done yet, and the last group (a host) needs the group that made its interface.
        #expect(!queue.prerequisites[last].isEmpty)
        #expect(queue.takeBack() == nil)
        var handedOut: [Int] = []
        while let front = queue.takeFront() {
            handedOut.append(front)
            queue.finish(front)
            if let back = queue.takeBack() {
                #expect(queue.prerequisites[back].allSatisfy(handedOut.contains), "taken from the back before its prerequisites")
                handedOut.append(back)
                queue.finish(back)
            }
        }
        #expect(handedOut.sorted() == Array(groups.indices))
        #expect(queue.takeBack() == nil)
    }

    @Test("the configuration queue: after a failure neither end hands out another group")
    func configurationQueueStops() throws {
        let plan = Planner.plan(try TopologyLoader.load(path: Harness.topology("two-homes.yaml")))
        let groups = LabBuilder.groups(LabBuilder.configurationOrder(plan.steps)).filter { !LabBuilder.isRuleset($0) }
        let queue = ConfigurationQueue(groups)
        let first = try #require(queue.takeFront())
        queue.finish(first)
        queue.stop()
        #expect(queue.takeFront() == nil)
        #expect(queue.takeBack() == nil)
    }
}
