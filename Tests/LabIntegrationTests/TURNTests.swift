import Foundation
import Testing
import Lab
import TestSupport

/// natlab's TURN relay in real labs, against third-party clients, side by side with coturn
/// (Topologies/turn-relay.yaml: alice and bob behind symmetric NATs, carol behind a cone, the relays
/// and an echo peer on the internet).
@Suite(.enabled(if: Privilege.shouldRun, "needs root and network namespaces"), .serialized)
struct TURNTests {
    static let relay = "203.0.113.4", coturn = "203.0.113.5", secretRelay = "203.0.113.6", peer = "203.0.113.7"
    static let probe = Harness.packageRoot + "/Tests/LabIntegrationTests/turn_probe.py"
    static let aioiceAgent = Harness.packageRoot + "/Tests/LabIntegrationTests/turn_aioice.py"
    /// The Python with aioice (Scripts/test's venv).
    static let python = Harness.python

    /// Brings the relay lab up; the caller takes it down.
    static func up() throws -> String {
        for tool in ["/usr/bin/turnserver", "/usr/bin/turnutils_uclient", "/usr/bin/turnutils_peer"] {
            guard FileManager.default.isExecutableFile(atPath: tool) else {
                throw TURNTestError("\(tool) missing: Scripts/test installs coturn (apt-get install coturn)")
            }
        }
        let lab = Harness.uniqueLab("turn")
        let up = try Harness.natlab("up", Harness.topology("turn-relay.yaml"), "--name", lab)
        guard up.status == 0 else { throw TURNTestError("up failed: \(up.stderr)") }
        // The relays answer once they are listening.
        for server in [relay, coturn, secretRelay] {
            let ok = Harness.waitUntil(timeout: 5) {
                ((try? Harness.natlab("exec", lab, "carol", "--", "turnutils_stunclient", server))?.stdout ?? "").contains("UDP reflexive addr")
            }
            if !ok { throw TURNTestError("\(server) never answered a Binding request") }
        }
        return lab
    }

    struct UClientResult {
        var sent = 0, received = 0, lost = -1
        var output = ""
    }

    /// turnutils_uclient from carol (behind a cone NAT), peer = turnutils_peer on the public `peer` host.
    static func uclient(_ lab: String, server: String, _ flags: [String]) throws -> UClientResult {
        let r = try Harness.run(Harness.natlab, ["exec", lab, "carol", "--", "timeout", "60", "turnutils_uclient"] + flags
                                   + ["-e", peer, "-r", "3480", "-m", "4", "-n", "30", "-l", "120", "-z", "5", server])
        var out = UClientResult(output: r.stdout + r.stderr)
        for line in out.output.split(separator: "\n") {
            if line.contains("start_mclient: tot_send_msgs="), !line.contains("msz=") {
                let nums = line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
                if nums.count >= 3 { out.sent = nums[nums.count - 2]; out.received = nums[nums.count - 1] }
            }
            if line.contains("Total lost packets") {
                out.lost = line.split(separator: " ").compactMap { Int($0) }.first ?? -1
            }
        }
        return out
    }

    @Test("turnutils_uclient through natlab's relay and coturn: channels (with EVEN-PORT/RESERVATION-TOKEN), -c, Send/Data indications, relay to relay, over UDP and TCP, REST secret; every message echoed")
    func uclient() throws {
        try Privilege.require()
        let lab = try Self.up()
        defer { _ = try? Harness.natlab("down", lab) }
        let echo = try Harness.start(Harness.natlab, ["exec", lab, "peer", "--", "turnutils_peer", "-L", Self.peer, "-p", "3480"])
        defer { echo.process.terminate() }
        usleep(200_000)
        let user = ["-u", "alice", "-w", "secret"]
        var runs: [(String, String, [String])] = []
        for (name, server) in [("natlab", Self.relay), ("coturn", Self.coturn)] {
            runs += [(name, server, user), (name, server, ["-c"] + user), (name, server, ["-s", "-c"] + user),
                     (name, server, ["-y", "-c"] + user), (name, server, ["-t"] + user), (name, server, ["-t", "-s", "-c"] + user),
                     (name, server, ["-t", "-y", "-c"] + user)]
        }
        runs.append(("natlab static secret", Self.secretRelay, ["-c", "-W", "labsecret", "-u", "alice"]))
        for (name, server, flags) in runs {
            let r = try Self.uclient(lab, server: server, flags)
            #expect(r.sent == 120 && r.received == 120 && r.lost == 0,
                    "\(name) \(flags.joined(separator: " ")): sent \(r.sent), received \(r.received), lost \(r.lost)\n\(r.output.suffix(1500))")
        }
        // The relay's statistics name the allocations that carried the traffic.
        let stats = try Harness.natlab("relay-stats", lab, "relay", "--json")
        #expect(stats.status == 0, "\(stats.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])
        let allocations = try #require(json["allocations"] as? [[String: Any]])
        let carrying = allocations.filter { (($0["fromPeers"] as? [String: Any])?["packets"] as? Int ?? 0) > 0 }
        #expect(carrying.count >= 4, "\(allocations.count) allocations, \(carrying.count) carried traffic")
        #expect(carrying.contains { ($0["peers"] as? [String] ?? []).contains { $0.hasPrefix(Self.peer + ":") } })
        #expect(carrying.allSatisfy { ($0["client"] as? String ?? "").hasPrefix("203.0.113.3:") }, "clients are seen from carol's NAT")
        let table = try Harness.natlab("relay-stats", lab, "relay")
        #expect(table.stdout.contains("ALLOC") && table.stdout.contains(Self.peer), "\(table.stdout)")
    }

    /// Runs two aioice agents (alice and bob, both behind symmetric NATs), relay-only through `server`.
    static func aioicePair(_ lab: String, server: String, transport: String) throws -> (a: Harness.Result, b: Harness.Result) {
        guard (try? Harness.run(python, ["-c", "import aioice"]).status) == 0 else {
            throw TURNTestError("aioice is not importable with \(python): Scripts/test installs it into .build/pyenv")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("natlab-aioice-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let env: [String: String] = [:]
        let a = try Harness.start(Harness.natlab, ["exec", lab, "alice", "--", "timeout", "60", python, aioiceAgent, "a", dir, server, "3478", "alice", "secret", transport], environment: env)
        let b = try Harness.run(Harness.natlab, ["exec", lab, "bob", "--", "timeout", "60", python, aioiceAgent, "b", dir, server, "3478", "bob", "secret", transport], environment: env)
        let out = a.stdout.fileHandleForReading.readDataToEndOfFile()
        let err = a.stderr.fileHandleForReading.readDataToEndOfFile()
        a.process.waitUntilExit()
        return (Harness.Result(status: a.process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
                               stderr: String(decoding: err, as: UTF8.self)), b)
    }

    @Test("two aioice agents behind symmetric NATs connect relay-only (TURN over UDP and over TCP) through natlab's relay and through coturn")
    func aioice() throws {
        try Privilege.require()
        let lab = try Self.up()
        defer { _ = try? Harness.natlab("down", lab) }
        for server in [Self.relay, Self.coturn] {
          for transport in ["udp", "tcp"] {
            let (a, b) = try Self.aioicePair(lab, server: server, transport: transport)
            #expect(a.status == 0 && a.stdout.contains("connected a got pong"), "via \(server)/\(transport): a: \(a.stdout) \(a.stderr.suffix(1500))")
            #expect(b.status == 0 && b.stdout.contains("connected b got ping"), "via \(server)/\(transport): b: \(b.stdout) \(b.stderr.suffix(1500))")
            #expect(a.stdout.contains("('\(server)',"), "the selected pair uses relayed addresses of \(server): \(a.stdout)")
          }
        }
        // Four allocations (two over UDP, two over TCP) carried the ICE checks and data, each with a
        // channel to the other's relayed address.
        let stats = try Harness.natlab("relay-stats", lab, "relay", "--json")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])
        let allocations = try #require(json["allocations"] as? [[String: Any]])
        let used = allocations.filter { (($0["toPeers"] as? [String: Any])?["packets"] as? Int ?? 0) > 0 }
        #expect(used.count == 4 && Set(used.compactMap { $0["username"] as? String }) == ["alice", "bob"], "\(allocations)")
        #expect(Set(used.compactMap { $0["transport"] as? String }) == ["udp", "tcp"])
        #expect(used.allSatisfy { !($0["channels"] as? [Any] ?? []).isEmpty && ($0["peers"] as? [String] ?? []).allSatisfy { $0.hasPrefix(Self.relay + ":") } })
    }

    /// What both servers answer (turn_probe.py): "none" = no answer (dropped without state).
    static let sameAnswers: [String: String] = [
        "allocate without credentials": "401",
        "unauthenticated create-permission": "401",
        "binding request": "success",
        "truncated header (10 bytes)": "none",
        "length field beyond the datagram": "none",
        "trailing bytes after the message": "none",
        "wrong FINGERPRINT": "none",
        "no magic cookie": "none",
        "wrong password": "401",
        "unknown user": "401",
        "integrity without USERNAME": "400",
        "integrity without NONCE": "400",
        "forged nonce": "438",
        "allocate without REQUESTED-TRANSPORT": "400",
        "allocate with an unknown comprehension-required attribute": "420",
        "refresh without an allocation": "437",
        "send indication without an allocation": "none",
        "channel data without an allocation": "none",
        "allocate (authenticated)": "success",
        "second allocate on the 5-tuple": "437",
        "channel-bind to channel 0x3fff": "400",
        "channel-bind without a peer": "400",
        "create-permission without a peer": "400",
        "refresh with lifetime 0": "success",
    ]

    /// Where they differ, on purpose: (natlab, coturn 4.6.1, why).
    static let differences: [String: (natlab: String, coturn: String, why: String)] = [
        "attribute overruns the message": ("none", "401", "natlab drops messages whose attributes do not frame (malformed: no answer, no state); coturn challenges before parsing attributes"),
        "allocate for TCP over UDP": ("442", "400", "natlab has no RFC 6062 TCP relaying: RFC 8656 §7.2 says 442; coturn has it and answers 400 for TCP requested over UDP (RFC 6062 §5.1)"),
        "create-permission without an allocation": ("437", "400", "RFC 8656 §5: a request other than Allocate on a 5-tuple without an allocation gets 437"),
        "channel-bind without an allocation": ("437", "400", "RFC 8656 §5, as above"),
    ]

    @Test("natlab's relay and coturn answer the same malformed and unauthenticated requests the same way")
    func sameAnswersAsCoturn() throws {
        try Privilege.require()
        let lab = try Self.up()
        defer { _ = try? Harness.natlab("down", lab) }
        var answers: [String: [String: String]] = [:]
        for (name, server) in [("natlab", Self.relay), ("coturn", Self.coturn)] {
            let r = try Harness.natlab("exec", lab, "carol", "--", "python3", Self.probe, server, "3478", "alice", "secret")
            #expect(r.status == 0, "\(r.stderr)")
            answers[name] = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: String] ?? [:]
        }
        for (request, expected) in Self.sameAnswers.sorted(by: { $0.key < $1.key }) {
            #expect(answers["natlab"]?[request] == expected, "natlab, \(request): \(answers["natlab"]?[request] ?? "?"), expected \(expected)")
            #expect(answers["coturn"]?[request] == expected, "coturn, \(request): \(answers["coturn"]?[request] ?? "?"), expected \(expected)")
        }
        for (request, d) in Self.differences {
            #expect(answers["natlab"]?[request] == d.natlab, "natlab, \(request): \(answers["natlab"]?[request] ?? "?") (\(d.why))")
            #expect(answers["coturn"]?[request] == d.coturn, "coturn, \(request): \(answers["coturn"]?[request] ?? "?") (\(d.why))")
        }
        #expect(Set(answers["natlab"]?.keys ?? [:].keys) == Set(Self.sameAnswers.keys).union(Self.differences.keys))
    }

    @Test("up starts natlab's relay and coturn in their nodes (status shows them); down stops them")
    func lifecycle() throws {
        try Privilege.require()
        let lab = try Self.up()
        var downed = false
        defer { if !downed { _ = try? Harness.natlab("down", lab) } }
        let info = try Harness.labJSON(lab)
        let roles = try #require(info["roles"] as? [[String: Any]])
        #expect(Set(roles.compactMap { $0["node"] as? String }) == ["relay", "coturn", "secret"])
        let pids = roles.compactMap { $0["pid"] as? Int32 }
        let status = try Harness.natlab("status", lab)
        #expect(status.stdout.contains("serve turn") && status.stdout.contains("turnserver"), "\(status.stdout)")
        let down = try Harness.natlab("down", lab)
        downed = true
        #expect(down.status == 0)
        for pid in pids { #expect(!LabEngine.isRunning(pid), "role \(pid) survived down") }
    }
}

struct TURNTestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
