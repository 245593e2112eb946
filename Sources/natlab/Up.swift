import ArgumentParser
import Foundation
import Lab
import Topology

struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Build a lab from a topology file and leave it running.",
        discussion: """
        Creates one network namespace per node (natlab-<lab>.<node>), veth pairs placed directly \
        in their namespaces, bridges, addresses, routes, sysctls and each router's nftables NAT, \
        all through netlink and libnftables. Stale leftovers of labs whose natlab was killed are \
        collected first. Ctrl-C or SIGTERM during the build removes what was built.

        Then: `natlab exec LAB NODE -- CMD` runs a command in a node, `natlab down LAB` removes it.
        With --emit-shell nothing is built: the equivalent `ip`/`nft` script is printed instead \
        (run it with `bash script up` / `bash script down`; needs no natlab). Its namespaces are \
        named nlsh-<lab>.<node>: natlab keeps no journal of them, so `gc` leaves them alone.
        """
    )

    @Argument(help: "Topology file (YAML).")
    var file: String

    @Option(help: "Lab name (default: the topology's `name:`). Lower-case letters, digits, '-'; at most 24.")
    var name: String?

    @Flag(help: "Print the lab as JSON instead of a table.")
    var json = false

    @Flag(help: "Print the equivalent ip/nft shell script and exit, building nothing.")
    var emitShell = false

    @Flag(help: ArgumentHelp("Build the network only: start none of the nodes' `run:` roles.",
                             discussion: "Start or debug a role yourself: `natlab exec LAB NODE -- natlab serve stun --listen ADDR`."))
    var noRoles = false

    func run() throws {
        try reportingErrors {
            let prepared = BuildPreparation.topology(at: file)
            let topology = try Timing.measure("load and check the topology") { try loadTopology(file, prepared: prepared) }
            let labName = name ?? topology.name
            if let why = LabNaming.problem(withLabName: labName) { throw LabError.invalidName(why) }
            let plan = Timing.measure("plan") { prepared?.plan ?? Planner.plan(topology) }
            if emitShell {
                print(ShellScript.render(plan) { LabNaming.shellNamespace(lab: labName, node: $0) }, terminator: "")
                return
            }
            try requireRoot("up")
            let engine = LabEngine()
            let (record, collected, recordJSON) = try engine.up(plan: plan, name: labName,
                                                                topologyFile: absolutePath(file), roles: !noRoles)
            if !collected.isEmpty {
                printError("collected leftovers first: \(Report.collection(collected))")
            }
            if json {
                print(String(decoding: recordJSON, as: UTF8.self))   // = Report.json(record), already encoded
            } else {
                // Tenths by hand: the first `String(format:)` of a process costs ~0.3 ms (Foundation's
                // formatter), and this is the only one `up` makes. An integer number of tenths divided
                // by 10 prints with one decimal (Swift prints the shortest form that reads back).
                let ms = record.buildMilliseconds.map { "\(($0 * 10).rounded() / 10) ms" } ?? "?"
                print("lab \(record.name) is up (\(record.plan.nodes.count) namespaces, built in \(ms))")
                print(PlanTable.render(record.plan, lab: record.name))
                print(RoleTable.render(record))
                if noRoles, let skipped = try? RoleLauncher.commands(in: record.plan), !skipped.isEmpty {
                    let list = skipped.compactMap { role in record.plan.node(named: role.node).flatMap { node in
                        node.role.map { "\(node.name): \($0)" } } }
                    print("roles not started (--no-roles): \(list.joined(separator: ", "))")
                }
                let pending = RoleLauncher.pending(in: record.plan)
                if !pending.isEmpty {
                    let list = pending.map { "\($0.node): \($0.role)" }.joined(separator: ", ")
                    print("note: this version cannot start natlab's own roles yet (\(list)); `run: { exec: [...] }` roles run")
                }
                print("next: natlab exec \(record.name) NODE -- CMD   ·   natlab down \(record.name)")
            }
        }
    }
}

extension Up {
    /// `up`'s arguments (after `up`) read without ArgumentParser, when they have the plain shape
    /// scripts and CI use: the file, `--name NAME` or `--name=NAME`, and the three flags, each at
    /// most once, in any order. Anything else — help, an unknown or repeated option, a value that
    /// looks like an option, `--`, a second file — returns nil, and ArgumentParser parses the line
    /// (and prints its usual help or error). Why: ArgumentParser reflects `Up` to find its options,
    /// and resolving the property wrappers' generic types scans the binary's 7,591
    /// protocol-conformance records again and again: ~2 ms of the first core at the start of every
    /// `up`, before the build can begin. `QuickUpTests` checks that for every line this accepts,
    /// ArgumentParser's parse is the same, and that `Up` has exactly the options this knows.
    static func quickParse(_ arguments: ArraySlice<String>) -> Up? {
        var file: String?, name: String?
        var json = false, emitShell = false, noRoles = false
        var rest = arguments[...]
        func setOnce(_ flag: inout Bool) -> Bool {
            if flag { return false }
            flag = true
            return true
        }
        while let argument = rest.popFirst() {
            switch argument {
            case "--json": guard setOnce(&json) else { return nil }
            case "--emit-shell": guard setOnce(&emitShell) else { return nil }
            case "--no-roles": guard setOnce(&noRoles) else { return nil }
            case "--name":
                guard name == nil, let value = rest.popFirst(), isPlainValue(value) else { return nil }
                name = value
            case _ where argument.hasPrefix("--name="):
                let value = String(argument.dropFirst("--name=".count))
                guard name == nil, isPlainValue(value) else { return nil }
                name = value
            default:
                guard file == nil, isPlainValue(argument), argument != "help" else { return nil }
                file = argument
            }
        }
        guard let file else { return nil }
        var up = Up()
        up.file = file
        up.name = name
        up.json = json
        up.emitShell = emitShell
        up.noRoles = noRoles
        return up
    }

    /// A value ArgumentParser takes as it is: not empty, not starting with `-` (it would read that
    /// as an option).
    private static func isPlainValue(_ value: String) -> Bool {
        !value.isEmpty && !value.hasPrefix("-")
    }
}

/// Loads and validates a topology file; every problem becomes one bad-input error. `prepared`: the
/// load `BuildPreparation` made of this very file ahead of the command, if any.
func loadTopology(_ file: String, prepared: TopologyPrefetch.Loaded? = nil) throws(LabError) -> Topology {
    let loaded = prepared?.topology ?? Result { () throws(TopologyError) -> Topology in try TopologyLoader.load(path: file) }
    do { return try loaded.get() } catch { throw LabError.invalidTopology(error) }
}

/// `getcwd` rather than `FileManager.default.currentDirectoryPath`, whose first use costs `up`'s main
/// thread ~0.1 ms.
func absolutePath(_ path: String) -> String {
    guard !path.hasPrefix("/"), let cwd = getcwd(nil, 0) else { return path }
    defer { free(cwd) }
    return String(cString: cwd) + "/" + path
}
