// NATProfile -> nftables script, following reference/nat-recipes.md (nft 1.0.6 syntax).
//
// Shape of every script (re-appliable, touches only its own table):
//
//     table ip natlab           <- creates the table if missing (no-op otherwise)
//     delete table ip natlab    <- so this always succeeds and removes the old rules and dynamic maps
//     table ip natlab { … }     <- the new ruleset
//
// The three commands are one nft transaction: applying the script twice leaves exactly one table, and
// other tables in the router's namespace (e.g. the observer's counters) are left alone, unlike
// `flush ruleset`. After loading, flush the namespace's conntrack table (P3).
//
// A lab build loads the ruleset into a namespace it has just created, where the table cannot exist:
// `renderForNewNamespace` leaves out the first two lines. libnftables allocates and initialises four
// 8,192-bucket caches (128 KB each) for every `table` statement it parses, so the two lines cost
// ~0.2 ms per router (1.20 -> 1.01 ms per load in a libnftables loop).
//
// Decisions (see reference/nat-recipes.md for the recipes and pitfalls P1–P16):
// - kind `none` renders nil: routing only, no conntrack rules at all.
// - One address: exactly the verified natgen.sh rules, minus the maps/sets a profile never reads (e.g.
//   symmetric + APDF has no maps and no learn chain). Rule comments are kept by the kernel (`nft list`).
// - A pool (several consecutive WAN addresses): the same recipes with the external *address . port* in the
//   maps (`snat ip to ip saddr . udp sport map @int2ext`, `dnat ip to ip daddr . udp dport map @ext2int`),
//   `snat to A-B` for new mappings and `persistent` for paired pooling (§10); strict EIM marks owned ports
//   pool-wide in `ext_ports`. Checked with real UDP (EIM+paired, ADM+ADF+arbitrary), not part of natgen.sh.
// - Lifetimes use the per-netns sysctls (`sysctls(for:)`, §7.1), not a `ct timeout` object; every map and
//   set timeout equals the longest UDP conntrack timeout (P8).
// - IPv6 (dual stack, `context.lanSubnets6` non-empty): never translated (no NAT66). A NAT router adds a
//   second table, `table ip6 natlab`, with the §9 firewall for IPv6 and the profile's filtering (EIF/ADF
//   pinholes, APDF from conntrack), so a home router filters IPv6 as it filters IPv4 mappings. Both tables
//   are one nft transaction. A firewall's `inet` table already covers both families.
// - Firewall pinhole updates run before `ct state established accept`, so every outbound packet refreshes
//   the pinhole (REQ-6), as the NAT learn chain does.

public enum NATRuleset {
    /// The table every router's ruleset lives in (family `ip` for NAT, `inet` for the firewall).
    public static let tableName = "natlab"

    /// One rule with the behaviour it implements (the `comment` in the script).
    public struct Rule: Sendable, Equatable {
        public var chain: String
        public var text: String
        public var meaning: String
    }

    /// nftables script for `profile` (nil when the profile needs no rules: kind `none`).
    /// The context must pass `problems(in:for:)`.
    public static func render(_ profile: NATProfile, context: NATRulesetContext) -> String? {
        render(profile, context: context, table: tableName)
    }

    /// As `render(_:context:)`, in a table of another name (tests load many rulesets side by side).
    public static func render(_ profile: NATProfile, context: NATRulesetContext, table: String) -> String? {
        render(profile, context: context, table: table, replacing: true)
    }

    /// As `render(_:context:)`, for a namespace that has no natlab table yet (a lab being built):
    /// without the `table` / `delete table` lines that make the script re-appliable.
    public static func renderForNewNamespace(_ profile: NATProfile, context: NATRulesetContext) -> String? {
        render(profile, context: context, table: tableName, replacing: false)
    }

    private static func render(_ profile: NATProfile, context: NATRulesetContext, table: String, replacing: Bool) -> String? {
        let problems = problems(in: context, for: profile)
        precondition(problems.isEmpty, "NATRuleset.render: " + problems.map(\.message).joined(separator: "; "))
        let scripts = build(profile, context: context, table: table)
        return scripts.isEmpty ? nil : scripts.map { $0.text(replacing: replacing) }.joined(separator: "\n")
    }

    /// Every rule in order with its meaning (the teaching view, `natlab nat explain`).
    public static func explain(_ profile: NATProfile, context: NATRulesetContext) -> [(rule: String, meaning: String)] {
        rules(profile, context: context).map { (rule: "[\($0.chain)] \($0.text)", meaning: $0.meaning) }
    }

    /// Every rule in order, with its chain.
    public static func rules(_ profile: NATProfile, context: NATRulesetContext) -> [Rule] {
        build(profile, context: context, table: tableName).flatMap { script in
            script.chains.flatMap(\.rules).map { rule in
                var r = rule
                if script.family == "ip6" { r.chain = "ip6 " + r.chain }
                return r
            }
        }
    }

    /// What is wrong with `context` for rendering `profile` (empty when it can be rendered).
    public static func problems(in context: NATRulesetContext, for profile: NATProfile) -> [NATSpecError] {
        var errors: [NATSpecError] = []
        if profile.kind == .none { return [] }
        for name in [context.wanInterface, context.lanInterface] where !isInterfaceName(name) {
            errors.append(NATSpecError(key: nil, message: "'\(name)' is not a valid interface name"))
        }
        guard profile.kind == .nat else { return errors }
        if context.wanAddresses.isEmpty {
            errors.append(NATSpecError(key: nil, message: "a NAT needs at least one WAN address"))
        }
        let parsed = context.wanAddresses.map { IPv4.parse($0) }
        for (text, value) in zip(context.wanAddresses, parsed) where value == nil {
            errors.append(NATSpecError(key: nil, message: "'\(text)' is not an IPv4 address"))
        }
        let values = parsed.compactMap { $0 }.sorted()
        if values.count == parsed.count, values.count > 1 {
            if Set(values).count != values.count {
                errors.append(NATSpecError(key: "pooling", message: "the WAN addresses contain duplicates"))
            } else if values.last! - values.first! != UInt32(values.count - 1) {
                errors.append(NATSpecError(key: "pooling", message: "a pool of WAN addresses must be consecutive "
                    + "(nft `snat to A-B`); got " + context.wanAddresses.joined(separator: ", ")))
            }
        }
        return errors
    }

    /// The lifetime of learned mappings and pinholes, in seconds: the longest UDP conntrack timeout
    /// (P8: equal to the conntrack lifetime). Kernel defaults: 30 s unreplied, 120 s stream.
    public static func mapTimeout(for profile: NATProfile) -> Int {
        let (udp, stream) = udpTimeouts(profile)
        return max(udp ?? 30, stream ?? 120)
    }

    /// Per-namespace sysctls the profile needs (mapping lifetimes), as (dotted key, value).
    /// A single UDP timeout sets both conntrack states (P5: deterministic lifetimes).
    public static func sysctls(for profile: NATProfile) -> [(key: String, value: String)] {
        guard profile.kind != .none else { return [] }
        var out: [(key: String, value: String)] = []
        let (udp, stream) = udpTimeouts(profile)
        if let udp { out.append((key: "net.netfilter.nf_conntrack_udp_timeout", value: String(udp))) }
        if let stream { out.append((key: "net.netfilter.nf_conntrack_udp_timeout_stream", value: String(stream))) }
        if let tcp = profile.tcpTimeout {
            out.append((key: "net.netfilter.nf_conntrack_tcp_timeout_established", value: String(tcp)))
        }
        return out
    }

    static func udpTimeouts(_ p: NATProfile) -> (Int?, Int?) {
        (p.udpTimeout ?? p.udpStreamTimeout, p.udpStreamTimeout ?? p.udpTimeout)
    }

    // MARK: - Building

    struct Decl {
        var kind: String   // "set" or "map"
        var name: String
        var type: String
        var note: String
    }

    struct Chain {
        var name: String
        var header: String?   // "type nat hook … policy accept;"
        var note: String
        var notes: [String] = []   // `#` lines inside the chain, before the rules
        var rules: [Rule] = []
        init(_ name: String, _ header: String?, _ note: String) {
            self.name = name; self.header = header; self.note = note
        }
        mutating func add(_ text: String, _ meaning: String) {
            rules.append(Rule(chain: name, text: text, meaning: meaning))
        }
    }

    /// Entries each learned map/set may hold. nft's default for a dynamic set is 65535, and the kernel
    /// sizes the hash table from it up front: loading a NAT ruleset into a fresh namespace took
    /// ~6.6 ms with 65535 and ~1 ms with 16384 in a bare libnftables loop (Linux 6.18); even so the
    /// kernel clears 256 KB of hash buckets per map. 16384 concurrent mappings per router is far more
    /// than a lab LAN makes, and fewer could silently stop a busy NAT from learning mappings (a full
    /// dynamic set refuses the update).
    public static let mappingTableSize = 16384

    struct Script {
        var family: String
        var table: String
        var title: [String]
        var decls: [Decl]
        var chains: [Chain]

        /// With `replacing`, the script first deletes the table it defines (creating it first, so the
        /// delete always succeeds): loading it again leaves exactly one table.
        func text(replacing: Bool) -> String {
            var out = title.map { "# " + $0 + "\n" }.joined()
            if replacing { out += "table \(family) \(table)\ndelete table \(family) \(table)\n" }
            out += "table \(family) \(table) {\n"
            var blocks: [String] = []
            for d in decls {
                blocks.append("""
                  # \(d.note)
                  \(d.kind) \(d.name) {
                    type \(d.type)
                    size \(NATRuleset.mappingTableSize)
                    flags dynamic,timeout
                    timeout \(timeoutText)
                  }

                """)
            }
            for c in chains {
                var b = "  # \(c.note)\n  chain \(c.name) {\n"
                if let h = c.header { b += "    \(h)\n" }
                for n in c.notes { b += "    # \(n)\n" }
                for r in c.rules { b += "    \(r.text) comment \"\(r.meaning)\"\n" }
                b += "  }\n"
                blocks.append(b)
            }
            out += blocks.joined(separator: "\n") + "}\n"
            return out
        }
        var timeoutText: String
    }

    static func build(_ p: NATProfile, context c: NATRulesetContext, table: String) -> [Script] {
        switch p.kind {
        case .none: return []
        case .firewall: return [buildFirewall(p, c, table)]
        case .nat: return [buildNAT(p, c, table)] + (c.hasIPv6 ? [buildIPv6Filter(p, c, table)] : [])
        }
    }

    static let inputHeader = "type filter hook input priority filter; policy accept;"
    static let forwardHeader = "type filter hook forward priority filter; policy drop;"
    static let dropUnsolicited = "drop unsolicited WAN packets before conntrack confirms them: no entry poisons a port (P1)"

    // MARK: NAT44

    static func buildNAT(_ p: NATProfile, _ c: NATRulesetContext, _ table: String) -> Script {
        let wan = "\"\(c.wanInterface)\"", lan = "\"\(c.lanInterface)\""
        let t = "\(mapTimeout(for: p))s"
        let addrs = c.wanAddresses.compactMap(IPv4.parse).sorted().map(IPv4.format)
        let pool = addrs.count > 1
        let paired = pool && p.pooling == .paired
        let addrExpr = pool ? "\(addrs.first!)-\(addrs.last!)" : addrs[0]
        let daddr = pool ? "ip daddr { \(addrs.joined(separator: ", ")) }" : "ip daddr \(addrs[0])"
        let ctDaddr = pool ? "ct original ip daddr { \(addrs.joined(separator: ", ")) }" : "ct original ip daddr \(addrs[0])"
        let ports = p.effectivePorts
        var range: String?
        if case .range(let lo, let hi) = ports { range = "\(lo)-\(hi)" }
        let to = addrExpr + (range.map { ":" + $0 } ?? "")
        func flags(random: Bool) -> String {
            let f = (random ? ["random"] : []) + (paired ? ["persistent"] : [])
            return f.isEmpty ? "" : " " + f.joined(separator: ",")
        }
        let pairedNote = paired ? ", paired pooling (REQ-2)" : (pool ? ", arbitrary pooling" : "")
        // The external side of a mapping: the port alone with one address, address . port with a pool.
        let extKeyType = pool ? "ipv4_addr . inet_service" : "inet_service"
        let extKeyCt = pool ? "ct reply ip daddr . ct reply proto-dst" : "ct reply proto-dst"
        let extKeyPkt = pool ? "ip daddr . udp dport" : "udp dport"
        let pinTo = pool ? "snat ip to" : "snat ip to \(addrs[0]) :"

        let eim = p.mapping == .endpointIndependent
        let dnat = p.filtering != .addressAndPortDependent || p.hairpin
        let needExt2int = eim || dnat
        let needOwned = pool && eim && ports != .random
        let rangeNote = range.map { " in \($0)" } ?? ""

        var decls: [Decl] = []
        if needExt2int {
            decls.append(Decl(kind: "map", name: "ext2int", type: "\(extKeyType) : ipv4_addr . inet_service",
                              note: "external \(pool ? "address . port" : "port") -> inside endpoint, learned after SNAT"
                                  + " (port ownership, EIF/ADF/hairpin DNAT)"))
        }
        if eim {
            decls.append(Decl(kind: "map", name: "int2ext", type: "ipv4_addr . inet_service : \(extKeyType)",
                              note: "inside endpoint -> its one external \(pool ? "address . port" : "port")"
                                  + ": endpoint-independent mapping without port overloading"))
        }
        if needOwned {
            decls.append(Decl(kind: "set", name: "ext_ports", type: "inet_service",
                              note: "external ports in use on any pool address: a new endpoint must not share one"))
        }
        if p.mapping == .addressDependent {
            decls.append(Decl(kind: "map", name: "adm_map", type: "ipv4_addr . inet_service . ipv4_addr : \(extKeyType)",
                              note: "(inside endpoint . remote address) -> external \(pool ? "address . port" : "port")"
                                  + ": address-dependent mapping"))
        }
        if p.filtering == .addressDependent {
            decls.append(Decl(kind: "set", name: "adf_set",
                              type: pool ? "ipv4_addr . ipv4_addr . inet_service" : "ipv4_addr . inet_service",
                              note: "(remote address . external \(pool ? "address . port" : "port")) the inside has sent to"
                                  + ": address-dependent filtering"))
        }

        // dstnat: inbound translation to the owner of a mapping (always registered, P16).
        var dstnat = Chain("dstnat", "type nat hook prerouting priority dstnat; policy accept;",
                           "inbound: translate packets for a public mapping to its inside owner")
        switch p.filtering {
        case .endpointIndependent:
            dstnat.add("iifname \(wan) \(daddr) meta l4proto udp dnat ip to \(extKeyPkt) map @ext2int",
                       "EIF: any remote endpoint may reach a mapped external port (full cone, RFC 4787 REQ-8)")
        case .addressDependent:
            let key = pool ? "ip saddr . ip daddr . udp dport" : "ip saddr . udp dport"
            dstnat.add("iifname \(wan) \(daddr) meta l4proto udp \(key) @adf_set dnat ip to \(extKeyPkt) map @ext2int",
                       "ADF: only remote addresses this mapping has sent to get in (restricted cone, RFC 4787 REQ-8)")
        case .addressAndPortDependent:
            dstnat.notes.append("APDF: no inbound DNAT; only replies matching a conntrack entry get in")
        }
        if p.hairpin {
            dstnat.add("iifname \(lan) \(daddr) meta l4proto udp dnat ip to \(extKeyPkt) map @ext2int",
                       "hairpin: a LAN packet to a public mapping goes to its inside owner (RFC 4787 REQ-9)")
        }

        var srcnat = Chain("srcnat", "type nat hook postrouting priority srcnat; policy accept;",
                           "outbound: choose the external address and port of new flows")
        srcnat.add("oifname \(wan) jump snat_out", "translate every new flow leaving through the WAN")
        if p.hairpin {
            srcnat.add("iifname \(lan) oifname \(lan) \(ctDaddr) jump snat_out",
                       "hairpin: source becomes the sender's public mapping, not the router's LAN address (REQ-9)")
        }

        var snat = Chain("snat_out", nil, "\(p.mapping.abbreviation), ports \(ports)\(pairedNote)")
        switch p.mapping {
        case .endpointIndependent:
            snat.add("meta l4proto udp \(pinTo) ip saddr . udp sport map @int2ext",
                     "EIM: reuse this inside endpoint's pinned external \(pool ? "address and port" : "port") (RFC 4787 REQ-1)")
            if ports != .random {
                snat.add("meta l4proto udp udp sport @\(needOwned ? "ext_ports" : "ext2int") snat ip to \(to)\(flags(random: true))",
                         "EIM: source port owned by another inside endpoint, take a free random port\(rangeNote)"
                            + " (no port overloading, REQ-3)")
            }
            switch ports {
            case .preserve:
                snat.add("meta l4proto udp snat ip to \(to)\(flags(random: false))",
                         "EIM: new endpoint keeps its source port when free (port preservation)")
            case .random:
                snat.add("meta l4proto udp snat ip to \(to)\(flags(random: true))",
                         "EIM: new endpoint gets a random external port, pinned for all destinations")
            case .range(let lo, let hi):
                snat.add("meta l4proto udp snat ip to \(to)\(flags(random: false))",
                         "EIM: new endpoint gets a port in \(lo)-\(hi) (its own port if inside the range and free)")
                snat.add("meta l4proto tcp snat ip to \(to)\(flags(random: false))",
                         "TCP: external ports in \(lo)-\(hi), stock kernel mapping")
            }
            snat.add("snat ip to \(addrExpr)\(flags(random: false))",
                     "other protocols: stock kernel SNAT (endpoint-independent while ports do not collide)")
        case .addressDependent:
            snat.add("meta l4proto udp \(pinTo) ip saddr . udp sport . ip daddr map @adm_map",
                     "ADM: reuse the port mapped for this inside endpoint and remote address")
            snat.add("meta l4proto udp snat ip to \(to)\(flags(random: true))",
                     "ADM: first packet to a new remote address gets a fresh random port\(rangeNote)")
            if let range {
                snat.add("meta l4proto tcp snat ip to \(to)\(flags(random: true))",
                         "TCP: a fresh random port in \(range) per connection")
            }
            snat.add("snat ip to \(addrExpr)\(flags(random: false))",
                     "other protocols: stock kernel SNAT")
        case .addressAndPortDependent:
            if let range {
                snat.add("meta l4proto { tcp, udp } snat ip to \(to)\(flags(random: true))",
                         "APDM: every new remote endpoint gets a fresh random port in \(range) (symmetric NAT)")
            }
            snat.add("snat ip to \(addrExpr)\(flags(random: true))",
                     "APDM: every new remote endpoint (address and port) gets a fresh random port (symmetric NAT)")
        }

        var chains = [dstnat, srcnat, snat]
        var learnUDP = Chain("learn_udp", nil, "record the binding SNAT just made (ct reply = external side)")
        if needExt2int {
            learnUDP.add("meta l4proto udp update @ext2int { \(extKeyCt) timeout \(t) : ct original ip saddr . ct original proto-src }",
                         "remember which inside endpoint owns the external port (refreshed by outbound packets, REQ-6)")
        }
        if eim {
            learnUDP.add("meta l4proto udp update @int2ext { ct original ip saddr . ct original proto-src timeout \(t) : \(extKeyCt) }",
                         "EIM: pin the inside endpoint to its external port for every destination (REQ-1)")
        }
        if needOwned {
            learnUDP.add("meta l4proto udp update @ext_ports { ct reply proto-dst timeout \(t) }",
                         "EIM: mark the external port as owned on the whole pool (REQ-3)")
        }
        if p.mapping == .addressDependent {
            learnUDP.add("meta l4proto udp update @adm_map { ct original ip saddr . ct original proto-src . ip daddr timeout \(t) : \(extKeyCt) }",
                         "ADM: pin the port for this inside endpoint and remote address")
        }
        if p.filtering == .addressDependent {
            learnUDP.add("meta l4proto udp update @adf_set { ip daddr . \(extKeyCt) timeout \(t) }",
                         "ADF: remember the remote address this mapping has sent to")
        }
        if !learnUDP.rules.isEmpty {
            var learn = Chain("learn", "type filter hook postrouting priority srcnat + 10; policy accept;",
                              "filter chain after the NAT chain: the binding exists, ct reply proto-dst == external port")
            learn.add("oifname \(wan) meta l4proto udp jump learn_udp",
                      "learn UDP mappings once SNAT has chosen the external port")
            chains += [learn, learnUDP]
        }

        var input = Chain("input", inputHeader, "the router itself")
        input.add("iifname \(wan) ct state new,invalid drop", dropUnsolicited)
        var forward = Chain("forward", forwardHeader, "forwarding: outbound allowed, inbound only for known flows")
        if p.blockUDP == true {
            forward.add("meta l4proto udp drop", "block-udp: no UDP crosses this router, either way (a UDP-blocking firewall)")
        }
        forward.add("ct state established,related accept",
                    "replies and related ICMP of known flows (APDF comes from conntrack)")
        forward.add("ct state invalid drop", "packets conntrack cannot place")
        if dnat {
            forward.add("ct status dnat accept", "inbound packets a DNAT rule admitted (EIF/ADF/hairpin)")
        }
        forward.add("iifname \(lan) accept", "everything the LAN sends out")
        chains += [input, forward]

        return Script(family: "ip", table: table,
                      title: ["natlab NAT: " + (p.preset.map { "\($0): " } ?? "") + p.summary + pairedNote,
                              "wan \(c.wanInterface) \(addrs.joined(separator: ", ")), lan \(c.lanInterface); "
                                + "mapping lifetime \(t); load, then flush conntrack (P3)"],
                      decls: decls, chains: chains, timeoutText: t)
    }

    // MARK: Firewall without translation (IPv4 and IPv6)

    static func buildFirewall(_ p: NATProfile, _ c: NATRulesetContext, _ table: String) -> Script {
        let wan = "\"\(c.wanInterface)\"", lan = "\"\(c.lanInterface)\""
        let t = "\(mapTimeout(for: p))s"
        var decls: [Decl] = []
        var forward = Chain("forward", forwardHeader, "forwarding: outbound allowed, unsolicited inbound dropped")
        if p.blockUDP == true {
            forward.add("meta l4proto udp drop", "block-udp: no UDP crosses this router, either way (a UDP-blocking firewall)")
        }
        forward.add("ct state invalid drop", "packets conntrack cannot place")
        switch p.filtering {
        case .endpointIndependent:
            decls.append(Decl(kind: "set", name: "pin4_eif", type: "ipv4_addr . inet_service",
                              note: "IPv4 inside endpoints that have sent out: pinholes open to everyone"))
            decls.append(Decl(kind: "set", name: "pin6_eif", type: "ipv6_addr . inet_service",
                              note: "IPv6 inside endpoints that have sent out: pinholes open to everyone"))
            forward.add("iifname \(lan) meta l4proto udp update @pin4_eif { ip saddr . udp sport timeout \(t) }",
                        "EIF: open (or refresh) a pinhole for this IPv4 inside endpoint")
            forward.add("iifname \(lan) meta l4proto udp update @pin6_eif { ip6 saddr . udp sport timeout \(t) }",
                        "EIF: open (or refresh) a pinhole for this IPv6 inside endpoint")
        case .addressDependent:
            decls.append(Decl(kind: "set", name: "pin4_adf", type: "ipv4_addr . inet_service . ipv4_addr",
                              note: "IPv4 (inside endpoint . remote address) pairs: pinholes for that remote address"))
            decls.append(Decl(kind: "set", name: "pin6_adf", type: "ipv6_addr . inet_service . ipv6_addr",
                              note: "IPv6 (inside endpoint . remote address) pairs: pinholes for that remote address"))
            forward.add("iifname \(lan) meta l4proto udp update @pin4_adf { ip saddr . udp sport . ip daddr timeout \(t) }",
                        "ADF: open (or refresh) a pinhole for this IPv4 endpoint and remote address")
            forward.add("iifname \(lan) meta l4proto udp update @pin6_adf { ip6 saddr . udp sport . ip6 daddr timeout \(t) }",
                        "ADF: open (or refresh) a pinhole for this IPv6 endpoint and remote address")
        case .addressAndPortDependent:
            break
        }
        forward.add("ct state established,related accept",
                    "replies and related ICMP of known flows (APDF comes from conntrack)")
        forward.add("iifname \(lan) accept", "everything the LAN sends out")
        switch p.filtering {
        case .endpointIndependent:
            forward.add("iifname \(wan) meta l4proto udp ip daddr . udp dport @pin4_eif accept",
                        "EIF: any remote endpoint may reach an open IPv4 pinhole (RFC 4787 REQ-8)")
            forward.add("iifname \(wan) meta l4proto udp ip6 daddr . udp dport @pin6_eif accept",
                        "EIF: any remote endpoint may reach an open IPv6 pinhole (RFC 4787 REQ-8)")
        case .addressDependent:
            forward.add("iifname \(wan) meta l4proto udp ip daddr . udp dport . ip saddr @pin4_adf accept",
                        "ADF: remote addresses the IPv4 endpoint has sent to may reach its pinhole")
            forward.add("iifname \(wan) meta l4proto udp ip6 daddr . udp dport . ip6 saddr @pin6_adf accept",
                        "ADF: remote addresses the IPv6 endpoint has sent to may reach its pinhole")
        case .addressAndPortDependent:
            forward.notes.append("APDF: only replies matching a conntrack entry get in")
        }
        var input = Chain("input", inputHeader, "the router itself")
        input.add("iifname \(wan) ct state new,invalid drop", dropUnsolicited)
        return Script(family: "inet", table: table,
                      title: ["natlab firewall: " + (p.preset.map { "\($0): " } ?? "") + p.summary,
                              "wan \(c.wanInterface), lan \(c.lanInterface); pinhole lifetime \(t); "
                                + "load, then flush conntrack (P3)"],
                      decls: decls, chains: [input, forward], timeoutText: t)
    }

    // MARK: IPv6 next to NAT44 (dual stack)

    /// A translating router's IPv6 side: the §9 stateful firewall in `table ip6`, with the profile's
    /// filtering, and no translation (the LAN hosts' global addresses are their public addresses).
    static func buildIPv6Filter(_ p: NATProfile, _ c: NATRulesetContext, _ table: String) -> Script {
        let wan = "\"\(c.wanInterface)\"", lan = "\"\(c.lanInterface)\""
        let t = "\(mapTimeout(for: p))s"
        var decls: [Decl] = []
        var forward = Chain("forward", forwardHeader, "IPv6 forwarding: outbound allowed, unsolicited inbound dropped, no translation")
        if p.blockUDP == true {
            forward.add("meta l4proto udp drop", "block-udp: no UDP crosses this router, either way (a UDP-blocking firewall)")
        }
        forward.add("ct state invalid drop", "IPv6 packets conntrack cannot place")
        switch p.filtering {
        case .endpointIndependent:
            decls.append(Decl(kind: "set", name: "pin6_eif", type: "ipv6_addr . inet_service",
                              note: "IPv6 inside endpoints that have sent out: pinholes open to everyone (EIF)"))
            forward.add("iifname \(lan) meta l4proto udp update @pin6_eif { ip6 saddr . udp sport timeout \(t) }",
                        "EIF: open (or refresh) a pinhole for this IPv6 inside endpoint")
        case .addressDependent:
            decls.append(Decl(kind: "set", name: "pin6_adf", type: "ipv6_addr . inet_service . ipv6_addr",
                              note: "IPv6 (inside endpoint . remote address) pairs: pinholes for that remote address (ADF)"))
            forward.add("iifname \(lan) meta l4proto udp update @pin6_adf { ip6 saddr . udp sport . ip6 daddr timeout \(t) }",
                        "ADF: open (or refresh) a pinhole for this IPv6 endpoint and remote address")
        case .addressAndPortDependent:
            break
        }
        forward.add("ct state established,related accept",
                    "IPv6 replies and related ICMPv6 of known flows (APDF comes from conntrack)")
        forward.add("iifname \(lan) accept", "everything the LAN sends out over IPv6, untranslated")
        switch p.filtering {
        case .endpointIndependent:
            forward.add("iifname \(wan) meta l4proto udp ip6 daddr . udp dport @pin6_eif accept",
                        "EIF: any remote endpoint may reach an open IPv6 pinhole (RFC 4787 REQ-8)")
        case .addressDependent:
            forward.add("iifname \(wan) meta l4proto udp ip6 daddr . udp dport . ip6 saddr @pin6_adf accept",
                        "ADF: remote addresses the IPv6 endpoint has sent to may reach its pinhole")
        case .addressAndPortDependent:
            forward.notes.append("APDF: only replies matching a conntrack entry get in")
        }
        var input = Chain("input", inputHeader, "the router itself, over IPv6 (neighbour discovery is untracked)")
        input.add("iifname \(wan) ct state new,invalid drop", dropUnsolicited)
        return Script(family: "ip6", table: table,
                      title: ["natlab IPv6 filter of a NAT44 router (no NAT66): " + p.filtering.abbreviation
                                + " like its IPv4 mappings",
                              "wan \(c.wanInterface), lan \(c.lanInterface) \(c.lanSubnets6.joined(separator: ", ")); "
                                + "pinhole lifetime \(t)"],
                      decls: decls, chains: [input, forward], timeoutText: t)
    }

    static func isInterfaceName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 15 && s != "." && s != ".."
            && s.unicodeScalars.allSatisfy { $0.isASCII && $0.value > 32 && $0 != "/" && $0 != "\"" && $0 != "\\" }
    }
}

enum IPv4 {
    static func parse(_ s: String) -> UInt32? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let n = UInt32(part), n <= 255 else { return nil }
            v = v << 8 | n
        }
        return v
    }
    static func format(_ v: UInt32) -> String {
        "\(v >> 24).\(v >> 16 & 255).\(v >> 8 & 255).\(v & 255)"
    }
}
