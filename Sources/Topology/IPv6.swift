/// An IPv6 address as two 64-bit halves (host order). Pure value; no Foundation, no sockets.
/// Text form is RFC 5952 (lower case, the longest run of two or more zero groups as `::`).
public struct IPv6Address: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64
    public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }

    /// Parses `2001:db8::1` (no zone, no embedded IPv4); nil when malformed.
    public init?(_ text: some StringProtocol) {
        let s = String(text)
        guard !s.isEmpty, s.allSatisfy({ $0.isHexDigit || $0 == ":" }) else { return nil }
        var halves: [String] = []
        if let r = s.firstRange(of: "::") {
            halves = [String(s[..<r.lowerBound]), String(s[r.upperBound...])]
            guard !halves[1].contains("::") else { return nil }
        } else {
            halves = [s]
        }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            for g in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard !g.isEmpty, g.count <= 4, let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all: [UInt16]
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard head.count == 8 else { return nil }
            all = head
        }
        high = all[0..<4].reduce(0) { $0 << 16 | UInt64($1) }
        low = all[4..<8].reduce(0) { $0 << 16 | UInt64($1) }
    }

    public var groups: [UInt16] {
        (0..<4).map { UInt16(truncatingIfNeeded: high >> (48 - 16 * UInt64($0))) }
            + (0..<4).map { UInt16(truncatingIfNeeded: low >> (48 - 16 * UInt64($0))) }
    }

    public var description: String {
        let g = groups
        // Longest run of zero groups (length ≥ 2; the first one on a tie).
        var best = (start: -1, length: 0)
        var i = 0
        while i < 8 {
            if g[i] == 0 {
                var j = i
                while j < 8 && g[j] == 0 { j += 1 }
                if j - i > best.length && j - i >= 2 { best = (i, j - i) }
                i = j
            } else { i += 1 }
        }
        let hex = g.map { String($0, radix: 16) }
        if best.start < 0 { return hex.joined(separator: ":") }
        return hex[..<best.start].joined(separator: ":") + "::" + hex[(best.start + best.length)...].joined(separator: ":")
    }

    public static func < (a: Self, b: Self) -> Bool { (a.high, a.low) < (b.high, b.low) }

    /// `self + n` (wrapping, carrying into the high half).
    public func adding(_ n: UInt64) -> IPv6Address {
        let (l, overflow) = low.addingReportingOverflow(n)
        return IPv6Address(high: overflow ? high &+ 1 : high, low: l)
    }

    public init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let a = IPv6Address(s) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an IPv6 address: \(s)"))
        }
        self = a
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer(); try c.encode(description)
    }
}

/// An IPv6 subnet in CIDR form (`2001:db8:1::/64`); no host bits set.
public struct IPv6Network: Sendable, Hashable, Codable, CustomStringConvertible {
    public let network: IPv6Address
    public let prefixLength: Int

    public init?(network: IPv6Address, prefixLength: Int) {
        guard (0...128).contains(prefixLength) else { return nil }
        let (mh, ml) = IPv6Network.mask(prefixLength)
        guard network.high & ~mh == 0, network.low & ~ml == 0 else { return nil }
        self.network = network; self.prefixLength = prefixLength
    }

    enum ParseResult { case ok(IPv6Network), malformed, hostBitsSet(suggestion: IPv6Network) }

    static func parse(_ text: String) -> ParseResult {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let addr = IPv6Address(parts[0]),
              !parts[1].isEmpty, parts[1].count <= 3, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
              let len = Int(parts[1]), (0...128).contains(len) else { return .malformed }
        let (mh, ml) = mask(len)
        let net = IPv6Network(network: IPv6Address(high: addr.high & mh, low: addr.low & ml), prefixLength: len)!
        return addr.high & ~mh == 0 && addr.low & ~ml == 0 ? .ok(net) : .hostBitsSet(suggestion: net)
    }

    public init?(_ text: String) {
        guard case .ok(let n) = IPv6Network.parse(text) else { return nil }
        self = n
    }

    static func mask(_ len: Int) -> (UInt64, UInt64) {
        let h: UInt64 = len == 0 ? 0 : len >= 64 ? .max : UInt64.max << UInt64(64 - len)
        let l: UInt64 = len <= 64 ? 0 : len == 128 ? .max : UInt64.max << UInt64(128 - len)
        return (h, l)
    }

    /// Bits left for the interface identifier.
    public var hostBits: Int { 128 - prefixLength }

    public func contains(_ a: IPv6Address) -> Bool {
        let (mh, ml) = IPv6Network.mask(prefixLength)
        return a.high & mh == network.high && a.low & ml == network.low
    }
    public func overlaps(_ other: IPv6Network) -> Bool {
        let (mh, ml) = IPv6Network.mask(min(prefixLength, other.prefixLength))
        return network.high & mh == other.network.high & mh && network.low & ml == other.network.low & ml
    }
    /// The address with interface identifier `n` in this subnet.
    public func address(_ n: UInt64) -> IPv6Address { network.adding(n) }
    /// `address/prefixLength`, the form `ip addr add` takes.
    public func cidr(_ a: IPv6Address) -> String { "\(a)/\(prefixLength)" }

    public var description: String { "\(network)/\(prefixLength)" }

    public init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let n = IPv6Network(s) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an IPv6 subnet: \(s)"))
        }
        self = n
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer(); try c.encode(description)
    }
}
