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
}
