import ArgumentParser
import Testing
@testable import natlab

/// `Up.quickParse` reads `up`'s plain command lines without ArgumentParser (which costs ~2 ms of
/// the first core at the start of every `up`). It must never disagree with ArgumentParser: every
/// line it accepts parses to the same `Up`, and everything else is left to ArgumentParser.
struct QuickUpTests {
    /// Every accepted shape: each subset of the flags, with no name, `--name x` or `--name=x`, the
    /// file anywhere, in every order of the tokens.
    static var acceptedLines: [[String]] {
        var lines: [[String]] = []
        let flags = ["--json", "--emit-shell", "--no-roles"]
        for mask in 0..<(1 << flags.count) {
            let chosen = flags.indices.filter { mask & (1 << $0) != 0 }.map { [flags[$0]] }
            for name in [[], [["--name", "lab-1"]], [["--name=lab-1"]]] as [[[String]]] {
                for order in permutations(chosen + name + [["Topologies/two-homes.yaml"]]) {
                    lines.append(order.flatMap { $0 })
                }
            }
        }
        return lines
    }

    static func permutations<T>(_ items: [T]) -> [[T]] {
        guard items.count > 1 else { return [items] }
        return items.indices.flatMap { i in
            var rest = items
            let first = rest.remove(at: i)
            return permutations(rest).map { [first] + $0 }
        }
    }

    @Test("every line it accepts, ArgumentParser parses to the same Up")
    func agreesWithArgumentParser() throws {
        let lines = Self.acceptedLines
        #expect(lines.count == 473)   // 49 without a name, 212 with each of its two forms
        for line in lines {
            let quick = try #require(Up.quickParse(line[...]), "declined \(line)")
            let full = try #require(try NatLab.parseAsRoot(["up"] + line) as? Up, "\(line)")
            #expect(quick.file == full.file, "\(line)")
            #expect(quick.name == full.name, "\(line)")
            #expect(quick.json == full.json, "\(line)")
            #expect(quick.emitShell == full.emitShell, "\(line)")
            #expect(quick.noRoles == full.noRoles, "\(line)")
        }
    }

    @Test("help, errors and anything unusual are left to ArgumentParser", arguments: [
        [], ["--help"], ["-h"], ["help"], ["two-homes.yaml", "--help"],
        ["two-homes.yaml", "--bogus"], ["two-homes.yaml", "-j"], ["two-homes.yaml", "--json=true"],
        ["two-homes.yaml", "--Name", "x"], ["a.yaml", "b.yaml"],
        ["two-homes.yaml", "--json", "--json"], ["two-homes.yaml", "--no-roles", "--no-roles"],
        ["two-homes.yaml", "--name"], ["two-homes.yaml", "--name", "--json"], ["two-homes.yaml", "--name="],
        ["two-homes.yaml", "--name", "a", "--name", "b"], ["two-homes.yaml", "--name=a", "--name", "b"],
        ["two-homes.yaml", "--name", ""], ["--", "two-homes.yaml"], ["-two-homes.yaml"], [""],
        ["two-homes.yaml", "--generate-completion-script", "bash"], ["two-homes.yaml", "--version"],
    ] as [[String]])
    func declines(_ line: [String]) {
        #expect(Up.quickParse(line[...]) == nil)
    }

    /// A new argument of `Up` changes this line: then teach `quickParse` about it (or check that it
    /// declines every line that uses it) and update the test.
    @Test("Up has exactly the arguments quickParse knows")
    func knowsEveryArgument() {
        #expect(NatLab.usageString(for: Up.self) == "natlab up <file> [--name <name>] [--json] [--emit-shell] [--no-roles]")
    }
}
