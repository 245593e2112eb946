import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `natlab verify` and `natlab probe` on the real kernel: every preset and every mapping × filtering
/// combination, with and without hairpin, lifetimes of 3 s and 5 s, a CGNAT layer, strict EIM with two
/// hosts on one source port, and the same classification from coturn and natlab's own server.
/// Labs are generated into a temporary directory; each test's lab is probed in parallel by verify.
@Suite(.enabled(if: Privilege.shouldRun, "needs root and network namespaces"))
struct VerifyGridTests {
    /// What the test expects of one router, written independently of verify's own comparison.
    struct Expect {
        var mapping: String
        var filtering: String
        var hairpin: Bool?
        var portPreserved: Bool?
        var lifetime: Double?
    }

    static let mappings = ["endpoint-independent", "address-dependent", "address-and-port-dependent"]
    static let filterings = ["endpoint-independent", "address-dependent", "address-and-port-dependent"]

    static func writeLab(_ yaml: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("natlab-verify-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("lab.yaml").path
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    /// Brings the lab up, runs verify --json, checks each router against `expect`, takes the lab down.
    static func verify(_ yaml: String, tag: String, expect: [String: Expect], extraArgs: [String] = []) throws -> [String: Any] {
        let file = try writeLab(yaml)
        let lab = Harness.uniqueLab(tag)
        let up = try Harness.natlab("up", file, "--name", lab)
        try #require(up.status == 0, "up failed: \(up.stderr)")
        defer {
            let down = try? Harness.natlab("down", lab)
            #expect(down?.status == 0)
            #expect(Harness.namespaces(ofLab: lab).isEmpty, "namespaces left behind")
        }
        let before = Harness.namespaces(ofLab: lab)
        let start = Date()
        let r = try Harness.run(Harness.natlab, ["verify", lab, "--json"] + extraArgs)
        let took = Date().timeIntervalSince(start)
        print("natlab verify \(tag) (\(expect.count) routers): \(String(format: "%.1f", took)) s")
        #expect(Harness.namespaces(ofLab: lab) == before, "verify left temporary nodes behind")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
                                "verify printed no JSON: \(r.stdout) \(r.stderr)")
        let routers = json["routers"] as? [[String: Any]] ?? []
        #expect(Set(routers.compactMap { $0["router"] as? String }) == Set(expect.keys))
        for router in routers {
            let name = router["router"] as? String ?? "?"
            guard let e = expect[name] else { continue }
            let report = router["report"] as? [String: Any] ?? [:]
            let context = "\(name): \(router["checks"] ?? "") \(router["error"] ?? "")"
            #expect(report["mapping"] as? String == e.mapping, "\(context)")
            #expect(report["filtering"] as? String == e.filtering, "\(context)")
            if let h = e.hairpin {
                let hairpin = report["hairpin"] as? [String: Any]
                #expect(hairpin?["works"] as? Bool == h, "\(context)")
                if h { #expect(hairpin?["sourceIsPublic"] as? Bool == true, "\(context)") }
            }
            if let p = e.portPreserved { #expect(report["portPreserved"] as? Bool == p, "\(context)") }
            if let l = e.lifetime {
                let seconds = (report["lifetime"] as? [String: Any])?["seconds"] as? Double
                #expect(seconds.map { abs($0 - l) <= 1 } == true, "\(name): lifetime \(seconds ?? -1) s, declared \(l) s")
            }
            #expect(router["ok"] as? Bool == true, "verify reported a mismatch: \(context)")
        }
        #expect(r.status == 0, "verify failed: \(r.stdout.suffix(400)) \(r.stderr)")
        return json
    }

    @Test("every mapping × filtering combination, hairpin on and off (18 NATs in one lab)")
    func mappingFilteringGrid() throws {
        try Privilege.require()
        var yaml = "routers:\n"
        var hosts = "hosts:\n"
        var expect: [String: Expect] = [:]
        for (mi, m) in Self.mappings.enumerated() {
            for (fi, f) in Self.filterings.enumerated() {
                for h in [false, true] {
                    let name = "m\(mi)f\(fi)h\(h ? 1 : 0)"
                    yaml += "  \(name): { nat: { mapping: \(m), filtering: \(f), hairpin: \(h) } }\n"
                    hosts += "  x\(name): { attach: \(name) }\n"
                    expect[name] = Expect(mapping: m, filtering: f, hairpin: h, portPreserved: mi == 0)
                }
            }
        }
        _ = try Self.verify(yaml + hosts, tag: "vg", expect: expect)
    }

    @Test("every preset with and without hairpin, firewall, none, a CGNAT layer, udp-timeout 3 s and 5 s")
    func presetsAndLifetimes() throws {
        try Privilege.require()
        let presets: [(String, String, String, Bool)] = [
            ("full-cone", "endpoint-independent", "endpoint-independent", true),
            ("restricted-cone", "endpoint-independent", "address-dependent", true),
            ("port-restricted-cone", "endpoint-independent", "address-and-port-dependent", true),
            ("symmetric", "address-and-port-dependent", "address-and-port-dependent", false),
            ("cgnat", "endpoint-independent", "address-and-port-dependent", true),
        ]
        var yaml = "routers:\n"
        var hosts = "hosts:\n"
        var expect: [String: Expect] = [:]
        for (i, (preset, m, f, preserve)) in presets.enumerated() {
            for h in [false, true] {
                let name = "p\(i)h\(h ? 1 : 0)"
                yaml += "  \(name): { nat: { preset: \(preset), hairpin: \(h) } }\n"
                hosts += "  x\(name): { attach: \(name) }\n"
                expect[name] = Expect(mapping: m, filtering: f, hairpin: h, portPreserved: preserve)
            }
        }
        yaml += """
          fw: { nat: firewall }
          plain: { nat: none }
          t3: { nat: { preset: port-restricted-cone, udp-timeout: 3s } }
          t5: { nat: { preset: full-cone, udp-timeout: 5s } }
          isp: { nat: cgnat }
          homec: { upstream: isp, nat: restricted-cone }
          homes: { upstream: isp, nat: symmetric }

        """
        hosts += """
          xfw: { attach: fw }
          xplain: { attach: plain }
          xt3: { attach: t3 }
          xt5: { attach: t5 }
          carol: { attach: homec }
          sam: { attach: homes }

        """
        expect["fw"] = Expect(mapping: "none", filtering: "address-and-port-dependent", portPreserved: true)
        expect["plain"] = Expect(mapping: "none", filtering: "endpoint-independent", portPreserved: true)
        expect["t3"] = Expect(mapping: "endpoint-independent", filtering: "address-and-port-dependent", hairpin: false, portPreserved: true, lifetime: 3)
        expect["t5"] = Expect(mapping: "endpoint-independent", filtering: "endpoint-independent", hairpin: false, portPreserved: true, lifetime: 5)
        // isp has no host of its own: verify adds a temporary one on its LAN.
        expect["isp"] = Expect(mapping: "endpoint-independent", filtering: "address-and-port-dependent", hairpin: true, portPreserved: true)
        // Measured against a server on the CGNAT's LAN: the home NAT alone, not home + CGNAT.
        expect["homec"] = Expect(mapping: "endpoint-independent", filtering: "address-dependent", hairpin: false, portPreserved: true)
        expect["homes"] = Expect(mapping: "address-and-port-dependent", filtering: "address-and-port-dependent", hairpin: false, portPreserved: false)
        let json = try Self.verify(yaml + hosts, tag: "vp", expect: expect)
        let routers = json["routers"] as? [[String: Any]] ?? []
        let isp = routers.first { $0["router"] as? String == "isp" }
        #expect(isp?["temporaryHost"] as? Bool == true)
        let homec = routers.first { $0["router"] as? String == "homec" }
        #expect(homec?["segment"] as? String == "isp", "homec must be measured against a server on the CGNAT's LAN")
    }

    @Test("strict EIM: two hosts on one source port each keep one external port for every destination")
    func samePortTwoHosts() throws {
        try Privilege.require()
        let file = try Self.writeLab("""
        routers:
          home: { nat: port-restricted-cone }
        hosts:
          h1: { attach: home }
          h2: { attach: home }
          stun: { attach: internet, run: stun-server }
        """)
        let lab = Harness.uniqueLab("vs")
        let up = try Harness.natlab("up", file, "--name", lab)
        try #require(up.status == 0, "up failed: \(up.stderr)")
        defer { _ = try? Harness.natlab("down", lab) }
        let info = try Harness.labJSON(lab)
        let a = try #require(Harness.address(info, node: "stun", interface: "eth0"))
        let b = try #require(Harness.address(info, node: "stun", interface: "eth0", index: 1))
        let server = try Harness.start(Harness.natlab, ["exec", lab, "stun", "--", "turnserver", "-n", "--no-cli", "--no-tls",
                                                         "--no-dtls", "--no-tcp", "-z", "-L", a, "-L", b, "-p", "3478", "-m", "1",
                                                         "--log-file", "stdout", "--pidfile", "/run/natlab-test-\(lab).pid"])
        defer { server.process.terminate(); server.process.waitUntilExit() }

        func mapped(_ host: String) throws -> [String] {
            let r = try Harness.natlab("probe", lab, host, "--local-port", "40000", "--no-hairpin", "--wait-server", "5", "--json")
            try #require(r.status == 0, "probe from \(host) failed: \(r.stderr)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            #expect(report["mapping"] as? String == "endpoint-independent")
            let tests = report["tests"] as? [[String: Any]] ?? []
            return tests.filter { ($0["name"] as? String ?? "").hasPrefix("mapping") }.compactMap { $0["mapped"] as? String }
        }
        let first = try mapped("h1")
        let second = try mapped("h2")
        let again = try mapped("h1")
        #expect(first.count == 3 && Set(first).count == 1, "h1 got several external ports: \(first)")
        #expect(first.first?.hasSuffix(":40000") == true, "h1 (first) keeps its port: \(first)")
        #expect(second.count == 3 && Set(second).count == 1, "h2 got several external ports: \(second)")
        #expect(second.first != first.first, "h2 overloads h1's external port (REQ-3): \(second)")
        #expect(again == first, "h1 lost its mapping to h2: \(again) vs \(first)")
    }

    @Test("natlab probe: coturn and natlab's own STUN server give the same classification")
    func coturnAndNatlabServerAgree() throws {
        try Privilege.require()
        let yaml = """
        routers:
          fc: { nat: full-cone }
          rc: { nat: { preset: restricted-cone, hairpin: true } }
          sy: { nat: symmetric }
        hosts:
          a: { attach: fc }
          b: { attach: rc }
          c: { attach: sy }
        """
        let expect = [
            "fc": Expect(mapping: "endpoint-independent", filtering: "endpoint-independent", hairpin: false, portPreserved: true),
            "rc": Expect(mapping: "endpoint-independent", filtering: "address-dependent", hairpin: true, portPreserved: true),
            "sy": Expect(mapping: "address-and-port-dependent", filtering: "address-and-port-dependent", hairpin: false, portPreserved: false),
        ]
        let coturn = try Self.verify(yaml, tag: "vc", expect: expect, extraArgs: ["--server", "coturn"])
        let help = try Harness.natlab("serve", "stun", "--help")
        let placeholder = help.stdout.contains("not implemented")
        try withKnownIssue("natlab serve stun is still the placeholder in this build: the natlab half passes once the STUN server is merged") {
            let natlab = try Self.verify(yaml, tag: "vn", expect: expect, extraArgs: ["--server", "natlab"])
            func summary(_ json: [String: Any]) -> [String: String] {
                var out: [String: String] = [:]
                for r in json["routers"] as? [[String: Any]] ?? [] {
                    let rep = r["report"] as? [String: Any] ?? [:]
                    let h = (rep["hairpin"] as? [String: Any])?["works"] as? Bool
                    out[r["router"] as? String ?? "?"] = "\(rep["mapping"] ?? "-") \(rep["filtering"] ?? "-") hairpin \(h.map(String.init) ?? "-") preserved \(rep["portPreserved"] ?? "-")"
                }
                return out
            }
            #expect(summary(natlab) == summary(coturn))
        } when: { placeholder }
    }

    @Test("Ctrl-C during verify: temporary nodes and servers are removed, the lab stays")
    func interruptCleansUp() throws {
        try Privilege.require()
        let file = try Self.writeLab("routers:\n  slow: { nat: { udp-timeout: 20s } }\nhosts:\n  a: { attach: slow }\n")
        let lab = Harness.uniqueLab("vi")
        let up = try Harness.natlab("up", file, "--name", lab)
        try #require(up.status == 0, "up failed: \(up.stderr)")
        defer { _ = try? Harness.natlab("down", lab) }
        let before = Harness.namespaces(ofLab: lab)
        let verify = try Harness.start(Harness.natlab, ["verify", lab])
        #expect(Harness.waitUntil(timeout: 5) { Harness.namespaces(ofLab: lab).count > before.count }, "no temporary node appeared")
        usleep(1_000_000)
        kill(verify.process.processIdentifier, SIGINT)
        verify.process.waitUntilExit()
        #expect(verify.process.terminationStatus != 0)
        #expect(Harness.namespaces(ofLab: lab) == before, "temporary nodes left behind")
        let ps = try Harness.run("/usr/bin/env", ["pgrep", "-f", "natlab-verify-\(lab)-"])
        #expect(ps.stdout.isEmpty, "a verify server survived: \(ps.stdout)")
        let status = try Harness.natlab("status", lab)
        #expect(status.status == 0, "the lab itself must stay up")
    }
}
