import Testing
import STUNWire

@Suite("RFC 5769 test vectors")
struct RFC5769Tests {
    let key = STUNIntegrityKey.shortTerm(password: RFC5769.shortTermPassword)

    // The request and responses in §2.1–2.3 pad with 0x20 (spaces); §2.4 pads with 0x00. Padding
    // content is arbitrary (RFC 8489 §14), so the decoder ignores it and the encoder takes the padding
    // byte as a parameter: re-encoding with that byte reproduces each vector exactly, with
    // MESSAGE-INTEGRITY and FINGERPRINT computed by the encoder, not copied.

    static let requestAttributes: [STUNAttribute] = [
        .software("STUN test client"),
        .priority(0x6E00_01FF),
        .iceControlled(tieBreaker: 0x932F_F9B1_5126_3B36),
        .username("evtj:h6vY"),
    ]

    @Test("2.1 Sample Request decodes, integrity and fingerprint verify")
    func decodeRequest() throws {
        let packet = try STUNPacket(RFC5769.request)
        #expect(packet.type == .bindingRequest)
        #expect(packet.transactionID == RFC5769.tid)
        #expect(packet.fingerprintOffset == 100)
        #expect(packet.verifyIntegrity(key: key) == .valid(sha256: false))
        let m = try packet.message()
        #expect(Array(m.attributes.prefix(4)) == Self.requestAttributes)
        #expect(m.attributes.count == 6)
        #expect(m.attributes[5] == .fingerprint(0xE57A_3BCF))
        #expect(m.username == "evtj:h6vY")
        #expect(m.priority == 0x6E00_01FF)
        #expect(m.software == "STUN test client")
        #expect(packet.verifyIntegrity(key: .shortTerm(password: "wrong")) == .invalid(sha256: false))
    }

    @Test("2.1 Sample Request re-encodes byte for byte (0x20 padding)")
    func encodeRequest() {
        let m = STUNMessage(type: .bindingRequest, transactionID: RFC5769.tid, attributes: Self.requestAttributes)
        let bytes = m.encode(paddingByte: 0x20, integrity: key, fingerprint: true)
        #expect(bytes.hexString == RFC5769.request.hexString)
    }

    @Test("2.2 Sample IPv4 Response decodes and re-encodes")
    func responseIPv4() throws {
        let packet = try STUNPacket(RFC5769.responseIPv4)
        #expect(packet.type == .bindingSuccess)
        #expect(packet.verifyIntegrity(key: key).isValid)
        let m = try packet.message()
        #expect(m.software == "test vector")
        #expect(m.xorMappedAddress == STUNAddress("192.0.2.1:32853"))
        #expect(m.reflexiveAddress == STUNAddress("192.0.2.1:32853"))
        #expect(m.attributes.last == .fingerprint(0xC07D_4C96))

        let rebuilt = STUNMessage(type: .bindingSuccess, transactionID: RFC5769.tid,
                                  attributes: [.software("test vector"), .xorMappedAddress(STUNAddress("192.0.2.1:32853")!)])
        #expect(rebuilt.encode(paddingByte: 0x20, integrity: key, fingerprint: true) == RFC5769.responseIPv4)
    }

    @Test("2.3 Sample IPv6 Response decodes and re-encodes")
    func responseIPv6() throws {
        let packet = try STUNPacket(RFC5769.responseIPv6)
        #expect(packet.verifyIntegrity(key: key).isValid)
        let m = try packet.message()
        let expected = STUNAddress("[2001:db8:1234:5678:11:2233:4455:6677]:32853")!
        #expect(m.xorMappedAddress == expected)
        #expect(expected.description == "[2001:db8:1234:5678:11:2233:4455:6677]:32853")

        let rebuilt = STUNMessage(type: .bindingSuccess, transactionID: RFC5769.tid,
                                  attributes: [.software("test vector"), .xorMappedAddress(expected)])
        #expect(rebuilt.encode(paddingByte: 0x20, integrity: key, fingerprint: true) == RFC5769.responseIPv6)
    }

    @Test("2.4 Long-term request: SASLprep'd password verifies; re-encodes (0x00 padding)")
    func longTerm() throws {
        let packet = try STUNPacket(RFC5769.longTermRequest)
        let m = try packet.message()
        #expect(m.username == RFC5769.longTermUsername)
        #expect(m.nonce == RFC5769.nonce)
        #expect(m.realm == RFC5769.realm)
        #expect(packet.fingerprintOffset == nil)

        #expect(STUNStringPrep.saslPrep(RFC5769.longTermPassword) == "TheMatrIX")
        let key = STUNIntegrityKey.longTerm(username: m.username!, realm: m.realm!, password: RFC5769.longTermPassword)
        #expect(key.bytes.hexString == "e8ca7ad59d5eb0518e312911d2dab2a9")  // MD5("マトリックス:example.org:TheMatrIX")
        #expect(packet.verifyIntegrity(key: key) == .valid(sha256: false))
        let unprepared = STUNIntegrityKey.longTerm(username: m.username!, realm: m.realm!,
                                                   password: RFC5769.longTermPassword, preparation: .none)
        #expect(packet.verifyIntegrity(key: unprepared) == .invalid(sha256: false))
        let plain = STUNIntegrityKey.longTerm(username: m.username!, realm: m.realm!, password: "TheMatrIX", preparation: .none)
        #expect(packet.verifyIntegrity(key: plain).isValid)

        let rebuilt = STUNMessage(type: .bindingRequest, transactionID: RFC5769.longTermTID, attributes: [
            .username(RFC5769.longTermUsername), .nonce(RFC5769.nonce), .realm(RFC5769.realm),
        ])
        #expect(rebuilt.encode(integrity: key) == RFC5769.longTermRequest)
    }

    @Test("Corrupted vectors: FINGERPRINT mismatch, MESSAGE-INTEGRITY mismatch")
    func negatives() throws {
        var bad = RFC5769.request
        bad[27] = 23  // inside SOFTWARE, as coturn's negative test
        guard case .fingerprintMismatch(_, 0xE57A_3BCF) = decodeError(bad) else {
            Issue.record("expected a FINGERPRINT mismatch")
            return
        }
        // Without FINGERPRINT verification the changed byte is caught by MESSAGE-INTEGRITY.
        var lax = STUNDecodeOptions()
        lax.verifyFingerprint = false
        #expect(try STUNPacket(bad, options: lax).verifyIntegrity(key: key) == .invalid(sha256: false))

        var badLT = RFC5769.longTermRequest
        badLT[32] = 10
        let key = STUNIntegrityKey.longTerm(username: RFC5769.longTermUsername, realm: RFC5769.realm,
                                            password: "TheMatrIX")
        #expect(try STUNPacket(badLT).verifyIntegrity(key: key) == .invalid(sha256: false))
    }

    @Test("RFC 8489 B.1 USERHASH")
    func userhash() {
        #expect(stunUserhash(username: RFC5769.longTermUsername, realm: RFC5769.realm).hexString
            == "4a3cf38fef6992bda952c6780417da0f24819415569e60b205c46e41407f1704")
    }

    @Test("MESSAGE-INTEGRITY-SHA256 alone and after MESSAGE-INTEGRITY, with the SHA-256 long-term key")
    func sha256Integrity() throws {
        let key = STUNIntegrityKey.longTerm(username: "user", realm: "realm", password: "pass", algorithm: .sha256)
        #expect(key.bytes.count == 32)
        let m = STUNMessage(method: .allocate, class: .request, transactionID: RFC5769.tid, attributes: [
            .username("user"), .realm("realm"), .nonce("n"), .passwordAlgorithm(.sha256), .requestedTransport(17),
        ])
        for mode in [STUNIntegrityMode.sha256(), .sha256(length: 16), .both()] {
            let bytes = m.encode(integrity: key, integrityMode: mode, fingerprint: true)
            let p = try STUNPacket(bytes)
            #expect(p.verifyIntegrity(key: key) == .valid(sha256: true))
            #expect(p.verifyIntegrity(key: .shortTerm(password: "x")) == .invalid(sha256: true))
            if case .both = mode {
                #expect(p.verifyMessageIntegrity(key: key) == true)
                #expect(p.messageIntegrityOffset! < p.messageIntegritySHA256Offset!)
            } else {
                #expect(p.verifyMessageIntegrity(key: key) == nil)
            }
            let decoded = try p.message()
            #expect(Array(decoded.attributes.prefix(5)) == m.attributes)
        }
    }

    @Test("Unauthenticated message: integrity missing")
    func missing() throws {
        let m = STUNMessage(type: .bindingRequest, transactionID: RFC5769.tid)
        #expect(try STUNPacket(m.encode(fingerprint: true)).verifyIntegrity(key: key) == .missing)
        #expect(m.encode() == rawMessage(body: []))
    }
}
