// ERROR-CODE values (RFC 8489 §14.8, RFC 8656 §19, RFC 8445 §7.3.1.1).

/// An ERROR-CODE: class (3–6) × 100 + number (0–99), and a UTF-8 reason phrase (< 128 characters).
public struct STUNErrorCode: Sendable, Hashable, CustomStringConvertible {
    /// 300…699.
    public var code: Int
    public var reason: String

    public init(code: Int, reason: String) {
        self.code = code
        self.reason = reason
    }

    /// Uses the standard reason phrase for the code, or "Error" when there is none.
    public init(code: Int) {
        self.init(code: code, reason: STUNErrorCode.standardReason(code) ?? "Error")
    }

    /// The hundreds digit (3–6).
    public var errorClass: Int { code / 100 }
    /// The last two digits (0–99).
    public var number: Int { code % 100 }

    public var description: String { "\(code) \(reason)" }

    public static let tryAlternate = STUNErrorCode(code: 300)
    public static let badRequest = STUNErrorCode(code: 400)
    public static let unauthenticated = STUNErrorCode(code: 401)
    public static let forbidden = STUNErrorCode(code: 403)
    public static let mobilityForbidden = STUNErrorCode(code: 405)
    public static let unknownAttribute = STUNErrorCode(code: 420)
    public static let allocationMismatch = STUNErrorCode(code: 437)
    public static let staleNonce = STUNErrorCode(code: 438)
    public static let addressFamilyNotSupported = STUNErrorCode(code: 440)
    public static let wrongCredentials = STUNErrorCode(code: 441)
    public static let unsupportedTransportProtocol = STUNErrorCode(code: 442)
    public static let peerAddressFamilyMismatch = STUNErrorCode(code: 443)
    public static let allocationQuotaReached = STUNErrorCode(code: 486)
    public static let roleConflict = STUNErrorCode(code: 487)
    public static let serverError = STUNErrorCode(code: 500)
    public static let insufficientCapacity = STUNErrorCode(code: 508)

    /// Reason phrases suggested by the RFCs.
    public static func standardReason(_ code: Int) -> String? {
        switch code {
        case 300: "Try Alternate"
        case 400: "Bad Request"
        case 401: "Unauthenticated"
        case 403: "Forbidden"
        case 405: "Mobility Forbidden"
        case 420: "Unknown Attribute"
        case 437: "Allocation Mismatch"
        case 438: "Stale Nonce"
        case 440: "Address Family not Supported"
        case 441: "Wrong Credentials"
        case 442: "Unsupported Transport Protocol"
        case 443: "Peer Address Family Mismatch"
        case 446: "Connection Already Exists"
        case 447: "Connection Timeout or Failure"
        case 486: "Allocation Quota Reached"
        case 487: "Role Conflict"
        case 500: "Server Error"
        case 508: "Insufficient Capacity"
        default: nil
        }
    }
}
