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
        #expect(LabEngine.warmUpRecordEncoding() > 1000)
    }
}
