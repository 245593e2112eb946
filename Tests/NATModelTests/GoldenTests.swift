import Foundation
import Testing
@testable import NATModel

/// Golden rulesets live in Tests/NATModelTests/Golden/<name>.nft, found from this file's path (no bundle
/// resources). Regenerate after an intended change with `NATLAB_UPDATE_GOLDEN=1 swift test …` and review the diff.
enum Golden {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
    static let update = ProcessInfo.processInfo.environment["NATLAB_UPDATE_GOLDEN"] == "1"

    static func check(_ name: String, _ actual: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let url = directory.appendingPathComponent(name + ".nft")
        if update {
            try actual.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: url, encoding: .utf8)
        #expect(actual == expected, "golden \(name).nft differs", sourceLocation: sourceLocation)
    }
}

let home = NATRulesetContext(wanInterface: "wan", lanInterface: "br0", wanAddresses: ["203.0.113.1"],
                             lanSubnets: ["10.0.1.0/24"])
/// The same home router in a dual-stack lab: its LAN also has an IPv6 /64 (never translated).
let homeDual = NATRulesetContext(wanInterface: "wan", lanInterface: "br0", wanAddresses: ["203.0.113.1"],
                                 lanSubnets: ["10.0.1.0/24"], lanSubnets6: ["2001:db8:1::/64"])
let poolContext = NATRulesetContext(wanInterface: "wan", lanInterface: "br0",
                                    wanAddresses: ["203.0.113.22", "203.0.113.21", "203.0.113.24", "203.0.113.23"],
                                    lanSubnets: ["100.64.0.0/10"])

private func profile(_ pairs: KeyValuePairs<String, String>) throws -> NATProfile {
    try NATProfile.parse(fields: pairs.map { (key: $0.key, value: NATSpecValue.scalar($0.value)) })
}

@Suite struct GoldenTests {
    static let dualCases: [(name: String, spec: KeyValuePairs<String, String>)] = [
        ("dual-stack-port-restricted-cone", ["preset": "port-restricted-cone"]),
        ("dual-stack-full-cone", ["preset": "full-cone"]),
        ("dual-stack-restricted-cone", ["preset": "restricted-cone", "udp-timeout": "1m"]),
    ]

    @Test(arguments: dualCases.indices)
    func goldenDualStack(index: Int) throws {
        let c = Self.dualCases[index]
        let p = try profile(c.spec)
        let text = try #require(NATRuleset.render(p, context: homeDual))
        try Golden.check(c.name, text)
        // The IPv4 table is exactly the single-stack one; the IPv6 filter follows it.
        let v4 = try #require(NATRuleset.render(p, context: home))
        #expect(text.hasPrefix(v4 + "\n# natlab IPv6 filter"))
        let v6 = text.components(separatedBy: "table ip6 natlab {")[1]
        #expect(!v6.contains("nat hook") && !v6.contains("snat") && !v6.contains("dnat"), "no NAT66")
    }

    @Test func firewallIsTheSameInDualStack() throws {
        for f in ["endpoint-independent", "address-dependent", "address-and-port-dependent"] {
            let p = try profile(["preset": "firewall", "filtering": f])
            #expect(NATRuleset.render(p, context: homeDual) == NATRuleset.render(p, context: home))
        }
    }

    @Test func dualStackRulesAreExplained() throws {
        let rules = NATRuleset.explain(try NATProfile.parse(preset: "restricted-cone"), context: homeDual)
        #expect(rules.contains { $0.rule.hasPrefix("[ip6 forward] ") && $0.rule.contains("@pin6_adf") })
        #expect(rules.contains { $0.rule == #"[ip6 input] iifname "wan" ct state new,invalid drop"# })
    }

    static let cases: [(name: String, spec: KeyValuePairs<String, String>, pool: Bool)] = [
        ("port-restricted-cone", ["preset": "port-restricted-cone"], false),
        ("full-cone-hairpin", ["preset": "full-cone", "hairpin": "true"], false),
        ("restricted-cone", ["preset": "restricted-cone"], false),
        ("symmetric", ["preset": "symmetric"], false),
        ("address-dependent-mapping", ["mapping": "address-dependent"], false),
        ("eim-random-ports-timeouts", ["ports": "random", "udp-timeout": "30s"], false),
        ("port-range", ["ports": "20000-20999"], false),
        ("symmetric-port-range", ["preset": "symmetric", "ports": "20000-20099"], false),
        ("firewall", ["preset": "firewall"], false),
        ("firewall-eif", ["preset": "firewall", "filtering": "endpoint-independent"], false),
        ("firewall-adf", ["preset": "firewall", "filtering": "address-dependent", "udp-timeout": "1m"], false),
        ("cgnat-pool-paired", ["preset": "cgnat"], true),
        ("pool-arbitrary-adm-adf", ["mapping": "adm", "filtering": "adf", "pooling": "arbitrary"], true),
    ]

    @Test(arguments: cases.indices)
    func golden(index: Int) throws {
        let c = Self.cases[index]
        let text = try #require(NATRuleset.render(try profile(c.spec), context: c.pool ? poolContext : home))
        try Golden.check(c.name, text)
    }

    @Test func goldenMatchesVerifiedRecipe() throws {
        // Strict EIM + full cone + hairpin must contain every rule of the natgen.sh example (recipes §2).
        let text = try #require(NATRuleset.render(try NATProfile.parse(preset: "full-cone").with { $0.hairpin = true },
                                                  context: home))
        for rule in [
            #"iifname "wan" ip daddr 203.0.113.1 meta l4proto udp dnat ip to udp dport map @ext2int"#,
            #"iifname "br0" ip daddr 203.0.113.1 meta l4proto udp dnat ip to udp dport map @ext2int"#,
            #"oifname "wan" jump snat_out"#,
            // The recipe's `oifname "br0" ct original ip daddr …` also SNATed *inbound* EIF/ADF packets (their
            // original destination is the WAN address too): `natlab verify` caught it, so natlab adds
            // `iifname "br0"` (hairpin traffic only).
            #"iifname "br0" oifname "br0" ct original ip daddr 203.0.113.1 jump snat_out"#,
            "meta l4proto udp snat ip to 203.0.113.1 : ip saddr . udp sport map @int2ext",
            "meta l4proto udp udp sport @ext2int snat ip to 203.0.113.1 random",
            "meta l4proto udp snat ip to 203.0.113.1",
            "snat ip to 203.0.113.1",
            #"oifname "wan" meta l4proto udp jump learn_udp"#,
            "meta l4proto udp update @ext2int { ct reply proto-dst timeout 120s : ct original ip saddr . ct original proto-src }",
            "meta l4proto udp update @int2ext { ct original ip saddr . ct original proto-src timeout 120s : ct reply proto-dst }",
            #"iifname "wan" ct state new,invalid drop"#,
            "ct status dnat accept",
            #"iifname "br0" accept"#,
        ] {
            #expect(text.contains("    " + rule + " comment \""), "missing: \(rule)")
        }
        #expect(text.contains("    type filter hook postrouting priority srcnat + 10; policy accept;\n"))
    }

    @Test func everyRuleExplained() throws {
        let rules = NATRuleset.explain(try NATProfile.parse(preset: "cgnat"), context: home)
        #expect(rules.count >= 10)
        for r in rules {
            #expect(!r.meaning.isEmpty && r.meaning.utf8.count < 128 && !r.meaning.contains("\""), "\(r)")
            #expect(r.rule.hasPrefix("["))
        }
        #expect(rules.contains { $0.meaning.contains("REQ-9") })
        #expect(rules.contains { $0.meaning.contains("P1") })
        #expect(NATRuleset.explain(NATProfile(kind: .none), context: home).isEmpty)
    }

    @Test func reappliableTableAndNoFlushRuleset() throws {
        let text = try #require(NATRuleset.render(try NATProfile.parse(preset: "symmetric"), context: home))
        #expect(text.contains("table ip natlab\ndelete table ip natlab\ntable ip natlab {\n"))
        #expect(!text.contains("flush ruleset"))
        let fw = try #require(NATRuleset.render(try NATProfile.parse(preset: "firewall"), context: home))
        #expect(fw.contains("table inet natlab\ndelete table inet natlab\ntable inet natlab {\n"))
    }

    @Test("for a new namespace: the same script without the two lines that replace an existing table")
    func rulesetForNewNamespace() throws {
        for (preset, context) in [("port-restricted-cone", homeDual), ("symmetric", home), ("firewall", home), ("cgnat", poolContext)] {
            let profile = try NATProfile.parse(preset: preset)
            let replacing = try #require(NATRuleset.render(profile, context: context))
            let fresh = try #require(NATRuleset.renderForNewNamespace(profile, context: context))
            #expect(!fresh.contains("delete table"), "\(preset)")
            let removed = replacing.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !fresh.split(separator: "\n", omittingEmptySubsequences: false).contains($0) }
            #expect(removed.allSatisfy { $0.hasPrefix("table ") || $0.hasPrefix("delete table ") }, "\(preset): \(removed)")
            #expect(replacing.replacingOccurrences(of: "delete table", with: "").count > fresh.count)
            #expect(fresh.components(separatedBy: " {\n").count == replacing.components(separatedBy: " {\n").count)
        }
        #expect(NATRuleset.renderForNewNamespace(NATProfile(kind: .none), context: home) == nil)
    }

    @Test func contextProblems() throws {
        let nat = try NATProfile.parse(preset: "cgnat")
        func problems(_ addrs: [String], wan: String = "wan") -> [String] {
            NATRuleset.problems(in: .init(wanInterface: wan, lanInterface: "br0", wanAddresses: addrs, lanSubnets: []),
                                for: nat).map(\.message)
        }
        #expect(problems(["203.0.113.1"]).isEmpty)
        #expect(problems(["203.0.113.2", "203.0.113.1"]).isEmpty)
        #expect(problems([]).first?.contains("at least one") == true)
        #expect(problems(["203.0.113.300"]).first?.contains("not an IPv4") == true)
        #expect(problems(["203.0.113.1", "203.0.113.3"]).first?.contains("consecutive") == true)
        #expect(problems(["203.0.113.1"], wan: "a\"b").first?.contains("interface") == true)
        #expect(NATRuleset.problems(in: .init(wanInterface: "", lanInterface: "", wanAddresses: [], lanSubnets: []),
                                    for: NATProfile(kind: .none)).isEmpty)
    }

    @Test func pooledRulesUseTheWholeRange() throws {
        let text = try #require(NATRuleset.render(try NATProfile.parse(preset: "cgnat"), context: poolContext))
        #expect(text.contains("snat ip to 203.0.113.21-203.0.113.24 persistent"))
        #expect(text.contains("ip daddr { 203.0.113.21, 203.0.113.22, 203.0.113.23, 203.0.113.24 }"))
        var arbitrary = try NATProfile.parse(preset: "cgnat")
        arbitrary.pooling = .arbitrary
        let a = try #require(NATRuleset.render(arbitrary, context: poolContext))
        #expect(!a.contains("persistent"))
        // One address: pooling has nothing to choose.
        #expect(!(NATRuleset.render(try NATProfile.parse(preset: "cgnat"), context: home) ?? "").contains("persistent"))
    }
}

extension NATProfile {
    func with(_ change: (inout NATProfile) -> Void) -> NATProfile { var p = self; change(&p); return p }
}
