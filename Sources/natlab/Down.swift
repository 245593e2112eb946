import ArgumentParser
import Lab

struct Down: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Remove a lab: stop its processes and delete its namespaces.",
        discussion: "Deleting a namespace removes its interfaces, routes, ruleset and conntrack state with it."
    )

    @Argument(help: "Names of labs to remove (see `natlab status`).")
    var names: [String]

    func run() throws {
        try reportingErrors {
            try requireRoot("down")
            let engine = LabEngine()
            for name in names {
                let killed = try engine.down(name)
                let extra = killed.isEmpty ? "" : " (stopped \(killed.count) process\(killed.count == 1 ? "" : "es"))"
                print("lab \(name) is down\(extra)")
            }
        }
    }
}
