import ArgumentParser
import Lab
import Topology

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check topology files without creating anything.",
        discussion: """
        Reports every problem at once, each as FILE:LINE:COLUMN: error: MESSAGE — YAML syntax, \
        unknown keys, unknown attach/upstream targets, cycles, overlapping or too-small subnets, \
        bad names, impossible NAT settings. Exit status 2 when any file has a problem. Needs no root.
        """
    )

    @Argument(help: "Topology files (YAML).")
    var files: [String]

    @Flag(help: "Also print the address plan of each valid file.")
    var plan = false

    func run() throws {
        var failed = false
        for file in files {
            do {
                let topology = try TopologyLoader.load(path: file)
                let labPlan = Planner.plan(topology)
                _ = try RoleLauncher.commands(in: labPlan)
                let routers = labPlan.nodes.filter { $0.kind == .router }.count
                let hosts = labPlan.nodes.filter { $0.kind == .host }.count
                print("\(file): ok — lab '\(topology.name)', \(routers) routers, \(hosts) hosts")
                if plan { print(PlanTable.render(labPlan, lab: topology.name)) }
            } catch let error as TopologyError {
                failed = true
                printError(LabError.invalidTopology(error).description)
            } catch {
                failed = true
                printError("\(file): \(error)")
            }
        }
        if failed { throw ExitCode(2) }
    }
}
