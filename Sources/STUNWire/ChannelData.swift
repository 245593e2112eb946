// TURN ChannelData framing (RFC 8656 §12.4–12.5).

/// A ChannelData message: 2-byte channel number, 2-byte length, application data.
public struct ChannelData: Sendable, Hashable {
    public var channelNumber: UInt16
    public var data: [UInt8]

    /// Channel numbers a client may bind (RFC 8656; RFC 5766 allowed up to 0x7FFF).
    public static let validChannelNumbers: ClosedRange<UInt16> = 0x4000...0x4FFF

    public init(channelNumber: UInt16, data: [UInt8]) {
        self.channelNumber = channelNumber
        self.data = data
    }

    /// Encodes the frame. `padded` pads the data to a multiple of 4 with zero bytes (required over
    /// TCP/TLS, optional over UDP); the padding is not counted in the length field.
    public func encode(padded: Bool) -> [UInt8] {
        var out = [UInt8]()
        encode(into: &out, padded: padded)
        return out
    }

    public func encode(into out: inout [UInt8], padded: Bool) {
        let pad = padded ? (4 - data.count & 3) & 3 : 0
        out.reserveCapacity(out.count + 4 + data.count + pad)
        out.appendBigEndian(channelNumber)
        out.appendBigEndian(UInt16(truncatingIfNeeded: data.count))
        out.append(contentsOf: data)
        for _ in 0..<pad { out.append(0) }
    }

    /// Decodes one frame that fills `bytes`: up to 3 padding bytes after the data are accepted and
    /// dropped, more are an error.
    public static func decode(_ bytes: [UInt8]) throws(STUNDecodeError) -> ChannelData {
        let h = try header(bytes)
        return ChannelData(channelNumber: h.channelNumber, data: Array(bytes[4..<(4 + h.length)]))
    }

    /// Validates the frame header and returns channel number and data length (data is bytes[4..<4+length]).
    public static func header(_ bytes: [UInt8]) throws(STUNDecodeError) -> (channelNumber: UInt16, length: Int) {
        let n = bytes.count
        guard n >= 4 else { throw .truncatedChannelData(declared: 4, available: n) }
        let c = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        guard validChannelNumbers.contains(c) else { throw .invalidChannelNumber(c) }
        let l = Int(bytes[2]) << 8 | Int(bytes[3])
        guard 4 + l <= n else { throw .truncatedChannelData(declared: 4 + l, available: n) }
        guard n <= 4 + ((l + 3) & ~3) else { throw .trailingBytes(declared: 4 + ((l + 3) & ~3), available: n) }
        return (c, l)
    }
}

/// What the first bytes of a datagram or stream are (RFC 7983 demultiplexing by first byte).
public enum STUNPacketKind: Sendable, Hashable {
    case stun
    case channelData
    case zrtp
    case dtls
    case rtp
    case unknown
}

extension STUNMessage {
    /// Reads and sanity-checks the header without looking at attributes: at least 20 bytes, top
    /// bits 0, magic cookie, length multiple of 4. Does not require all bytes to be present.
    public static func peekHeader(_ b: UnsafeRawBufferPointer) -> STUNHeader? {
        guard b.count >= stunHeaderSize, b[0] & 0xC0 == 0, b.u32(4) == stunMagicCookie else { return nil }
        let length = Int(b.u16(2))
        guard length & 3 == 0 else { return nil }
        return STUNHeader(type: STUNMessageType(rawValue: b.u16(0)), length: length,
                          transactionID: STUNTransactionID(high: b.u64(8), low: b.u32(16)))
    }

    public static func peekHeader(_ bytes: [UInt8]) -> STUNHeader? {
        bytes.withUnsafeBytes { peekHeader($0) }
    }

    /// A datagram that plausibly is exactly one STUN message (header checks and length == count - 20).
    public static func isSTUN(_ bytes: [UInt8]) -> Bool {
        guard let h = peekHeader(bytes) else { return false }
        return h.messageSize == bytes.count
    }

    /// A datagram that plausibly is one ChannelData frame (channel 0x4000–0x4FFF, length fits).
    public static func isChannelData(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 4, bytes[0] & 0xF0 == 0x40 else { return false }
        let l = Int(bytes[2]) << 8 | Int(bytes[3])
        return 4 + l <= bytes.count && bytes.count <= 4 + ((l + 3) & ~3)
    }

    /// RFC 7983 classification by the first byte: 0–3 STUN, 16–19 ZRTP, 20–63 DTLS, 64–79 TURN
    /// ChannelData, 128–191 RTP/RTCP.
    public static func classify(firstByte b: UInt8) -> STUNPacketKind {
        switch b {
        case 0...3: .stun
        case 16...19: .zrtp
        case 20...63: .dtls
        case 64...79: .channelData
        case 128...191: .rtp
        default: .unknown
        }
    }

    /// Size of the first frame in a TCP/TLS byte stream where STUN messages and (padded) ChannelData
    /// are sent back to back, known from the first 4 bytes: nil when fewer are buffered, -1 when the
    /// stream cannot be framed (no resynchronisation is possible: close the connection).
    public static func streamFrameSize(_ b: UnsafeRawBufferPointer) -> Int? {
        guard b.count >= 4 else { return nil }
        let l = Int(b.u16(2))
        switch classify(firstByte: b[0]) {
        case .stun: return l & 3 == 0 ? stunHeaderSize + l : -1
        case .channelData: return 4 + ((l + 3) & ~3)
        default: return -1
        }
    }
}
