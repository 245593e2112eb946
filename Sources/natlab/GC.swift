import ArgumentParser
import Lab

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove what killed natlab processes left behind.",
        discussion: """
        A lab whose builder or owner died (kill -9, power cut of the process) is found through \
        its journal in /run/natlab and removed with every process in it; so is any natlab-* \
        namespace that no lab claims. Labs left up on purpose with `natlab up` stay, unless \
        --all. `natlab up` runs the same collection first.
        """
    )

    @Flag(help: "Also remove labs left up on purpose.")
    var all = false

    func run() throws {
        try reportingErrors {
            try requireRoot("gc")
            let collected = try LabEngine().gc(all: all)
            print(collected.isEmpty ? "nothing to collect" : "collected \(Report.collection(collected))")
        }
    }
}
