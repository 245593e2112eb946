import Foundation
import LinuxNetworking
import NATModel
import Topology

/// `natlab nat explain`: a router's live nftables ruleset, each rule preceded by the behaviour it
/// implements, under a header with the declared RFC 4787 profile and the live conntrack timeouts.
public struct NATExplanation: Codable, Sendable {
    public struct Rule: Codable, Sendable, Equatable {
        public var table: String
        public var chain: String
        /// The rule as `nft list ruleset` prints it, without its comment.
        public var rule: String
        /// The rule's comment (what natlab says it implements); nil for rules natlab did not write.
        public var meaning: String?
    }
    public struct Timeouts: Codable, Sendable, Equatable {
        public var udp: Int?
        public var udpStream: Int?
        public var tcpEstablished: Int?
    }

    public var lab: String
    public var router: String
    public var namespace: String
    public var profile: NATProfile
    /// `nat.summary` ("EIM + APDF, hairpin off, ports preserve").
    public var summary: String
    /// The classic (cone) name of the mapping + filtering pair, when there is one.
    public var classicName: String?
    /// The router's upstream addresses (its pool when there are several).
    public var publicAddresses: [String]
    /// Lifetimes declared in the topology (nil: kernel default).
    public var declaredTimeouts: Timeouts
    /// Conntrack timeout sysctls read live in the router's namespace (absent: conntrack not loaded there).
    public var liveSysctls: [String: String]
    public var rules: [Rule]
    /// `nft list ruleset` in the router's namespace, verbatim.
    public var ruleset: String

    /// The sysctls shown in the header.
    public static let timeoutSysctls = [
        "net.netfilter.nf_conntrack_udp_timeout",
        "net.netfilter.nf_conntrack_udp_timeout_stream",
        "net.netfilter.nf_conntrack_tcp_timeout_established",
    ]

    /// The teaching view: header, then the ruleset with a `# …` line before every rule.
    public var text: String {
        var out: [String] = []
        out.append("# natlab nat explain: lab \(lab), router \(router) (namespace \(namespace))")
        out.append("#")
        let p = profile
        let name = p.preset.map { "\($0): " } ?? "custom: "
        out.append("# Declared behaviour, RFC 4787 — \(name)\(summary)")
        switch p.kind {
        case .none:
            out.append("#   plain routing: no translation, no filtering, no natlab table")
        case .firewall:
            out.append("#   kind       stateful firewall: addresses are kept, unsolicited inbound packets are dropped")
            out.append("#   filtering  \(Self.describe(p.filtering))")
        case .nat:
            out.append("#   mapping    \(Self.describe(p.mapping))")
            out.append("#   filtering  \(Self.describe(p.filtering))")
            out.append("#   hairpin    " + (p.hairpin
                ? "on: LAN hosts reach each other through their public mappings (REQ-9)"
                : "off: a LAN host sending to a public mapping of this NAT gets nothing"))
            out.append("#   ports      \(Self.describe(p.effectivePorts))")
            if publicAddresses.count > 1 {
                out.append("#   pooling    \(p.pooling.rawValue) over \(publicAddresses.count) public addresses "
                           + "\(publicAddresses.first!)-\(publicAddresses.last!): "
                           + (p.pooling == .paired ? "every mapping of one inside host uses the same address (REQ-2)"
                                                   : "any mapping may use any address"))
            } else {
                out.append("#   pooling    one public address (\(publicAddresses.first ?? "?")): nothing to choose")
            }
        }
        if p.kind != .none {
            func t(_ v: Int?) -> String { v.map { "\($0)s" } ?? "kernel default" }
            out.append("#   timeouts   udp \(t(declaredTimeouts.udp)), udp stream \(t(declaredTimeouts.udpStream)), "
                       + "tcp established \(t(declaredTimeouts.tcpEstablished))")
        }
        out.append("#   classic    " + (classicName ?? (p.kind == .nat ? "no classic cone name for this combination" : "not a NAT")))
        out.append("#")
        if liveSysctls.isEmpty {
            out.append("# Conntrack is not loaded in this namespace (no conntrack timeouts to show).")
        } else {
            out.append("# Conntrack timeouts, live in this namespace:")
            for key in Self.timeoutSysctls { if let v = liveSysctls[key] { out.append("#   \(key) = \(v)") } }
        }
        out.append("#")
        let body = Self.annotate(ruleset)
        if body.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            out.append("# The namespace has no nftables ruleset" + (p.kind == .none ? " (none is needed for plain routing)." : "."))
            return out.joined(separator: "\n") + "\n"
        }
        out.append("# Each rule follows a `#` line saying which behaviour it implements (its natlab comment).")
        out.append("")
        return out.joined(separator: "\n") + "\n" + body
    }

    static func describe(_ m: NATProfile.Mapping) -> String {
        switch m {
        case .endpointIndependent:
            "endpoint-independent (EIM): an inside ip:port keeps one public ip:port for every destination"
        case .addressDependent:
            "address-dependent (ADM): a new public port for each remote address"
        case .addressAndPortDependent:
            "address-and-port-dependent (APDM): a new public port for each remote ip:port"
        }
    }

    static func describe(_ f: NATProfile.Filtering) -> String {
        switch f {
        case .endpointIndependent:
            "endpoint-independent (EIF): once a mapping exists, anyone may send to it"
        case .addressDependent:
            "address-dependent (ADF): only addresses the inside host has sent to may send to it (any port)"
        case .addressAndPortDependent:
            "address-and-port-dependent (APDF): only the exact ip:port the inside host has sent to may send to it"
        }
    }

    static func describe(_ ports: NATProfile.PortAssignment) -> String {
        switch ports {
        case .preserve: "preserve: the inside source port is kept when it is free"
        case .random: "random: every new mapping gets a random free port"
        case .range(let lo, let hi): "\(lo)-\(hi): public ports only from this range"
        }
    }

    /// Classic names (RFC 3489 terms) of RFC 4787 pairs.
    public static func classicName(_ p: NATProfile) -> String? {
        guard p.kind == .nat else { return nil }
        switch (p.mapping, p.filtering) {
        case (.endpointIndependent, .endpointIndependent): return "full cone"
        case (.endpointIndependent, .addressDependent): return "restricted cone"
        case (.endpointIndependent, .addressAndPortDependent): return "port-restricted cone"
        case (.addressAndPortDependent, .addressAndPortDependent): return "symmetric"
        default: return nil
        }
    }

    // MARK: - Reading `nft list ruleset`

    /// Splits a rule line into the rule and its comment (`… comment "text"`).
    static func splitComment(_ line: String) -> (rule: String, comment: String?) {
        guard line.hasSuffix("\""), let range = line.range(of: " comment \"", options: .backwards) else {
            return (line, nil)
        }
        let comment = String(line[range.upperBound..<line.index(before: line.endIndex)])
        return (String(line[..<range.lowerBound]), comment)
    }

    /// Every rule of the ruleset, with its table and chain.
    public static func rules(in ruleset: String) -> [Rule] {
        var out: [Rule] = []
        walk(ruleset) { table, chain, line in
            guard let table, let chain else { return }
            let (rule, comment) = splitComment(line.trimmingCharacters(in: .whitespaces))
            out.append(Rule(table: table, chain: chain, rule: rule, meaning: comment))
        }
        return out
    }

    /// The ruleset with every rule's comment moved to a `# …` line above it (same indentation).
    public static func annotate(_ ruleset: String) -> String {
        var out = ""
        walk(ruleset, echo: { out += $0 + "\n" }) { table, chain, line in
            let indent = String(line.prefix { $0 == " " || $0 == "\t" })
            let (rule, comment) = splitComment(String(line.dropFirst(indent.count)))
            out += indent + "# " + (comment ?? (table?.hasSuffix(" \(NATRuleset.tableName)") == true
                ? "(no comment)" : "not natlab's rule: this table is not part of the NAT profile")) + "\n"
            out += indent + rule + "\n"
        }
        return out
    }

    /// Calls `rule` for every rule line (inside a chain, not its `type … hook …` / `policy` line) and
    /// `echo` for every other line.
    private static func walk(_ ruleset: String, echo: (String) -> Void = { _ in },
                             rule: (_ table: String?, _ chain: String?, _ line: String) -> Void) {
        var table: String?
        var chain: String?
        var depth = 0
        var chainDepth = 0
        for raw in ruleset.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(raw)
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.hasPrefix("table "), t.hasSuffix("{") {
                table = String(t.dropFirst(6).dropLast().trimmingCharacters(in: .whitespaces))
                depth += 1
                echo(line)
                continue
            }
            if chain == nil, t.hasPrefix("chain "), t.hasSuffix("{") {
                chain = String(t.dropFirst(6).dropLast().trimmingCharacters(in: .whitespaces))
                depth += 1
                chainDepth = depth
                echo(line)
                continue
            }
            if t == "}" {
                if chain != nil, depth == chainDepth { chain = nil }
                depth -= 1
                if depth == 0 { table = nil }
                echo(line)
                continue
            }
            let opens = t.filter { $0 == "{" }.count, closes = t.filter { $0 == "}" }.count
            if chain != nil, depth == chainDepth, !t.isEmpty, !t.hasPrefix("type "), !t.hasPrefix("policy ") {
                rule(table, chain, line)
            } else {
                echo(line)
            }
            depth += opens - closes
        }
    }
}

extension LabEngine {
    /// Reads a router's live ruleset and conntrack timeouts (one excursion into its namespace).
    public func explainNAT(lab: String, router: String) throws -> NATExplanation {
        let record = try record(of: lab)
        guard let node = record.plan.node(named: router) else {
            throw LabError.noSuchNode(lab: lab, node: router, known: record.plan.nodes.map(\.name))
        }
        let routers = record.plan.nodes.filter { $0.kind == .router }.map(\.name)
        guard node.kind == .router, let profile = node.nat else {
            throw LabError.notARouter(lab: lab, node: router, kind: node.kind.rawValue, routers: routers)
        }
        let ns = record.namespace(of: router)
        let file: NamespaceFile
        do { file = try NetworkNamespace.open(name: ns) } catch {
            throw LabError.state("lab '\(lab)' is recorded but its namespace \(ns) cannot be opened (\(error)); "
                                 + "`natlab status` shows its state, `natlab gc` collects dead labs")
        }
        let (ruleset, sysctls) = try worker().run(in: file) { () throws -> (String, [String: String]) in
            let text = try NFTables.run("list ruleset")
            var values: [String: String] = [:]
            for key in NATExplanation.timeoutSysctls { values[key] = try? Sysctl.read(key) }
            return (text, values)
        }
        let (udp, stream) = (profile.udpTimeout, profile.udpStreamTimeout)
        return NATExplanation(
            lab: lab, router: router, namespace: ns, profile: profile, summary: profile.summary,
            classicName: NATExplanation.classicName(profile), publicAddresses: node.upstreamAddresses,
            declaredTimeouts: .init(udp: udp, udpStream: stream, tcpEstablished: profile.tcpTimeout),
            liveSysctls: sysctls, rules: NATExplanation.rules(in: ruleset), ruleset: ruleset)
    }
}
