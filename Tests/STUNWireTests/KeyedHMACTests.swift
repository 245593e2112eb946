import Crypto
import Testing
import STUNWire

@Suite("KeyedHMAC: RFC 2104 over swift-crypto's hashes")
struct KeyedHMACTests {
    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = [], chars = Array(s.utf8)
        while chars.count >= 2 {
            out.append(UInt8(String(decoding: chars[0..<2], as: UTF8.self), radix: 16)!)
            chars.removeFirst(2)
        }
        return out
    }

    @Test("RFC 2202 HMAC-SHA1 test cases 1, 2 and 6 (key longer than a block)")
    func rfc2202() {
        let cases: [(key: [UInt8], data: [UInt8], mac: String)] = [
            ([UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8), "b617318655057264e28bc0b6fb378c8ef146be00"),
            (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
            ([UInt8](repeating: 0xaa, count: 80), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
             "aa4ae5e15272d00e95705637ce8a3b55ed402112"),
        ]
        for c in cases {
            #expect(KeyedHMAC<Insecure.SHA1>(key: c.key).authenticationCode(c.data) == Self.hex(c.mac))
        }
    }

    @Test("RFC 4231 HMAC-SHA256 test cases 2 and 6 (key longer than a block)")
    func rfc4231() {
        #expect(KeyedHMAC<SHA256>(key: Array("Jefe".utf8)).authenticationCode(Array("what do ya want for nothing?".utf8))
                == Self.hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))
        #expect(KeyedHMAC<SHA256>(key: [UInt8](repeating: 0xaa, count: 131))
                    .authenticationCode(Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))
                == Self.hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"))
    }

    @Test("Agrees with swift-crypto's HMAC for key lengths around the block size and split messages")
    func matchesSwiftCrypto() {
        var rng = SystemRandomNumberGenerator()
        for keyLength in [0, 1, 16, 20, 32, 63, 64, 65, 100, 200] {
            let key = (0..<keyLength).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let message = (0..<(keyLength * 3 + 7)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let split = message.count / 3
            let sha1 = KeyedHMAC<Insecure.SHA1>(key: key), sha256 = KeyedHMAC<SHA256>(key: key)
            let twoParts1 = message[..<split].withUnsafeBytes { a in message[split...].withUnsafeBytes { b in sha1.authenticationCode(a, b) } }
            let twoParts256 = message[..<split].withUnsafeBytes { a in message[split...].withUnsafeBytes { b in sha256.authenticationCode(a, b) } }
            let reference1 = Array(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: SymmetricKey(data: key)))
            let reference256 = Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
            #expect(sha1.authenticationCode(message) == reference1, "key length \(keyLength)")
            #expect(twoParts1 == reference1, "key length \(keyLength), two parts")
            #expect(sha256.authenticationCode(message) == reference256, "key length \(keyLength)")
            #expect(twoParts256 == reference256, "key length \(keyLength), two parts")
            // The key's state is copied per message, never consumed: a second message gives the same answer.
            #expect(sha1.authenticationCode(message) == reference1)
        }
    }
}
