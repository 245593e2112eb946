// A validated, lazily decoded STUN message over its wire bytes.

/// The wire bytes of a STUN message whose header, attribute framing and FINGERPRINT have been
/// validated, without decoding any attribute value. Construction walks the attributes once without
/// allocating; values are decoded on demand (`attribute(_:)`, `message()`), and integrity is
/// verified over the original bytes (`verifyIntegrity(key:)`).
public struct STUNPacket: Sendable {
    public let bytes: [UInt8]
    public let header: STUNHeader
    /// Offset of the MESSAGE-INTEGRITY attribute header, if any.
    public let messageIntegrityOffset: Int?
    /// Offset of the MESSAGE-INTEGRITY-SHA256 attribute header, if any.
    public let messageIntegritySHA256Offset: Int?
    /// Offset of the FINGERPRINT attribute header, if any.
    public let fingerprintOffset: Int?
    /// Whether an attribute type in 0x0000–0x7FFF that this codec does not know is present.
    public let hasUnknownComprehensionRequired: Bool
    /// Number of attributes that count (attributes after the integrity attributes are ignored).
    public let attributeCount: Int

    public var type: STUNMessageType { header.type }
    public var transactionID: STUNTransactionID { header.transactionID }

    /// Validates `bytes` as exactly one STUN message.
    public init(_ bytes: [UInt8], options: STUNDecodeOptions = .default) throws(STUNDecodeError) {
        let r: Result<Walk, STUNDecodeError> = bytes.withUnsafeBytes { buf in
            do throws(STUNDecodeError) { return .success(try Walk(buf, options: options)) } catch { return .failure(error) }
        }
        let w = try r.get()
        self.bytes = bytes
        self.header = w.header
        self.messageIntegrityOffset = w.mi
        self.messageIntegritySHA256Offset = w.mi256
        self.fingerprintOffset = w.fp
        self.hasUnknownComprehensionRequired = w.unknownRequired
        self.attributeCount = w.count
    }

    /// Validates a message in place (no copy, no allocation) and returns its header.
    public static func validate(_ buf: UnsafeRawBufferPointer, options: STUNDecodeOptions = .default) throws(STUNDecodeError) -> STUNHeader {
        try Walk(buf, options: options).header
    }

    /// The attributes that count, in order: (type, value range in `bytes`).
    public var rawAttributes: [(type: STUNAttributeType, value: Range<Int>)] {
        var out: [(type: STUNAttributeType, value: Range<Int>)] = []
        out.reserveCapacity(attributeCount)
        var c = Cursor(bytes: bytes, end: header.messageSize)
        while let (t, r) = c.next() { out.append((STUNAttributeType(t), r)) }
        return out
    }

    /// The value bytes of the first attribute of `type`, without decoding.
    public func rawValue(of type: STUNAttributeType) -> ArraySlice<UInt8>? {
        var c = Cursor(bytes: bytes, end: header.messageSize)
        while let (t, r) = c.next() {
            if t == type.rawValue { return bytes[r] }
        }
        return nil
    }

    /// Decodes the first attribute of `type`, or nil when absent.
    public func attribute(_ type: STUNAttributeType, options: STUNDecodeOptions = .default) throws(STUNDecodeError) -> STUNAttribute? {
        var c = Cursor(bytes: bytes, end: header.messageSize)
        while let (t, r) = c.next() {
            if t == type.rawValue { return try decodeAttribute(type: t, range: r, options: options) }
        }
        return nil
    }

    /// Types in 0x0000–0x7FFF that this codec does not understand, for a 420 UNKNOWN-ATTRIBUTES answer.
    public var unknownComprehensionRequired: [UInt16] {
        guard hasUnknownComprehensionRequired else { return [] }
        var out: [UInt16] = []
        var c = Cursor(bytes: bytes, end: header.messageSize)
        while let (t, _) = c.next() {
            let at = STUNAttributeType(t)
            if at.isComprehensionRequired && !STUNAttribute.isKnown(at) && !out.contains(t) { out.append(t) }
        }
        return out
    }

    /// Decodes every attribute into a `STUNMessage`.
    public func message(options: STUNDecodeOptions = .default) throws(STUNDecodeError) -> STUNMessage {
        var attrs: [STUNAttribute] = []
        attrs.reserveCapacity(attributeCount)
        var c = Cursor(bytes: bytes, end: header.messageSize)
        while let (t, r) = c.next() { attrs.append(try decodeAttribute(type: t, range: r, options: options)) }
        return STUNMessage(type: header.type, transactionID: header.transactionID, attributes: attrs)
    }

    func decodeAttribute(type t: UInt16, range r: Range<Int>, options: STUNDecodeOptions) throws(STUNDecodeError) -> STUNAttribute {
        let res: Result<STUNAttribute, STUNDecodeError> = bytes.withUnsafeBytes { buf in
            do throws(STUNDecodeError) {
                return .success(try decodeAttributeValue(type: t, buf, r, transactionID: header.transactionID, options: options))
            } catch { return .failure(error) }
        }
        return try res.get()
    }
}

/// Walks attributes that count: stops after FINGERPRINT and skips attributes that follow
/// MESSAGE-INTEGRITY (other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT) or MESSAGE-INTEGRITY-SHA256
/// (other than FINGERPRINT), as RFC 8489 §14.5–14.6 require. Assumes validated framing.
struct Cursor {
    let bytes: [UInt8]
    let end: Int
    var offset = stunHeaderSize
    var sawMI = false
    var sawMI256 = false

    init(bytes: [UInt8], end: Int) {
        self.bytes = bytes
        self.end = end
    }

    mutating func next() -> (UInt16, Range<Int>)? {
        while offset + 4 <= end {
            let t = UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
            let l = Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            let start = offset + 4
            offset = start + ((l + 3) & ~3)
            if sawMI256 && t != STUNAttributeType.fingerprint.rawValue { continue }
            if sawMI && t != STUNAttributeType.fingerprint.rawValue && t != STUNAttributeType.messageIntegritySHA256.rawValue { continue }
            if t == STUNAttributeType.messageIntegrity.rawValue { sawMI = true }
            if t == STUNAttributeType.messageIntegritySHA256.rawValue { sawMI256 = true }
            return (t, start..<(start + l))
        }
        return nil
    }
}

/// One validation pass over a whole message.
struct Walk {
    var header: STUNHeader
    var mi: Int? = nil
    var mi256: Int? = nil
    var fp: Int? = nil
    var unknownRequired = false
    var count = 0

    init(_ b: UnsafeRawBufferPointer, options: STUNDecodeOptions) throws(STUNDecodeError) {
        let n = b.count
        guard n >= stunHeaderSize else { throw .truncatedHeader(count: n) }
        guard b[0] & 0xC0 == 0 else { throw .notSTUN(firstByte: b[0]) }
        let cookie = b.u32(4)
        guard cookie == stunMagicCookie else { throw .badMagicCookie(cookie) }
        let length = Int(b.u16(2))
        let size = stunHeaderSize + length
        guard size <= options.maxMessageSize else { throw .messageTooLarge(size: size, limit: options.maxMessageSize) }
        guard size <= n else { throw .truncatedMessage(declared: size, available: n) }
        guard size == n else { throw .trailingBytes(declared: size, available: n) }
        if length & 3 != 0 {
            // Say "bad padding" when the last attribute simply lacks its padding.
            var o = stunHeaderSize
            while o + 4 <= size {
                let l = Int(b.u16(o + 2))
                if o + 4 + l == size { throw .badPadding(type: b.u16(o), offset: o) }
                o += 4 + ((l + 3) & ~3)
            }
            throw .lengthNotMultipleOf4(length: length)
        }
        header = STUNHeader(type: STUNMessageType(rawValue: b.u16(0)), length: length,
                            transactionID: STUNTransactionID(high: b.u64(8), low: b.u32(16)))
        var o = stunHeaderSize
        var all = 0
        while o < size {
            guard o + 4 <= size else { throw .truncatedAttributeHeader(offset: o) }
            if fp != nil { throw .fingerprintNotLast(offset: o) }
            let t = b.u16(o)
            let l = Int(b.u16(o + 2))
            guard o + 4 + l <= size else { throw .attributeOverrunsMessage(type: t, length: l, offset: o) }
            let next = o + 4 + ((l + 3) & ~3)
            guard next <= size else { throw .badPadding(type: t, offset: o) }  // unreachable: size % 4 == 0
            all += 1
            guard all <= options.maxAttributes else { throw .tooManyAttributes(limit: options.maxAttributes) }
            switch t {
            case STUNAttributeType.fingerprint.rawValue:
                guard l == 4 else { throw .invalidAttributeLength(type: t, length: l) }
                guard next == size else { throw .fingerprintNotLast(offset: next) }
                fp = o
                count += 1
                if options.verifyFingerprint {
                    let received = b.u32(o + 4)
                    let expected = stunFingerprint(UnsafeRawBufferPointer(rebasing: b[0..<o]))
                    guard received == expected else { throw .fingerprintMismatch(expected: expected, received: received) }
                }
            case STUNAttributeType.messageIntegrity.rawValue where mi == nil && mi256 == nil:
                guard l == 20 else { throw .invalidAttributeLength(type: t, length: l) }
                mi = o
                count += 1
            case STUNAttributeType.messageIntegritySHA256.rawValue where mi256 == nil:
                guard l >= 16, l <= 32, l & 3 == 0 else { throw .invalidAttributeLength(type: t, length: l) }
                mi256 = o
                count += 1
            default:
                if mi == nil && mi256 == nil {
                    count += 1
                    if t < 0x8000 && !STUNAttribute.isKnown(STUNAttributeType(t)) { unknownRequired = true }
                }
            }
            o = next
        }
    }
}
