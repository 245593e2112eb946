import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Real labs on the real kernel, driven through the natlab binary. Needs root; under CI=true a
/// missing privilege fails every test here.
@Suite(.enabled(if: Privilege.shouldRun, "needs root and network namespaces"))
struct LabLifecycleTests {
    /// Parent (router) of a node, from the lab JSON.
    static func parent(_ lab: [String: Any], of node: String) -> String? {
        let nodes = (lab["plan"] as? [String: Any])?["nodes"] as? [[String: Any]] ?? []
        return nodes.first { $0["name"] as? String == node }?["parent"] as? String
    }

    /// Starts the reflector on `node` and returns its process (killed by `down`).
    static func startReflector(lab: String, node: String, port: Int) throws -> Harness.Started {
        let started = try Harness.start(Harness.natlab, ["exec", lab, node, "--", "python3", "-u", Harness.udpTool, "reflect", "\(port)"])
        // "ready" once bound; read it so the probe never races the bind.
        let line = started.stdout.fileHandleForReading.availableData
        #expect(String(decoding: line, as: UTF8.self).contains("ready"), "reflector did not start")
        return started
    }

    static func probe(lab: String, node: String, bind: Int, to target: String, listen: Double = 0) throws -> [[String: String]] {
        let r = try Harness.natlab("exec", lab, node, "--", "python3", Harness.udpTool, "probe", "\(bind)", target,
                                   environment: ["LISTEN": "\(listen)"])
        #expect(r.status == 0, "probe failed: \(r.stderr)")
        return r.stdout.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: String]
        }
    }

    /// Starts a slowed-down `up` (test hook: 150 ms per step) of two-homes and returns once every
    /// namespace exists and node configuration has begun.
    static func upHalfWay(_ lab: String) throws -> Harness.Started {
        let up = try Harness.start(Harness.natlab, ["up", Harness.topology("two-homes.yaml"), "--name", lab],
                                   environment: ["NATLAB_TEST_STEP_DELAY_MS": "150"])
        #expect(Harness.waitUntil(timeout: 10) { Harness.namespaces(ofLab: lab).count >= 7 })
        usleep(300_000)
        return up
    }

    @Test("two-homes: NAT'd traffic leaves with the NAT's public address, replies return, unsolicited packets do not")
    func twoHomesTraffic() throws {
        try Privilege.require()
        let lab = Harness.uniqueLab("nat")
        let before = try Harness.hostNetworkState()
        let up = try Harness.natlab("up", Harness.topology("two-homes.yaml"), "--name", lab)
        #expect(up.status == 0, "up failed: \(up.stderr)")
        defer {
            let down = try? Harness.natlab("down", lab)
            #expect(down?.status == 0, "down failed: \(down?.stderr ?? "")")
            #expect(Harness.namespaces(ofLab: lab).isEmpty)
        }
        let info = try Harness.labJSON(lab)
        let router = try #require(Self.parent(info, of: "alice"))
        let wan = try #require(Harness.address(info, node: router, interface: "wan"))
        let stun = try #require(Harness.address(info, node: "stun", interface: "eth0"))
        let alice = try #require(Harness.address(info, node: "alice", interface: "eth0"))
        #expect(!alice.hasPrefix(wan), "alice must be behind the NAT")

        let reflector = try Self.startReflector(lab: lab, node: "stun", port: 3490)
        defer { reflector.process.terminate() }

        // Outbound: the reflector sees the NAT's public address; the reply comes back.
        let first = try Self.probe(lab: lab, node: "alice", bind: 40000, to: "\(stun):3490")
        let observed = try #require(first.first?["observed"], "no reply from the reflector: \(first)")
        #expect(observed.hasPrefix(wan + ":"), "reflector saw \(observed), expected the NAT's \(wan)")
        let mappedPort = try #require(observed.split(separator: ":").last.map(String.init))

        // Inbound without a prior outbound packet to that sender: the relay host sends to the mapping
        // while alice listens with the same socket. APDF: nothing may arrive.
        let listener = try Harness.start(Harness.natlab,
            ["exec", lab, "alice", "--", "python3", "-u", Harness.udpTool, "probe", "40000", "\(stun):3490"],
            environment: ["LISTEN": "1.5"])
        usleep(400_000)
        let send = try Harness.natlab("exec", lab, "relay", "--", "python3", Harness.udpTool, "send", "5555", "\(wan):\(mappedPort)")
        #expect(send.status == 0, "send failed: \(send.stderr)")
        let output = String(decoding: listener.stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        listener.process.waitUntilExit()
        #expect(output.contains("observed"), "the listener's own mapping failed: \(output)")
        #expect(!output.contains("HELLO"), "an unsolicited datagram from the internet got through the NAT: \(output)")

        // The host's own network state never changed.
        #expect(try Harness.hostNetworkState() == before)
    }

    @Test("exec sees only the node's interfaces, also under /sys/class/net")
    func execView() throws {
        try Privilege.require()
        let lab = Harness.uniqueLab("exec")
        #expect(try Harness.natlab("up", Harness.topology("two-homes.yaml"), "--name", lab).status == 0)
        defer { _ = try? Harness.natlab("down", lab) }
        let sys = try Harness.natlab("exec", lab, "alice", "--", "ls", "/sys/class/net")
        #expect(sys.status == 0, "\(sys.stderr)")
        #expect(sys.stdout.split(separator: "\n").sorted() == ["eth0", "lo"])
        let exit = try Harness.natlab("exec", lab, "alice", "--", "sh", "-c", "exit 7")
        #expect(exit.status == 7, "exec must return the command's exit status")
        let unknown = try Harness.natlab("exec", lab, "mallory", "--", "true")
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("no node 'mallory'"))

        // natlab chooses the links' ifindexes (`LinkIndexes`): none is used twice in the lab, so the
        // `@ifN` that `ip link` shows after a veth names one interface of the whole lab, its peer.
        var links: [Int: String] = [:]
        var vethPeers: [(end: String, peerIndex: Int)] = []
        for namespace in Harness.namespaces(ofLab: lab) {
            let show = try Harness.run("/usr/bin/env", ["ip", "-n", namespace, "-o", "link"])
            #expect(show.status == 0, "\(show.stderr)")
            for line in show.stdout.split(separator: "\n") {
                let fields = line.split(separator: ":", maxSplits: 2).map { $0.trimmingCharacters(in: .whitespaces) }
                guard fields.count == 3, let index = Int(fields[0]), fields[1] != "lo" else { continue }
                let parts = fields[1].split(separator: "@")
                let end = "\(namespace) \(parts[0])"
                #expect(links[index] == nil, "ifindex \(index) is both \(links[index] ?? "") and \(end)")
                links[index] = end
                if parts.count == 2, let peer = Int(parts[1].dropFirst(2)) { vethPeers.append((end, peer)) }
            }
        }
        #expect(links.count == 15, "two-homes: 3 bridges and 6 veth pairs, got \(links.values.sorted())")
        #expect(vethPeers.count == 12)
        for (end, peerIndex) in vethPeers {
            let peer = try #require(links[peerIndex], "\(end)'s peer index \(peerIndex) names no link of the lab")
            #expect(vethPeers.contains { $0.end == peer && links[$0.peerIndex] == end }, "\(end) and \(peer) are not each other's peer")
        }
    }

    @Test("down leaves no namespace, mount, process or lab state behind")
    func downLeavesNothing() throws {
        try Privilege.require()
        let lab = Harness.uniqueLab("down")
        defer { _ = try? Harness.natlab("down", lab) }   // only matters when the test fails
        #expect(try Harness.natlab("up", Harness.topology("cgnat.yaml"), "--name", lab).status == 0)
        let sleeper = try Harness.start(Harness.natlab, ["exec", lab, "carol", "--", "sleep", "60"])
        #expect(Harness.waitUntil(timeout: 5) { sleeper.process.isRunning })
        usleep(200_000)
        #expect(!Harness.namespaces(ofLab: lab).isEmpty)
        let down = try Harness.natlab("down", lab)
        #expect(down.status == 0, "\(down.stderr)")
        sleeper.process.waitUntilExit()
        #expect(Harness.namespaces(ofLab: lab).isEmpty)
        #expect(Harness.mounts(ofLab: lab).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "/run/natlab/labs/\(lab)"))
        let status = try Harness.natlab("status", lab)
        #expect(status.status != 0)
    }

    @Test("a failed up removes what it built, nothing else, and leaves the host unchanged")
    func failedUpRollsBack() throws {
        try Privilege.require()
        let lab = Harness.uniqueLab("fail")
        defer { _ = try? Harness.natlab("down", lab) }   // only matters when the test fails
        let before = try Harness.hostNetworkState()
        // A real kernel failure half-way: while natlab builds slowly (test hook), somebody else takes
        // the name of the last namespace it will create.
        let squatter = "natlab-\(lab).relay"
        let up = try Harness.start(Harness.natlab, ["up", Harness.topology("two-homes.yaml"), "--name", lab],
                                   environment: ["NATLAB_TEST_STEP_DELAY_MS": "100"])
        #expect(Harness.waitUntil(timeout: 10) { !Harness.namespaces(ofLab: lab).isEmpty })
        #expect(try Harness.run("/usr/bin/env", ["ip", "netns", "add", squatter]).status == 0)
        defer { _ = try? Harness.run("/usr/bin/env", ["ip", "netns", "del", squatter]) }
        let err = String(decoding: up.stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        up.process.waitUntilExit()
        #expect(up.process.terminationStatus == 1)
        #expect(err.contains("relay") && err.contains("exists"), "the error must say what failed: \(err)")
        // Only the foreign namespace survives: natlab removed its own, and not somebody else's.
        #expect(Harness.namespaces(ofLab: lab) == [squatter])
        #expect(!FileManager.default.fileExists(atPath: "/run/natlab/labs/\(lab)"))
        #expect(try Harness.hostNetworkState() == before)
    }

    @Test("two labs from the same file run at once without interfering")
    func twoLabsAtOnce() throws {
        try Privilege.require()
        let a = Harness.uniqueLab("pa"), b = Harness.uniqueLab("pb")
        #expect(try Harness.natlab("up", Harness.topology("two-homes.yaml"), "--name", a).status == 0)
        defer { _ = try? Harness.natlab("down", a) }
        #expect(try Harness.natlab("up", Harness.topology("two-homes.yaml"), "--name", b).status == 0)
        defer { _ = try? Harness.natlab("down", b) }
        // Same addresses in both labs: they are islands.
        let infoA = try Harness.labJSON(a), infoB = try Harness.labJSON(b)
        let stun = try #require(Harness.address(infoA, node: "stun", interface: "eth0"))
        #expect(Harness.address(infoB, node: "stun", interface: "eth0") == stun)

        let reflectorA = try Self.startReflector(lab: a, node: "stun", port: 3490)
        defer { reflectorA.process.terminate() }
        // Only lab a has a reflector: b's probe must get no answer, a's must.
        #expect(try Self.probe(lab: a, node: "bob", bind: 41000, to: "\(stun):3490").first?["observed"] != nil)
        let inB = try Harness.natlab("exec", b, "bob", "--", "python3", Harness.udpTool, "probe", "41000", "\(stun):3490")
        #expect(inB.stdout.contains("\"observed\": null"), "lab b reached lab a's reflector: \(inB.stdout)")

        // Taking a down leaves b intact.
        #expect(try Harness.natlab("down", a).status == 0)
        #expect(Harness.namespaces(ofLab: a).isEmpty)
        let reflectorB = try Self.startReflector(lab: b, node: "stun", port: 3490)
        defer { reflectorB.process.terminate() }
        #expect(try Self.probe(lab: b, node: "alice", bind: 41001, to: "\(stun):3490").first?["observed"] != nil)
    }

    @Test("kill -9 during up, then gc: nothing is left")
    func killDuringUp() throws {
        try Privilege.require()
        let lab = Harness.uniqueLab("kill")
        defer { _ = try? Harness.natlab("down", lab) }   // only matters when the test fails
        let before = try Harness.hostNetworkState()
        let up = try Self.upHalfWay(lab)
        kill(up.process.processIdentifier, SIGKILL)
        up.process.waitUntilExit()
        #expect(up.process.terminationReason == .uncaughtSignal)
        #expect(!Harness.namespaces(ofLab: lab).isEmpty, "the kill came too late to test anything")

        let status = try Harness.natlab("status")
        #expect(status.stdout.contains(lab) && status.stdout.contains("owner gone"), "\(status.stdout)")
        let gc = try Harness.natlab("gc")
        #expect(gc.status == 0, "\(gc.stderr)")
        #expect(gc.stdout.contains(lab), "\(gc.stdout)")
        #expect(Harness.namespaces(ofLab: lab).isEmpty)
        #expect(Harness.mounts(ofLab: lab).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "/run/natlab/labs/\(lab)"))
        #expect(try Harness.hostNetworkState() == before)
    }

    @Test("Ctrl-C and SIGTERM during up tear down what was built", arguments: [SIGINT, SIGTERM])
    func signalDuringUp(signal: Int32) throws {
        try Privilege.require()
        let lab = Harness.uniqueLab("sig\(signal)")
        defer { _ = try? Harness.natlab("down", lab) }   // only matters when the test fails
        let up = try Self.upHalfWay(lab)
        kill(up.process.processIdentifier, signal)
        let err = String(decoding: up.stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        up.process.waitUntilExit()
        #expect(up.process.terminationStatus == 1)
        #expect(err.contains("interrupted"), "\(err)")
        #expect(Harness.namespaces(ofLab: lab).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "/run/natlab/labs/\(lab)"))
    }
}

/// Command-line behaviour that needs no privileges.
struct CommandLineTests {
    @Test("validate: exit 0 for every shipped topology, 2 with file:line:column for a broken one")
    func validate() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Harness.packageRoot + "/Topologies")
            .filter { $0.hasSuffix(".yaml") }
        #expect(!files.isEmpty)
        for file in files {
            let r = try Harness.natlab("validate", Harness.topology(file))
            #expect(r.status == 0, "\(file): \(r.stderr)")
        }
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("natlab-bad-\(getpid()).yaml")
        try "routers:\n  home: { nat: port-restricted-cone }\nhosts:\n  alice: { attach: hom }\n"
            .write(to: bad, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: bad) }
        let r = try Harness.natlab("validate", bad.path)
        #expect(r.status == 2)
        #expect(r.stderr.contains("\(bad.path):4:"), "\(r.stderr)")
        #expect(r.stderr.contains("hom"))
    }

    @Test("--emit-shell prints a script that builds the same lab with ip and nft only")
    func emitShell() throws {
        let r = try Harness.natlab("up", "--emit-shell", Harness.topology("two-homes.yaml"), "--name", "demo")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("ip netns add nlsh-demo.alice"), "the script's namespaces are not natlab's (gc must not take them)")
        #expect(r.stdout.contains("nft"))
        #expect(!r.stdout.contains("ip link add") || r.stdout.contains("ip -n"),
                "every link command must target a lab namespace")
    }
}
