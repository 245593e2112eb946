// Credentials and MESSAGE-INTEGRITY / MESSAGE-INTEGRITY-SHA256 (RFC 8489 §9, §14.5, §14.6).
import Crypto

/// How text is prepared before it enters a key.
public enum STUNStringPreparation: Sendable, Hashable {
    /// No preparation: what coturn and aioice do.
    case none
    /// RFC 4013 SASLprep on the password (RFC 5389 formula; what the RFC 5769 §2.4 vector needs).
    case saslPrep
    /// RFC 8265 OpaqueString on realm and password (RFC 8489 formula), subset: see `STUNStringPrep`.
    case opaqueString
}

/// The key of an HMAC in MESSAGE-INTEGRITY(-SHA256).
public struct STUNIntegrityKey: Sendable, Hashable {
    public let bytes: [UInt8]
    private let box: KeyBox

    public init(bytes: [UInt8]) {
        self.bytes = bytes
        self.box = KeyBox(sha1: KeyedHMAC(key: bytes), sha256: KeyedHMAC(key: bytes))
    }

    /// HMAC states with the key already absorbed: each message copies one (a value) instead of
    /// re-deriving the padded key.
    private struct KeyBox: Sendable {
        let sha1: KeyedHMAC<Insecure.SHA1>
        let sha256: KeyedHMAC<SHA256>
    }

    var hmacSHA1: KeyedHMAC<Insecure.SHA1> { box.sha1 }
    var hmacSHA256: KeyedHMAC<SHA256> { box.sha256 }

    public static func == (a: Self, b: Self) -> Bool { a.bytes == b.bytes }
    public func hash(into h: inout Hasher) { h.combine(bytes) }

    /// Short-term credentials (RFC 8489 §9.1.2; ICE connectivity checks): key = the prepared password.
    /// ICE passwords are ASCII `ice-char`s, on which every preparation is the identity.
    public static func shortTerm(password: String, preparation: STUNStringPreparation = .saslPrep) -> STUNIntegrityKey {
        let p: String
        switch preparation {
        case .none: p = password
        case .saslPrep: p = STUNStringPrep.saslPrep(password) ?? password
        case .opaqueString: p = STUNStringPrep.opaqueString(password) ?? password
        }
        return STUNIntegrityKey(bytes: Array(p.utf8))
    }

    /// Long-term credentials (RFC 8489 §9.2.2): key = H(username ":" realm ":" password), H = MD5 or
    /// SHA-256 as chosen by PASSWORD-ALGORITHM. Preparation that rejects a string (prohibited
    /// characters) falls back to the unprepared string.
    public static func longTerm(username: String, realm: String, password: String,
                                algorithm: STUNPasswordAlgorithm = .md5,
                                preparation: STUNStringPreparation = .saslPrep) -> STUNIntegrityKey {
        var r = realm, p = password
        switch preparation {
        case .none: break
        case .saslPrep: p = STUNStringPrep.saslPrep(password) ?? password
        case .opaqueString:
            r = STUNStringPrep.opaqueString(realm) ?? realm
            p = STUNStringPrep.opaqueString(password) ?? password
        }
        let input = Array("\(username):\(r):\(p)".utf8)
        if algorithm.number == STUNPasswordAlgorithm.sha256.number {
            return STUNIntegrityKey(bytes: Array(SHA256.hash(data: input)))
        }
        return STUNIntegrityKey(bytes: Array(Insecure.MD5.hash(data: input)))
    }
}

/// USERHASH (RFC 8489 §14.4): SHA-256(username ":" realm), both OpaqueString-prepared.
public func stunUserhash(username: String, realm: String) -> [UInt8] {
    let u = STUNStringPrep.opaqueString(username) ?? username
    let r = STUNStringPrep.opaqueString(realm) ?? realm
    return Array(SHA256.hash(data: Array("\(u):\(r)".utf8)))
}

/// Which integrity attributes the encoder appends.
public enum STUNIntegrityMode: Sendable, Hashable {
    /// MESSAGE-INTEGRITY (HMAC-SHA1, 20 bytes).
    case sha1
    /// MESSAGE-INTEGRITY-SHA256 truncated to `length` bytes (16–32, multiple of 4).
    case sha256(length: Int = 32)
    /// Both, MESSAGE-INTEGRITY first (RFC 8489 §14.6 allows MESSAGE-INTEGRITY-SHA256 after it).
    case both(sha256Length: Int = 32)
}

/// Result of checking a message's integrity.
public enum STUNIntegrityStatus: Sendable, Hashable {
    /// Neither MESSAGE-INTEGRITY nor MESSAGE-INTEGRITY-SHA256 is present.
    case missing
    /// The HMAC matches; `sha256` says which attribute was checked.
    case valid(sha256: Bool)
    /// The HMAC does not match.
    case invalid(sha256: Bool)

    public var isValid: Bool { if case .valid = self { true } else { false } }
}

/// HMAC over `message[0..<attributeOffset]` with the header length field set to
/// `attributeOffset + 4 + macLength - 20` (RFC 8489 §14.5/§14.6): the value that goes into the
/// integrity attribute at `attributeOffset`.
func integrityHMAC(_ message: UnsafeRawBufferPointer, attributeOffset o: Int, sha256: Bool, macLength: Int,
                   key: STUNIntegrityKey) -> [UInt8] {
    // The first 4 header bytes with the adjusted length; the rest of the message is hashed in place.
    let adjusted = UInt16(truncatingIfNeeded: o + 4 + macLength - stunHeaderSize)
    let head: UInt32 = UInt32(message[0]) << 24 | UInt32(message[1]) << 16 | UInt32(adjusted)
    return withUnsafeBytes(of: head.bigEndian) { first in
        let rest = UnsafeRawBufferPointer(rebasing: message[4..<o])
        if sha256 {
            return Array(key.hmacSHA256.authenticationCode(first, rest).prefix(macLength))
        }
        return key.hmacSHA1.authenticationCode(first, rest)
    }
}

/// Constant-time comparison.
func constantTimeEqual(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    var d: UInt8 = 0
    for (x, y) in zip(a, b) { d |= x ^ y }
    return d == 0
}

extension STUNPacket {
    /// Checks MESSAGE-INTEGRITY-SHA256 when present (the stronger one), else MESSAGE-INTEGRITY, over
    /// the original bytes with the length adjustment of RFC 8489 §14.5/§14.6.
    public func verifyIntegrity(key: STUNIntegrityKey) -> STUNIntegrityStatus {
        if let ok = verifyMessageIntegritySHA256(key: key) { return ok ? .valid(sha256: true) : .invalid(sha256: true) }
        if let ok = verifyMessageIntegrity(key: key) { return ok ? .valid(sha256: false) : .invalid(sha256: false) }
        return .missing
    }

    /// nil when MESSAGE-INTEGRITY is absent.
    public func verifyMessageIntegrity(key: STUNIntegrityKey) -> Bool? {
        guard let o = messageIntegrityOffset else { return nil }
        return bytes.withUnsafeBytes { b in
            constantTimeEqual(integrityHMAC(b, attributeOffset: o, sha256: false, macLength: 20, key: key), b[(o + 4)..<(o + 24)])
        }
    }

    /// nil when MESSAGE-INTEGRITY-SHA256 is absent.
    public func verifyMessageIntegritySHA256(key: STUNIntegrityKey) -> Bool? {
        guard let o = messageIntegritySHA256Offset else { return nil }
        return bytes.withUnsafeBytes { b in
            let l = Int(b.u16(o + 2))
            return constantTimeEqual(integrityHMAC(b, attributeOffset: o, sha256: true, macLength: l, key: key), b[(o + 4)..<(o + 4 + l)])
        }
    }
}
