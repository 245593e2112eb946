import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport

/// Dual-stack labs on the real kernel, with real UDP datagrams: IPv6 is never translated (a host behind
/// a NAT44 router is seen with its own global address), and every router filters IPv6 with its declared
/// filtering (EIF / ADF / APDF pinholes, §9 of the NAT recipes), while IPv4 behaves as before.
@Suite(.enabled(if: Privilege.shouldRun, "needs root and network namespaces"))
struct DualStackTests {
    static let topology = """
    name: dualstack
    ipv6: true
    routers:
      prc: { nat: port-restricted-cone }
      fc:  { nat: full-cone }
      rc:  { nat: restricted-cone }
      fw:  { nat: firewall }
      fwe: { nat: { preset: firewall, filtering: endpoint-independent } }
      fwa: { nat: { preset: firewall, filtering: address-dependent } }
    hosts:
      hprc:  { attach: prc }
      hfc:   { attach: fc }
      hrc:   { attach: rc }
      hfw:   { attach: fw }
      hfwe:  { attach: fwe }
      hfwa:  { attach: fwa }
      web:   { attach: internet }
      other: { attach: internet }
    """

    /// (host, router, filtering, translates IPv4)
    static let cases: [(host: String, router: String, filtering: String, nat: Bool)] = [
        ("hprc", "prc", "APDF", true), ("hfc", "fc", "EIF", true), ("hrc", "rc", "ADF", true),
        ("hfw", "fw", "APDF", false), ("hfwe", "fwe", "EIF", false), ("hfwa", "fwa", "ADF", false),
    ]

    static func lines(_ p: Harness.Started, after first: String = "") -> [[String: String]] {
        let out = first + String(decoding: p.stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.process.waitUntilExit()
        return out.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: String]
        }
    }

    static func endpoint(_ address: String, _ port: Int) -> String {
        address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    @Test("IPv6 untranslated behind NAT44 and firewalls, filtered per the declared EIF/ADF/APDF; IPv4 unchanged in the same lab",
          arguments: ["6", "4"])
    func filteringPerFamily(_ family: String) throws {
        try Privilege.require()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("natlab-ds-\(UUID().uuidString).yaml")
        try Self.topology.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let lab = Harness.uniqueLab("ds\(family)")
        let up = try Harness.natlab("up", file.path, "--name", lab)
        #expect(up.status == 0, "up failed: \(up.stderr)")
        defer {
            let down = try? Harness.natlab("down", lab)
            #expect(down?.status == 0, "down failed: \(down?.stderr ?? "")")
            #expect(Harness.namespaces(ofLab: lab).isEmpty)
        }
        let info = try Harness.labJSON(lab)
        func addr(_ node: String, _ link: String, _ index: Int = 0) throws -> String {
            try #require(family == "6" ? Harness.address6(info, node: node, interface: link, index: index)
                                       : Harness.address(info, node: node, interface: link, index: index),
                         "\(node) has no IPv\(family) address on \(link)")
        }
        let web = try addr("web", "eth0"), other = try addr("other", "eth0")

        let reflector = try LabLifecycleTests.startReflector(lab: lab, node: "web", port: 3478)
        defer { reflector.process.terminate() }

        // Every host opens port 40000 towards web:3478 and keeps listening on it; port 41000 is
        // bound but never sends. Then web (same address, another port) and other (another address)
        // send to the pinhole/mapping, and other to the never-opened port.
        var probes: [String: Harness.Started] = [:], idle: [String: Harness.Started] = [:]
        for c in Self.cases {
            probes[c.host] = try Harness.start(Harness.natlab,
                ["exec", lab, c.host, "--", "python3", "-u", Harness.udpTool, "probe", "40000", Self.endpoint(web, 3478)],
                environment: ["LISTEN": "12"])
            idle[c.host] = try Harness.start(Harness.natlab,
                ["exec", lab, c.host, "--", "python3", "-u", Harness.udpTool, "listen", "41000", "12"])
        }
        // Send only once every pinhole/mapping exists (the probe printed web's answer) and every idle
        // port is bound: an earlier datagram would be unsolicited.
        var firstOutput: [String: String] = [:]
        for c in Self.cases {
            firstOutput[c.host] = String(decoding: probes[c.host]!.stdout.fileHandleForReading.availableData, as: UTF8.self)
            let ready = String(decoding: idle[c.host]!.stdout.fileHandleForReading.availableData, as: UTF8.self)
            #expect(ready.contains("ready"), "\(c.host): listener did not start")
        }
        for c in Self.cases {
            // Where the internet must send: the NAT's address for translated IPv4, the host's own otherwise.
            let target = family == "4" && c.nat ? try addr(c.router, "wan") : try addr(c.host, "eth0")
            for (from, port, to) in [("web", 5001, 40000), ("other", 5002, 40000), ("other", 5003, 41000)] {
                let send = try Harness.natlab("exec", lab, from, "--", "python3", Harness.udpTool, "send", "\(port)",
                                              Self.endpoint(target, to))
                #expect(send.status == 0, "send failed: \(send.stderr)")
            }
        }
        for c in Self.cases {
            let out = Self.lines(probes[c.host]!, after: firstOutput[c.host]!)
            let observed = out.first?["observed"] ?? nil
            let own = try addr(c.host, "eth0")
            let expected = family == "4" && c.nat ? try addr(c.router, "wan") : own
            // Outbound: the source the internet sees, and the reply came back.
            #expect(observed?.hasPrefix(Self.endpoint(expected, 0).dropLast(1)) == true,
                    "IPv\(family) \(c.host) behind \(c.router): web saw \(observed ?? "nothing"), expected \(expected)")
            if family == "6" { #expect(observed == Self.endpoint(own, 40000), "IPv6 must keep address and port") }
            let from = Set(out.compactMap { $0["from"] })
            let sameAddress = from.contains(Self.endpoint(web, 5001)), otherAddress = from.contains(Self.endpoint(other, 5002))
            switch c.filtering {
            case "EIF": #expect(sameAddress && otherAddress, "IPv\(family) \(c.router) EIF: \(out)")
            case "ADF": #expect(sameAddress && !otherAddress, "IPv\(family) \(c.router) ADF: \(out)")
            default: #expect(!sameAddress && !otherAddress, "IPv\(family) \(c.router) APDF: \(out)")
            }
            let unopened = Self.lines(idle[c.host]!).filter { $0["received"] != nil }
            #expect(unopened.isEmpty, "IPv\(family) \(c.router): an unsolicited datagram reached a never-opened port: \(unopened)")
        }
    }

    @Test("the shipped dual-stack.yaml: --emit-shell builds the same lab with ip -6 … nodad, and it carries IPv6")
    func shippedDualStackShell() throws {
        try Privilege.require()
        let lab = Harness.uniqueLab("dsh")
        let emit = try Harness.natlab("up", "--emit-shell", Harness.topology("dual-stack.yaml"), "--name", lab)
        #expect(emit.status == 0, "\(emit.stderr)")
        #expect(emit.stdout.contains(" nodad\n") && emit.stdout.contains("ip -6 -n "))
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("natlab-ds-\(UUID().uuidString).sh")
        try emit.stdout.write(to: script, atomically: true, encoding: .utf8)
        defer {
            _ = try? Harness.run("/bin/bash", [script.path, "down"])
            try? FileManager.default.removeItem(at: script)
        }
        let up = try Harness.run("/bin/bash", [script.path, "up"])
        #expect(up.status == 0, "the emitted script failed: \(up.stderr)")
        let ns = "nlsh-\(lab)."
        let reflector = try Harness.start("/usr/sbin/ip", ["netns", "exec", ns + "web", "python3", "-u", Harness.udpTool, "reflect", "3478"])
        // SIGKILL: started by `ip netns exec` from a test thread, it inherits a mask that blocks
        // SIGTERM, and waiting for a SIGTERM'ed reflector hung the whole suite once.
        defer { kill(reflector.process.processIdentifier, SIGKILL); reflector.process.waitUntilExit() }
        _ = reflector.stdout.fileHandleForReading.availableData
        let probe = try Harness.run("/usr/sbin/ip", ["netns", "exec", ns + "alice", "python3", Harness.udpTool, "probe", "40000",
                                                     "[2001:db8:ffff::3]:3478"])
        #expect(probe.stdout.contains(#""observed": "[2001:db8:1::2]:40000""#), "\(probe.stdout) \(probe.stderr)")
    }
}
