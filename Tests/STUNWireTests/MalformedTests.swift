import Testing
import STUNWire

struct MalformedCase: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let expected: STUNDecodeError
    var options: STUNDecodeOptions = .default
    var testDescription: String { name }
}

let malformedCases: [MalformedCase] = {
    let u = rawAttribute(0x0006, Array("user".utf8))
    var fpNotLast = RFC5769.responseIPv4 + rawAttribute(0x8022, [])
    fpNotLast[3] += 4
    var small = STUNDecodeOptions()
    small.maxMessageSize = 64
    var fewAttributes = STUNDecodeOptions()
    fewAttributes.maxAttributes = 3
    var badFingerprint = RFC5769.responseIPv6
    badFingerprint[RFC5769.responseIPv6.count - 1] ^= 1
    return [
        MalformedCase(name: "empty", bytes: [], expected: .truncatedHeader(count: 0)),
        MalformedCase(name: "truncated header", bytes: Array(RFC5769.request.prefix(19)), expected: .truncatedHeader(count: 19)),
        MalformedCase(name: "top bits set", bytes: [0x80] + Array(RFC5769.request.dropFirst()), expected: .notSTUN(firstByte: 0x80)),
        MalformedCase(name: "RFC 3489 (no magic cookie)", bytes: rawMessage(cookie: 0x0102_0304, body: []),
                      expected: .badMagicCookie(0x0102_0304)),
        MalformedCase(name: "length not a multiple of 4", bytes: rawMessage(body: [0, 0]), expected: .lengthNotMultipleOf4(length: 2)),
        MalformedCase(name: "missing padding on the last attribute",
                      bytes: rawMessage(body: [0x00, 0x06, 0x00, 0x05] + Array("alice".utf8)),
                      expected: .badPadding(type: 0x0006, offset: 20)),
        MalformedCase(name: "length claims more than given", bytes: rawMessage(length: 16, body: u),
                      expected: .truncatedMessage(declared: 36, available: 28)),
        MalformedCase(name: "truncated vector", bytes: Array(RFC5769.request.dropLast(8)),
                      expected: .truncatedMessage(declared: 108, available: 100)),
        MalformedCase(name: "bytes after the message", bytes: RFC5769.request + [0, 0, 0, 0],
                      expected: .trailingBytes(declared: 108, available: 112)),
        MalformedCase(name: "over the size limit", bytes: RFC5769.request, expected: .messageTooLarge(size: 108, limit: 64),
                      options: small),
        MalformedCase(name: "too many attributes", bytes: rawMessage(body: u + u + u + u),
                      expected: .tooManyAttributes(limit: 3), options: fewAttributes),
        MalformedCase(name: "attribute overruns message", bytes: rawMessage(body: [0x00, 0x06, 0x00, 0x10, 1, 2, 3, 4]),
                      expected: .attributeOverrunsMessage(type: 0x0006, length: 16, offset: 20)),
        MalformedCase(name: "bad FINGERPRINT", bytes: badFingerprint,
                      expected: .fingerprintMismatch(expected: 0xC8FB_0B4C, received: 0xC8FB_0B4D)),
        MalformedCase(name: "attribute after FINGERPRINT", bytes: fpNotLast, expected: .fingerprintNotLast(offset: 80)),
        MalformedCase(name: "FINGERPRINT of 8 bytes", bytes: rawMessage(body: rawAttribute(0x8028, [0, 0, 0, 0, 0, 0, 0, 0])),
                      expected: .invalidAttributeLength(type: 0x8028, length: 8)),
        MalformedCase(name: "MESSAGE-INTEGRITY of 16 bytes", bytes: rawMessage(body: rawAttribute(0x0008, Array(repeating: 0, count: 16))),
                      expected: .invalidAttributeLength(type: 0x0008, length: 16)),
        MalformedCase(name: "MESSAGE-INTEGRITY-SHA256 of 12 bytes", bytes: rawMessage(body: rawAttribute(0x001C, Array(repeating: 0, count: 12))),
                      expected: .invalidAttributeLength(type: 0x001C, length: 12)),
        MalformedCase(name: "address family 3", bytes: rawMessage(body: rawAttribute(0x0020, [0, 3, 0, 1, 1, 2, 3, 4])),
                      expected: .badAddressFamily(type: 0x0020, family: 3)),
        MalformedCase(name: "IPv4 address of 20 bytes", bytes: rawMessage(body: rawAttribute(0x0001, [0, 1, 0, 1] + Array(repeating: 0, count: 16))),
                      expected: .invalidAttributeLength(type: 0x0001, length: 20)),
        MalformedCase(name: "IPv6 address of 8 bytes", bytes: rawMessage(body: rawAttribute(0x0012, [0, 2, 0, 1, 1, 2, 3, 4])),
                      expected: .invalidAttributeLength(type: 0x0012, length: 8)),
        MalformedCase(name: "address of 2 bytes", bytes: rawMessage(body: rawAttribute(0x802B, [0, 1])),
                      expected: .invalidAttributeLength(type: 0x802B, length: 2)),
        MalformedCase(name: "PRIORITY of 3 bytes", bytes: rawMessage(body: rawAttribute(0x0024, [1, 2, 3])),
                      expected: .invalidAttributeLength(type: 0x0024, length: 3)),
        MalformedCase(name: "USE-CANDIDATE with a value", bytes: rawMessage(body: rawAttribute(0x0025, [1, 2, 3, 4])),
                      expected: .invalidAttributeLength(type: 0x0025, length: 4)),
        MalformedCase(name: "ERROR-CODE shorter than 4 bytes", bytes: rawMessage(type: 0x0111, body: rawAttribute(0x0009, [0, 0])),
                      expected: .invalidAttributeLength(type: 0x0009, length: 2)),
        MalformedCase(name: "ERROR-CODE class 7", bytes: rawMessage(type: 0x0111, body: rawAttribute(0x0009, [0, 0, 7, 0])),
                      expected: .badErrorCode(errorClass: 7, number: 0)),
        MalformedCase(name: "ERROR-CODE number 100", bytes: rawMessage(type: 0x0111, body: rawAttribute(0x0009, [0, 0, 4, 100])),
                      expected: .badErrorCode(errorClass: 4, number: 100)),
        MalformedCase(name: "USERNAME not UTF-8", bytes: rawMessage(body: rawAttribute(0x0006, [0x61, 0xFF, 0xFE])),
                      expected: .invalidUTF8(type: 0x0006)),
        MalformedCase(name: "USERNAME of 600 bytes", bytes: rawMessage(body: rawAttribute(0x0006, Array(repeating: 0x61, count: 600))),
                      expected: .attributeTooLong(type: 0x0006, length: 600, limit: 513)),
        MalformedCase(name: "REALM of 800 bytes", bytes: rawMessage(body: rawAttribute(0x0014, Array(repeating: 0x61, count: 800))),
                      expected: .attributeTooLong(type: 0x0014, length: 800, limit: 763)),
        MalformedCase(name: "UNKNOWN-ATTRIBUTES of odd length", bytes: rawMessage(body: rawAttribute(0x000A, [0, 1, 0])),
                      expected: .invalidAttributeLength(type: 0x000A, length: 3)),
        MalformedCase(name: "PASSWORD-ALGORITHM parameters overrun", bytes: rawMessage(body: rawAttribute(0x001D, [0, 1, 0, 8, 1, 2, 3, 4])),
                      expected: .invalidAttributeLength(type: 0x001D, length: 8)),
        MalformedCase(name: "REQUESTED-ADDRESS-FAMILY 9", bytes: rawMessage(body: rawAttribute(0x0017, [9, 0, 0, 0])),
                      expected: .badAddressFamily(type: 0x0017, family: 9)),
        MalformedCase(name: "EVEN-PORT of 4 bytes", bytes: rawMessage(body: rawAttribute(0x0018, [0x80, 0, 0, 0])),
                      expected: .invalidAttributeLength(type: 0x0018, length: 4)),
        MalformedCase(name: "ICMP of 4 bytes", bytes: rawMessage(body: rawAttribute(0x8004, [0, 0, 0, 0])),
                      expected: .invalidAttributeLength(type: 0x8004, length: 4)),
    ]
}()

@Suite("Malformed input")
struct MalformedTests {
    @Test("Each malformed message throws its precise error", arguments: malformedCases)
    func rejects(_ c: MalformedCase) {
        #expect(decodeError(c.bytes, options: c.options) == c.expected)
    }

    @Test("Every truncation of every vector is rejected, never a crash")
    func truncations() {
        for vector in [RFC5769.request, RFC5769.responseIPv4, RFC5769.responseIPv6, RFC5769.longTermRequest] {
            for n in 0..<vector.count {
                #expect(decodeError(Array(vector.prefix(n))) != nil)
            }
        }
    }

    @Test("Random bytes and random mutations of the vectors never crash (seeded)")
    func randomInput() {
        var rng = SeededRNG(seed: 0x5EED_0001)
        var accepted = 0
        let vectors = [RFC5769.request, RFC5769.responseIPv4, RFC5769.responseIPv6, RFC5769.longTermRequest]
        for i in 0..<20_000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                let n = Int.random(in: 0...120, using: &rng)
                bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if n >= 8, Bool.random(using: &rng) {  // make some look like STUN
                    bytes[0] &= 0x3F
                    bytes.replaceSubrange(4..<8, with: [0x21, 0x12, 0xA4, 0x42])
                    if Bool.random(using: &rng) {
                        let l = max(0, (n - 20)) & ~3
                        bytes[2] = UInt8(l >> 8)
                        bytes[3] = UInt8(l & 0xFF)
                    }
                }
            } else {
                bytes = vectors.randomElement(using: &rng)!
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            if let m = try? STUNMessage.decode(bytes) {
                accepted += 1
                // Whatever is accepted re-encodes into something accepted.
                #expect((try? STUNMessage.decode(m.encode())) != nil)
            }
            _ = try? ChannelData.decode(bytes)
            _ = STUNMessage.isSTUN(bytes)
        }
        #expect(accepted > 0)
    }
}
