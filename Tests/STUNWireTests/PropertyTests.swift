import Testing
import STUNWire

/// Random, valid attributes (everything but the integrity attributes and FINGERPRINT).
func randomAttribute(_ g: inout SeededRNG) -> STUNAttribute {
    func bytes(_ max: Int) -> [UInt8] { (0..<Int.random(in: 0...max, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) } }
    func text(_ maxBytes: Int) -> String {
        let pools: [ClosedRange<UInt32>] = [0x20...0x7E, 0xA1...0x2FF, 0x3040...0x30FF, 0x1F600...0x1F64F]
        var s = String.UnicodeScalarView()
        var size = 0
        for _ in 0..<Int.random(in: 0...40, using: &g) {
            let u = Unicode.Scalar(UInt32.random(in: pools.randomElement(using: &g)!, using: &g))!
            size += String(u).utf8.count
            if size > maxBytes { break }
            s.append(u)
        }
        return String(s)
    }
    func address() -> STUNAddress {
        let ip: STUNIPAddress = Bool.random(using: &g) ? .ipv4(g.next32()) : .ipv6(high: g.next(), low: g.next())
        return STUNAddress(ip: ip, port: UInt16.random(in: 0...UInt16.max, using: &g))
    }
    func errorCode() -> STUNErrorCode { STUNErrorCode(code: Int.random(in: 300...699, using: &g), reason: text(120)) }
    func algorithm() -> STUNPasswordAlgorithm { STUNPasswordAlgorithm(number: UInt16.random(in: 0...9, using: &g), parameters: bytes(9)) }

    switch Int.random(in: 0..<44, using: &g) {
    case 0: return .mappedAddress(address())
    case 1: return .xorMappedAddress(address())
    case 2: return .username(text(500))
    case 3: return .userhash((0..<32).map { _ in UInt8.random(in: 0...255, using: &g) })
    case 4: return .errorCode(errorCode())
    case 5: return .realm(text(200))
    case 6: return .nonce(text(200))
    case 7: return .passwordAlgorithms((0..<Int.random(in: 0...3, using: &g)).map { _ in algorithm() })
    case 8: return .passwordAlgorithm(algorithm())
    case 9: return .unknownAttributes((0..<Int.random(in: 0...5, using: &g)).map { _ in UInt16.random(in: 0...0xFFFF, using: &g) })
    case 10: return .software(text(100))
    case 11: return .alternateServer(address())
    case 12: return .alternateDomain(text(60))
    case 13: return .changeRequest(STUNChangeRequest(rawValue: UInt32.random(in: 0...3, using: &g) << 1))
    case 14: return .responseOrigin(address())
    case 15: return .otherAddress(address())
    case 16: return .responsePort(UInt16.random(in: 0...UInt16.max, using: &g))
    case 17: return .padding(bytes(64))
    case 18: return .sourceAddress(address())
    case 19: return .changedAddress(address())
    case 20: return .channelNumber(UInt16.random(in: 0x4000...0x4FFF, using: &g))
    case 21: return .lifetime(g.next32())
    case 22: return .xorPeerAddress(address())
    case 23: return .data(bytes(200))
    case 24: return .xorRelayedAddress(address())
    case 25: return .requestedAddressFamily(Bool.random(using: &g) ? .ipv4 : .ipv6)
    case 26: return .evenPort(reserveNext: Bool.random(using: &g))
    case 27: return .requestedTransport(UInt8.random(in: 0...255, using: &g))
    case 28: return .dontFragment
    case 29: return .reservationToken(g.next())
    case 30: return .additionalAddressFamily(Bool.random(using: &g) ? .ipv4 : .ipv6)
    case 31: return .addressErrorCode(family: Bool.random(using: &g) ? .ipv4 : .ipv6, error: errorCode())
    case 32: return .icmp(type: UInt8.random(in: 0...127, using: &g), code: UInt16.random(in: 0...511, using: &g), errorData: g.next32())
    case 33: return .connectionID(g.next32())
    case 34: return .priority(g.next32())
    case 35: return .useCandidate
    case 36: return .iceControlled(tieBreaker: g.next())
    case 37: return .iceControlling(tieBreaker: g.next())
    default:
        var t: UInt16
        repeat { t = UInt16.random(in: 0...0xFFFF, using: &g) } while STUNAttribute.isKnown(STUNAttributeType(t))
        return .unknown(type: t, value: bytes(40))
    }
}

extension SeededRNG {
    mutating func next32() -> UInt32 { UInt32(truncatingIfNeeded: next() as UInt64) }
}

func randomMessage(_ g: inout SeededRNG) -> STUNMessage {
    let methods: [STUNMethod] = [.binding, .allocate, .refresh, .send, .data, .createPermission, .channelBind,
                                 STUNMethod(rawValue: UInt16.random(in: 0...0xFFF, using: &g))]
    let type = STUNMessageType(method: methods.randomElement(using: &g)!, messageClass: STUNClass.allCases.randomElement(using: &g)!)
    let attributes = (0..<Int.random(in: 0...12, using: &g)).map { _ in randomAttribute(&g) }
    return STUNMessage(type: type, transactionID: .random(using: &g), attributes: attributes)
}

@Suite("Properties")
struct PropertyTests {
    @Test("decode(encode(m)) == m for random messages (seeded)", arguments: [UInt64(1), 2, 3, 4])
    func roundTrip(seed: UInt64) throws {
        var g = SeededRNG(seed: seed)
        for _ in 0..<500 {
            let m = randomMessage(&g)
            let pad = UInt8.random(in: 0...255, using: &g)
            let bytes = m.encode(paddingByte: pad)
            #expect(bytes.count % 4 == 0)
            let decoded = try STUNMessage.decode(bytes)
            #expect(decoded == m)
            if decoded != m { return }
        }
    }

    @Test("Signed random messages verify, carry MI/MI-SHA256 + FINGERPRINT, and stay decodable (seeded)")
    func signed() throws {
        var g = SeededRNG(seed: 99)
        for i in 0..<300 {
            let m = randomMessage(&g)
            let key = STUNIntegrityKey(bytes: (0..<Int.random(in: 1...40, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) })
            let modes: [STUNIntegrityMode] = [.sha1, .sha256(), .sha256(length: 20), .both(sha256Length: 24)]
            let mode = modes[i % modes.count]
            let bytes = m.encode(integrity: key, integrityMode: mode, fingerprint: true)
            let p = try STUNPacket(bytes)
            #expect(p.verifyIntegrity(key: key).isValid)
            let d = try p.message()
            #expect(Array(d.attributes.prefix(m.attributes.count)) == m.attributes)
            if case .fingerprint = d.attributes.last {} else { Issue.record("FINGERPRINT not last") }
            // A flipped bit is never accepted with valid integrity, except inside FINGERPRINT itself
            // (a FINGERPRINT whose type bits flip becomes an attribute after MESSAGE-INTEGRITY, ignored).
            var flipped = bytes
            let at = Int.random(in: 20..<bytes.count, using: &g)
            flipped[at] ^= 1 << UInt8.random(in: 0...7, using: &g)
            if let q = try? STUNPacket(flipped), q.verifyIntegrity(key: key).isValid {
                #expect(at >= p.fingerprintOffset!, "flip at \(at) accepted")
            }
        }
    }
}
