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

extension TURNStatsSnapshot {
    /// One relay's snapshot from its shards' (one per event loop, each with its own allocations):
    /// live allocations in creation order, then ended ones by end time (most recent last, at most
    /// `historyLimit`), errors and drops summed.
    public static func merging(_ parts: [TURNStatsSnapshot], historyLimit: Int) -> TURNStatsSnapshot? {
        guard var out = parts.first else { return nil }
        guard parts.count > 1 else { return out }
        let serial = { (s: TURNAllocationStats) in Int(s.id.dropFirst()) ?? 0 }
        let all = parts.flatMap(\.allocations)
        let live = all.filter { $0.ended == nil }.sorted { serial($0) < serial($1) }
        let ended = all.filter { $0.ended != nil }.sorted { ($0.ended!, serial($0)) < ($1.ended!, serial($1)) }
        out.allocations = live + ended.suffix(historyLimit)
        out.activeAllocations = parts.reduce(0) { $0 + $1.activeAllocations }
        out.totalAllocations = parts.map(\.totalAllocations).max() ?? 0
        out.updated = parts.map(\.updated).max() ?? out.updated
        out.errors = parts.reduce(into: [:]) { acc, p in acc.merge(p.errors, uniquingKeysWith: +) }
        out.dropped = parts.reduce(into: [:]) { acc, p in acc.merge(p.dropped, uniquingKeysWith: +) }
        return out
    }
}
