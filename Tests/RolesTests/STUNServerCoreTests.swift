import Testing
import STUNWire
@testable import Roles

/// The STUN server's protocol logic, without sockets.
struct STUNServerCoreTests {
    static let a = STUNIPAddress("203.0.113.3")!
    static let b = STUNIPAddress("203.0.113.4")!
    static let client = STUNAddress("198.51.100.7:40000")!
    static let rfc5780 = try! STUNServerCore(primary: a, alternate: b, port: 3478, software: "natlab test")
    static let single = try! STUNServerCore(primary: a, port: 3478, software: "natlab test")

    static func request(_ attributes: [STUNAttribute] = [], fingerprint: Bool = false,
                        type: STUNMessageType = .bindingRequest) -> (STUNTransactionID, [UInt8]) {
        let id = STUNTransactionID.random()
        return (id, STUNMessage(type: type, transactionID: id, attributes: attributes).encode(fingerprint: fingerprint))
    }

    /// Decodes a response, checking FINGERPRINT (the decoder verifies it) and that it is last.
    static func decode(_ bytes: [UInt8]) throws -> STUNMessage {
        let m = try STUNMessage.decode(bytes)
        #expect(m.attributes.last?.type == .fingerprint)
        return m
    }

    @Test("Binding with two addresses: XOR-MAPPED, MAPPED, RESPONSE-ORIGIN, OTHER-ADDRESS, SOFTWARE, FINGERPRINT")
    func bindingRFC5780() throws {
        let (id, req) = Self.request()
        for socket in 0..<4 {
            let (bytes, reply) = try #require(Self.rfc5780.respond(to: req, from: Self.client, on: socket))
            #expect(reply.socket == socket && reply.destination == Self.client && reply.toSource)
            let m = try Self.decode(bytes)
            #expect(m.type == .bindingSuccess && m.transactionID == id)
            #expect(m.xorMappedAddress == Self.client)
            #expect(m.mappedAddress == Self.client)
            #expect(m.first(.responseOrigin)?.addressValue == Self.rfc5780.endpoints[socket])
            #expect(m.first(.otherAddress)?.addressValue == Self.rfc5780.endpoints[socket ^ 3])
            #expect(m.software == "natlab test")
            #expect(bytes.count <= Self.rfc5780.maxResponseSize)
        }
        #expect(Self.rfc5780.endpoints.map(\.description) == ["203.0.113.3:3478", "203.0.113.3:3479", "203.0.113.4:3478", "203.0.113.4:3479"])
    }

    @Test("CHANGE-REQUEST picks the socket: change port, change IP, both")
    func changeRequest() throws {
        for (flags, expected) in [(STUNChangeRequest(), 0), (.changePort, 1), (.changeIP, 2), ([.changeIP, .changePort], 3)] as [(STUNChangeRequest, Int)] {
            let (_, req) = Self.request([.changeRequest(flags)], fingerprint: true)
            let (bytes, reply) = try #require(Self.rfc5780.respond(to: req, from: Self.client, on: 0))
            #expect(reply.socket == expected)
            let m = try Self.decode(bytes)
            #expect(m.first(.responseOrigin)?.addressValue == Self.rfc5780.endpoints[expected])
            #expect(m.first(.otherAddress)?.addressValue == Self.rfc5780.endpoints[3], "OTHER-ADDRESS is relative to the arrival socket")
        }
        // Arrived on B:p+1, change IP → A:p+1.
        let (_, req) = Self.request([.changeRequest(.changeIP)])
        #expect(Self.rfc5780.respond(to: req, from: Self.client, on: 3)?.reply.socket == 1)
    }

    @Test("RESPONSE-PORT sends to the client's IP at that port; PADDING is accepted")
    func responsePortAndPadding() throws {
        let (_, req) = Self.request([.responsePort(5555), .padding([UInt8](repeating: 0, count: 1500))])
        let (bytes, reply) = try #require(Self.rfc5780.respond(to: req, from: Self.client, on: 0))
        #expect(reply.destination == STUNAddress(ip: Self.client.ip, port: 5555) && !reply.toSource)
        #expect(try Self.decode(bytes).xorMappedAddress == Self.client)
        let (_, zero) = Self.request([.responsePort(0)])
        #expect(try Self.decode(#require(Self.rfc5780.respond(to: zero, from: Self.client)).bytes).errorCode?.code == 400)
    }

    @Test("one address: no OTHER-ADDRESS; CHANGE-REQUEST asking for a change gets 420, an empty one is fine")
    func singleAddress() throws {
        let (_, req) = Self.request()
        let m = try Self.decode(#require(Self.single.respond(to: req, from: Self.client)).bytes)
        #expect(m.first(.otherAddress) == nil && m.xorMappedAddress == Self.client)
        #expect(m.first(.responseOrigin)?.addressValue == Self.single.endpoints[0])
        let (id, change) = Self.request([.changeRequest(.changeIP)])
        let e = try Self.decode(#require(Self.single.respond(to: change, from: Self.client)).bytes)
        #expect(e.type == .bindingError && e.transactionID == id && e.errorCode?.code == 420)
        #expect(e.first(.unknownAttributes) == .unknownAttributes([0x0003]))
        let (_, noChange) = Self.request([.changeRequest([])])
        #expect(try Self.decode(#require(Self.single.respond(to: noChange, from: Self.client)).bytes).type == .bindingSuccess)
    }

    @Test("unknown comprehension-required attributes → 420 listing them; unknown optional ones are ignored")
    func unknownAttributes() throws {
        let (_, req) = Self.request([.unknown(type: 0x7F01, value: [1]), .unknown(type: 0xC001, value: [2, 3]),
                                      .unknown(type: 0x7F02, value: []), .unknown(type: 0x7F01, value: [])])
        let (bytes, reply) = try #require(Self.rfc5780.respond(to: req, from: Self.client, on: 2))
        #expect(reply.socket == 2)
        let m = try Self.decode(bytes)
        #expect(m.errorCode?.code == 420)
        #expect(m.first(.unknownAttributes) == .unknownAttributes([0x7F01, 0x7F02]))
        let (_, optional) = Self.request([.unknown(type: 0xC001, value: [2, 3])])
        #expect(try Self.decode(#require(Self.rfc5780.respond(to: optional, from: Self.client)).bytes).type == .bindingSuccess)
    }

    @Test("400: other methods, malformed CHANGE-REQUEST, CHANGE-REQUEST or RESPONSE-PORT over TCP")
    func badRequests() throws {
        let allocate = STUNMessageType(method: .allocate, messageClass: .request)
        let (_, alloc) = Self.request([.requestedTransport(17)], type: allocate)
        let m = try Self.decode(#require(Self.rfc5780.respond(to: alloc, from: Self.client)).bytes)
        #expect(m.type == STUNMessageType(method: .allocate, messageClass: .errorResponse) && m.errorCode?.code == 400)
        let (_, short) = Self.request([.unknown(type: 0x0003, value: [0, 0])])
        #expect(try Self.decode(#require(Self.rfc5780.respond(to: short, from: Self.client)).bytes).errorCode?.code == 400)
        for attr in [STUNAttribute.changeRequest(.changePort), .responsePort(4000)] {
            let (_, req) = Self.request([attr])
            #expect(try Self.decode(#require(Self.rfc5780.respond(to: req, from: Self.client, transport: .tcp)).bytes).errorCode?.code == 400)
        }
        let (_, plain) = Self.request()
        #expect(try Self.decode(#require(Self.rfc5780.respond(to: plain, from: Self.client, transport: .tcp)).bytes).type == .bindingSuccess)
    }

    @Test("nothing is sent for indications, responses, wrong FINGERPRINT, non-STUN and truncated input")
    func silence() throws {
        let (_, indication) = Self.request(type: .bindingIndication)
        let (_, response) = Self.request(type: .bindingSuccess)
        var (_, badFP) = Self.request(fingerprint: true)
        badFP[badFP.count - 1] ^= 1
        let (_, good) = Self.request()
        for input in [indication, response, badFP, Array(good.prefix(19)), good + [0, 0, 0, 0], [0x80] + good.dropFirst(), []] {
            #expect(Self.rfc5780.respond(to: input, from: Self.client) == nil)
        }
    }

    @Test("IPv6: XOR-MAPPED-ADDRESS XORs with cookie and transaction ID")
    func ipv6() throws {
        let core = try STUNServerCore(primary: STUNIPAddress("2001:db8::1")!, alternate: STUNIPAddress("2001:db8::2")!, port: 3478)
        let client = STUNAddress("[2001:db8:1::7]:50000")!
        let (_, req) = Self.request()
        let m = try Self.decode(#require(core.respond(to: req, from: client, on: 1)).bytes)
        #expect(m.xorMappedAddress == client && m.mappedAddress == client)
        #expect(m.first(.otherAddress)?.addressValue == STUNAddress("[2001:db8::2]:3478"))
        #expect(m.software == nil)
    }

    @Test("RFC 3489 request without magic cookie: MAPPED, SOURCE, CHANGED-ADDRESS, no FINGERPRINT")
    func legacy() throws {
        var req: [UInt8] = [0x00, 0x01, 0x00, 0x08]
        let tid: [UInt8] = (0..<16).map { UInt8($0 * 7 + 1) }
        req += tid + [0x00, 0x03, 0x00, 0x04, 0, 0, 0, 6]  // CHANGE-REQUEST ip+port
        let (bytes, reply) = try #require(Self.rfc5780.respond(to: req, from: Self.client, on: 0))
        #expect(reply.socket == 3)
        #expect(Array(bytes[0..<2]) == [0x01, 0x01] && Array(bytes[4..<20]) == tid)
        // Rewrite as an RFC 5389 message to decode the attributes with the codec.
        var rewritten = bytes
        rewritten.replaceSubrange(4..<8, with: [0x21, 0x12, 0xA4, 0x42])
        let m = try STUNMessage.decode(rewritten)
        #expect(m.mappedAddress == Self.client && m.xorMappedAddress == nil && !m.contains(.fingerprint))
        #expect(m.first(.sourceAddress)?.addressValue == Self.rfc5780.endpoints[3])
        #expect(m.first(.changedAddress)?.addressValue == Self.rfc5780.endpoints[3])
    }

    @Test("configuration errors")
    func configuration() {
        #expect(throws: STUNServerCore.ConfigurationError.familyMismatch) {
            try STUNServerCore(primary: Self.a, alternate: STUNIPAddress("::1")!)
        }
        #expect(throws: STUNServerCore.ConfigurationError.portOutOfRange(65535)) {
            try STUNServerCore(primary: Self.a, alternate: Self.b, port: 65535)
        }
        #expect(throws: STUNServerCore.ConfigurationError.sameAddressTwice) {
            try STUNServerCore(primary: Self.a, alternate: Self.a)
        }
    }

    @Test("random and mutated input never traps and never overruns maxResponseSize")
    func robustness() throws {
        var g = SystemRandomNumberGenerator()
        let (_, base) = Self.request([.changeRequest(.changeIP), .responsePort(7), .software("x")], fingerprint: true)
        for _ in 0..<20_000 {
            var input = base
            for _ in 0..<Int.random(in: 1...4, using: &g) {
                input[Int.random(in: 0..<input.count, using: &g)] = UInt8.random(in: 0...255, using: &g)
            }
            if Bool.random(using: &g) { input = Array(input.prefix(Int.random(in: 0...input.count, using: &g))) }
            if let r = Self.rfc5780.respond(to: input, from: Self.client, on: Int.random(in: 0..<4, using: &g)) {
                #expect(r.bytes.count <= Self.rfc5780.maxResponseSize)
                #expect((0..<4).contains(r.reply.socket))
            }
        }
    }
}
