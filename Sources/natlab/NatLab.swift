import ArgumentParser
import Foundation
import Lab
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

@main
struct NatLab: ParsableCommand {
    /// `fullConfiguration`, or while `QuickParse` parses, the same with ArgumentParser's check for
    /// `--generate-completion-script` turned off.
    static var configuration: CommandConfiguration {
        QuickParse.active.load(ordering: .relaxed) ? QuickParse.configuration : fullConfiguration
    }

    static let fullConfiguration = CommandConfiguration(
        commandName: "natlab",
        abstract: "Real NAT labs on one Linux kernel: network namespaces, veth, bridges and nftables NAT built from a YAML topology.",
        discussion: """
        A topology file (see Topologies/) declares routers with RFC 4787 NAT behaviour and hosts \
        behind them. natlab builds it as network namespaces named natlab-<lab>.<node> that \
        `ip netns` shows, never touching the host's own interfaces, routes or ruleset.

        Prove how two peers get through (as root):
          natlab run Topologies/two-homes.yaml

        Typical session with a lab left up:
          natlab validate Topologies/two-homes.yaml
          natlab up Topologies/two-homes.yaml
          natlab exec two-homes alice -- ip addr
          natlab nat explain two-homes home1
          natlab status two-homes
          natlab down two-homes

        Exit status: 0 success, 1 failure, 2 bad input (topology, names, arguments).
        """,
        version: "0.1.0",
        subcommands: [Validate.self, Run.self, Up.self, Down.self, Status.self, Exec.self, Nat.self, Probe.self, Verify.self,
                      Observe.self, Agent.self, RelayStats.self, GC.self, Serve.self, BenchClient.self]
    )
}

extension NatLab {
    /// ArgumentParser's entry point, after one look at the command line. `up`'s usual command lines
    /// are read without ArgumentParser (`Up.quickParse`), and the spare core only opens libnftables
    /// meanwhile (`BuildPreparation.startLibraryOnly`). Otherwise `up` and `run` build a lab, so
    /// their preparation starts now on the second core (`BuildPreparation`: no effect outside the
    /// process, so `up --help` or a bad option loses nothing), while ArgumentParser spends 2–3 ms of
    /// the first reading the command line. The root command has no options of its own, so the
    /// command is the first argument. The one argument that names a YAML file is loaded ahead too;
    /// the command uses that load only if ArgumentParser gives it the very same path. `down` warms up
    /// the reading and writing of a record the same way.
    static func main() {
        let arguments = CommandLine.arguments.dropFirst()
        if arguments.first == "up", var up = Up.quickParse(arguments.dropFirst()), (try? up.validate()) != nil {
            // `validate()` too, as ArgumentParser would (a failure is parsed again, for its message).
            BuildPreparation.startLibraryOnly()
            do { try up.run() } catch { exit(withError: error) }
            return
        }
        if let command = arguments.first, command == "up" || command == "run" {
            let files = arguments.dropFirst().filter { !$0.hasPrefix("-") && ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) }
            BuildPreparation.start(topologyFile: files.count == 1 ? files.first : nil)
        } else if arguments.first == "down" {
            BuildPreparation.startTeardown()
        }
        if var command = QuickParse.command(arguments) {
            do { try command.run() } catch { exit(withError: error) }
        } else {
            main(nil)
        }
    }
}

/// The command line read without ArgumentParser's check for `--generate-completion-script`, which
/// parses the arguments as two extra pseudo-commands and costs every natlab process ~0.5 ms (the
/// roles' processes too). ArgumentParser skips that check only for a root command that declares
/// `_superCommandName` (meant for plug-ins of another tool), which also changes every usage line:
/// so the root has that configuration only while this parse runs, and the result is used only when
/// it is one of natlab's own commands, parsed and validated. Anything else — a help request, an
/// error, `--version`, a completion request, or the root alone — is parsed again by
/// ArgumentParser's own `main`, which prints exactly what it always did. (`up`'s usual command
/// lines do not get here: `NatLab.main` reads them with `Up.quickParse`.)
enum QuickParse {
    static let active = Atomic(false)
    static let configuration: CommandConfiguration = {
        var quick = NatLab.fullConfiguration
        quick._superCommandName = "natlab"
        return quick
    }()

    static func command(_ arguments: ArraySlice<String>) -> ParsableCommand? {
        guard !arguments.contains(where: { $0.hasPrefix("--generate-completion-script") }) else { return nil }
        active.store(true, ordering: .relaxed)
        defer { active.store(false, ordering: .relaxed) }
        guard let command = try? NatLab.parseAsRoot(Array(arguments)),
              isSubcommand(type(of: command), of: NatLab.self) else { return nil }
        return command
    }

    /// True for a command below `root` in natlab's tree: not the root, not ArgumentParser's own
    /// `help`. (Both configurations of the root name the same subcommands.)
    static func isSubcommand(_ type: ParsableCommand.Type, of root: ParsableCommand.Type) -> Bool {
        root.configuration.subcommands.contains { $0 == type || isSubcommand(type, of: $0) }
    }
}

/// Runs a command body, printing natlab's errors the same way everywhere and mapping bad input to
/// exit status 2.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as LabError {
        printError(error.description)
        throw ExitCode(error.isBadInput ? 2 : 1)
    }
}

func printError(_ text: String) {
    var stderr = StandardError()
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        print("natlab: \(line)", to: &stderr)
    }
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) { FileHandle.standardError.write(Data(string.utf8)) }
}

func requireRoot(_ command: String) throws {
    if geteuid() != 0 { throw LabError.notRoot(command: command) }
}
