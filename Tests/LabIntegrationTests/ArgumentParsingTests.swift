import Foundation
import Testing

/// The command line as users see it, through the binary (no root needed). natlab first parses it
/// without ArgumentParser's completion-script check (`QuickParse`, with the root configured as a
/// plug-in); everything but one of its own commands goes back to ArgumentParser's `main`. These
/// check that nothing of that configuration ever shows: usage lines, help, errors and completion
/// scripts are ArgumentParser's usual ones.
struct ArgumentParsingTests {
    @Test("help names natlab once, for the root and for a command")
    func helpUsageLines() throws {
        let root = try Harness.natlab("--help")
        #expect(root.status == 0)
        #expect(root.stdout.contains("USAGE: natlab <subcommand>"))
        let up = try Harness.natlab("up", "--help")
        #expect(up.status == 0)
        #expect(up.stdout.contains("USAGE: natlab up <file>"))
        #expect(try Harness.natlab("help", "up").stdout == up.stdout)
        for text in [root.stdout, up.stdout] { #expect(!text.contains("natlab natlab")) }
    }

    @Test("a bad option and a failed validation print ArgumentParser's error with natlab's usage, status 64")
    func errors() throws {
        let unknown = try Harness.natlab("up", Harness.topology("two-homes.yaml"), "--bogus")
        #expect(unknown.status == 64)
        #expect(unknown.stderr.contains("Error: Unknown option '--bogus'"))
        #expect(unknown.stderr.contains("Usage: natlab up <file>"))
        let invalid = try Harness.natlab("run", Harness.topology("two-homes.yaml"), "--repeat", "0")
        #expect(invalid.status == 64)
        #expect(invalid.stderr.contains("--repeat takes a number of runs, 1 or more"))
        #expect(invalid.stderr.contains("Usage: natlab run <files> ..."))
        #expect(!(unknown.stderr + invalid.stderr).contains("natlab natlab"))
    }

    @Test("--generate-completion-script and --version still work")
    func completionAndVersion() throws {
        let bash = try Harness.natlab("--generate-completion-script", "bash")
        #expect(bash.status == 0)
        #expect(bash.stdout.contains("_natlab()"))
        let version = try Harness.natlab("--version")
        #expect(version.status == 0)
        #expect(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines).first?.isNumber == true)
    }

    @Test("a command that parses runs: validate prints its verdict, and a run-time error keeps exit status 2")
    func commandsRun() throws {
        let ok = try Harness.natlab("validate", Harness.topology("two-homes.yaml"))
        #expect(ok.status == 0)
        #expect(!ok.stdout.isEmpty)
        let missing = try Harness.natlab("validate", "/nonexistent/natlab-test.yaml")
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("no such file"))
    }
}
