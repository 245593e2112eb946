import Foundation
import Testing
import TestSupport
@testable import NATModel

/// Every combination the parser accepts, rendered and checked by the real nft 1.0.6 in a throwaway
/// network namespace (`unshare --net`): nothing reaches the host's ruleset.
@Suite struct NFTCheckTests {
    struct Combination {
        var label: String
        var profile: NATProfile
        var context: NATRulesetContext
    }

    static let mappings = ["endpoint-independent", "address-dependent", "address-and-port-dependent"]
    static let filterings = ["endpoint-independent", "address-dependent", "address-and-port-dependent"]
    static let portModes = ["preserve", "random", "20000-20999"]
    static let timeouts: [[(String, String)]] = [[], [("udp-timeout", "30s"), ("tcp-timeout", "600")]]

    /// (accepted combinations, number of rejected field sets)
    static func combinations() -> (accepted: [Combination], rejected: Int) {
        var out: [Combination] = []
        var rejected = 0
        let contexts: [(String, NATRulesetContext, String?)] = [
            ("single", home, nil), ("pool-paired", poolContext, "paired"), ("pool-arbitrary", poolContext, "arbitrary"),
            ("dual-stack", homeDual, nil),
        ]
        for m in mappings {
            for f in filterings {
                for hairpin in ["false", "true"] {
                    for ports in portModes {
                        for t in timeouts {
                            for (cname, context, pooling) in contexts {
                                var fields: [(key: String, value: NATSpecValue)] = [
                                    ("mapping", .scalar(m)), ("filtering", .scalar(f)),
                                    ("hairpin", .scalar(hairpin)), ("ports", .scalar(ports)),
                                ]
                                if let pooling { fields.append(("pooling", .scalar(pooling))) }
                                fields += t.map { (key: $0.0, value: .scalar($0.1)) }
                                let label = fields.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + " [\(cname)]"
                                guard let p = try? NATProfile.parse(fields: fields) else { rejected += 1; continue }
                                out.append(Combination(label: label, profile: p, context: context))
                            }
                        }
                    }
                }
            }
        }
        for f in filterings {
            for t in timeouts {
                let fields = [(key: "preset", value: NATSpecValue.scalar("firewall")), (key: "filtering", value: .scalar(f))]
                    + t.map { (key: $0.0, value: NATSpecValue.scalar($0.1)) }
                for (cname, context) in [("single", home), ("dual-stack", homeDual)] {
                    out.append(Combination(label: "firewall filtering=\(f) timeouts=\(!t.isEmpty) [\(cname)]",
                                           profile: try! NATProfile.parse(fields: fields), context: context))
                }
            }
        }
        for name in NATProfile.presetNames where name != "none" {
            for (cname, context) in [("single", home), ("pool", poolContext), ("dual-stack", homeDual)] {
                out.append(Combination(label: "preset \(name) [\(cname)]", profile: try! NATProfile.parse(preset: name),
                                       context: context))
            }
        }
        for preset in ["port-restricted-cone", "firewall"] {
            let fields: [(key: String, value: NATSpecValue)] = [("preset", .scalar(preset)), ("block-udp", .scalar("true"))]
            for (cname, context) in [("single", home), ("dual-stack", homeDual)] {
                out.append(Combination(label: "preset \(preset) block-udp [\(cname)]",
                                       profile: try! NATProfile.parse(fields: fields), context: context))
            }
        }
        return (out, rejected)
    }

    @Test func combinationCount() {
        let (accepted, rejected) = Self.combinations()
        // NAT: EIM 3 ports × 3 filterings × 2 hairpin × 2 timeouts × 4 contexts (single, 2 pools, dual stack)
        // = 144; ADM and APDM reject `ports: preserve`: 2 × 96 = 192 accepted, 2 × 48 = 96 rejected.
        // Firewall 3 × 2 × 2 contexts, presets 6 × 3 contexts, block-udp 2 presets × 2 contexts.
        #expect(accepted.count == 144 + 192 + 12 + 18 + 4)
        #expect(rejected == 96)
    }

    @Test(.enabled(if: Privilege.shouldRun), .timeLimit(.minutes(1)))
    func everyAcceptedCombinationPassesNft() throws {
        try Privilege.require()
        let (combos, _) = Self.combinations()
        let scripts = combos.enumerated().map { i, c in
            NATRuleset.render(c.profile, context: c.context, table: String(format: "natlab_%03d", i))!
        }
        let started = Date()
        // One batch: `nft -c`, then a real load twice in the same throwaway namespace: `nft -c` misses
        // kernel-side errors such as snat in a filter chain, and loading twice proves every script is
        // re-appliable. (No `nft list` here: listing 270 tables with dynamic maps takes ~4 s.)
        let all = scripts.joined(separator: "\n")
        if let dump = ProcessInfo.processInfo.environment["NATLAB_NFT_DUMP"] { try all.write(toFile: dump, atomically: true, encoding: .utf8) }
        let result = try Self.run(all, shell: "nft -c -f \"$1\" && nft -f \"$1\" && nft -f \"$1\"")
        if result.status != 0 {
            // Name the failing combinations.
            for (c, s) in zip(combos, scripts) {
                let r = try Self.run(s, shell: "nft -c -f \"$1\" && nft -f \"$1\"")
                #expect(r.status == 0, "\(c.label): \(r.output)")
            }
            Issue.record("nft batch failed: \(result.output.prefix(2000))")
            return
        }
        let seconds = Date().timeIntervalSince(started)
        print("nft -c + load of \(combos.count) rulesets: \(String(format: "%.2f", seconds)) s")
    }

    @Test(.enabled(if: Privilege.shouldRun))
    func reapplyingLeavesOneTable() throws {
        try Privilege.require()
        for (preset, context, tables) in [("cgnat", home, "table ip natlab\n"), ("firewall", home, "table inet natlab\n"),
                                          ("cgnat", homeDual, "table ip natlab\ntable ip6 natlab\n"),
                                          ("firewall", homeDual, "table inet natlab\n")] {
            let script = NATRuleset.render(try NATProfile.parse(preset: preset), context: context)!
            // Another table in the namespace (e.g. the observer's counters) must survive the reload.
            let r = try Self.run(script, shell: "nft add table ip other && nft -f \"$1\" && nft -f \"$1\" && nft list tables")
            #expect(r.status == 0, "\(r.output)")
            #expect(r.output == "table ip other\n" + tables, "\(preset) \(context.hasIPv6 ? "dual" : "v4")")
        }
    }

    @Test(.enabled(if: Privilege.shouldRun))
    func nftCatchesABrokenRuleset() throws {
        // The harness itself: a ruleset nft must reject (P11: port range without an l4proto match).
        try Privilege.require()
        let bad = "table ip natlab {\n chain c { type nat hook postrouting priority srcnat; policy accept;\n  masquerade to :20000-20999\n }\n}\n"
        #expect(try Self.run(bad, shell: "nft -c -f \"$1\"").status != 0)
    }

    /// Runs `sh -c SCRIPT` in a new network namespace with $1 = a temporary file holding `ruleset`.
    static func run(_ ruleset: String, shell: String) throws -> (status: Int32, output: String) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("natlab-nft-\(UUID().uuidString).nft")
        try ruleset.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        p.arguments = ["--net", "/bin/sh", "-c", shell, "sh", file.path]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
