// TURN relay configuration and long-term credentials (RFC 8656, RFC 8489 §9.2; coturn's
// `use-auth-secret` REST-style credentials).
import Crypto
import Foundation
import STUNWire

/// An IPv4 range (`10.0.0.0/8`), for peers the relay refuses to reach.
public struct TURNAddressRange: Sendable, Hashable, CustomStringConvertible {
    public var network: UInt32
    public var prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, case .ipv4(let ip)? = STUNIPAddress(String(parts[0])) else { return nil }
        let p = parts.count == 2 ? Int(parts[1]) : 32
        guard let p, (0...32).contains(p) else { return nil }
        prefix = p
        network = ip & Self.mask(p)
    }

    static func mask(_ p: Int) -> UInt32 { p == 0 ? 0 : ~UInt32(0) << (32 - p) }

    public func contains(_ ip: STUNIPAddress) -> Bool {
        guard case .ipv4(let v) = ip else { return false }
        return v & Self.mask(prefix) == network
    }

    public var description: String { "\(STUNIPAddress.ipv4(network))/\(prefix)" }

    /// What the relay refuses by default besides its own addresses: "this network", loopback,
    /// multicast and the reserved/broadcast block (coturn likewise refuses loopback and multicast
    /// peers unless told otherwise).
    public static let defaultDenied: [TURNAddressRange] = ["0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/3"].compactMap { TURNAddressRange($0) }
}

/// How users prove who they are: a fixed user list, or coturn-style time-limited credentials
/// derived from a shared secret (username = `expiry[:user]`, password = base64(HMAC-SHA1(secret, username))).
public enum TURNCredentials: Sendable, Equatable {
    case users([String: String])
    case staticSecret(String)

    /// The password for `username` at wall-clock time `wall` (Unix seconds), or nil when the user is
    /// unknown or the time-limited credential has expired.
    public func password(for username: String, wall: Double) -> String? {
        switch self {
        case .users(let users):
            return users[username]
        case .staticSecret(let secret):
            let stamp = username.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
            guard let expiry = Double(stamp), expiry >= wall else { return nil }
            return Self.restPassword(secret: secret, username: username)
        }
    }

    /// base64(HMAC-SHA1(secret, username)), as coturn's `--use-auth-secret` and `turnutils_uclient -W`.
    public static func restPassword(secret: String, username: String) -> String {
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Array(username.utf8), using: SymmetricKey(data: Array(secret.utf8)))
        return Data(mac).base64EncodedString()
    }
}

public struct TURNConfig: Sendable {
    public var realm: String = "natlab"
    public var credentials: TURNCredentials = .users([:])
    /// The relayed transport address's IP (IPv4).
    public var relayAddress: STUNIPAddress
    /// Relay ports handed out (RFC 8656 suggests 49152–65535).
    public var relayPorts: ClosedRange<UInt16> = 49152...65535
    public var defaultLifetime: UInt32 = 600
    public var maxLifetime: UInt32 = 3600
    public var permissionLifetime: Double = 300
    public var channelLifetime: Double = 600
    /// Nonces expire after this many seconds (then 438 Stale Nonce).
    public var nonceLifetime: Double = 600
    /// Allocations one username may hold at once (486 beyond); 0: unlimited.
    public var userQuota: Int = 0
    /// Allocations the server holds at once (508 beyond); 0: only the port range limits.
    public var totalQuota: Int = 0
    /// Peers the relay never reaches (403 on CreatePermission/ChannelBind, Send dropped).
    public var deniedPeers: [TURNAddressRange] = TURNAddressRange.defaultDenied
    /// The server's own addresses (listening and relayed): never a peer.
    public var ownAddresses: Set<STUNIPAddress> = []
    /// SOFTWARE in responses; nil: none.
    public var software: String? = "natlab"
    /// How long a RESERVATION-TOKEN holds the next port.
    public var reservationLifetime: Double = 30
    /// Deleted and expired allocations kept in the statistics.
    public var historyLimit: Int = 256

    public init(relayAddress: STUNIPAddress) {
        self.relayAddress = relayAddress
    }
}

/// Time as the relay core sees it: a monotonic clock for lifetimes and the wall clock for
/// time-limited credentials and the statistics. Injected, so tests drive expiry without waiting.
public struct TURNTime: Sendable, Hashable {
    /// Seconds on a monotonic clock.
    public var monotonic: Double
    /// Unix seconds.
    public var wall: Double
    public init(monotonic: Double, wall: Double) {
        self.monotonic = monotonic
        self.wall = wall
    }

    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Wall time minus monotonic time, taken once (a wall-clock step does not move lifetimes).
    static let wallOffset: Double = Date().timeIntervalSince1970 - monotonicSeconds()

    /// The real clocks.
    public static func now() -> TURNTime {
        let m = monotonicSeconds()
        return TURNTime(monotonic: m, wall: m + wallOffset)
    }

    public func advanced(by s: Double) -> TURNTime { TURNTime(monotonic: monotonic + s, wall: wall + s) }
}
