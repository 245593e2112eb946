import NATModel
import Yams

/// A connectivity check of a topology file: which two hosts must connect, and which path the
/// traffic must end up on.
///
/// ```yaml
/// checks:
///   - connect: [alice, bob]
///     expect: direct          # direct | hairpin | relay | none
///     deadline: 5s            # time to connect (default 10s)
///     bytes: 65536            # application data each way once connected (default 64 KiB)
///     keepalive: 2s           # agents' consent/keepalive interval (default 5s, RFC 7675)
///     consent-timeout: 6s     # consent expires this long after the last answer (default 30s, RFC 7675)
///     hold: 10s               # keep the path in use this long after connecting (default 0)
///     offer: [srflx, relay]   # candidate types the agents offer (default all)
///     lost: true              # the path must be lost during `hold` (default: it must survive)
/// ```
public struct Check: Sendable, Equatable, Codable {
    /// How the peers' traffic crossed the network (DESIGN.md §6).
    public enum Path: String, Sendable, Codable, CaseIterable {
        /// Peer to peer without turning around at a NAT (detail `local` when they share a LAN).
        case direct
        /// Turned around at a NAT's public address.
        case hairpin
        /// Through a TURN allocation.
        case relay
        /// No path within the deadline.
        case none
    }
    public enum CandidateType: String, Sendable, Codable, CaseIterable {
        case host, srflx, relay
    }

    public var peers: [String]
    public var expect: Path
    public var deadlineMilliseconds: Int
    public var bytes: Int
    public var keepaliveMilliseconds: Int
    public var consentTimeoutMilliseconds: Int
    public var holdMilliseconds: Int
    public var offer: [CandidateType]
    /// The path must be lost while it is held (a NAT mapping expiring under the agents' keepalive
    /// interval); false: it must survive.
    public var lost: Bool

    public static let defaultDeadlineMilliseconds = 10_000
    public static let defaultBytes = 65_536
    public static let defaultKeepaliveMilliseconds = 5_000
    public static let defaultConsentTimeoutMilliseconds = 30_000

    public init(peers: [String], expect: Path, deadlineMilliseconds: Int = Check.defaultDeadlineMilliseconds,
                bytes: Int = Check.defaultBytes, keepaliveMilliseconds: Int = Check.defaultKeepaliveMilliseconds,
                holdMilliseconds: Int = 0, offer: [CandidateType] = CandidateType.allCases, lost: Bool = false,
                consentTimeoutMilliseconds: Int = Check.defaultConsentTimeoutMilliseconds) {
        self.peers = peers; self.expect = expect; self.deadlineMilliseconds = deadlineMilliseconds
        self.bytes = bytes; self.keepaliveMilliseconds = keepaliveMilliseconds
        self.holdMilliseconds = holdMilliseconds; self.offer = offer; self.lost = lost
        self.consentTimeoutMilliseconds = consentTimeoutMilliseconds
    }

    /// "alice ↔ bob".
    public var title: String { peers.joined(separator: " ↔ ") }
}

extension Checker {
    struct RawCheck {
        var check: Check
        var pos: Pos
        /// The `connect:` entries with where they were written.
        var peers: [Located<String>]
    }

    mutating func readChecks(_ node: Node) -> [RawCheck] {
        guard case .sequence(let items) = node else {
            error(node, "`checks` takes a list like `- { connect: [alice, bob], expect: direct }`, found \(Checker.describe(node))")
            return []
        }
        var result: [RawCheck] = []
        for item in items {
            guard let m = mapping(item, what: "a check", example: "`{ connect: [alice, bob], expect: direct }`") else { continue }
            checkKeys(m, allowed: ["connect", "expect", "deadline", "bytes", "keepalive", "consent-timeout", "hold", "offer", "lost"], in: "a check")
            var ok = true
            var peers: [Located<String>] = []
            if let c = m.value("connect") {
                if case .sequence(let names) = c, names.count == 2 {
                    for n in names {
                        if let s = string(n, what: "a host name") { peers.append(Located(value: s, pos: Pos(n))) } else { ok = false }
                    }
                } else {
                    error(c, "`connect` takes the two hosts that must reach each other, like `[alice, bob]`, found \(Checker.describe(c))")
                    ok = false
                }
            } else {
                error(item, "a check needs `connect: [host, host]`")
                ok = false
            }
            var expect = Check.Path.direct
            if let e = m.value("expect"), let s = string(e, what: "a path") {
                if let p = Check.Path(rawValue: s) { expect = p } else {
                    let names = Check.Path.allCases.map(\.rawValue)
                    error(e, "unknown path '\(s)': expected one of \(names.joined(separator: ", "))" + Checker.suggestion(s, among: names))
                    ok = false
                }
            } else if m.value("expect") == nil {
                error(item, "a check needs `expect:` (direct, hairpin, relay or none)")
                ok = false
            } else { ok = false }
            var check = Check(peers: peers.map(\.value), expect: expect)
            func duration(_ key: String, _ apply: (Int) -> Void) {
                guard let d = m.value(key) else { return }
                if case .scalar(let s) = d, let ms = DurationText.milliseconds(s.string), ms > 0, ms <= 3_600_000 {
                    apply(ms)
                } else {
                    error(d, "`\(key)` takes a duration like `5s`, `500ms` or `2m` (at most 1h), found \(Checker.describe(d))")
                    ok = false
                }
            }
            duration("deadline") { check.deadlineMilliseconds = $0 }
            duration("keepalive") { check.keepaliveMilliseconds = $0 }
            duration("hold") { check.holdMilliseconds = $0 }
            duration("consent-timeout") { check.consentTimeoutMilliseconds = $0 }
            if let b = m.value("bytes") {
                if case .scalar(let s) = b, let n = Int(s.string), (0...(1 << 30)).contains(n) { check.bytes = n } else {
                    error(b, "`bytes` takes a number of bytes from 0 to 1073741824, found \(Checker.describe(b))")
                    ok = false
                }
            }
            if let l = m.value("lost") {
                if case .scalar(let s) = l, ["true", "false"].contains(s.string) {
                    check.lost = s.string == "true"
                    if check.lost && m.value("hold") == nil {
                        error(l, "`lost: true` needs `hold:` (how long the path is kept in use, longer than the NAT's mapping lifetime)")
                        ok = false
                    }
                } else {
                    error(l, "`lost` takes true or false, found \(Checker.describe(l))")
                    ok = false
                }
            }
            if let o = m.value("offer") {
                let names = Check.CandidateType.allCases.map(\.rawValue)
                if case .sequence(let types) = o, !types.isEmpty {
                    var offer: [Check.CandidateType] = []
                    for t in types {
                        if case .scalar(let s) = t, let type = Check.CandidateType(rawValue: s.string) { offer.append(type) } else {
                            let what = { if case .scalar(let s) = t { "'\(s.string)'" } else { Checker.describe(t) } }()
                            error(t, "unknown candidate type \(what): expected \(names.joined(separator: ", "))")
                            ok = false
                        }
                    }
                    check.offer = offer
                } else {
                    error(o, "`offer` takes a list of candidate types (\(names.joined(separator: ", "))), found \(Checker.describe(o))")
                    ok = false
                }
            }
            // Kept even when a field is wrong, so the peers are still checked: every problem at once.
            // (Any error above already makes the file invalid.)
            if ok || peers.count == 2 { result.append(RawCheck(check: check, pos: Pos(item), peers: peers)) }
        }
        return result
    }

    /// Peers must be two different hosts of the file.
    mutating func validateChecks(_ checks: [RawCheck], hosts: Set<String>, routers: Set<String>) {
        for c in checks {
            for p in c.peers where !hosts.contains(p.value) {
                if routers.contains(p.value) {
                    error(p.pos, "'\(p.value)' is a router; checks connect hosts")
                } else {
                    error(p.pos, "unknown host '\(p.value)' in `connect`" + Checker.suggestion(p.value, among: Array(hosts).sorted()))
                }
            }
            if c.peers.count == 2 && c.peers[0].value == c.peers[1].value {
                error(c.peers[1].pos, "a check connects two different hosts, found '\(c.peers[0].value)' twice")
            }
        }
    }
}
