// Transport addresses as carried by STUN address attributes, without Foundation networking types.

/// Address family numbers used by STUN/TURN attributes (RFC 8489 §14.1, RFC 8656 §18.6).
public enum STUNAddressFamily: UInt8, Sendable, Hashable, CaseIterable {
    case ipv4 = 0x01
    case ipv6 = 0x02
}

/// An IPv4 or IPv6 address.
public enum STUNIPAddress: Sendable, Hashable, CustomStringConvertible {
    /// Host-order value: 192.0.2.1 is 0xC000_0201.
    case ipv4(UInt32)
    /// Host-order halves of the 128-bit address.
    case ipv6(high: UInt64, low: UInt64)

    public var family: STUNAddressFamily {
        switch self {
        case .ipv4: .ipv4
        case .ipv6: .ipv6
        }
    }

    /// 4 or 16 bytes in network order.
    public var bytes: [UInt8] {
        var out = [UInt8]()
        switch self {
        case .ipv4(let v):
            out.reserveCapacity(4)
            out.appendBigEndian(v)
        case .ipv6(let h, let l):
            out.reserveCapacity(16)
            out.appendBigEndian(h)
            out.appendBigEndian(l)
        }
        return out
    }

    /// From 4 or 16 network-order bytes.
    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        switch bytes.count {
        case 4:
            self = .ipv4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            var h: UInt64 = 0, l: UInt64 = 0
            for (i, b) in bytes.enumerated() {
                if i < 8 { h = h << 8 | UInt64(b) } else { l = l << 8 | UInt64(b) }
            }
            self = .ipv6(high: h, low: l)
        default:
            return nil
        }
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (with `::` and an embedded IPv4 tail).
    public init?(_ text: String) {
        if text.contains(":") {
            guard let v = parseIPv6(Substring(text)) else { return nil }
            self = .ipv6(high: v.0, low: v.1)
        } else {
            guard let v = parseIPv4(Substring(text)) else { return nil }
            self = .ipv4(v)
        }
    }

    /// Dotted quad, or RFC 5952 canonical IPv6 text.
    public var description: String {
        switch self {
        case .ipv4(let v):
            return "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
        case .ipv6(let h, let l) where h == 0 && l >> 32 == 0xFFFF:  // IPv4-mapped (RFC 5952 §5)
            return "::ffff:" + STUNIPAddress.ipv4(UInt32(truncatingIfNeeded: l)).description
        case .ipv6(let h, let l):
            var groups = [UInt16]()
            for i in 0..<4 { groups.append(UInt16(truncatingIfNeeded: h >> (48 - 16 * UInt64(i)))) }
            for i in 0..<4 { groups.append(UInt16(truncatingIfNeeded: l >> (48 - 16 * UInt64(i)))) }
            // Longest run of zero groups of length >= 2, first one on ties (RFC 5952 §4.2).
            var bestStart = -1, bestLen = 0, i = 0
            while i < 8 {
                if groups[i] == 0 {
                    var j = i
                    while j < 8 && groups[j] == 0 { j += 1 }
                    if j - i > bestLen { bestStart = i; bestLen = j - i }
                    i = j
                } else {
                    i += 1
                }
            }
            if bestLen < 2 { bestStart = -1 }
            var s = ""
            i = 0
            while i < 8 {
                if i == bestStart {
                    s += "::"
                    i += bestLen
                    continue
                }
                if !s.isEmpty && !s.hasSuffix(":") { s += ":" }
                s += String(groups[i], radix: 16)
                i += 1
            }
            return s
        }
    }
}

/// An IP address and a port.
public struct STUNAddress: Sendable, Hashable, CustomStringConvertible {
    public var ip: STUNIPAddress
    public var port: UInt16

    public init(ip: STUNIPAddress, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// Parses "192.0.2.1:3478" or "[2001:db8::1]:3478".
    public init?(_ text: String) {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":"), let port = UInt16(rest.dropFirst()),
                  let v = parseIPv6(host) else { return nil }
            self.init(ip: .ipv6(high: v.0, low: v.1), port: port)
        } else {
            guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]),
                  let v = parseIPv4(text[..<colon]) else { return nil }
            self.init(ip: .ipv4(v), port: port)
        }
    }

    public var family: STUNAddressFamily { ip.family }

    public var description: String {
        switch ip {
        case .ipv4: "\(ip):\(port)"
        case .ipv6: "[\(ip)]:\(port)"
        }
    }
}

private func parseIPv4(_ s: Substring) -> UInt32? {
    let parts = s.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4 else { return nil }
    var v: UInt32 = 0
    for p in parts {
        guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }),
              let n = UInt32(p), n <= 255 else { return nil }
        v = v << 8 | n
    }
    return v
}

private func parseIPv6(_ s: Substring) -> (UInt64, UInt64)? {
    var groups = [UInt16]()
    var headCount = -1  // number of groups before "::", -1 if no "::"
    var text = s
    // An embedded IPv4 tail (e.g. ::ffff:192.0.2.1) becomes two groups.
    var tail: [UInt16] = []
    if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
        guard let v4 = parseIPv4(text[text.index(after: lastColon)...]) else { return nil }
        tail = [UInt16(v4 >> 16), UInt16(v4 & 0xFFFF)]
        text = text[...lastColon]
        if text.hasSuffix("::") { } else { text = text.dropLast() }
    }
    if let range = text.firstRange(of: "::") {
        let head = text[..<range.lowerBound], rest = text[range.upperBound...]
        guard !rest.contains("::") else { return nil }
        guard let h = parseGroups(head), let r = parseGroups(rest) else { return nil }
        headCount = h.count
        groups = h + r
    } else {
        guard let g = parseGroups(text) else { return nil }
        groups = g
    }
    groups += tail
    var full: [UInt16]
    if headCount >= 0 {
        guard groups.count <= 7 else { return nil }
        let tailGroups = groups[headCount...]
        full = Array(groups[..<headCount]) + Array(repeating: 0, count: 8 - groups.count) + tailGroups
    } else {
        guard groups.count == 8 else { return nil }
        full = groups
    }
    var h: UInt64 = 0, l: UInt64 = 0
    for i in 0..<4 { h = h << 16 | UInt64(full[i]) }
    for i in 4..<8 { l = l << 16 | UInt64(full[i]) }
    return (h, l)
}

private func parseGroups(_ s: Substring) -> [UInt16]? {
    if s.isEmpty { return [] }
    var out = [UInt16]()
    for p in s.split(separator: ":", omittingEmptySubsequences: false) {
        guard !p.isEmpty, p.count <= 4, let v = UInt16(p, radix: 16) else { return nil }
        out.append(v)
    }
    return out
}
