// Attribute type numbers (IANA "STUN Attributes" registry).

/// A 16-bit attribute type. 0x0000–0x7FFF are comprehension-required, 0x8000–0xFFFF optional.
public struct STUNAttributeType: RawRepresentable, Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    public var isComprehensionRequired: Bool { rawValue < 0x8000 }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    // RFC 8489 (STUN)
    public static let mappedAddress = Self(0x0001)
    public static let responseAddress = Self(0x0002)  // RFC 3489/5780, deprecated
    public static let changeRequest = Self(0x0003)  // RFC 5780
    public static let sourceAddress = Self(0x0004)  // RFC 3489
    public static let changedAddress = Self(0x0005)  // RFC 3489
    public static let username = Self(0x0006)
    public static let messageIntegrity = Self(0x0008)
    public static let errorCode = Self(0x0009)
    public static let unknownAttributes = Self(0x000A)
    public static let realm = Self(0x0014)
    public static let nonce = Self(0x0015)
    public static let messageIntegritySHA256 = Self(0x001C)
    public static let passwordAlgorithm = Self(0x001D)
    public static let userhash = Self(0x001E)
    public static let xorMappedAddress = Self(0x0020)
    public static let passwordAlgorithms = Self(0x8002)
    public static let alternateDomain = Self(0x8003)
    public static let software = Self(0x8022)
    public static let alternateServer = Self(0x8023)
    public static let fingerprint = Self(0x8028)
    /// Pre-RFC 5389 servers (stuntman in RFC 3489 mode, old public servers) send XOR-MAPPED-ADDRESS here.
    public static let xorMappedAddressLegacy = Self(0x8020)
    // RFC 5780 (NAT behaviour discovery)
    public static let padding = Self(0x0026)
    public static let responsePort = Self(0x0027)
    public static let responseOrigin = Self(0x802B)
    public static let otherAddress = Self(0x802C)
    // RFC 8656 (TURN) and RFC 6062
    public static let channelNumber = Self(0x000C)
    public static let lifetime = Self(0x000D)
    public static let xorPeerAddress = Self(0x0012)
    public static let data = Self(0x0013)
    public static let xorRelayedAddress = Self(0x0016)
    public static let requestedAddressFamily = Self(0x0017)
    public static let evenPort = Self(0x0018)
    public static let requestedTransport = Self(0x0019)
    public static let dontFragment = Self(0x001A)
    public static let reservationToken = Self(0x0022)
    public static let connectionID = Self(0x002A)
    public static let additionalAddressFamily = Self(0x8000)
    public static let addressErrorCode = Self(0x8001)
    public static let icmp = Self(0x8004)
    // RFC 8445 (ICE)
    public static let priority = Self(0x0024)
    public static let useCandidate = Self(0x0025)
    public static let iceControlled = Self(0x8029)
    public static let iceControlling = Self(0x802A)

    public var name: String? {
        switch self {
        case .mappedAddress: "MAPPED-ADDRESS"
        case .responseAddress: "RESPONSE-ADDRESS"
        case .changeRequest: "CHANGE-REQUEST"
        case .sourceAddress: "SOURCE-ADDRESS"
        case .changedAddress: "CHANGED-ADDRESS"
        case .username: "USERNAME"
        case .messageIntegrity: "MESSAGE-INTEGRITY"
        case .errorCode: "ERROR-CODE"
        case .unknownAttributes: "UNKNOWN-ATTRIBUTES"
        case .realm: "REALM"
        case .nonce: "NONCE"
        case .messageIntegritySHA256: "MESSAGE-INTEGRITY-SHA256"
        case .passwordAlgorithm: "PASSWORD-ALGORITHM"
        case .userhash: "USERHASH"
        case .xorMappedAddress: "XOR-MAPPED-ADDRESS"
        case .passwordAlgorithms: "PASSWORD-ALGORITHMS"
        case .alternateDomain: "ALTERNATE-DOMAIN"
        case .software: "SOFTWARE"
        case .alternateServer: "ALTERNATE-SERVER"
        case .fingerprint: "FINGERPRINT"
        case .xorMappedAddressLegacy: "XOR-MAPPED-ADDRESS(0x8020)"
        case .padding: "PADDING"
        case .responsePort: "RESPONSE-PORT"
        case .responseOrigin: "RESPONSE-ORIGIN"
        case .otherAddress: "OTHER-ADDRESS"
        case .channelNumber: "CHANNEL-NUMBER"
        case .lifetime: "LIFETIME"
        case .xorPeerAddress: "XOR-PEER-ADDRESS"
        case .data: "DATA"
        case .xorRelayedAddress: "XOR-RELAYED-ADDRESS"
        case .requestedAddressFamily: "REQUESTED-ADDRESS-FAMILY"
        case .evenPort: "EVEN-PORT"
        case .requestedTransport: "REQUESTED-TRANSPORT"
        case .dontFragment: "DONT-FRAGMENT"
        case .reservationToken: "RESERVATION-TOKEN"
        case .connectionID: "CONNECTION-ID"
        case .additionalAddressFamily: "ADDITIONAL-ADDRESS-FAMILY"
        case .addressErrorCode: "ADDRESS-ERROR-CODE"
        case .icmp: "ICMP"
        case .priority: "PRIORITY"
        case .useCandidate: "USE-CANDIDATE"
        case .iceControlled: "ICE-CONTROLLED"
        case .iceControlling: "ICE-CONTROLLING"
        default: nil
        }
    }

    public var description: String {
        let h = String(rawValue, radix: 16, uppercase: true)
        let hex = "0x" + String(repeating: "0", count: max(0, 4 - h.count)) + h
        return name.map { "\($0)(\(hex))" } ?? hex
    }
}
