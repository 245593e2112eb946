import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// natlab's STUN server (`run: stun-server`, started by `natlab up`) against third-party clients —
/// coturn's turnutils_stunclient and turnutils_natdiscovery, aioice — from hosts behind the lab's NATs.
/// Under CI=true these fail (never skip) without root, the coturn tools or aioice.
@Suite(.enabled(if: Privilege.shouldRun, "needs root and network namespaces"), .serialized)
struct STUNInteropTests {
    /// A lab from a shipped topology, with its STUN role up and listening.
    struct Lab {
        var name: String
        var info: [String: Any]
        var stunA: String
        var stunB: String

        init(_ file: String, tag: String) throws {
            name = Harness.uniqueLab(tag)
            let up = try Harness.natlab("up", Harness.topology(file), "--name", name)
            guard up.status == 0 else {
                _ = try? Harness.natlab("down", name)
                throw Failure("natlab up \(file) failed: \(up.stderr)")
            }
            info = try Harness.labJSON(name)
            guard let a = Harness.address(info, node: "stun", interface: "eth0", index: 0),
                  let b = Harness.address(info, node: "stun", interface: "eth0", index: 1) else {
                throw Failure("stun has no two addresses in \(info)")
            }
            stunA = a
            stunB = b
            let roles = info["roles"] as? [[String: Any]] ?? []
            guard let log = roles.first(where: { $0["node"] as? String == "stun" })?["log"] as? String else {
                throw Failure("no stun role was started: \(roles)")
            }
            let listening = Harness.waitUntil(timeout: 5) {
                ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("natlab serve stun: RFC 5780 on")
            }
            guard listening else {
                throw Failure("the stun role never said it listens: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            }
        }

        func wan(_ router: String) -> String? { Harness.address(info, node: router, interface: "wan") }

        /// Runs a command in a node, killed after 30 s (a client waiting for an answer a NAT drops
        /// must not hang the suite).
        func exec(_ node: String, _ argv: String...) throws -> Harness.Result {
            try exec(node, argv)
        }

        func exec(_ node: String, _ argv: [String], timeout: Int = 30) throws -> Harness.Result {
            try Harness.run(Harness.natlab, ["exec", name, node, "--", "timeout", "-s", "KILL", "\(timeout)"] + argv)
        }

        func down() { _ = try? Harness.natlab("down", name) }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    static func tool(_ name: String) throws -> String {
        for dir in ["/usr/bin", "/usr/local/bin"] where access("\(dir)/\(name)", X_OK) == 0 { return "\(dir)/\(name)" }
        throw Failure("\(name) not installed (Scripts/test installs coturn)")
    }

    @Test("turnutils_stunclient behind a NAT learns the NAT's public address; from the internet it completes its RFC 5780 run")
    func stunclient() throws {
        try Privilege.require()
        let client = try Self.tool("turnutils_stunclient")
        let lab = try Lab("full-cone.yaml", tag: "stc")
        defer { lab.down() }
        let wan = try #require(lab.wan("home"))
        // Behind a NAT, turnutils_stunclient 4.6.1 prints its first answer and then waits for ever
        // for its second (against coturn's turnserver too), so it runs for 3 s and is killed.
        let r = try lab.exec("alice", [client, lab.stunA], timeout: 3)
        #expect(r.stdout.contains("UDP reflexive addr: \(wan):"), "\(r.stdout)")
        #expect(r.stdout.contains("Response origin: : \(lab.stunA):3478"), "\(r.stdout)")
        #expect(r.stdout.contains("Other addr: : \(lab.stunB):3479"), "\(r.stdout)")
        #expect(!r.stdout.contains("UDP reflexive addr: 10."), "a private address leaked: \(r.stdout)")
        // A public host: all three requests answered; the CHANGE-REQUEST answers come from B:p+1.
        let stranger = try #require(Harness.address(lab.info, node: "stranger", interface: "eth0"))
        let p = try lab.exec("stranger", client, lab.stunA)
        #expect(p.status == 0, "\(p.stderr)")
        #expect(p.stdout.contains("RFC 5780 response 3"), "\(p.stdout)")
        #expect(p.stdout.contains("Response origin: : \(lab.stunB):3479"), "\(p.stdout)")
        #expect(p.stdout.contains("UDP reflexive addr: \(stranger):"), "\(p.stdout)")
    }

    @Test("turnutils_natdiscovery classifies port-restricted-cone (two-homes) as EIM + APDF, with 1500-byte PADDING too")
    func natdiscoveryPortRestricted() throws {
        try Privilege.require()
        let tool = try Self.tool("turnutils_natdiscovery")
        let lab = try Lab("two-homes.yaml", tag: "ndp")
        defer { lab.down() }
        for extra in [[], ["-P"]] {
            let r = try lab.exec("alice", [tool, "-m", "-f"] + extra + [lab.stunA])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("NAT with Endpoint Independent Mapping!"), "\(extra) \(r.stdout)")
            #expect(r.stdout.contains("NAT with Address and Port Dependent Filtering!"), "\(extra) \(r.stdout)")
        }
    }

    @Test("turnutils_natdiscovery classifies full-cone as EIM + EIF")
    func natdiscoveryFullCone() throws {
        try Privilege.require()
        let tool = try Self.tool("turnutils_natdiscovery")
        let lab = try Lab("full-cone.yaml", tag: "ndf")
        defer { lab.down() }
        let r = try lab.exec("alice", tool, "-m", "-f", lab.stunA)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("NAT with Endpoint Independent Mapping!"), "\(r.stdout)")
        #expect(r.stdout.contains("NAT with Endpoint Independent Filtering!"), "\(r.stdout)")
        // From the internet itself (no NAT): every test is answered.
        let direct = try lab.exec("stranger", tool, "-m", "-f", lab.stunA)
        #expect(direct.stdout.contains("Endpoint Independent Mapping") && direct.stdout.contains("Endpoint Independent Filtering"),
                "\(direct.stdout)")
    }

    @Test("turnutils_natdiscovery classifies symmetric as APDM + APDF")
    func natdiscoverySymmetric() throws {
        try Privilege.require()
        let tool = try Self.tool("turnutils_natdiscovery")
        let lab = try Lab("symmetric.yaml", tag: "nds")
        defer { lab.down() }
        let r = try lab.exec("alice", tool, "-m", "-f", lab.stunA)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("NAT with Address and Port Dependent Mapping!"), "\(r.stdout)")
        #expect(r.stdout.contains("NAT with Address and Port Dependent Filtering!"), "\(r.stdout)")
    }

    @Test("aioice gathers a server-reflexive candidate at the NAT's public address from natlab's server")
    func aioice() throws {
        try Privilege.require()
        let python = Harness.python
        let check = try Harness.run(python, ["-c", "import aioice"])
        guard check.status == 0 else { throw Failure("aioice is not importable with \(python) (Scripts/test installs it): \(check.stderr)") }
        let lab = try Lab("two-homes.yaml", tag: "aio")
        defer { lab.down() }
        let wan = try #require(lab.wan("home1"))
        let script = """
        import asyncio, sys
        from aioice import Connection
        async def main():
            c = Connection(ice_controlling=True, components=1, use_ipv6=False, stun_server=(sys.argv[1], 3478))
            await asyncio.wait_for(c.gather_candidates(), 10)
            for cand in c.local_candidates:
                print(cand.type, cand.host, cand.port)
            await c.close()
        asyncio.run(main())
        """
        let r = try lab.exec("alice", python, "-c", script, lab.stunA)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("srflx \(wan) "), "\(r.stdout)\n\(r.stderr)")
    }

    @Test("STUN over TCP (RFC 8489 framing): two Binding requests in one segment, two answers")
    func tcp() throws {
        try Privilege.require()
        let lab = try Lab("two-homes.yaml", tag: "tcp")
        defer { lab.down() }
        let wan = try #require(lab.wan("home1"))
        let script = """
        import socket, struct, sys, os
        s = socket.create_connection((sys.argv[1], 3478), timeout=5)
        reqs = [struct.pack("!HHI12s", 1, 0, 0x2112A442, os.urandom(12)) for _ in range(2)]
        s.sendall(b"".join(reqs))
        data = b""
        for req in reqs:
            while len(data) < 20 or len(data) < 20 + struct.unpack("!H", data[2:4])[0]:
                data += s.recv(4096)
            n = 20 + struct.unpack("!H", data[2:4])[0]
            msg, data = data[:n], data[n:]
            assert msg[0:2] == b"\\x01\\x01" and msg[8:20] == req[8:20], msg.hex()
            o = 20
            while o < n:
                t, l = struct.unpack("!HH", msg[o:o+4])
                if t == 0x0020:
                    port = struct.unpack("!H", msg[o+6:o+8])[0] ^ 0x2112
                    ip = bytes(a ^ b for a, b in zip(msg[o+8:o+12], b"\\x21\\x12\\xa4\\x42"))
                    print("xor-mapped", socket.inet_ntoa(ip), port)
                o += 4 + ((l + 3) & ~3)
        """
        let r = try lab.exec("alice", "python3", "-c", script, lab.stunA)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").filter { $0.hasPrefix("xor-mapped \(wan) ") }.count == 2, "\(r.stdout)")
    }

    @Test("natlab serve stun stands alone: SIGTERM stops it cleanly; bad arguments are bad input")
    func standalone() throws {
        try Privilege.require()
        let bad = try Harness.natlab("serve", "stun", "--listen", "not-an-ip")
        #expect(bad.status != 0 && bad.stderr.contains("not an IPv4 or IPv6 address"), "\(bad.stderr)")
        let three = try Harness.natlab("serve", "stun", "--listen", "127.0.0.1", "--listen", "127.0.0.2", "--listen", "127.0.0.3")
        #expect(three.status != 0)
        let lab = try Lab("full-cone.yaml", tag: "sa")
        defer { lab.down() }
        // A second server in the stranger's namespace, one address: CHANGE-REQUEST gets 420.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.natlab)
        p.arguments = ["exec", lab.name, "stranger", "--", Harness.natlab, "serve", "stun", "--listen",
                       try #require(Harness.address(lab.info, node: "stranger", interface: "eth0")), "--port", "3480"]
        let out = Pipe()
        p.standardOutput = out
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let stranger = try #require(Harness.address(lab.info, node: "stranger", interface: "eth0"))
        let script = """
        import socket, struct, sys, os, time
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)
        for attempt in range(20):
            s.sendto(struct.pack("!HHI12sHHI", 1, 8, 0x2112A442, os.urandom(12), 3, 4, 4), (sys.argv[1], 3480))
            try:
                d = s.recv(2048); break
            except socket.timeout:
                pass
        print("type %04x code %d" % (struct.unpack("!H", d[0:2])[0], d[26] * 100 + d[27]))
        """
        let r = try lab.exec("alice", "python3", "-c", script, stranger)
        #expect(r.stdout.contains("type 0111 code 420"), "\(r.stdout) \(r.stderr)")
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(text.contains("one address, udp \(stranger):3480, tcp \(stranger):3480") && text.contains("stopped"), "\(text)")
    }
}
