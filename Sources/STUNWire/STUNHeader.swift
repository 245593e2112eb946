// STUN message header: class, method, message type, transaction ID, magic cookie (RFC 8489 §5–6).

/// The RFC 8489 magic cookie, bytes 4–7 of every STUN message.
public let stunMagicCookie: UInt32 = 0x2112_A442

/// Size of the STUN message header in bytes.
public let stunHeaderSize = 20

/// The two class bits of a STUN message type (RFC 8489 §5).
public enum STUNClass: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case request = 0b00
    case indication = 0b01
    case successResponse = 0b10
    case errorResponse = 0b11

    public var isResponse: Bool { self == .successResponse || self == .errorResponse }

    public var description: String {
        switch self {
        case .request: "request"
        case .indication: "indication"
        case .successResponse: "success response"
        case .errorResponse: "error response"
        }
    }
}

/// A 12-bit STUN method. Unknown methods are representable (a server answers them with 400).
public struct STUNMethod: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16

    /// Creates a method from its 12-bit number; bits above 0x0FFF are dropped.
    public init(rawValue: UInt16) { self.rawValue = rawValue & 0x0FFF }

    public static let binding = STUNMethod(rawValue: 0x001)
    // TURN (RFC 8656)
    public static let allocate = STUNMethod(rawValue: 0x003)
    public static let refresh = STUNMethod(rawValue: 0x004)
    public static let send = STUNMethod(rawValue: 0x006)
    public static let data = STUNMethod(rawValue: 0x007)
    public static let createPermission = STUNMethod(rawValue: 0x008)
    public static let channelBind = STUNMethod(rawValue: 0x009)
    // TURN TCP allocations (RFC 6062)
    public static let connect = STUNMethod(rawValue: 0x00A)
    public static let connectionBind = STUNMethod(rawValue: 0x00B)
    public static let connectionAttempt = STUNMethod(rawValue: 0x00C)

    public var description: String {
        switch self {
        case .binding: "Binding"
        case .allocate: "Allocate"
        case .refresh: "Refresh"
        case .send: "Send"
        case .data: "Data"
        case .createPermission: "CreatePermission"
        case .channelBind: "ChannelBind"
        case .connect: "Connect"
        case .connectionBind: "ConnectionBind"
        case .connectionAttempt: "ConnectionAttempt"
        default: "Method(0x\(String(rawValue, radix: 16)))"
        }
    }
}

/// The 14-bit message type: method bits interleaved with the class bits C1 (0x0100) and C0 (0x0010).
public struct STUNMessageType: Sendable, Hashable, CustomStringConvertible {
    public var method: STUNMethod
    public var messageClass: STUNClass

    public init(method: STUNMethod, messageClass: STUNClass) {
        self.method = method
        self.messageClass = messageClass
    }

    /// Decodes the 16-bit type field; the two most significant bits must be zero (checked by the decoder).
    public init(rawValue v: UInt16) {
        let m = (v & 0x000F) | ((v & 0x00E0) >> 1) | ((v & 0x3E00) >> 2)
        let c = UInt8(((v & 0x0010) >> 4) | ((v & 0x0100) >> 7))
        self.method = STUNMethod(rawValue: m)
        self.messageClass = STUNClass(rawValue: c)!
    }

    public var rawValue: UInt16 {
        let m = method.rawValue
        let c = UInt16(messageClass.rawValue)
        return (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
    }

    public static let bindingRequest = STUNMessageType(method: .binding, messageClass: .request)
    public static let bindingSuccess = STUNMessageType(method: .binding, messageClass: .successResponse)
    public static let bindingError = STUNMessageType(method: .binding, messageClass: .errorResponse)
    public static let bindingIndication = STUNMessageType(method: .binding, messageClass: .indication)

    public var description: String { "\(method) \(messageClass)" }
}

/// A 96-bit transaction ID.
public struct STUNTransactionID: Sendable, Hashable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt32

    public init(high: UInt64, low: UInt32) {
        self.high = high
        self.low = low
    }

    /// Creates an ID from exactly 12 bytes; returns nil for any other count.
    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        guard bytes.count == 12 else { return nil }
        var h: UInt64 = 0
        var l: UInt32 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { h = h << 8 | UInt64(b) } else { l = l << 8 | UInt32(b) }
        }
        self.init(high: h, low: l)
    }

    /// Parses 24 hex digits, e.g. "b7e7a701bc34d686fa87dfae".
    public init?(hex: String) {
        guard let bytes = hexBytes(hex), let id = STUNTransactionID(bytes: bytes) else { return nil }
        self = id
    }

    /// A cryptographically random transaction ID (RFC 8489 §6: uniformly and randomly chosen).
    public static func random() -> STUNTransactionID {
        var g = SystemRandomNumberGenerator()
        return random(using: &g)
    }

    public static func random<G: RandomNumberGenerator>(using g: inout G) -> STUNTransactionID {
        STUNTransactionID(high: g.next(), low: UInt32(truncatingIfNeeded: g.next() as UInt64))
    }

    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(12)
        out.appendBigEndian(high)
        out.appendBigEndian(low)
        return out
    }

    public var description: String { bytes.hexString }
}

/// The fixed part of a STUN message as read from the first 20 bytes.
public struct STUNHeader: Sendable, Hashable {
    public var type: STUNMessageType
    /// The length field: size of the attributes in bytes, excluding the 20-byte header.
    public var length: Int
    public var transactionID: STUNTransactionID

    /// Total size of the message on the wire (header + attributes).
    public var messageSize: Int { stunHeaderSize + length }
}

// MARK: - small byte helpers (internal)

extension Array where Element == UInt8 {
    mutating func appendBigEndian(_ v: UInt16) {
        append(UInt8(truncatingIfNeeded: v >> 8))
        append(UInt8(truncatingIfNeeded: v))
    }

    mutating func appendBigEndian(_ v: UInt32) {
        append(UInt8(truncatingIfNeeded: v >> 24))
        append(UInt8(truncatingIfNeeded: v >> 16))
        append(UInt8(truncatingIfNeeded: v >> 8))
        append(UInt8(truncatingIfNeeded: v))
    }

    mutating func appendBigEndian(_ v: UInt64) {
        appendBigEndian(UInt32(truncatingIfNeeded: v >> 32))
        appendBigEndian(UInt32(truncatingIfNeeded: v))
    }

    mutating func storeBigEndian(_ v: UInt16, at i: Int) {
        self[i] = UInt8(truncatingIfNeeded: v >> 8)
        self[i + 1] = UInt8(truncatingIfNeeded: v)
    }
}

extension UnsafeRawBufferPointer {
    func u16(_ i: Int) -> UInt16 { UInt16(self[i]) << 8 | UInt16(self[i + 1]) }

    func u32(_ i: Int) -> UInt32 {
        UInt32(self[i]) << 24 | UInt32(self[i + 1]) << 16 | UInt32(self[i + 2]) << 8 | UInt32(self[i + 3])
    }

    func u64(_ i: Int) -> UInt64 { UInt64(u32(i)) << 32 | UInt64(u32(i + 4)) }
}

extension Sequence where Element == UInt8 {
    /// Lower-case hex, no separators.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for b in self {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Parses hex digits, ignoring ASCII whitespace; nil on any other character or an odd digit count.
public func hexBytes(_ s: String) -> [UInt8]? {
    var out = [UInt8]()
    var pending: UInt8? = nil
    for c in s.utf8 {
        let v: UInt8
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): v = c - UInt8(ascii: "A") + 10
        case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\t"), UInt8(ascii: "\r"): continue
        default: return nil
        }
        if let p = pending { out.append(p << 4 | v); pending = nil } else { pending = v }
    }
    return pending == nil ? out : nil
}
