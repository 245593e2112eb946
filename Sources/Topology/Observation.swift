import NATModel

/// Where natlab watches a check's traffic, and how it turns counters into a path.
///
/// The two peers' packets must turn around somewhere: at the lowest node both hang below (their
/// lowest common ancestor, the *meeting point*), or at a relay. natlab counts, for the two peers'
/// addresses *as they appear at that point* (after every NAT on the way up):
/// - on the meeting point's bridge (`ix` on the internet core, `lan` on a router), frames bridged
///   from one peer to the other — the packets went straight there: **direct** (`local` when the
///   meeting point is a router, i.e. the peers share a LAN behind it);
/// - in the meeting point's IP forwarding from its bridge back to its bridge: with `ct status dnat`
///   the packets were sent to the router's own public address and translated back — **hairpin** at
///   that router; without, a router routed them between its segments — **direct**;
/// - at every relay host, what each peer sent to it and what it sent to each peer — **relay**.
/// The counters live in tables named `natlab_observe` of their own, so NAT rulesets are untouched.
public struct ObservationPlan: Sendable, Equatable, Codable {
    /// A counter and what it means.
    public struct Counter: Sendable, Equatable, Codable {
        public enum Meaning: String, Sendable, Codable {
            case bridged, hairpin, routed, toRelay = "to-relay", fromRelay = "from-relay"
        }
        /// Unique within the plan; also the rule's nft comment.
        public var name: String
        public var node: String
        public var meaning: Meaning
        /// The check this counter belongs to (index in the topology's checks).
        public var check: Int
    }

    /// Per node: the nftables script that installs its counters.
    public var scripts: [String: String]
    public var counters: [Counter]
    /// Per check: where the peers meet (internet or a router), and the relays watched.
    public var meetingPoints: [String]
}

public enum Observation {
    /// Counters for `checks` in `plan`; `relays` are the hosts that relay (TURN servers).
    public static func plan(_ plan: LabPlan, checks: [Check], relays: [String]) -> ObservationPlan {
        var bridge: [String: [String]] = [:]    // node -> bridge-family rules
        var forward: [String: [String]] = [:]   // node -> inet forward rules
        var input: [String: [String]] = [:]     // relay node -> inet input rules
        var output: [String: [String]] = [:]    // relay node -> inet output rules
        var counters: [ObservationPlan.Counter] = []
        var meetingPoints: [String] = []

        func counter(_ node: String, _ meaning: ObservationPlan.Counter.Meaning, _ check: Int, _ suffix: String) -> String {
            let name = "c\(check)-\(meaning.rawValue)-\(node)\(suffix)"
            counters.append(.init(name: name, node: node, meaning: meaning, check: check))
            return name
        }

        for (i, check) in checks.enumerated() {
            let (a, b) = (check.peers[0], check.peers[1])
            let meet = meetingPoint(plan, a, b)
            meetingPoints.append(meet)
            let sa = set(seen(plan, a, at: meet)), sb = set(seen(plan, b, at: meet))
            let port = meet == Topology.internet ? "ix" : "lan"
            // Both directions into one counter: the path carried the exchange, whichever way.
            let bridged = counter(meet, .bridged, i, "")
            bridge[meet, default: []] += [
                "ether type ip ip saddr \(sa) ip daddr \(sb) counter comment \"\(bridged)\"",
                "ether type ip ip saddr \(sb) ip daddr \(sa) counter comment \"\(bridged)\"",
            ]
            let hairpin = counter(meet, .hairpin, i, ""), routed = counter(meet, .routed, i, "")
            for (x, y) in [(sa, sb), (sb, sa)] {
                forward[meet, default: []] += [
                    "iifname \"\(port)\" oifname \"\(port)\" ip saddr \(x) ip daddr \(y) ct status & dnat == dnat counter comment \"\(hairpin)\"",
                    "iifname \"\(port)\" oifname \"\(port)\" ip saddr \(x) ip daddr \(y) ct status & dnat == 0 counter comment \"\(routed)\"",
                ]
            }
            for relay in relays where relay != a && relay != b {
                let at = meetingPoint(plan, a, relay)
                let bt = meetingPoint(plan, b, relay)
                // One rule per direction: peers behind one NAT share the address the relay sees.
                var peers: [String] = []
                for address in seen(plan, a, at: at) + seen(plan, b, at: bt) where !peers.contains(address) {
                    peers.append(address)
                }
                let to = counter(relay, .toRelay, i, ""), from = counter(relay, .fromRelay, i, "")
                input[relay, default: []].append("ip saddr \(set(peers)) counter comment \"\(to)\"")
                output[relay, default: []].append("ip daddr \(set(peers)) counter comment \"\(from)\"")
            }
        }

        var scripts: [String: String] = [:]
        let nodes = Set(bridge.keys).union(forward.keys).union(input.keys)
        for node in nodes.sorted() {
            var s = ""
            if let rules = bridge[node] {
                s += table("bridge", chains: [("forward", "type filter hook forward priority -200; policy accept;", rules)])
            }
            var inet: [(String, String, [String])] = []
            if let rules = forward[node] { inet.append(("forward", "type filter hook forward priority -200; policy accept;", rules)) }
            if let rules = input[node] { inet.append(("input", "type filter hook input priority -200; policy accept;", rules)) }
            if let rules = output[node] { inet.append(("output", "type filter hook output priority -200; policy accept;", rules)) }
            if !inet.isEmpty { s += table("inet", chains: inet) }
            scripts[node] = s
        }
        return ObservationPlan(scripts: scripts, counters: counters, meetingPoints: meetingPoints)
    }

    /// An idempotent script (re-applying replaces the table), like NATModel's rulesets.
    static func table(_ family: String, chains: [(String, String, [String])]) -> String {
        var s = "table \(family) natlab_observe\ndelete table \(family) natlab_observe\ntable \(family) natlab_observe {\n"
        for (name, hook, rules) in chains {
            s += "\tchain \(name) {\n\t\t\(hook)\n"
            for r in rules { s += "\t\t\(r)\n" }
            s += "\t}\n"
        }
        return s + "}\n"
    }

    static func set(_ addresses: [String]) -> String {
        addresses.count == 1 ? addresses[0] : "{ " + addresses.joined(separator: ", ") + " }"
    }

    /// The nodes from `node` up to the internet, `node` first.
    static func chain(_ plan: LabPlan, _ node: String) -> [String] {
        var out = [node]
        var current = plan.node(named: node)
        while let parent = current?.parent {
            out.append(parent)
            current = plan.node(named: parent)
        }
        if out.last != Topology.internet { out.append(Topology.internet) }
        return out
    }

    /// The lowest node both `a` and `b` hang below.
    public static func meetingPoint(_ plan: LabPlan, _ a: String, _ b: String) -> String {
        let above = Set(chain(plan, b).dropFirst())
        return chain(plan, a).dropFirst().first { above.contains($0) } ?? Topology.internet
    }

    /// `node`'s source addresses as packets carry them on `point`'s segment: its own address,
    /// replaced by each translating router's public addresses on the way up.
    public static func seen(_ plan: LabPlan, _ node: String, at point: String) -> [String] {
        var addresses = plan.node(named: node)?.upstreamAddresses ?? []
        var current = plan.node(named: node)
        while let parentName = current?.parent, parentName != point, let parent = plan.node(named: parentName) {
            if parent.nat?.kind == .nat { addresses = parent.upstreamAddresses }
            current = parent
        }
        return addresses
    }
}

/// The path a check's traffic took, judged from the counters alone.
public struct NetworkVerdict: Sendable, Equatable, Codable, CustomStringConvertible {
    public var path: Check.Path
    /// `local`, the hairpinning router, or the relay host.
    public var detail: String?
    /// Bytes each counted way carried (counter meaning → bytes), for the report.
    public var bytes: [String: Int]

    public var description: String { detail.map { "\(path.rawValue) (\($0))" } ?? path.rawValue }

    /// `carried` is the minimum of bytes a path must have carried to count (a share of the
    /// application data exchanged; connectivity checks on other paths stay below it).
    public static func judge(check index: Int, plan: ObservationPlan, values: [String: Int], carried: Int) -> NetworkVerdict {
        let mine = plan.counters.filter { $0.check == index }
        var byMeaning: [ObservationPlan.Counter.Meaning: (node: String, bytes: Int)] = [:]
        var relayBytes: [String: (to: Int, from: Int)] = [:]
        for c in mine {
            let v = values[c.name] ?? 0
            switch c.meaning {
            case .toRelay: relayBytes[c.node, default: (0, 0)].to += v
            case .fromRelay: relayBytes[c.node, default: (0, 0)].from += v
            default: byMeaning[c.meaning] = (c.node, (byMeaning[c.meaning]?.bytes ?? 0) + v)
            }
        }
        var report: [String: Int] = [:]
        for (m, v) in byMeaning { report["\(m.rawValue)@\(v.node)"] = v.bytes }
        for (node, v) in relayBytes { report["relayed@\(node)"] = min(v.to, v.from) }
        // The way that carried the most data wins; it must have carried at least `carried`.
        var best: (path: Check.Path, detail: String?, bytes: Int) = (.none, nil, 0)
        let meet = plan.meetingPoints[index]
        let local = meet != Topology.internet ? "local" : nil
        for (m, v) in byMeaning {
            let candidate: (Check.Path, String?) = switch m {
            case .hairpin: (.hairpin, v.node)
            case .bridged, .routed: (.direct, local)
            default: (.none, nil)
            }
            if v.bytes > best.bytes { best = (candidate.0, candidate.1, v.bytes) }
        }
        for (node, v) in relayBytes where min(v.to, v.from) > best.bytes {
            best = (.relay, node, min(v.to, v.from))
        }
        if best.bytes < carried { return NetworkVerdict(path: .none, detail: nil, bytes: report) }
        return NetworkVerdict(path: best.path, detail: best.detail, bytes: report)
    }
}
