// A TURN client (RFC 8656) over the agent's one UDP socket, as a value driven by the caller's
// clock: Allocate with long-term credentials (401 challenge, 438 stale nonce), Refresh,
// CreatePermission, ChannelBind (and their refreshes), Send/Data indications and ChannelData.
// Outputs are datagrams for the server.
import STUNWire

public enum TURNEvent: Sendable, Hashable {
    case allocated(relayed: STUNAddress, mapped: STUNAddress?, lifetime: UInt32)
    case failed(String)
    case permitted([STUNIPAddress])
    case channelBound(peer: STUNAddress, channel: UInt16)
}

public struct TURNClient: Sendable {
    public enum State: Sendable, Hashable { case idle, allocating, allocated, failed(String) }

    public let server: STUNAddress
    public let username: String
    public let password: String
    public private(set) var state: State = .idle
    public private(set) var relayed: STUNAddress?
    public private(set) var mapped: STUNAddress?
    public var rto = 0.25
    public var maxRetransmits = 6

    private var realm: String?
    private var nonce: String?
    private var key: STUNIntegrityKey?
    private var lifetime: UInt32 = 600
    private var refreshAt = Double.infinity
    private var permissions: [STUNIPAddress: Double] = [:]  // ip -> when to refresh
    private var channels: [STUNAddress: UInt16] = [:]  // confirmed
    private var channelRefresh: [STUNAddress: Double] = [:]
    private var pendingChannels: [STUNAddress: UInt16] = [:]
    private var nextChannel: UInt16 = 0x4000

    private enum Kind: Sendable { case allocate, refresh, permission([STUNIPAddress]), channel(STUNAddress, UInt16) }
    private struct Txn: Sendable {
        var kind: Kind
        var bytes: [UInt8]
        var sentAt: Double
        var rto: Double
        var retries: Int
        var authRetries: Int
    }
    private var txns: [STUNTransactionID: Txn] = [:]
    private var events: [TURNEvent] = []

    public init(server: STUNAddress, username: String, password: String) {
        self.server = server
        self.username = username
        self.password = password
    }

    public mutating func drainEvents() -> [TURNEvent] {
        defer { events.removeAll() }
        return events
    }

    public func owns(_ tid: STUNTransactionID) -> Bool { txns[tid] != nil }
    public var isAllocated: Bool { state == .allocated }

    public mutating func start(now: Double) -> [[UInt8]] {
        state = .allocating
        return [request(.allocate, now: now, authRetries: 0)]
    }

    private func attributes(for kind: Kind) -> (STUNMethod, [STUNAttribute]) {
        switch kind {
        case .allocate: (.allocate, [.requestedTransport(17), .lifetime(lifetime)])
        case .refresh: (.refresh, [.lifetime(lifetime)])
        case .permission(let ips): (.createPermission, ips.map { .xorPeerAddress(STUNAddress(ip: $0, port: 0)) })
        case .channel(let peer, let n): (.channelBind, [.channelNumber(n), .xorPeerAddress(peer)])
        }
    }

    private mutating func request(_ kind: Kind, now: Double, authRetries: Int) -> [UInt8] {
        var (method, attrs) = attributes(for: kind)
        if let realm, let nonce, key != nil {
            attrs += [.username(username), .realm(realm), .nonce(nonce)]
        }
        let msg = STUNMessage(method: method, class: .request, attributes: attrs)
        let bytes = msg.encode(integrity: key, fingerprint: true)
        txns[msg.transactionID] = Txn(kind: kind, bytes: bytes, sentAt: now, rto: rto, retries: 0, authRetries: authRetries)
        return bytes
    }

    public mutating func tick(now: Double) -> [[UInt8]] {
        var out: [[UInt8]] = []
        for (tid, var t) in txns where now >= t.sentAt + t.rto {
            if t.retries >= maxRetransmits {
                txns[tid] = nil
                if case .allocate = t.kind { fail("no answer from the TURN server \(server)") }
                continue
            }
            t.retries += 1
            t.sentAt = now
            t.rto *= 2
            txns[tid] = t
            out.append(t.bytes)
        }
        guard state == .allocated else { return out }
        if now >= refreshAt {
            refreshAt = .infinity
            out.append(request(.refresh, now: now, authRetries: 0))
        }
        let stale = permissions.filter { now >= $0.value }.map(\.key)
        if !stale.isEmpty {
            for ip in stale {
                permissions[ip] = .infinity
                out.append(request(.permission([ip]), now: now, authRetries: 0))
            }
        }
        for (peer, at) in channelRefresh where now >= at {
            channelRefresh[peer] = .infinity
            if let n = channels[peer] { out.append(request(.channel(peer, n), now: now, authRetries: 0)) }
        }
        return out
    }

    public func nextDeadline(now: Double) -> Double {
        var d = min(refreshAt, now + 1)
        for t in txns.values { d = min(d, t.sentAt + t.rto) }
        return max(d, now)
    }

    /// Installs permissions for peer IPs (each one once; refreshed every 4 minutes).
    public mutating func permit(_ ips: [STUNIPAddress], now: Double) -> [[UInt8]] {
        let new = Array(Set(ips.filter { $0.family == server.family && permissions[$0] == nil }))
        guard !new.isEmpty, state == .allocated else {
            for ip in new { permissions[ip] = permissions[ip] ?? now }  // installed once allocated (tick)
            return []
        }
        for ip in new { permissions[ip] = .infinity }
        // One request per peer: a refused permission must not take the others with it.
        return new.map { request(.permission([$0]), now: now, authRetries: 0) }
    }

    /// Binds a channel to `peer` (once); until the server confirms, data goes in Send indications.
    public mutating func bindChannel(_ peer: STUNAddress, now: Double) -> [[UInt8]] {
        guard state == .allocated, channels[peer] == nil, pendingChannels[peer] == nil,
              nextChannel <= 0x4FFF else { return [] }
        let n = nextChannel
        nextChannel += 1
        pendingChannels[peer] = n
        return [request(.channel(peer, n), now: now, authRetries: 0)]
    }

    public func channel(for peer: STUNAddress) -> UInt16? { channels[peer] }

    /// `data` for `peer` through the relay: ChannelData once a channel is bound, else a Send indication.
    public func wrap(_ data: [UInt8], to peer: STUNAddress) -> [UInt8] {
        if let n = channels[peer] { return ChannelData(channelNumber: n, data: data).encode(padded: false) }
        let msg = STUNMessage(method: .send, class: .indication, attributes: [.xorPeerAddress(peer), .data(data)])
        return msg.encode(fingerprint: true)
    }

    /// A ChannelData frame from the server: the peer and the data.
    public func unwrap(channelData bytes: [UInt8]) -> (peer: STUNAddress, data: [UInt8])? {
        guard let cd = try? ChannelData.decode(bytes),
              let peer = channels.first(where: { $0.value == cd.channelNumber })?.key else { return nil }
        return (peer, cd.data)
    }

    /// A Data indication from the server: the peer and the data.
    public func unwrap(indication packet: STUNPacket) -> (peer: STUNAddress, data: [UInt8])? {
        guard packet.type == STUNMessageType(method: .data, messageClass: .indication),
              let msg = try? packet.message(), let peer = msg.xorPeerAddresses.first, let data = msg.data else { return nil }
        return (peer, data)
    }

    /// A response from the server to one of our requests.
    public mutating func handle(_ packet: STUNPacket, now: Double) -> [[UInt8]] {
        guard let t = txns.removeValue(forKey: packet.transactionID), let msg = try? packet.message() else { return [] }
        if msg.messageClass == .errorResponse {
            let code = msg.errorCode?.code ?? 0
            if (code == 401 || code == 438), t.authRetries < 2, let n = msg.nonce {
                nonce = n
                if let r = msg.realm { realm = r }
                if let realm { key = .longTerm(username: username, realm: realm, password: password, preparation: .none) }
                return [request(t.kind, now: now, authRetries: t.authRetries + 1)]
            }
            switch t.kind {
            case .allocate: fail("Allocate failed: \(msg.errorCode.map { "\($0)" } ?? "error")")
            case .refresh: fail("Refresh failed: \(msg.errorCode.map { "\($0)" } ?? "error")")
            case .permission, .channel: break
            }
            return []
        }
        switch t.kind {
        case .allocate:
            guard let r = msg.xorRelayedAddress else { fail("Allocate response without XOR-RELAYED-ADDRESS"); return [] }
            relayed = r
            mapped = msg.xorMappedAddress
            lifetime = msg.lifetime ?? lifetime
            refreshAt = now + Double(lifetime) / 2
            state = .allocated
            events.append(.allocated(relayed: r, mapped: mapped, lifetime: lifetime))
            // Permissions asked for before the allocation existed.
            let waiting = permissions.filter { $0.value != .infinity }.map(\.key)
            for ip in waiting { permissions[ip] = .infinity }
            return waiting.map { request(.permission([$0]), now: now, authRetries: 0) }
        case .refresh:
            lifetime = msg.lifetime ?? lifetime
            refreshAt = now + Double(lifetime) / 2
        case .permission(let ips):
            for ip in ips { permissions[ip] = now + 240 }
            events.append(.permitted(ips))
        case .channel(let peer, let n):
            pendingChannels[peer] = nil
            channels[peer] = n
            channelRefresh[peer] = now + 480
            events.append(.channelBound(peer: peer, channel: n))
        }
        return []
    }

    /// Refresh with LIFETIME 0: the server frees the allocation at once (sent when the agent ends).
    public mutating func deallocate(now: Double) -> [[UInt8]] {
        guard state == .allocated else { return [] }
        state = .idle
        lifetime = 0
        refreshAt = .infinity
        return [request(.refresh, now: now, authRetries: 0)]
    }

    private mutating func fail(_ why: String) {
        state = .failed(why)
        events.append(.failed(why))
    }
}
