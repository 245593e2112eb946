// Typed STUN/TURN/ICE attributes.

/// A password algorithm (RFC 8489 §14.11–14.12): number and parameters.
public struct STUNPasswordAlgorithm: Sendable, Hashable, CustomStringConvertible {
    public var number: UInt16
    public var parameters: [UInt8]

    public init(number: UInt16, parameters: [UInt8] = []) {
        self.number = number
        self.parameters = parameters
    }

    public static let md5 = STUNPasswordAlgorithm(number: 0x0001)
    public static let sha256 = STUNPasswordAlgorithm(number: 0x0002)

    public var description: String {
        switch number {
        case 1: "MD5"
        case 2: "SHA-256"
        default: "PasswordAlgorithm(\(number))"
        }
    }
}

/// CHANGE-REQUEST flags (RFC 5780 §7.2).
public struct STUNChangeRequest: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let changeIP = STUNChangeRequest(rawValue: 0x4)
    public static let changePort = STUNChangeRequest(rawValue: 0x2)
}

/// A STUN attribute. Addresses in XOR-* attributes are stored un-XORed; the codec applies the
/// XOR with the message's magic cookie and transaction ID.
///
/// Fixed-layout attributes ignore their reserved (RFFU) bits on decode and write zeros on encode.
public enum STUNAttribute: Sendable, Hashable {
    // STUN (RFC 8489)
    case mappedAddress(STUNAddress)
    case xorMappedAddress(STUNAddress)
    case username(String)
    /// 32 bytes: SHA-256(username ":" realm).
    case userhash([UInt8])
    /// 20 bytes of HMAC-SHA1. When encoding, prefer the encoder's `integrity:` option, which computes it.
    case messageIntegrity([UInt8])
    /// 16–32 bytes (multiple of 4) of HMAC-SHA256.
    case messageIntegritySHA256([UInt8])
    /// CRC-32 XOR 0x5354554E. The encoder always recomputes it: the value given here is ignored.
    case fingerprint(UInt32)
    case errorCode(STUNErrorCode)
    case realm(String)
    case nonce(String)
    case passwordAlgorithms([STUNPasswordAlgorithm])
    case passwordAlgorithm(STUNPasswordAlgorithm)
    case unknownAttributes([UInt16])
    case software(String)
    case alternateServer(STUNAddress)
    case alternateDomain(String)
    // RFC 5780
    case changeRequest(STUNChangeRequest)
    case responseOrigin(STUNAddress)
    case otherAddress(STUNAddress)
    case responsePort(UInt16)
    case padding([UInt8])
    // RFC 3489 (answers to cookie-less clients; RFC 5780 servers may still see them)
    case sourceAddress(STUNAddress)
    case changedAddress(STUNAddress)
    // TURN (RFC 8656, RFC 6062)
    case channelNumber(UInt16)
    case lifetime(UInt32)
    case xorPeerAddress(STUNAddress)
    case data([UInt8])
    case xorRelayedAddress(STUNAddress)
    case requestedAddressFamily(STUNAddressFamily)
    /// R bit: reserve the next-higher port as well.
    case evenPort(reserveNext: Bool)
    /// IANA protocol number: 17 = UDP, 6 = TCP.
    case requestedTransport(UInt8)
    case dontFragment
    case reservationToken(UInt64)
    case additionalAddressFamily(STUNAddressFamily)
    case addressErrorCode(family: STUNAddressFamily, error: STUNErrorCode)
    /// ICMP type (7 bits), code (9 bits) and error data (RFC 8656 §18.13).
    case icmp(type: UInt8, code: UInt16, errorData: UInt32)
    case connectionID(UInt32)
    // ICE (RFC 8445)
    case priority(UInt32)
    case useCandidate
    case iceControlled(tieBreaker: UInt64)
    case iceControlling(tieBreaker: UInt64)
    /// Any other attribute, value kept byte for byte (without padding).
    case unknown(type: UInt16, value: [UInt8])

    public var type: STUNAttributeType {
        switch self {
        case .mappedAddress: .mappedAddress
        case .xorMappedAddress: .xorMappedAddress
        case .username: .username
        case .userhash: .userhash
        case .messageIntegrity: .messageIntegrity
        case .messageIntegritySHA256: .messageIntegritySHA256
        case .fingerprint: .fingerprint
        case .errorCode: .errorCode
        case .realm: .realm
        case .nonce: .nonce
        case .passwordAlgorithms: .passwordAlgorithms
        case .passwordAlgorithm: .passwordAlgorithm
        case .unknownAttributes: .unknownAttributes
        case .software: .software
        case .alternateServer: .alternateServer
        case .alternateDomain: .alternateDomain
        case .changeRequest: .changeRequest
        case .responseOrigin: .responseOrigin
        case .otherAddress: .otherAddress
        case .responsePort: .responsePort
        case .padding: .padding
        case .sourceAddress: .sourceAddress
        case .changedAddress: .changedAddress
        case .channelNumber: .channelNumber
        case .lifetime: .lifetime
        case .xorPeerAddress: .xorPeerAddress
        case .data: .data
        case .xorRelayedAddress: .xorRelayedAddress
        case .requestedAddressFamily: .requestedAddressFamily
        case .evenPort: .evenPort
        case .requestedTransport: .requestedTransport
        case .dontFragment: .dontFragment
        case .reservationToken: .reservationToken
        case .additionalAddressFamily: .additionalAddressFamily
        case .addressErrorCode: .addressErrorCode
        case .icmp: .icmp
        case .connectionID: .connectionID
        case .priority: .priority
        case .useCandidate: .useCandidate
        case .iceControlled: .iceControlled
        case .iceControlling: .iceControlling
        case .unknown(let t, _): STUNAttributeType(t)
        }
    }

    /// Whether the attribute type is one this codec decodes into a typed case.
    public static func isKnown(_ type: STUNAttributeType) -> Bool {
        switch type.rawValue {
        case 0x0001, 0x0003...0x0006, 0x0008...0x000A, 0x000C, 0x000D, 0x0012...0x001A, 0x001C...0x001E, 0x0020,
             0x0022, 0x0024...0x0027, 0x002A, 0x8000...0x8004, 0x8022, 0x8023, 0x8028...0x802C:
            true
        default:
            false
        }
    }
}

extension STUNAttribute: CustomStringConvertible {
    public var description: String {
        let name = type.name ?? type.description
        func hex(_ b: [UInt8]) -> String { b.count <= 32 ? b.hexString : "<\(b.count) bytes>" }
        switch self {
        case .mappedAddress(let a), .xorMappedAddress(let a), .alternateServer(let a), .responseOrigin(let a),
             .otherAddress(let a), .sourceAddress(let a), .changedAddress(let a), .xorPeerAddress(let a),
             .xorRelayedAddress(let a):
            return "\(name) \(a)"
        case .username(let s), .realm(let s), .nonce(let s), .software(let s), .alternateDomain(let s):
            return "\(name) \"\(s)\""
        case .userhash(let b), .messageIntegrity(let b), .messageIntegritySHA256(let b), .padding(let b), .data(let b):
            return "\(name) \(hex(b))"
        case .fingerprint(let v): return "\(name) 0x\(String(v, radix: 16))"
        case .errorCode(let e): return "\(name) \(e)"
        case .passwordAlgorithms(let l): return "\(name) \(l)"
        case .passwordAlgorithm(let a): return "\(name) \(a)"
        case .unknownAttributes(let l): return "\(name) \(l.map { STUNAttributeType($0).description })"
        case .changeRequest(let f):
            return "\(name)" + (f.contains(.changeIP) ? " change-ip" : "") + (f.contains(.changePort) ? " change-port" : "")
        case .responsePort(let p): return "\(name) \(p)"
        case .channelNumber(let c): return "\(name) 0x\(String(c, radix: 16))"
        case .lifetime(let v), .priority(let v), .connectionID(let v): return "\(name) \(v)"
        case .requestedAddressFamily(let f), .additionalAddressFamily(let f): return "\(name) \(f)"
        case .evenPort(let r): return "\(name)" + (r ? " R" : "")
        case .requestedTransport(let p): return "\(name) \(p)"
        case .dontFragment, .useCandidate: return name
        case .reservationToken(let v): return "\(name) 0x\(String(v, radix: 16))"
        case .addressErrorCode(let f, let e): return "\(name) \(f) \(e)"
        case .icmp(let t, let c, let d): return "\(name) type \(t) code \(c) data \(d)"
        case .iceControlled(let v), .iceControlling(let v): return "\(name) 0x\(String(v, radix: 16))"
        case .unknown(_, let b): return "\(name) \(hex(b))"
        }
    }
}
