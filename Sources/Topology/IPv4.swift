/// An IPv4 address as a 32-bit number (host order). Pure value; no Foundation, no sockets.
public struct IPv4Address: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var value: UInt32
    public init(_ value: UInt32) { self.value = value }

    /// Parses a dotted quad (`192.168.1.10`); nil when malformed (no leading zeros, each part 0…255).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }),
                  !(p.count > 1 && p.first == "0"), let n = UInt32(p), n <= 255 else { return nil }
            v = v << 8 | n
        }
        value = v
    }

    public var description: String {
        "\(value >> 24).\(value >> 16 & 0xff).\(value >> 8 & 0xff).\(value & 0xff)"
    }
    public static func < (a: Self, b: Self) -> Bool { a.value < b.value }

    public init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let a = IPv4Address(s) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an IPv4 address: \(s)"))
        }
        self = a
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer(); try c.encode(description)
    }
}

/// An IPv4 subnet in CIDR form (`192.168.1.0/24`); the network address has no host bits set.
public struct IPv4Network: Sendable, Hashable, Codable, CustomStringConvertible {
    public let network: IPv4Address
    public let prefixLength: Int

    /// Fails when host bits are set or the prefix is out of range.
    public init?(network: IPv4Address, prefixLength: Int) {
        guard (0...32).contains(prefixLength) else { return nil }
        let mask = IPv4Network.mask(prefixLength)
        guard network.value & ~mask == 0 else { return nil }
        self.network = network; self.prefixLength = prefixLength
    }

    /// Parse result that tells a malformed text apart from a valid address with host bits set.
    enum ParseResult { case ok(IPv4Network), malformed, hostBitsSet(suggestion: IPv4Network) }

    static func parse(_ text: String) -> ParseResult {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let addr = IPv4Address(parts[0]),
              !parts[1].isEmpty, parts[1].count <= 2, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
              let len = Int(parts[1]), (0...32).contains(len) else { return .malformed }
        let mask = mask(len)
        let net = IPv4Network(network: IPv4Address(addr.value & mask), prefixLength: len)!
        return addr.value & ~mask == 0 ? .ok(net) : .hostBitsSet(suggestion: net)
    }

    /// Parses `a.b.c.d/len` with no host bits set.
    public init?(_ text: String) {
        guard case .ok(let n) = IPv4Network.parse(text) else { return nil }
        self = n
    }

    static func mask(_ len: Int) -> UInt32 { len == 0 ? 0 : UInt32.max << UInt32(32 - len) }

    public var mask: UInt32 { IPv4Network.mask(prefixLength) }
    public var size: UInt64 { UInt64(1) << UInt64(32 - prefixLength) }
    public var broadcast: IPv4Address { IPv4Address(network.value | ~mask) }
    /// Addresses usable by interfaces: all but the network and broadcast addresses (none for /31, /32).
    public var usableCount: Int { prefixLength >= 31 ? 0 : Int(size - 2) }
    public var firstUsable: IPv4Address { IPv4Address(network.value + 1) }
    public var lastUsable: IPv4Address { IPv4Address(broadcast.value - 1) }

    public func contains(_ a: IPv4Address) -> Bool { a.value & mask == network.value }
    public func overlaps(_ other: IPv4Network) -> Bool {
        let m = prefixLength < other.prefixLength ? mask : other.mask
        return network.value & m == other.network.value & m
    }
    /// `address/prefixLength`, the form `ip addr add` takes.
    public func cidr(_ a: IPv4Address) -> String { "\(a)/\(prefixLength)" }

    public var description: String { "\(network)/\(prefixLength)" }

    public init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let n = IPv4Network(s) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an IPv4 subnet: \(s)"))
        }
        self = n
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer(); try c.encode(description)
    }
}
