// ICE candidates (RFC 8445 §5.1): types, priorities, foundations, and the SDP `candidate` attribute
// (RFC 8839 §5.1) that the rendezvous messages carry, so any ICE stack (aioice: Candidate.from_sdp)
// can read them. Pure values.
import STUNWire

public enum ICECandidateType: String, Sendable, Hashable, CaseIterable, Codable {
    case host, srflx, prflx, relay

    /// RFC 8445 §5.1.2.2 recommended type preferences.
    public var typePreference: UInt32 {
        switch self {
        case .host: 126
        case .prflx: 110
        case .srflx: 100
        case .relay: 0
        }
    }
}

public struct ICECandidate: Sendable, Hashable, CustomStringConvertible {
    public var type: ICECandidateType
    public var address: STUNAddress
    /// Local candidates: the address the agent sends from (a host address for host/srflx/prflx, the
    /// relayed address for relay). Remote candidates: the address itself.
    public var base: STUNAddress
    /// raddr/rport: a srflx/prflx's base, a relay candidate's mapped address.
    public var related: STUNAddress?
    public var priority: UInt32
    public var foundation: String
    public var component: Int

    public init(type: ICECandidateType, address: STUNAddress, base: STUNAddress? = nil, related: STUNAddress? = nil,
                priority: UInt32, foundation: String, component: Int = 1) {
        self.type = type
        self.address = address
        self.base = base ?? address
        self.related = related
        self.priority = priority
        self.foundation = foundation
        self.component = component
    }

    /// Priority = 2^24·type preference + 2^8·local preference + (256 − component) (RFC 8445 §5.1.2.1).
    public static func priority(type: ICECandidateType, localPreference: UInt32 = 65535, component: Int = 1) -> UInt32 {
        (type.typePreference << 24) + ((localPreference & 0xFFFF) << 8) + UInt32(256 - component)
    }

    /// Foundation (RFC 8445 §5.1.1.3): equal for the same type, base IP, server IP and transport.
    /// A short stable hash (FNV-1a) rendered in ice-chars.
    public static func foundation(type: ICECandidateType, baseIP: STUNIPAddress, server: STUNIPAddress?,
                                  transport: String = "udp") -> String {
        var h: UInt32 = 2_166_136_261
        for b in Array("\(type.rawValue)|\(baseIP)|\(server.map { "\($0)" } ?? "")|\(transport)".utf8) {
            h = (h ^ UInt32(b)) &* 16_777_619
        }
        return String(h, radix: 36)
    }

    /// RFC 8839 `candidate-attribute` value, without the `a=` prefix:
    /// `candidate:<foundation> <component> udp <priority> <ip> <port> typ <type> [raddr <ip> rport <port>]`.
    public var sdp: String {
        var s = "candidate:\(foundation) \(component) udp \(priority) \(address.ip) \(address.port) typ \(type.rawValue)"
        if let r = related { s += " raddr \(r.ip) rport \(r.port)" }
        return s
    }

    /// Parses an SDP candidate (with or without `a=` / `candidate:`). Unknown extensions are ignored.
    public static func parse(sdp text: String) -> ICECandidate? {
        var t = Substring(text.trimmingCharacters(in: " \r\n"))
        if t.hasPrefix("a=") { t = t.dropFirst(2) }
        if t.hasPrefix("candidate:") { t = t.dropFirst("candidate:".count) }
        let f = t.split(separator: " ").map(String.init)
        guard f.count >= 8, f[2].lowercased() == "udp", f[6] == "typ",
              let component = Int(f[1]), let priority = UInt32(f[3]),
              let ip = STUNIPAddress(f[4]), let port = UInt16(f[5]),
              let type = ICECandidateType(rawValue: f[7]) else { return nil }
        var related: STUNAddress?
        var raddr: STUNIPAddress?
        var i = 8
        while i + 1 < f.count {
            if f[i] == "raddr" { raddr = STUNIPAddress(f[i + 1]) }
            if f[i] == "rport", let ra = raddr, let rp = UInt16(f[i + 1]) { related = STUNAddress(ip: ra, port: rp) }
            i += 2
        }
        return ICECandidate(type: type, address: STUNAddress(ip: ip, port: port), related: related,
                            priority: priority, foundation: f[0], component: component)
    }

    public var description: String { "\(type.rawValue) \(address)" }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let c = s.first, chars.contains(c) { s = s.dropFirst() }
        while let c = s.last, chars.contains(c) { s = s.dropLast() }
        return String(s)
    }
}

/// Pair priority (RFC 8445 §6.1.2.3): 2^32·min(G,D) + 2·max(G,D) + (G > D ? 1 : 0), G the controlling
/// agent's candidate priority, D the controlled agent's.
public func icePairPriority(controlling g: UInt32, controlled d: UInt32) -> UInt64 {
    let (lo, hi) = (UInt64(min(g, d)), UInt64(max(g, d)))
    return (lo << 32) + 2 * hi + (g > d ? 1 : 0)
}

/// ICE credentials: ufrag 4+ and pwd 22+ ice-chars (RFC 8445 §5.3).
public struct ICECredentials: Sendable, Hashable {
    public var ufrag: String
    public var pwd: String
    public init(ufrag: String, pwd: String) { self.ufrag = ufrag; self.pwd = pwd }

    public static func random<G: RandomNumberGenerator>(using g: inout G) -> ICECredentials {
        let chars = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        func word(_ n: Int) -> String { String((0..<n).map { _ in chars[Int.random(in: 0..<chars.count, using: &g)] }) }
        return ICECredentials(ufrag: word(8), pwd: word(24))
    }

    public static func random() -> ICECredentials {
        var g = SystemRandomNumberGenerator()
        return random(using: &g)
    }
}
