import ArgumentParser
import Lab
import Topology

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "List labs, or show one lab's nodes, namespaces, interfaces and addresses."
    )

    @Argument(help: "A lab name; without it, every lab.")
    var name: String?

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        try reportingErrors {
            let engine = LabEngine()
            if let name {
                let record = try engine.record(of: name)
                if json { print(try Report.json(record)); return }
                print("lab \(record.name): \(record.state.rawValue), from \(record.topologyFile)")
                print(PlanTable.render(record.plan, lab: record.name))
                print(RoleTable.render(record))
                return
            }
            let labs = engine.status()
            if json { print(try Report.json(labs.map(\.record))); return }
            if labs.isEmpty { print("no labs"); return }
            var rows = [["LAB", "STATE", "NODES", "TOPOLOGY"]]
            for (record, alive) in labs {
                var state = record.state.rawValue
                if record.state != .up && !alive { state += " (owner gone: `natlab gc` removes it)" }
                if record.state != .up && alive { state += " (pid \(record.ownerPID))" }
                rows.append([record.name, state, "\(record.plan.nodes.count)", record.topologyFile])
            }
            print(Table.render(rows))
        }
    }
}
