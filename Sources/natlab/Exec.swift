import ArgumentParser
import Foundation
import Lab
import LinuxNetworking

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command inside a lab node.",
        discussion: """
        Like `ip netns exec natlab-<lab>.<node> CMD`: the command sees only the node's \
        interfaces (also under /sys/class/net). Without a command, starts $SHELL (or /bin/sh). \
        The exit status is the command's.

          natlab exec two-homes alice -- ip route
          natlab exec two-homes home1 -- nft list ruleset
        """
    )

    @Argument(help: "Lab name.")
    var lab: String

    @Argument(help: "Node name.")
    var node: String

    @Argument(parsing: .captureForPassthrough, help: "Command and arguments (after --).")
    var command: [String] = []

    func run() throws {
        try reportingErrors {
            try requireRoot("exec")
            let record = try LabEngine().record(of: lab)
            guard record.plan.nodes.contains(where: { $0.name == node }) else {
                throw LabError.noSuchNode(lab: lab, node: node, known: record.plan.nodes.map(\.name))
            }
            var argv = command
            if argv.first == "--" { argv.removeFirst() }
            if argv.isEmpty { argv = [ProcessInfo.processInfo.environment["SHELL"] ?? "/bin/sh"] }
            let path = NetworkNamespace.directory + "/" + record.namespace(of: node)
            Interrupts.resetForExec()
            let error = NamespaceExec.exec(namespacePath: path, argv: argv)
            throw LabError.kernel(error)
        }
    }
}
