import ArgumentParser
import Lab

struct NatExplain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Print a router's live nftables ruleset, each rule preceded by the behaviour it implements.",
        discussion: """
        Reads the ruleset from the router's namespace (what the kernel really runs, not what the \
        topology asked for) and prints it with a `# …` line before every rule, under a header with the \
        declared RFC 4787 profile (mapping, filtering, hairpin, ports, pooling, timeouts, classic cone \
        name) and the conntrack timeout sysctls read live in the namespace. Needs root.

          natlab nat explain two-homes home1
          natlab nat explain cgnat isp --json
        """
    )

    @Argument(help: "Lab name (see `natlab status`).")
    var lab: String

    @Argument(help: "Router name.")
    var router: String

    @Flag(help: "Print JSON: the profile, live sysctls, every rule with its meaning, and the raw ruleset.")
    var json = false

    func run() throws {
        try reportingErrors {
            let engine = LabEngine()
            // An unknown lab is a bad argument here (exit 2), like an unknown router.
            guard engine.store.labNames().contains(lab) else {
                printError(LabError.noSuchLab(lab).description)
                throw ExitCode(2)
            }
            try requireRoot("nat explain")
            let explanation = try engine.explainNAT(lab: lab, router: router)
            if json {
                print(try Report.json(explanation))
            } else {
                print(explanation.text, terminator: "")
            }
        }
    }
}
