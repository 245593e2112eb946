import Testing
import STUNWire

/// One sample of every typed attribute (IPv4 and IPv6 for each address attribute).
let sampleAttributes: [STUNAttribute] = {
    let v4 = STUNAddress("198.51.100.7:40000")!
    let v6 = STUNAddress("[2001:db8::1:2]:65535")!
    var list: [STUNAttribute] = []
    for a in [v4, v6] {
        list += [.mappedAddress(a), .xorMappedAddress(a), .alternateServer(a), .responseOrigin(a), .otherAddress(a),
                 .sourceAddress(a), .changedAddress(a), .xorPeerAddress(a), .xorRelayedAddress(a)]
    }
    list += [
        .username("alice:bob"), .username(""), .username("\u{30DE}\u{30C8}\u{30EA}"),
        .userhash([UInt8](repeating: 0xAB, count: 32)),
        .messageIntegrity([UInt8](0..<20)),
        .messageIntegritySHA256([UInt8](0..<32)), .messageIntegritySHA256([UInt8](0..<16)),
        .errorCode(.unknownAttribute), .errorCode(STUNErrorCode(code: 699, reason: "")), .errorCode(.tryAlternate),
        .realm("example.org"), .nonce("obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA"),
        .passwordAlgorithms([.md5, .sha256, STUNPasswordAlgorithm(number: 7, parameters: [1, 2, 3])]),
        .passwordAlgorithms([]),
        .passwordAlgorithm(.sha256), .passwordAlgorithm(STUNPasswordAlgorithm(number: 9, parameters: [9, 9, 9, 9, 9])),
        .unknownAttributes([0x0003, 0x7FFF, 0x0042]), .unknownAttributes([0x1234]),
        .software("natlab STUNWire"), .alternateDomain("turn.example.org"),
        .changeRequest([.changeIP, .changePort]), .changeRequest([]), .changeRequest(.changePort),
        .responsePort(3479), .padding([UInt8](repeating: 0, count: 1500)), .padding([]),
        .channelNumber(0x4000), .lifetime(600), .lifetime(0), .data([1, 2, 3, 4, 5]), .data([]),
        .requestedAddressFamily(.ipv4), .requestedAddressFamily(.ipv6), .evenPort(reserveNext: true),
        .evenPort(reserveNext: false), .requestedTransport(17), .dontFragment, .reservationToken(0x0102_0304_0506_0708),
        .additionalAddressFamily(.ipv6), .addressErrorCode(family: .ipv6, error: .addressFamilyNotSupported),
        .icmp(type: 3, code: 4, errorData: 1400), .icmp(type: 127, code: 511, errorData: 0), .connectionID(42),
        .priority(0x6E00_01FF), .useCandidate, .iceControlled(tieBreaker: .max), .iceControlling(tieBreaker: 1),
        .unknown(type: 0x8FFF, value: [1, 2, 3]), .unknown(type: 0x7F00, value: []),
    ]
    return list
}()

@Suite("Attributes")
struct AttributeTests {
    @Test("Every attribute round-trips", arguments: sampleAttributes)
    func roundTrip(_ attribute: STUNAttribute) throws {
        let m = STUNMessage(method: .allocate, class: .request, transactionID: RFC5769.tid, attributes: [attribute])
        let bytes = m.encode()
        #expect(bytes.count % 4 == 0)
        #expect(bytes.count == 20 + 4 + ((attribute.encodedValueLength + 3) & ~3))
        #expect(try STUNMessage.decode(bytes) == m)
        // Same with a different padding byte: padding is never interpreted.
        #expect(try STUNMessage.decode(m.encode(paddingByte: 0xFF)) == m)
    }

    @Test("Every typed attribute is known; every known type has a typed sample")
    func coverage() {
        var typed = Set<STUNAttributeType>()
        for a in sampleAttributes {
            if case .unknown = a { continue }
            #expect(STUNAttribute.isKnown(a.type), "\(a.type)")
            typed.insert(a.type)
        }
        let known = Set((UInt16(0)...UInt16.max).map(STUNAttributeType.init(rawValue:)).filter(STUNAttribute.isKnown))
        #expect(typed.union([.fingerprint]) == known)  // FINGERPRINT: see fingerprintInList()
        #expect(known.count == 41)
    }

    @Test("A .fingerprint attribute in the list is computed by the encoder")
    func fingerprintInList() throws {
        let m = STUNMessage(type: .bindingRequest, transactionID: RFC5769.tid, attributes: [.software("x"), .fingerprint(0)])
        let bytes = m.encode()
        #expect(bytes == STUNMessage(type: .bindingRequest, transactionID: RFC5769.tid, attributes: [.software("x")])
            .encode(fingerprint: true))
        let decoded = try STUNMessage.decode(bytes)
        guard case .fingerprint(let v) = decoded.attributes.last else { Issue.record("no FINGERPRINT"); return }
        #expect(v == bytes.withUnsafeBytes { stunFingerprint(UnsafeRawBufferPointer(rebasing: $0[0..<(bytes.count - 8)])) })
    }

    @Test("Message types: Binding and every TURN method in every class")
    func messageTypes() {
        let expected: [(STUNMethod, STUNClass, UInt16)] = [
            (.binding, .request, 0x0001), (.binding, .indication, 0x0011), (.binding, .successResponse, 0x0101),
            (.binding, .errorResponse, 0x0111), (.allocate, .request, 0x0003), (.allocate, .successResponse, 0x0103),
            (.allocate, .errorResponse, 0x0113), (.refresh, .request, 0x0004), (.refresh, .successResponse, 0x0104),
            (.send, .indication, 0x0016), (.data, .indication, 0x0017), (.createPermission, .request, 0x0008),
            (.createPermission, .successResponse, 0x0108), (.channelBind, .request, 0x0009),
            (.channelBind, .errorResponse, 0x0119), (.connect, .request, 0x000A), (.connectionBind, .request, 0x000B),
            (.connectionAttempt, .indication, 0x001C), (STUNMethod(rawValue: 0xFFF), .errorResponse, 0x3FFF),
            (STUNMethod(rawValue: 0x080), .request, 0x0200),
        ]
        for (method, cls, raw) in expected {
            let t = STUNMessageType(method: method, messageClass: cls)
            #expect(t.rawValue == raw, "\(t)")
            #expect(STUNMessageType(rawValue: raw) == t)
        }
        for raw in UInt16(0)...0x3FFF { #expect(STUNMessageType(rawValue: raw).rawValue == raw) }
    }

    @Test("XOR-MAPPED-ADDRESS IPv6 wire bytes (RFC 5769 §2.3)")
    func xorIPv6Wire() {
        let a = STUNAddress("[2001:db8:1234:5678:11:2233:4455:6677]:32853")!
        let m = STUNMessage(type: .bindingSuccess, transactionID: RFC5769.tid, attributes: [.xorMappedAddress(a)])
        #expect(Array(m.encode()[20...]).hexString == "0020001400 02a147 0113a9faa5d3f179bc25f4b5bed2b9d9".filter { $0 != " " })
    }

    @Test("ERROR-CODE wire format and helpers")
    func errorCodeWire() throws {
        let m = STUNMessage(type: .bindingError, transactionID: RFC5769.tid, attributes: [.errorCode(.staleNonce)])
        #expect(Array(m.encode()[20...]).hexString == "0009000f" + "00000426" + Array("Stale Nonce".utf8).hexString + "00")
        for code in [300, 400, 401, 403, 420, 437, 438, 440, 441, 442, 486, 500, 508] {
            let e = STUNErrorCode(code: code)
            #expect(STUNErrorCode.standardReason(code) != nil)
            #expect(e.errorClass * 100 + e.number == code)
        }
        #expect(STUNErrorCode.unauthenticated.code == 401)
        #expect(STUNErrorCode.insufficientCapacity.reason == "Insufficient Capacity")
    }

    @Test("Unknown comprehension-required attributes are reported, optional ones kept")
    func unknownAttributes() throws {
        let body = rawAttribute(0x7ABC, [1, 2, 3]) + rawAttribute(0xC001, [4]) + rawAttribute(0x0006, Array("u".utf8))
            + rawAttribute(0x7ABC, [])
        let bytes = rawMessage(body: body)
        let p = try STUNPacket(bytes)
        #expect(p.hasUnknownComprehensionRequired)
        #expect(p.unknownComprehensionRequired == [0x7ABC])
        let m = try p.message()
        #expect(m.unknownComprehensionRequired == [0x7ABC])
        #expect(m.attributes.contains(.unknown(type: 0xC001, value: [4])))
        #expect(m.encode() == bytes)

        let answer = STUNMessage.unknownAttributeResponse(to: m, types: m.unknownComprehensionRequired)
        #expect(answer.type == .bindingError)
        #expect(answer.transactionID == m.transactionID)
        #expect(answer.errorCode?.code == 420)
        #expect(answer.first(.unknownAttributes) == .unknownAttributes([0x7ABC]))

        let optionalOnly = try STUNPacket(rawMessage(body: rawAttribute(0xC001, [4])))
        #expect(!optionalOnly.hasUnknownComprehensionRequired)
    }

    @Test("Attributes after MESSAGE-INTEGRITY other than MI-SHA256/FINGERPRINT are ignored")
    func afterIntegrity() throws {
        let key = STUNIntegrityKey.shortTerm(password: "pw")
        var bytes = STUNMessage(type: .bindingRequest, transactionID: RFC5769.tid, attributes: [.username("a:b")])
            .encode(integrity: key)
        bytes += rawAttribute(0x8022, Array("late".utf8))
        bytes[3] += 8
        let p = try STUNPacket(bytes)
        #expect(p.verifyIntegrity(key: key).isValid)
        let m = try p.message()
        #expect(m.attributes.count == 2)
        #expect(m.software == nil)
        #expect(p.attributeCount == 2)
    }

    @Test("Lazy access on STUNPacket")
    func lazyAccess() throws {
        let p = try STUNPacket(RFC5769.request)
        #expect(try p.attribute(.username) == .username("evtj:h6vY"))
        #expect(try p.attribute(.realm) == nil)
        #expect(p.rawValue(of: .priority).map(Array.init) == [0x6E, 0x00, 0x01, 0xFF])
        #expect(p.rawAttributes.map(\.type) == [.software, .priority, .iceControlled, .username, .messageIntegrity, .fingerprint])
        #expect(try RFC5769.request.withUnsafeBytes { b throws(STUNDecodeError) in try STUNPacket.validate(b) } == p.header)
    }

    @Test("Legacy XOR-MAPPED-ADDRESS 0x8020 and MAPPED-ADDRESS fallback")
    func reflexiveFallback() throws {
        let a = STUNAddress("203.0.113.9:5000")!
        let xor = STUNMessage(type: .bindingSuccess, transactionID: RFC5769.tid, attributes: [.xorMappedAddress(a)]).encode()
        var legacy = xor
        legacy[20] = 0x80  // 0x0020 -> 0x8020
        #expect(try STUNMessage.decode(legacy).reflexiveAddress == a)
        let mapped = STUNMessage(type: .bindingSuccess, transactionID: RFC5769.tid, attributes: [.mappedAddress(a)])
        #expect(try STUNMessage.decode(mapped.encode()).reflexiveAddress == a)
    }

    @Test("Response builders keep method and transaction ID")
    func responses() {
        let req = STUNMessage(method: .refresh, class: .request, attributes: [.lifetime(0)])
        let ok = STUNMessage.successResponse(to: req, attributes: [.lifetime(0)])
        #expect(ok.type == STUNMessageType(method: .refresh, messageClass: .successResponse))
        #expect(ok.transactionID == req.transactionID)
        let err = STUNMessage.errorResponse(to: req, error: .allocationMismatch, attributes: [.software("x")])
        #expect(err.attributes == [.errorCode(.allocationMismatch), .software("x")])
        #expect(STUNTransactionID.random() != STUNTransactionID.random())
    }

    @Test("Address text forms")
    func addresses() {
        let cases: [(String, String)] = [
            ("192.0.2.1:3478", "192.0.2.1:3478"), ("[2001:db8::1]:1", "[2001:db8::1]:1"),
            ("[2001:0db8:0000:0000:0000:0000:0000:0001]:1", "[2001:db8::1]:1"), ("[::]:0", "[::]:0"),
            ("[::1]:9", "[::1]:9"), ("[1::]:9", "[1::]:9"), ("[1:0:0:2:0:0:0:3]:9", "[1:0:0:2::3]:9"),
            ("[::ffff:192.0.2.1]:5", "[::ffff:192.0.2.1]:5"), ("[::ffff:c000:201]:5", "[::ffff:192.0.2.1]:5"), ("[1:2:3:4:5:6:7:8]:5", "[1:2:3:4:5:6:7:8]:5"),
            ("[1:0:2:3:4:5:6:7]:5", "[1:0:2:3:4:5:6:7]:5"),
        ]
        for (input, canonical) in cases { #expect(STUNAddress(input)?.description == canonical, "\(input)") }
        for bad in ["1.2.3:4", "1.2.3.256:1", "[1::2::3]:4", "[1:2:3:4:5:6:7:8:9]:1", "1.2.3.4", "[::1]", "[::1]:70000", "x"] {
            #expect(STUNAddress(bad) == nil, "\(bad)")
        }
        #expect(STUNIPAddress("192.0.2.1") == .ipv4(0xC000_0201))
        #expect(STUNIPAddress(bytes: [192, 0, 2, 1]) == .ipv4(0xC000_0201))
        #expect(STUNIPAddress("2001:db8::1")?.bytes.count == 16)
    }

    @Test("SASLprep / OpaqueString subset")
    func stringPrep() {
        #expect(STUNStringPrep.saslPrep("user") == "user")
        #expect(STUNStringPrep.saslPrep("I\u{00AD}X") == "IX")  // RFC 4013 §3 examples
        #expect(STUNStringPrep.saslPrep("\u{00AA}") == "a")
        #expect(STUNStringPrep.saslPrep("\u{2168}") == "IX")
        #expect(STUNStringPrep.saslPrep("a\u{00A0}b") == "a b")
        #expect(STUNStringPrep.saslPrep("\u{0007}") == nil)
        #expect(STUNStringPrep.saslPrep("a\u{E000}") == nil)
        #expect(STUNStringPrep.opaqueString("caf\u{0065}\u{0301}") == "caf\u{00E9}")
        #expect(STUNStringPrep.opaqueString("") == nil)
    }

    @Test("CRC-32 check value")
    func crc() {
        #expect(crc32(Array("123456789".utf8)) == 0xCBF4_3926)
    }
}

@Suite("ChannelData and demultiplexing")
struct ChannelDataTests {
    @Test("ChannelData framing, padded and unpadded", arguments: [0, 1, 2, 3, 4, 5, 100])
    func framing(length: Int) throws {
        let data = [UInt8]((0..<length).map { UInt8(truncatingIfNeeded: $0 &+ 1) })
        let cd = ChannelData(channelNumber: 0x4001, data: data)
        let unpadded = cd.encode(padded: false)
        let padded = cd.encode(padded: true)
        #expect(unpadded.count == 4 + length)
        #expect(padded.count == 4 + ((length + 3) & ~3))
        #expect(padded[2] == UInt8(length >> 8) && padded[3] == UInt8(length & 0xFF))  // padding not counted
        #expect(padded[unpadded.count...].allSatisfy { $0 == 0 })  // padding zeroed
        #expect(try ChannelData.decode(unpadded) == cd)
        #expect(try ChannelData.decode(padded) == cd)  // padding accepted and stripped
        #expect(STUNMessage.isChannelData(padded) && !STUNMessage.isSTUN(padded))
        #expect(padded.withUnsafeBytes { STUNMessage.streamFrameSize($0) } == padded.count)
    }

    @Test("ChannelData errors")
    func errors() {
        func err(_ b: [UInt8]) -> STUNDecodeError? {
            do { _ = try ChannelData.decode(b); return nil } catch { return error }
        }
        #expect(err([0x40, 0x00, 0x00]) == .truncatedChannelData(declared: 4, available: 3))
        #expect(err([0x40, 0x00, 0x00, 0x05, 1, 2]) == .truncatedChannelData(declared: 9, available: 6))
        #expect(err([0x3F, 0xFF, 0x00, 0x00]) == .invalidChannelNumber(0x3FFF))
        #expect(err([0x50, 0x00, 0x00, 0x00]) == .invalidChannelNumber(0x5000))
        #expect(err([0x40, 0x00, 0x00, 0x01, 1, 0, 0, 0, 0]) == .trailingBytes(declared: 8, available: 9))
    }

    @Test("Demultiplexing and header peeking")
    func demux() {
        #expect(STUNMessage.isSTUN(RFC5769.request))
        #expect(!STUNMessage.isChannelData(RFC5769.request))
        #expect(STUNMessage.peekHeader(RFC5769.request)?.messageSize == RFC5769.request.count)
        #expect(STUNMessage.peekHeader(Array(RFC5769.request.prefix(20)))?.length == 0x58)  // header only: still peekable
        #expect(!STUNMessage.isSTUN(Array(RFC5769.request.prefix(40))))
        #expect(STUNMessage.peekHeader(Array(RFC5769.request.prefix(19))) == nil)
        #expect(STUNMessage.classify(firstByte: 0x00) == .stun)
        #expect(STUNMessage.classify(firstByte: 0x16) == .dtls)
        #expect(STUNMessage.classify(firstByte: 0x40) == .channelData)
        #expect(STUNMessage.classify(firstByte: 0x80) == .rtp)
        #expect(RFC5769.request.withUnsafeBytes { STUNMessage.streamFrameSize($0) } == 108)
        #expect([UInt8]([0, 1]).withUnsafeBytes { STUNMessage.streamFrameSize($0) } == nil)
        #expect([UInt8]([0xFF, 1, 0, 0]).withUnsafeBytes { STUNMessage.streamFrameSize($0) } == -1)
    }
}
