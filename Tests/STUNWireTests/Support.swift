import STUNWire

/// RFC 5769 test vectors, byte for byte (also in coturn's rfc5769check.c and pion/stun).
enum RFC5769 {
    static let tid = STUNTransactionID(hex: "b7e7a701bc34d686fa87dfae")!
    static let shortTermPassword = "VOkJxbRl1RmTxUk/WvJxBt"

    /// §2.1 Sample Request.
    static let request = hexBytes("""
        00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
        00 24 00 04 6e 00 01 ff
        80 29 00 08 93 2f f9 b1 51 26 3b 36
        00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
        00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
        80 28 00 04 e5 7a 3b cf
        """)!

    /// §2.2 Sample IPv4 Response.
    static let responseIPv4 = hexBytes("""
        01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 08 00 01 a1 47 e1 12 a6 43
        00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
        80 28 00 04 c0 7d 4c 96
        """)!

    /// §2.3 Sample IPv6 Response.
    static let responseIPv6 = hexBytes("""
        01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
        00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
        80 28 00 04 c8 fb 0b 4c
        """)!

    /// §2.4 Sample Request with Long-Term Authentication.
    static let longTermRequest = hexBytes("""
        00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
        00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
        00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
        00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
        00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66
        """)!
    static let longTermTID = STUNTransactionID(hex: "78ad3433c6ad72c029da412e")!
    static let longTermUsername = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}"
    /// As printed in RFC 5769 §2.4; SASLprep makes it "TheMatrIX".
    static let longTermPassword = "The\u{00AD}M\u{00AA}tr\u{2168}"
    static let nonce = "f//499k954d6OL34oL9FSTvy64sA"
    static let realm = "example.org"
}

/// Deterministic RNG for reproducible randomized tests (SplitMix64).
struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A hand-built message: header with the given type/length (default: body length) and body.
func rawMessage(type: UInt16 = 0x0001, length: Int? = nil, cookie: UInt32 = 0x2112_A442, body: [UInt8]) -> [UInt8] {
    let l = length ?? body.count
    var out: [UInt8] = [UInt8(type >> 8), UInt8(type & 0xFF), UInt8(l >> 8 & 0xFF), UInt8(l & 0xFF)]
    out += [UInt8(cookie >> 24), UInt8(cookie >> 16 & 0xFF), UInt8(cookie >> 8 & 0xFF), UInt8(cookie & 0xFF)]
    out += RFC5769.tid.bytes
    return out + body
}

/// One attribute TLV with explicit length and zero padding.
func rawAttribute(_ type: UInt16, _ value: [UInt8], length: Int? = nil) -> [UInt8] {
    let l = length ?? value.count
    var out: [UInt8] = [UInt8(type >> 8), UInt8(type & 0xFF), UInt8(l >> 8 & 0xFF), UInt8(l & 0xFF)] + value
    while out.count % 4 != 0 { out.append(0) }
    return out
}

/// The decode error, or nil when decoding succeeds.
func decodeError(_ bytes: [UInt8], options: STUNDecodeOptions = .default) -> STUNDecodeError? {
    do {
        _ = try STUNMessage.decode(bytes, options: options)
        return nil
    } catch {
        return error
    }
}
