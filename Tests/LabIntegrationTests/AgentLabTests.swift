import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// natlab's traversal agent in real labs: a rendezvous server and coturn (STUN/TURN) on public hosts,
/// agents behind kernel NATs, every agent started with `natlab exec` like a user would.
@Suite(.enabled(if: Privilege.shouldRun, "needs root and network namespaces"), .serialized)
struct AgentLabTests {
    static let aioiceAgent = Harness.packageRoot + "/Scripts/aioice-agent.py"
    static let python = Harness.python

    /// A lab with servers started in it; `stop()` ends the servers and removes the lab.
    struct Lab {
        let name: String
        let info: [String: Any]
        var servers: [Harness.Started] = []
        let dir: String

        init(_ topology: String, tag: String) throws {
            name = Harness.uniqueLab(tag)
            dir = NSTemporaryDirectory() + "natlab-agent-\(name)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let up = try Harness.natlab("up", topology, "--name", name)
            #expect(up.status == 0, "\(up.stderr)")
            info = try Harness.labJSON(name)
        }

        func address(_ node: String) -> String { Harness.address(info, node: node, interface: "eth0") ?? "?" }

        /// A long-running program in `node`, its output in a file (never a pipe that could fill).
        mutating func serve(_ node: String, _ label: String, _ argv: [String]) throws {
            let log = dir + "/\(label).log"
            let cmd = argv.map { "'\($0)'" }.joined(separator: " ")
            servers.append(try Harness.start(Harness.natlab, ["exec", name, node, "--", "sh", "-c", "exec \(cmd) >\(log) 2>&1"]))
        }

        func log(_ label: String) -> String { (try? String(contentsOfFile: dir + "/\(label).log", encoding: .utf8)) ?? "" }

        /// coturn as STUN and TURN server (long-term credentials user/pass, realm natlab).
        mutating func coturn(_ node: String) throws {
            let ip = address(node)
            try serve(node, "coturn-\(node)", ["turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls", "-L", ip, "-E", ip,
                                               "-a", "-u", "user:pass", "-r", "natlab", "-f", "--log-file", "stdout",
                                               "--pidfile", dir + "/turn-\(node).pid", "--min-port", "50000", "--max-port", "50999",
                                               "--no-software-attribute"])
        }

        mutating func rendezvous(_ node: String) throws {
            try serve(node, "rendezvous", [Harness.natlab, "serve", "rendezvous", "--port", "7000", "--verbose"])
        }

        func stop() {
            for s in servers where s.process.isRunning { kill(s.process.processIdentifier, SIGTERM) }
            _ = try? Harness.natlab("down", name)
            for s in servers { s.process.waitUntilExit() }
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    struct AgentRun {
        var status: Int32
        var lines: [[String: Any]]
        var raw: String
        var stderr: String

        func events(_ name: String) -> [[String: Any]] { lines.filter { $0["event"] as? String == name } }
        var selected: [String: Any]? { events("pair-selected").last }
        var localType: String? { (selected?["local"] as? [String: Any])?["type"] as? String }
        var remoteType: String? { (selected?["remote"] as? [String: Any])?["type"] as? String }
        var data: [String: Any]? { events("data").last }
    }

    /// Runs agents concurrently in their nodes (each argv after `natlab exec LAB NODE --`) to the end.
    static func runAgents(_ lab: Lab, _ agents: [(node: String, argv: [String])]) throws -> [AgentRun] {
        let started = try agents.map { try Harness.start(Harness.natlab, ["exec", lab.name, $0.node, "--"] + $0.argv) }
        return started.map { s in
            let out = s.stdout.fileHandleForReading.readDataToEndOfFile()
            let err = s.stderr.fileHandleForReading.readDataToEndOfFile()
            s.process.waitUntilExit()
            let raw = String(decoding: out, as: UTF8.self)
            let lines = raw.split(separator: "\n").map { line -> [String: Any] in
                let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(obj != nil, "not a JSON object: \(line)")
                return obj ?? [:]
            }
            return AgentRun(status: s.process.terminationStatus, lines: lines, raw: raw, stderr: String(decoding: err, as: UTF8.self))
        }
    }

    static func natlabAgent(_ id: String, _ peer: String, rendezvous: String, _ extra: [String]) -> [String] {
        [Harness.natlab, "agent", "--id", id, "--peer", peer, "--rendezvous", rendezvous + ":7000",
         "--deadline", "20"] + extra
    }

    /// Every line has "event", "agent" and a non-decreasing "t"; the report ends with data and done.
    static func checkContract(_ r: AgentRun, agent: String) {
        var last = -1.0
        for l in r.lines {
            #expect(l["event"] is String && l["agent"] as? String == agent, "\(l)")
            let t = (l["t"] as? NSNumber)?.doubleValue ?? -2
            #expect(t >= last, "t goes backwards: \(l)")
            last = t
        }
        #expect(r.lines.last?["event"] as? String == "done", "\(r.raw)")
        #expect(!r.events("candidate").isEmpty)
    }

    @Test("two port-restricted cones (two-homes): natlab agents punch a direct srflx↔srflx path and exchange data")
    func twoHomesDirect() throws {
        try Privilege.require()
        var lab = try Lab(Harness.topology("two-homes.yaml"), tag: "agd")
        defer { lab.stop() }
        try lab.coturn("stun")
        try lab.rendezvous("stun")
        let stun = lab.address("stun")
        let common = ["--stun", stun + ":3478", "--bytes", "20000"]
        let runs = try Self.runAgents(lab, [("alice", Self.natlabAgent("alice", "bob", rendezvous: stun, common)),
                                            ("bob", Self.natlabAgent("bob", "alice", rendezvous: stun, common))])
        for (r, id) in zip(runs, ["alice", "bob"]) {
            #expect(r.status == 0, "\(id): \(r.raw)\n\(r.stderr)\nrendezvous: \(lab.log("rendezvous"))")
            Self.checkContract(r, agent: id)
            #expect(r.localType == "srflx" && r.remoteType == "srflx", "\(id): \(r.selected ?? [:])")
            #expect(r.selected?["via"] as? String == "direct")
            #expect(r.events("path").first?["path"] as? String == "direct")
            #expect(r.data?["sent"] as? Int == 20000 && r.data?["received"] as? Int == 20000 && r.data?["complete"] as? Bool == true)
        }
        // each side saw the other's NAT: alice's remote is home2's public address
        let home2 = Harness.address(lab.info, node: "home2", interface: "wan")
        #expect((runs[0].selected?["remote"] as? [String: Any])?["address"] as? String == home2)
        let elapsed = runs.compactMap { ($0.selected?["elapsed"] as? NSNumber)?.doubleValue }
        print("two-homes: connected in \(elapsed) s after the offers")
    }

    @Test("natlab agent ↔ aioice agent in two-homes, both roles", arguments: [true, false])
    func aioiceInterop(natlabControlling: Bool) throws {
        try Privilege.require()
        let probe = try Harness.run(Self.python, ["-c", "import aioice"])
        #expect(probe.status == 0, "aioice missing for \(Self.python) (Scripts/test installs it): \(probe.stderr)")
        var lab = try Lab(Harness.topology("two-homes.yaml"), tag: "agi")
        defer { lab.stop() }
        try lab.coturn("stun")
        try lab.rendezvous("stun")
        let stun = lab.address("stun")
        let roleN = natlabControlling ? "--controlling" : "--controlled"
        let roleA = natlabControlling ? "--controlled" : "--controlling"
        let runs = try Self.runAgents(lab, [
            ("alice", Self.natlabAgent("alice", "bob", rendezvous: stun, ["--stun", stun + ":3478", "--bytes", "10000", roleN])),
            ("bob", [Self.python, "-u", Self.aioiceAgent, "--id", "bob", "--peer", "alice", "--rendezvous", stun + ":7000",
                     "--stun", stun + ":3478", "--bytes", "10000", "--deadline", "20", roleA]),
        ])
        for (r, id) in zip(runs, ["alice", "bob"]) {
            #expect(r.status == 0, "\(id): \(r.raw)\n\(r.stderr)\nrendezvous: \(lab.log("rendezvous"))")
            Self.checkContract(r, agent: id)
            #expect(r.localType == "srflx" && r.remoteType != "host" && r.remoteType != "relay", "\(id): \(r.selected ?? [:])")
            #expect(r.data?["received"] as? Int == 10000 && r.data?["complete"] as? Bool == true, "\(id): \(r.data ?? [:])")
        }
        #expect(runs[0].selected?["role"] as? String == (natlabControlling ? "controlling" : "controlled"))
    }

    @Test("two symmetric NATs: hole punching fails, the agents meet through coturn's relay")
    func symmetricRelay() throws {
        try Privilege.require()
        let file = NSTemporaryDirectory() + "natlab-agent-sym-\(UUID().uuidString).yaml"
        try """
        name: sym2
        routers:
          office1: { nat: symmetric }
          office2: { nat: symmetric }
        hosts:
          alice: { attach: office1 }
          bob:   { attach: office2 }
          relay: { attach: internet }
        """.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        var lab = try Lab(file, tag: "ags")
        defer { lab.stop() }
        try lab.coturn("relay")
        try lab.rendezvous("relay")
        let relay = lab.address("relay")
        let common = ["--stun", relay + ":3478", "--turn", relay + ":3478", "--turn-user", "user", "--turn-password", "pass",
                      "--bytes", "10000"]
        let runs = try Self.runAgents(lab, [("alice", Self.natlabAgent("alice", "bob", rendezvous: relay, common)),
                                            ("bob", Self.natlabAgent("bob", "alice", rendezvous: relay, common))])
        for (r, id) in zip(runs, ["alice", "bob"]) {
            #expect(r.status == 0, "\(id): \(r.raw)\n\(r.stderr)\ncoturn: \(lab.log("coturn-relay").suffix(3000))")
            Self.checkContract(r, agent: id)
            #expect(r.localType == "relay" || r.remoteType == "relay", "\(id): \(r.selected ?? [:])")
            #expect(r.events("path").first?["path"] as? String == "relay")
            #expect(r.data?["complete"] as? Bool == true)
            #expect(r.events("candidate").contains { $0["type"] as? String == "relay" && $0["side"] as? String == "local" })
        }
        // Interop through the relay: natlab agent ↔ aioice, both relay-only (relay ↔ relay, ChannelData both ways).
        let relayOnly = common + ["--relay-only"]
        let mixed = try Self.runAgents(lab, [
            ("alice", Self.natlabAgent("ra", "rb", rendezvous: relay, relayOnly)),
            ("bob", [Self.python, "-u", Self.aioiceAgent, "--id", "rb", "--peer", "ra", "--rendezvous", relay + ":7000",
                     "--deadline", "20"] + relayOnly),
        ])
        for r in mixed {
            #expect(r.status == 0, "\(r.raw)\n\(r.stderr)")
            #expect(r.localType == "relay" && r.remoteType == "relay", "\(r.selected ?? [:])")
            #expect(r.data?["complete"] as? Bool == true)
        }
        #expect(mixed[0].data?["received-relayed"] as? Int == 10000)
    }

    static func writeTopology(_ text: String) throws -> String {
        let file = NSTemporaryDirectory() + "natlab-agent-\(UUID().uuidString).yaml"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    @Test("the hole-punching matrix: symmetric↔full cone and public↔NAT direct, hairpin, one LAN local, symmetric↔port-restricted relay or none")
    func matrix() throws {
        try Privilege.require()
        let file = try Self.writeTopology("""
        name: agmx
        routers:
          sym: { nat: symmetric }
          fc:  { nat: full-cone }
          hp:  { nat: { preset: port-restricted-cone, hairpin: true } }
          prc: { nat: port-restricted-cone }
        hosts:
          srv: { attach: internet }
          pub: { attach: internet }
          s1:  { attach: sym }
          f1:  { attach: fc }
          h1:  { attach: hp }
          h2:  { attach: hp }
          p1:  { attach: prc }
        """)
        defer { try? FileManager.default.removeItem(atPath: file) }
        var lab = try Lab(file, tag: "agm")
        defer { lab.stop() }
        try lab.coturn("srv")
        try lab.rendezvous("srv")
        let srv = lab.address("srv")
        let turn = ["--turn", srv + ":3478", "--turn-user", "user", "--turn-password", "pass"]
        // (case, node A, node B, extra flags, expected path, expected local types of A and B's selected pairs)
        let cases: [(String, String, String, [String], String, Set<String>?)] = [
            ("sf", "s1", "f1", [], "direct", nil),
            ("pp", "pub", "p1", [], "direct", ["host", "srflx"]),
            ("hp", "h1", "h2", ["--no-host"], "hairpin", ["srflx"]),
            ("ln", "h1", "h2", [], "direct", ["host"]),
            ("sr", "s1", "p1", turn, "relay", nil),
            ("sn", "s1", "p1", ["--deadline", "3"], "none", nil),
        ]
        for (tag, a, b, extra, expected, locals) in cases {
            let flags = ["--stun", srv + ":3478", "--bytes", "5000"] + extra
            let runs = try Self.runAgents(lab, [(a, Self.natlabAgent("\(tag)-\(a)", "\(tag)-\(b)", rendezvous: srv, flags)),
                                                (b, Self.natlabAgent("\(tag)-\(b)", "\(tag)-\(a)", rendezvous: srv, flags))])
            for r in runs {
                let paths = r.events("path").compactMap { $0["path"] as? String }
                #expect(paths.first == expected, "\(tag): \(r.raw)")
                Self.checkContract(r, agent: r.lines.first?["agent"] as? String ?? "?")
                if expected == "none" {
                    #expect(r.status == 1 && r.selected == nil && !r.events("error").isEmpty, "\(tag): \(r.raw)")
                } else {
                    #expect(r.status == 0 && r.data?["complete"] as? Bool == true, "\(tag): \(r.raw)")
                }
                if let locals { #expect(locals.contains(r.localType ?? "-"), "\(tag): \(r.selected ?? [:])") }
                if expected == "direct" || expected == "hairpin" { #expect(r.selected?["via"] as? String == "direct") }
            }
        }
    }

    @Test("NAT mappings of 3 s: consent every ~1 s keeps the path; every ~5 s lets a mapping expire, which is reported")
    func mappingLifetime() throws {
        try Privilege.require()
        let file = try Self.writeTopology("""
        name: agsh
        routers:
          n1: { nat: { preset: port-restricted-cone, udp-timeout: 3s, udp-stream-timeout: 3s } }
          n2: { nat: { preset: port-restricted-cone, udp-timeout: 3s, udp-stream-timeout: 3s } }
        hosts:
          srv: { attach: internet }
          a1: { attach: n1 }
          b1: { attach: n2 }
        """)
        defer { try? FileManager.default.removeItem(atPath: file) }
        var lab = try Lab(file, tag: "agl")
        defer { lab.stop() }
        try lab.coturn("srv")
        try lab.rendezvous("srv")
        let srv = lab.address("srv")
        func run(_ tag: String, _ flags: [String]) throws -> [AgentRun] {
            let f = ["--stun", srv + ":3478", "--bytes", "2000"] + flags
            return try Self.runAgents(lab, [("a1", Self.natlabAgent("\(tag)a", "\(tag)b", rendezvous: srv, f)),
                                            ("b1", Self.natlabAgent("\(tag)b", "\(tag)a", rendezvous: srv, f))])
        }
        // Keepalive shorter than the mapping lifetime: consent never lapses.
        for r in try run("k1", ["--keepalive", "1", "--consent-timeout", "5", "--hold", "7"]) {
            #expect(r.status == 0, "\(r.raw)")
            #expect(r.events("done").last?["consent-lost"] as? Int == 0)
            #expect(!r.events("path").contains { $0["state"] as? String == "lost" })
        }
        // Longer: both mappings expire after the data; whoever sends its first consent request
        // (at 4–6 s) first hits the peer's expired mapping and hears nothing before its 7 s
        // consent timeout (its next request is ≥ 8 s away): that agent reports the path lost.
        let runs = try run("k5", ["--keepalive", "5", "--consent-timeout", "7", "--hold", "10"])
        let lost = runs.filter { r in r.events("path").contains { $0["state"] as? String == "lost" && $0["reason"] as? String == "consent-expired" } }
        #expect(!lost.isEmpty, "\(runs.map(\.raw))")
        for r in lost {
            #expect(r.status == 1 && (r.events("done").last?["consent-lost"] as? Int ?? 0) >= 1)
        }
    }
}
