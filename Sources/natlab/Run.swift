import ArgumentParser
import Foundation
import Lab
import Topology

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Build a lab, connect its peers with traversal agents, and prove which path they took.",
        discussion: """
        For every file: builds the lab (plus a public rendezvous host when the file has none), \
        starts its STUN/TURN/rendezvous servers, and runs each of its `checks:` — natlab's ICE \
        agent in both hosts, connecting through the rendezvous, exchanging `bytes` each way. The \
        network verdict comes from byte counters where the two hosts' packets meet (see \
        `natlab observe`); the agents' own reports must agree with it. Then the lab is removed.

        A check passes when the network carried the expected path, both agents report that same \
        path, and (unless `none` was expected) all the data arrived. Exit status 0 only when every \
        check of every file passed.

          natlab run Topologies/two-homes.yaml
          natlab run Topologies/*.yaml --junit results.xml
        """
    )

    @Argument(help: "Topology files with `checks:`.")
    var files: [String]

    @Flag(help: "Print one JSON report per file instead of text.")
    var json = false

    @Option(help: "Write a JUnit XML report (one testcase per check) to this file.")
    var junit: String?

    @Flag(help: "On a failed check, leave the lab up for `natlab exec` (remove it with `natlab down`).")
    var keep = false

    @Option(help: "Run every check N times and report the checks that did not always pass (flaky).")
    var `repeat`: Int = 1

    func validate() throws {
        if `repeat` < 1 { throw ValidationError("--repeat takes a number of runs, 1 or more") }
    }

    func run() throws {
        var reports: [RunReport] = []
        var failed = false
        try reportingErrors {
            try requireRoot("run")
            // Every file is read and checked before the first lab is built.
            let topologies = try files.map { ($0, try loadTopology($0, prepared: BuildPreparation.topology(at: $0))) }
            for (file, topology) in topologies where topology.checks.isEmpty {
                throw LabError.invalidTopology(TopologyError(diagnostics: [
                    Diagnostic(file: file, line: 1, column: 1, message: "no `checks:`: nothing for natlab run to do"),
                ]))
            }
            let engine = LabEngine()
            for (file, topology) in topologies {
                var options = RunOptions()
                options.keepOnFailure = keep
                options.repeatCount = `repeat`
                let report = try engine.run(topology, file: absolutePath(file), options: options) { line in
                    if !json { printError(line) }
                }
                reports.append(report)
                if !report.passed { failed = true }
                if json { print(try Report.json(report)) } else { print(RunText.render(report, file: file, repeatCount: `repeat`)) }
            }
        }
        if let junit { try JUnit.write(reports, to: junit) }
        if failed { throw ExitCode(1) }
    }
}

enum RunText {
    static func render(_ report: RunReport, file: String, repeatCount: Int) -> String {
        var out: [String] = []
        let passed = report.results.filter(\.passed).count
        out.append("\(file): \(passed)/\(report.results.count) checks passed (lab \(report.lab), built in \(String(format: "%.0f", report.buildMilliseconds ?? 0)) ms)")
        for r in report.results {
            out.append("  \(r.passed ? "PASS" : "FAIL")  \(r.check.title)  expected \(r.check.expect.rawValue)")
            out.append("        network: \(r.network)   agents: " + r.agents.map { "\($0.agent) \($0.pathText)" }.joined(separator: ", "))
            let pair = r.agents.compactMap(\.pair).first ?? "no pair"
            let connect = r.agents.compactMap(\.connectSeconds).max().map { String(format: "%.2f s", $0) } ?? "—"
            let data = r.agents.map { "\($0.agent) got \($0.received)/\(r.check.bytes) B" }.joined(separator: ", ")
            out.append("        pair: \(pair)   connected in \(connect)   \(data)   check took \(String(format: "%.1f", r.seconds)) s")
            let lost = r.agents.filter(\.consentLost).map(\.agent)
            if !lost.isEmpty { out.append("        path lost while held: \(lost.joined(separator: ", ")) (consent expired)") }
            if let f = r.failure { out.append("        why: \(f)") }
            for a in r.agents where !a.errors.isEmpty { out.append("        \(a.agent) said: \(a.errors.joined(separator: "; "))") }
        }
        if repeatCount > 1 {
            var byCheck: [Int: (pass: Int, all: Int, title: String)] = [:]
            for r in report.results { byCheck[r.index, default: (0, 0, r.check.title)].all += 1; if r.passed { byCheck[r.index]!.pass += 1 } }
            for (_, v) in byCheck.sorted(by: { $0.key < $1.key }) where v.pass != 0 && v.pass != v.all {
                out.append("  FLAKY \(v.title): passed \(v.pass) of \(v.all) runs")
            }
        }
        if report.kept { out.append("  lab kept for inspection: natlab exec \(report.lab) NODE -- CMD; natlab down \(report.lab)") }
        return out.joined(separator: "\n")
    }
}

enum JUnit {
    static func write(_ reports: [RunReport], to path: String) throws {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        var x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n"
        for r in reports {
            let failures = r.results.filter { !$0.passed }.count
            x += "  <testsuite name=\"\(esc(r.topologyFile))\" tests=\"\(r.results.count)\" failures=\"\(failures)\">\n"
            for c in r.results {
                x += "    <testcase classname=\"\(esc(r.lab))\" name=\"\(esc(c.check.title)) expect \(c.check.expect.rawValue)\" time=\"\(String(format: "%.3f", c.seconds))\">"
                if let f = c.failure { x += "\n      <failure message=\"\(esc(f))\">network: \(esc(c.network.description))</failure>\n    " }
                x += "</testcase>\n"
            }
            x += "  </testsuite>\n"
        }
        x += "</testsuites>\n"
        try x.write(toFile: path, atomically: true, encoding: .utf8)
    }
}
