// Relay statistics: what a path verdict needs to name the allocation that carried traffic.
import Foundation

public struct TURNCounter: Codable, Sendable, Hashable {
    public var packets: UInt64 = 0
    public var bytes: UInt64 = 0
    public init() {}
    mutating func add(_ n: Int) {
        packets &+= 1
        bytes &+= UInt64(n)
    }
}

/// One allocation, live or ended.
public struct TURNAllocationStats: Codable, Sendable, Hashable {
    public struct Channel: Codable, Sendable, Hashable {
        public var number: UInt16
        public var peer: String
    }

    /// `a<serial>`: unique for the life of the server.
    public var id: String
    public var username: String
    public var transport: String = "udp"
    /// The client's transport address as the relay sees it (a NAT's public side).
    public var client: String
    public var server: String
    public var relayed: String
    /// Unix seconds.
    public var created: Double
    public var expires: Double
    /// Set when the allocation ended.
    public var ended: Double?
    /// `active`, `deleted` (Refresh with LIFETIME 0) or `expired`.
    public var state: String
    /// Client → relay → peer (ChannelData and Send indications relayed).
    public var toPeers: TURNCounter
    /// Peer → relay → client (ChannelData and Data indications delivered).
    public var fromPeers: TURNCounter
    /// Every peer address traffic went to or came from, sorted.
    public var peers: [String]
    /// Peer IPs with a permission, now (sorted).
    public var permissions: [String]
    /// Every channel bound during the allocation's life.
    public var channels: [Channel]
}

public struct TURNStatsSnapshot: Codable, Sendable, Hashable {
    public var software: String = "natlab"
    public var realm: String
    public var listen: [String]
    public var relayAddress: String
    public var pid: Int32
    public var started: Double
    public var updated: Double
    public var activeAllocations: Int
    public var totalAllocations: Int
    /// Requests answered with an error, by code ("401": 3).
    public var errors: [String: Int]
    /// Datagrams dropped: malformed, no allocation, no permission, unbound channel, denied peer.
    public var dropped: [String: Int]
    /// Live allocations first (in creation order), then ended ones (most recent last).
    public var allocations: [TURNAllocationStats]

    public func encoded(pretty: Bool = true) -> Data {
        let e = JSONEncoder()
        e.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
        return (try? e.encode(self)) ?? Data()
    }
}
