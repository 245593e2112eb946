import Foundation
import Testing
import TestSupport

/// `natlab run` end to end: real labs, natlab's STUN/TURN/rendezvous servers, natlab's agents,
/// verdicts from the network counters cross-checked with the agents' reports.
@Suite(.enabled(if: Privilege.shouldRun, "needs root and network namespaces"))
struct RunTests {
    /// Every shipped file with checks, and the paths its checks must end on.
    static let shipped: [(file: String, paths: [String])] = [
        ("two-homes.yaml", ["direct"]),
        ("office-lan.yaml", ["direct"]),
        ("p2p-public.yaml", ["direct"]),
        ("symmetric.yaml", ["relay"]),
        ("p2p-symmetric-both.yaml", ["relay"]),
        ("p2p-symmetric-fullcone.yaml", ["direct"]),
        ("p2p-hairpin.yaml", ["hairpin", "relay"]),
        ("cgnat.yaml", ["hairpin", "direct"]),
        ("p2p-cgnat-nohairpin.yaml", ["relay"]),
        ("p2p-udp-blocked.yaml", ["none"]),
        ("p2p-lifetime.yaml", ["direct", "direct"]),
    ]

    @Test("every shipped topology's checks pass, with the path the file expects", arguments: shipped.map(\.file))
    func shippedChecksPass(_ file: String) throws {
        try Privilege.require()
        let junit = FileManager.default.temporaryDirectory.appendingPathComponent("natlab-junit-\(UUID().uuidString).xml").path
        defer { try? FileManager.default.removeItem(atPath: junit) }
        let r = try Harness.natlab("run", Harness.topology(file), "--json", "--junit", junit)
        #expect(r.status == 0, "\(file): \(r.stdout)\n\(r.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        let results = report["results"] as? [[String: Any]] ?? []
        let expected = Self.shipped.first { $0.file == file }!.paths
        #expect(results.map { ($0["network"] as? [String: Any])?["path"] as? String ?? "?" } == expected, "\(r.stdout)")
        for result in results {
            #expect(result["passed"] as? Bool == true, "\(result)")
            // The agents' own reports were read and agree.
            let agents = result["agents"] as? [[String: Any]] ?? []
            #expect(agents.count == 2)
        }
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        #expect(xml.contains("<testcase") && !xml.contains("<failure"), "\(xml)")
        // The lab is gone afterwards.
        let lab = report["lab"] as? String ?? "?"
        #expect(Harness.namespaces(ofLab: lab).isEmpty)
    }

    @Test("a wrong expectation fails with exit 1, says why, and --keep leaves the lab for inspection")
    func wrongExpectationFails() throws {
        try Privilege.require()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("natlab-run-\(UUID().uuidString).yaml")
        try """
        name: wrong
        routers:
          office1: { nat: symmetric }
          office2: { nat: symmetric }
        hosts:
          alice: { attach: office1 }
          bob:   { attach: office2 }
          stun:  { attach: internet, run: stun-server }
        checks:
          - connect: [alice, bob]
            expect: direct
            deadline: 3s
        """.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let r = try Harness.natlab("run", file.path, "--keep", "--json")
        #expect(r.status == 1)
        let report = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        let lab = try #require(report["lab"] as? String)
        defer { _ = try? Harness.natlab("down", lab) }
        let result = try #require((report["results"] as? [[String: Any]])?.first)
        #expect((result["failure"] as? String)?.contains("expected direct, the network carried none") == true, "\(result)")
        #expect(report["kept"] as? Bool == true)
        #expect(!Harness.namespaces(ofLab: lab).isEmpty, "--keep must leave the failed lab up")
        #expect(try Harness.natlab("status", lab).stdout.contains(": up"))
    }

    @Test("a file without checks is bad input")
    func noChecks() throws {
        try Privilege.require()
        let r = try Harness.natlab("run", Harness.topology("full-cone.yaml"))
        #expect(r.status == 2)
        #expect(r.stderr.contains("no `checks:`"))
    }
}
