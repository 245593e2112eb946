import Foundation
import Testing
import TestSupport

/// The network verdict from counters alone: real traffic (udp.py), real NATs, `natlab observe`.
@Suite(.enabled(if: Privilege.shouldRun, "needs root and network namespaces"))
struct ObserverTests {
    struct Scenario: CustomStringConvertible, Sendable {
        var topology: String
        var peers: (String, String)
        /// How each peer learns where to send: "stun" (its public mapping from a reflector on the
        /// stun host), "local" (its own address), or "relay" (both send to a toy relay on `relay`).
        var mode: String
        var expected: String
        var description: String { "\(peers.0) ↔ \(peers.1) in \(topology): \(expected)" }
    }

    static let scenarios: [Scenario] = [
        Scenario(topology: "two-homes.yaml", peers: ("stun", "relay"), mode: "local", expected: "direct"),
        Scenario(topology: "office-lan.yaml", peers: ("ann", "ben"), mode: "local", expected: "direct (local)"),
        Scenario(topology: "two-homes.yaml", peers: ("alice", "bob"), mode: "stun", expected: "direct"),
        Scenario(topology: "cgnat.yaml", peers: ("carol", "dave"), mode: "stun", expected: "hairpin (isp)"),
        Scenario(topology: "two-homes.yaml", peers: ("alice", "bob"), mode: "relay", expected: "relay (relay)"),
    ]

    @Test("counters tell direct, local, hairpin and relay apart", arguments: scenarios)
    func verdict(_ s: Scenario) throws {
        try Privilege.require()
        let lab = Harness.uniqueLab("obs")
        let up = try Harness.natlab("up", Harness.topology(s.topology), "--name", lab)
        try #require(up.status == 0, "up failed: \(up.stderr)")
        defer { _ = try? Harness.natlab("down", lab) }
        let info = try Harness.labJSON(lab)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("natlab-obs-\(lab)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        var background: [Harness.Started] = []
        defer { background.forEach { $0.process.terminate() } }
        var relayArgs: [String] = []
        var targets = (s.peers.1, s.peers.0)
        switch s.mode {
        case "stun":
            let stun = try #require(Harness.address(info, node: "stun", interface: "eth0"))
            background.append(try LabLifecycleTests.startReflector(lab: lab, node: "stun", port: 3478))
            relayArgs = ["\(stun):3478", "\(stun):3478"]
        case "relay":
            let relay = try #require(Harness.address(info, node: "relay", interface: "eth0"))
            let started = try Harness.start(Harness.natlab, ["exec", lab, "relay", "--", "python3", "-u", Harness.udpTool, "relay", "3479"])
            _ = started.stdout.fileHandleForReading.availableData   // "ready"
            background.append(started)
            try "\(relay):3479".write(toFile: dir + "/relay", atomically: true, encoding: .utf8)
            targets = ("relay", "relay")
            relayArgs = ["local:0", "local:0"]
        default:
            let a = try #require(Harness.address(info, node: s.peers.0, interface: "eth0"))
            let b = try #require(Harness.address(info, node: s.peers.1, interface: "eth0"))
            relayArgs = ["local:\(a)", "local:\(b)"]
        }

        let observe = try Harness.start(Harness.natlab, ["observe", lab, s.peers.0, s.peers.1, "--seconds", "3", "--json"])
        usleep(600_000)   // counters installed
        let one = try Harness.start(Harness.natlab, ["exec", lab, s.peers.0, "--", "python3", Harness.udpTool, "punch", "40000",
                                                     relayArgs[0], dir, s.peers.0, targets.0, "40"])
        let two = try Harness.natlab("exec", lab, s.peers.1, "--", "python3", Harness.udpTool, "punch", "40001",
                                     relayArgs[1], dir, s.peers.1, targets.1, "40")
        one.process.waitUntilExit()
        #expect(two.stdout.contains("\"received\": 4") || two.stdout.contains("\"received\": 3"),
                "the traffic itself failed: \(two.stdout) \(two.stderr)")
        let out = String(decoding: observe.stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        observe.process.waitUntilExit()
        let verdict = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any] ?? [:]
        let path = verdict["path"] as? String ?? "?"
        let text = (verdict["detail"] as? String).map { "\(path) (\($0))" } ?? path
        #expect(text == s.expected, "network said \(text): \(out)")
    }
}
