// Decoder errors and limits.

/// Every way a byte string can fail to be a valid STUN message or ChannelData frame.
/// Offsets are from the start of the message; attribute types are the raw 16-bit numbers.
public enum STUNDecodeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Fewer than 20 bytes.
    case truncatedHeader(count: Int)
    /// The two most significant bits of the first byte are not 0: not a STUN message.
    case notSTUN(firstByte: UInt8)
    /// Bytes 4–7 are not 0x2112A442 (e.g. an RFC 3489 message).
    case badMagicCookie(UInt32)
    /// The length field is not a multiple of 4.
    case lengthNotMultipleOf4(length: Int)
    /// The length field claims more bytes than were given.
    case truncatedMessage(declared: Int, available: Int)
    /// More bytes were given than the length field covers (UDP datagrams carry exactly one message).
    case trailingBytes(declared: Int, available: Int)
    /// The message is larger than the configured limit.
    case messageTooLarge(size: Int, limit: Int)
    /// More attributes than the configured limit.
    case tooManyAttributes(limit: Int)
    /// Fewer than 4 bytes left for an attribute header.
    case truncatedAttributeHeader(offset: Int)
    /// An attribute's value runs past the end of the message.
    case attributeOverrunsMessage(type: UInt16, length: Int, offset: Int)
    /// An attribute's value ends at the end of the message but its padding to 4 bytes is missing.
    case badPadding(type: UInt16, offset: Int)
    /// The attribute's length is wrong for its type.
    case invalidAttributeLength(type: UInt16, length: Int)
    /// An address family other than 0x01 (IPv4) or 0x02 (IPv6).
    case badAddressFamily(type: UInt16, family: UInt8)
    /// A text attribute that is not valid UTF-8.
    case invalidUTF8(type: UInt16)
    /// A text attribute longer than allowed (USERNAME, REALM, NONCE, SOFTWARE, reason phrase).
    case attributeTooLong(type: UInt16, length: Int, limit: Int)
    /// ERROR-CODE / ADDRESS-ERROR-CODE with a class outside 3–6 or a number above 99.
    case badErrorCode(errorClass: Int, number: Int)
    /// An attribute follows FINGERPRINT.
    case fingerprintNotLast(offset: Int)
    /// FINGERPRINT present but wrong.
    case fingerprintMismatch(expected: UInt32, received: UInt32)
    /// ChannelData: fewer bytes than its 4-byte header plus declared length.
    case truncatedChannelData(declared: Int, available: Int)
    /// ChannelData: channel number outside 0x4000–0x4FFF.
    case invalidChannelNumber(UInt16)

    public var description: String {
        func t(_ v: UInt16) -> String { STUNAttributeType(v).description }
        switch self {
        case .truncatedHeader(let n): return "truncated header: \(n) bytes, need 20"
        case .notSTUN(let b): return "not STUN: first byte 0x\(String(b, radix: 16)) has the top bits set"
        case .badMagicCookie(let c): return "bad magic cookie 0x\(String(c, radix: 16))"
        case .lengthNotMultipleOf4(let l): return "length \(l) is not a multiple of 4"
        case .truncatedMessage(let d, let a): return "message claims \(d) bytes, only \(a) given"
        case .trailingBytes(let d, let a): return "message is \(d) bytes but \(a) were given"
        case .messageTooLarge(let s, let l): return "message of \(s) bytes exceeds the limit of \(l)"
        case .tooManyAttributes(let l): return "more than \(l) attributes"
        case .truncatedAttributeHeader(let o): return "truncated attribute header at offset \(o)"
        case .attributeOverrunsMessage(let ty, let l, let o): return "\(t(ty)) at offset \(o) with length \(l) overruns the message"
        case .badPadding(let ty, let o): return "\(t(ty)) at offset \(o) lacks its padding"
        case .invalidAttributeLength(let ty, let l): return "\(t(ty)) has invalid length \(l)"
        case .badAddressFamily(let ty, let f): return "\(t(ty)) has bad address family 0x\(String(f, radix: 16))"
        case .invalidUTF8(let ty): return "\(t(ty)) is not valid UTF-8"
        case .attributeTooLong(let ty, let l, let lim): return "\(t(ty)) is \(l) bytes, limit \(lim)"
        case .badErrorCode(let c, let n): return "bad error code class \(c) number \(n)"
        case .fingerprintNotLast(let o): return "attribute at offset \(o) follows FINGERPRINT"
        case .fingerprintMismatch(let e, let r): return "FINGERPRINT 0x\(String(r, radix: 16)) does not match 0x\(String(e, radix: 16))"
        case .truncatedChannelData(let d, let a): return "ChannelData claims \(d) bytes, only \(a) given"
        case .invalidChannelNumber(let c): return "invalid channel number 0x\(String(c, radix: 16))"
        }
    }
}

/// Limits and checks applied by the decoder.
public struct STUNDecodeOptions: Sendable, Hashable {
    /// Largest accepted message (header included). 64 KiB by default; a UDP server may lower it.
    public var maxMessageSize: Int = 65_536
    /// Largest number of attributes in one message.
    public var maxAttributes: Int = 256
    /// Verify FINGERPRINT when present (RFC 8489 §7.3: a wrong one means "not STUN").
    public var verifyFingerprint: Bool = true
    /// USERNAME limit in bytes. RFC 8489 says < 509; ICE ufrags of up to 256 characters make
    /// "ufrag:ufrag" up to 513, which is accepted by default.
    public var maxUsernameBytes: Int = 513
    /// REALM, NONCE, SOFTWARE, ALTERNATE-DOMAIN and reason phrases: < 128 characters, at most 763 bytes.
    public var maxTextBytes: Int = 763

    public init() {}

    public static let `default` = STUNDecodeOptions()
}
