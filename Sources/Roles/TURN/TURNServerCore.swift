// The TURN relay's protocol state machine (RFC 8656 over UDP, long-term credentials of RFC 8489 §9.2).
// A value type: sockets live in the caller, who passes datagrams in and receives actions through
// `TURNIO`; time comes in as `TURNTime`. Tests drive it without sockets or waiting. The relay runs one
// core per event loop (shard); what must hold across shards (quotas, serials, relay ports,
// reservations) is in the `TURNShared` it is given, the only reference it holds.
import Crypto
import Foundation
import STUNWire

/// How a client reaches the server (relayed traffic to peers is always UDP).
public enum TURNTransport: String, Sendable, Hashable, Codable {
    case udp, tcp
}

/// A client's 5-tuple.
public struct TURNFiveTuple: Sendable, Hashable, CustomStringConvertible {
    public var client: STUNAddress
    public var server: STUNAddress
    public var transport: TURNTransport
    public init(client: STUNAddress, server: STUNAddress, transport: TURNTransport = .udp) {
        self.client = client
        self.server = server
        self.transport = transport
    }
    public var description: String { "\(transport.rawValue) \(client) -> \(server)" }
}

/// A small, fast generator (SplitMix64) for port choice.
struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// What the core asks of its I/O layer.
public protocol TURNIO {
    /// Sends a STUN message or ChannelData to a client from the server address of its 5-tuple.
    mutating func send(_ bytes: [UInt8], to client: TURNFiveTuple)
    /// Sends application data to a peer from a relayed address.
    mutating func relay(_ bytes: ArraySlice<UInt8>, fromPort relayPort: UInt16, to peer: STUNAddress)
    /// Opens the relayed socket on `port` of the relay address; false when the port is taken.
    mutating func openRelay(port: UInt16) -> Bool
    mutating func closeRelay(port: UInt16)
    /// The relayed socket on `port` now has a permission: start reading it (until then nothing it
    /// could receive may be relayed, so the I/O layer may leave it unread).
    mutating func activateRelay(port: UInt16)
    /// A line for the role's log (errors other than the 401/438 challenges, allocations made and ended).
    /// Lazy: under a flood the I/O layer drops lines, and then they are not formatted either.
    mutating func log(_ line: @autoclosure () -> String)
}

extension TURNIO {
    public mutating func log(_ line: @autoclosure () -> String) {}
    public mutating func activateRelay(port: UInt16) {}
}

public struct TURNServerCore: Sendable {
    public var config: TURNConfig

    /// Channel numbers accepted: RFC 5766's 0x4000–0x7FFF, as coturn does (RFC 8656 narrowed it to
    /// 0x4FFF, but turnutils_uclient 4.6.1 picks numbers up to 0x7FFF).
    public static let channelNumbers: ClosedRange<UInt16> = 0x4000...0x7FFF

    struct Channel: Sendable {
        var peer: STUNAddress
        var expires: Double
    }

    struct Allocation: Sendable {
        var serial: Int
        var fiveTuple: TURNFiveTuple
        var username: String
        var key: STUNIntegrityKey
        var relayPort: UInt16
        var created: TURNTime
        var expires: Double
        var permissions: [STUNIPAddress: Double] = [:]
        var channels: [UInt16: Channel] = [:]
        var channelOfPeer: [STUNAddress: UInt16] = [:]
        var allocateTransaction: STUNTransactionID
        var allocateResponse: [UInt8]
        var reservedPort: UInt16?
        var toPeers = TURNCounter()
        var fromPeers = TURNCounter()
        var peers: Set<STUNAddress> = []
        var channelHistory: [TURNAllocationStats.Channel] = []

        /// ChannelData from the client: the peer of a live channel with a live permission.
        mutating func route(channel number: UInt16, now t: Double) -> Result<(UInt16, STUNAddress), Drop> {
            guard expires > t else { return .failure(.noAllocation) }
            guard let ch = channels[number], ch.expires > t else { return .failure(.unboundChannel) }
            guard let p = permissions[ch.peer.ip], p > t else { return .failure(.noPermission) }
            return .success((relayPort, ch.peer))
        }

        mutating func countToPeer(_ length: Int, _ peer: STUNAddress) {
            toPeers.add(length)
            if peers.count < 64 && !peers.contains(peer) { peers.insert(peer) }
        }

        /// A datagram from a peer: counted and its channel (nil: Data indication) when permitted.
        mutating func accept(from peer: STUNAddress, length: Int, now t: Double) -> Result<UInt16?, Drop> {
            guard expires > t else { return .failure(.noAllocation) }
            guard let p = permissions[peer.ip], p > t else { return .failure(.noPermission) }
            fromPeers.add(length)
            if peers.count < 64 && !peers.contains(peer) { peers.insert(peer) }
            if let c = channelOfPeer[peer], let ch = channels[c], ch.expires > t { return .success(c) }
            return .success(nil)
        }
    }

    enum Drop: String, Error {
        case noAllocation = "no allocation"
        case unboundChannel = "unbound channel"
        case noPermission = "no permission"
    }

    var allocations: [TURNFiveTuple: Allocation] = [:]
    /// This shard's allocations by relayed port (peers' datagrams arrive on the owning shard's sockets).
    var byRelayPort: [UInt16: TURNFiveTuple] = [:]
    /// Quotas, serials, ports and reservations of every shard.
    public let shared: TURNShared
    /// Ended allocations, kept raw (statistics are built when a snapshot is taken, not per deletion).
    var history: [(allocation: Allocation, state: String, ended: TURNTime)] = []
    var errors: [Int: Int] = [:]
    /// The nonce each authenticated 5-tuple last used (its MAC checked once, then compared).
    var knownNonces: [TURNFiveTuple: (nonce: String, expires: Double)] = [:]
    public private(set) var dropped: [String: Int] = [:]

    /// HMAC-SHA256 with the server's nonce secret absorbed once.
    let nonceKey: KeyedHMAC<SHA256>
    var keyCache: [String: (password: String, key: STUNIntegrityKey, sha256: STUNIntegrityKey)] = [:]
    let decodeOptions: STUNDecodeOptions
    /// Relay ports are picked with this (seeded from the system's generator): one getrandom(2) per
    /// allocation was measurable.
    var rng = SplitMix64(seed: UInt64.random(in: 0...UInt64.max))

    /// `shared`: the state of the relay's other shards (a core of its own by default).
    public init(config: TURNConfig, nonceSecret: [UInt8]? = nil, shared: TURNShared = TURNShared()) {
        self.config = config
        self.shared = shared
        var secret = nonceSecret ?? []
        if secret.isEmpty { for _ in 0..<32 { secret.append(UInt8.random(in: 0...255)) } }
        self.nonceKey = KeyedHMAC(key: secret)
        var o = STUNDecodeOptions()
        o.maxMessageSize = 65_535
        decodeOptions = o
    }

    public var allocationCount: Int { allocations.count }

    // MARK: Datagrams from clients

    /// A datagram that arrived on the server socket.
    public mutating func handleClient(_ bytes: [UInt8], from tuple: TURNFiveTuple, now: TURNTime, io: inout some TURNIO) {
        guard let first = bytes.first else { return drop("malformed") }
        switch first {
        case 0x40...0x7F:
            guard bytes.count >= 4 else { return drop("malformed") }
            let number = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
            let length = Int(bytes[2]) << 8 | Int(bytes[3])
            guard 4 + length <= bytes.count else { return drop("malformed") }
            if let (port, peer) = channelDataTarget(tuple, channel: number, length: length, now: now) {
                io.relay(bytes[4..<(4 + length)], fromPort: port, to: peer)
            }
        case 0...3:
            handleSTUN(bytes, from: tuple, now: now, io: &io)
        default:
            drop("malformed")
        }
    }

    /// The fast path for ChannelData from a client: where its `length` bytes go, counted; nil drops them.
    /// (The allocation is only touched through mutating calls, which work in place: reading it out of
    /// the dictionary would copy all its tables per packet.)
    public mutating func channelDataTarget(_ tuple: TURNFiveTuple, channel number: UInt16, length: Int,
                                           now: TURNTime) -> (relayPort: UInt16, peer: STUNAddress)? {
        guard Self.channelNumbers.contains(number) else { drop("malformed"); return nil }
        guard let i = allocations.index(forKey: tuple) else { drop("no allocation"); return nil }
        switch allocations.values[i].route(channel: number, now: now.monotonic) {
        case .success(let (port, peer)):
            guard mayReach(peer) else { drop("denied peer"); return nil }
            allocations.values[i].countToPeer(length, peer)
            return (port, peer)
        case .failure(let why):
            drop(why.rawValue)
            return nil
        }
    }

    // MARK: Datagrams from peers

    /// Where a datagram from `peer` on a relayed port goes: the client and its channel (nil: a Data
    /// indication). nil drops it (no allocation, no permission).
    public mutating func peerTarget(relayPort: UInt16, peer: STUNAddress, length: Int,
                                    now: TURNTime) -> (client: TURNFiveTuple, channel: UInt16?)? {
        guard let tuple = byRelayPort[relayPort], let i = allocations.index(forKey: tuple) else {
            drop("no allocation"); return nil
        }
        switch allocations.values[i].accept(from: peer, length: length, now: now.monotonic) {
        case .success(let channel): return (tuple, channel)
        case .failure(let why):
            drop(why.rawValue)
            return nil
        }
    }

    /// A datagram from `peer` on relayed port `relayPort`: ChannelData or a Data indication to the client.
    public mutating func handlePeer(_ data: [UInt8], relayPort: UInt16, from peer: STUNAddress, now: TURNTime,
                                    io: inout some TURNIO) {
        guard let (tuple, channel) = peerTarget(relayPort: relayPort, peer: peer, length: data.count, now: now) else { return }
        if let channel {
            // Over TCP ChannelData is padded to 4 bytes (RFC 8656 §12.5), with zeros.
            io.send(ChannelData(channelNumber: channel, data: data).encode(padded: tuple.transport == .tcp), to: tuple)
        } else {
            io.send(Self.dataIndication(peer: peer, data: data), to: tuple)
        }
    }

    public static func dataIndication(peer: STUNAddress, data: [UInt8]) -> [UInt8] {
        STUNMessage(method: .data, class: .indication, attributes: [.xorPeerAddress(peer), .data(data)]).encode()
    }

    // MARK: Timers

    /// Ends expired allocations, permissions, channels and reservations. Call about once a second.
    public mutating func expire(now: TURNTime, io: inout some TURNIO) {
        let t = now.monotonic
        for (tuple, a) in allocations where a.expires <= t {
            end(tuple, state: "expired", now: now, io: &io)
        }
        for (tuple, var a) in allocations {
            let p = a.permissions.count, c = a.channels.count
            a.permissions = a.permissions.filter { $0.value > t }
            a.channels = a.channels.filter { $0.value.expires > t }
            if a.channels.count != c { a.channelOfPeer = a.channelOfPeer.filter { a.channels[$0.value] != nil } }
            if a.permissions.count != p || a.channels.count != c { allocations[tuple] = a }
        }
        if !knownNonces.isEmpty { knownNonces = knownNonces.filter { $0.value.expires > t } }
        for port in shared.expireReservations(now: t) { io.closeRelay(port: port) }
    }

    /// The client's TCP connection closed: its allocation ends with it (RFC 8656 §3.1).
    public mutating func connectionClosed(_ tuple: TURNFiveTuple, now: TURNTime, io: inout some TURNIO) {
        end(tuple, state: "deleted", now: now, io: &io)
    }

    /// Ends every allocation (server shutdown).
    public mutating func shutdown(now: TURNTime, io: inout some TURNIO) {
        for tuple in Array(allocations.keys) { end(tuple, state: "deleted", now: now, io: &io) }
    }

    mutating func end(_ tuple: TURNFiveTuple, state: String, now: TURNTime, io: inout some TURNIO) {
        guard let a = allocations.removeValue(forKey: tuple) else { return }
        // Clients usually leave with their allocation: the nonce cache keeps the ones that stay.
        knownNonces[tuple] = nil
        byRelayPort[a.relayPort] = nil
        io.closeRelay(port: a.relayPort)
        shared.release(user: a.username, port: a.relayPort)
        io.log("a\(a.serial) \(state): \(a.toPeers.packets) packets to peers, \(a.fromPeers.packets) from peers")
        history.append((a, state, now))
        if history.count > 2 * config.historyLimit { history.removeFirst(history.count - config.historyLimit) }
    }

    // MARK: STUN requests and indications

    mutating func drop(_ why: String, count: Int = 1) { dropped[why, default: 0] += count }

    mutating func handleSTUN(_ bytes: [UInt8], from tuple: TURNFiveTuple, now: TURNTime, io: inout some TURNIO) {
        // Malformed messages (framing, FINGERPRINT, attribute values) are dropped without state or answer.
        guard let packet = try? STUNPacket(bytes, options: decodeOptions),
              let message = try? packet.message(options: decodeOptions) else { return drop("malformed") }
        switch message.messageClass {
        case .indication:
            if message.method == .send { handleSend(message, from: tuple, now: now, io: &io) } else { drop("unexpected indication") }
            return
        case .request:
            break
        default:
            return drop("unexpected response")
        }
        let fingerprint = packet.fingerprintOffset != nil
        if message.method == .binding {
            // A TURN server is a STUN server too (RFC 8656 §2): Binding needs no credentials.
            let r = STUNMessage.successResponse(to: message, attributes: [.xorMappedAddress(tuple.client)] + softwareAttr)
            return io.send(r.encode(fingerprint: fingerprint), to: tuple)
        }
        guard [.allocate, .refresh, .createPermission, .channelBind].contains(message.method) else {
            return reject(message, .badRequest, key: nil, fingerprint: fingerprint, to: tuple, io: &io)
        }
        let unknown = packet.unknownComprehensionRequired
        // Authenticate (RFC 8489 §9.2.4).
        guard packet.messageIntegrityOffset != nil || packet.messageIntegritySHA256Offset != nil else {
            return challenge(message, .unauthenticated, fingerprint: fingerprint, to: tuple, now: now, io: &io)
        }
        guard let username = message.username, message.realm != nil, let nonce = message.nonce else {
            return reject(message, .badRequest, key: nil, fingerprint: fingerprint, to: tuple, io: &io)
        }
        let sha256Key: Bool
        if case .passwordAlgorithm(let alg)? = message.first(.passwordAlgorithm) { sha256Key = alg.number == STUNPasswordAlgorithm.sha256.number } else { sha256Key = false }
        guard message.realm == config.realm, let keys = keys(for: username, wall: now.wall) else {
            return challenge(message, .unauthenticated, fingerprint: fingerprint, to: tuple, now: now, io: &io)
        }
        let key = sha256Key ? keys.sha256 : keys.key
        let status = packet.verifyIntegrity(key: key)
        guard status.isValid else {
            return challenge(message, .unauthenticated, fingerprint: fingerprint, to: tuple, now: now, io: &io)
        }
        let mode: STUNIntegrityMode = status == .valid(sha256: true) ? .sha256() : .sha1
        let known = knownNonces[tuple].map { $0.nonce == nonce && $0.expires > now.monotonic } ?? false
        guard known || nonceIsValid(nonce, for: tuple, now: now) else {
            return challenge(message, .staleNonce, fingerprint: fingerprint, to: tuple, now: now, io: &io)
        }
        if !known, let e = Self.nonceExpiry(nonce) {
            // Remembered only for clients that authenticated, and bounded.
            if knownNonces.count >= 65_536 { knownNonces.removeAll(keepingCapacity: true) }
            knownNonces[tuple] = (nonce, e)
        }
        let reply = Reply(key: key, mode: mode, fingerprint: fingerprint)
        if !unknown.isEmpty {
            errors[420, default: 0] += 1
            let r = STUNMessage.unknownAttributeResponse(to: message, types: unknown)
            return send(r, reply, to: tuple, io: &io)
        }
        if let a = allocations[tuple], a.expires > now.monotonic, a.username != username {
            return reject(message, .wrongCredentials, reply, to: tuple, io: &io)
        }
        switch message.method {
        case .allocate: allocate(message, username: username, reply, tuple: tuple, now: now, io: &io)
        case .refresh: refresh(message, reply, tuple: tuple, now: now, io: &io)
        case .createPermission: createPermission(message, reply, tuple: tuple, now: now, io: &io)
        default: channelBind(message, reply, tuple: tuple, now: now, io: &io)
        }
    }

    struct Reply {
        var key: STUNIntegrityKey?
        var mode: STUNIntegrityMode = .sha1
        var fingerprint: Bool
    }

    var softwareAttr: [STUNAttribute] { config.software.map { [.software($0)] } ?? [] }

    func send(_ m: STUNMessage, _ reply: Reply, to tuple: TURNFiveTuple, io: inout some TURNIO) {
        var m = m
        m.attributes += softwareAttr
        io.send(m.encode(integrity: reply.key, integrityMode: reply.mode, fingerprint: reply.fingerprint), to: tuple)
    }

    mutating func reject(_ request: STUNMessage, _ code: STUNErrorCode, key: STUNIntegrityKey?, fingerprint: Bool,
                         to tuple: TURNFiveTuple, io: inout some TURNIO) {
        reject(request, code, Reply(key: key, fingerprint: fingerprint), to: tuple, io: &io)
    }

    mutating func reject(_ request: STUNMessage, _ code: STUNErrorCode, _ reply: Reply, extra: [STUNAttribute] = [],
                         to tuple: TURNFiveTuple, io: inout some TURNIO) {
        errors[code.code, default: 0] += 1
        if code.code != 401 && code.code != 438 { io.log("\(tuple.client): \(request.method) -> \(code)") }
        send(STUNMessage.errorResponse(to: request, error: code, attributes: extra), reply, to: tuple, io: &io)
    }

    /// 401 or 438 with REALM and a fresh NONCE, unsigned.
    mutating func challenge(_ request: STUNMessage, _ code: STUNErrorCode, fingerprint: Bool, to tuple: TURNFiveTuple,
                            now: TURNTime, io: inout some TURNIO) {
        reject(request, code, Reply(key: nil, fingerprint: fingerprint),
               extra: [.realm(config.realm), .nonce(makeNonce(for: tuple, now: now))], to: tuple, io: &io)
    }

    // MARK: Nonces: stateless, bound to the client's 5-tuple, expiring

    func nonceMAC(expiry: UInt64, tuple: TURNFiveTuple) -> String {
        var input = [UInt8]()
        input.reserveCapacity(48)
        withUnsafeBytes(of: expiry.bigEndian) { input.append(contentsOf: $0) }
        for a in [tuple.client, tuple.server] {
            input.append(contentsOf: a.ip.bytes)
            input.append(UInt8(a.port >> 8)); input.append(UInt8(a.port & 0xff))
        }
        return Self.hex(nonceKey.authenticationCode(input).prefix(8))
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    public func makeNonce(for tuple: TURNFiveTuple, now: TURNTime) -> String {
        let expiry = UInt64(max(0, now.monotonic + config.nonceLifetime) * 1000)
        let e = String(expiry, radix: 16)
        return e + "." + nonceMAC(expiry: expiry, tuple: tuple)
    }

    static func nonceExpiry(_ nonce: String) -> Double? {
        guard let dot = nonce.firstIndex(of: "."), let e = UInt64(nonce[..<dot], radix: 16) else { return nil }
        return Double(e) / 1000
    }

    func nonceIsValid(_ nonce: String, for tuple: TURNFiveTuple, now: TURNTime) -> Bool {
        let parts = nonce.split(separator: ".")
        guard parts.count == 2, let expiry = UInt64(parts[0], radix: 16) else { return false }
        guard Double(expiry) / 1000 > now.monotonic else { return false }
        return nonceMAC(expiry: expiry, tuple: tuple) == parts[1]
    }

    mutating func keys(for username: String, wall: Double) -> (key: STUNIntegrityKey, sha256: STUNIntegrityKey)? {
        guard let password = config.credentials.password(for: username, wall: wall) else { return nil }
        if let k = keyCache[username], k.password == password { return (k.key, k.sha256) }
        let md5 = STUNIntegrityKey.longTerm(username: username, realm: config.realm, password: password, algorithm: .md5, preparation: .none)
        let sha = STUNIntegrityKey.longTerm(username: username, realm: config.realm, password: password, algorithm: .sha256, preparation: .none)
        if keyCache.count > 4096 { keyCache.removeAll() }
        keyCache[username] = (password, md5, sha)
        return (md5, sha)
    }

    // MARK: Methods

    func lifetime(requested: UInt32?) -> UInt32 {
        guard let r = requested else { return config.defaultLifetime }
        return max(min(r, config.maxLifetime), min(config.defaultLifetime, config.maxLifetime))
    }

    mutating func allocate(_ m: STUNMessage, username: String, _ reply: Reply, tuple: TURNFiveTuple, now: TURNTime,
                           io: inout some TURNIO) {
        if let a = allocations[tuple], a.expires > now.monotonic {
            // A retransmission gets the same answer; any other Allocate on the 5-tuple is a mismatch.
            if a.allocateTransaction == m.transactionID { return io.send(a.allocateResponse, to: tuple) }
            return reject(m, .allocationMismatch, reply, to: tuple, io: &io)
        }
        if allocations[tuple] != nil { end(tuple, state: "expired", now: now, io: &io) }
        guard case .requestedTransport(let proto)? = m.first(.requestedTransport) else {
            return reject(m, .badRequest, reply, to: tuple, io: &io)
        }
        guard proto == 17 else { return reject(m, .unsupportedTransportProtocol, reply, to: tuple, io: &io) }
        var evenPort: Bool? = nil
        if case .evenPort(let r)? = m.first(.evenPort) { evenPort = r }
        var token: UInt64? = nil
        if case .reservationToken(let t)? = m.first(.reservationToken) { token = t }
        let family: STUNAddressFamily? = {
            if case .requestedAddressFamily(let f)? = m.first(.requestedAddressFamily) { return f }
            return nil
        }()
        if token != nil && (evenPort != nil || family != nil) { return reject(m, .badRequest, reply, to: tuple, io: &io) }
        if let family, family != .ipv4 { return reject(m, .addressFamilyNotSupported, reply, to: tuple, io: &io) }
        switch shared.admit(username, userQuota: config.userQuota, totalQuota: config.totalQuota) {
        case .userQuota?: return reject(m, .allocationQuotaReached, reply, to: tuple, io: &io)
        case .capacity?: return reject(m, .insufficientCapacity, reply, to: tuple, io: &io)
        case nil: break
        }
        // The relayed port.
        var port: UInt16?
        var reserved: UInt16?
        if let token {
            switch shared.redeem(token, now: now.monotonic) {
            case .held(let p): port = p  // already open (reserved with the earlier allocation, maybe by another shard)
            case .expired(let p): io.closeRelay(port: p)
            case .unknown: break
            }
        } else {
            port = pickPort(even: evenPort != nil, pair: evenPort == true, io: &io)
            if let p = port, evenPort == true { reserved = p + 1 }
        }
        guard let port else {
            shared.release(user: username)
            return reject(m, .insufficientCapacity, reply, to: tuple, io: &io)
        }
        let lifetime = lifetime(requested: m.lifetime)
        var attrs: [STUNAttribute] = [
            .xorRelayedAddress(STUNAddress(ip: config.relayAddress, port: port)),
            .lifetime(lifetime),
            .xorMappedAddress(tuple.client),
        ]
        if let reserved {
            attrs.append(.reservationToken(shared.reserve(reserved, until: now.monotonic + config.reservationLifetime)))
        }
        var r = STUNMessage.successResponse(to: m, attributes: attrs)
        r.attributes += softwareAttr
        let bytes = r.encode(integrity: reply.key, integrityMode: reply.mode, fingerprint: reply.fingerprint)
        let serial = shared.allocated(port: port)
        allocations[tuple] = Allocation(serial: serial, fiveTuple: tuple, username: username, key: reply.key!,
                                        relayPort: port, created: now, expires: now.monotonic + Double(lifetime),
                                        allocateTransaction: m.transactionID, allocateResponse: bytes, reservedPort: reserved)
        byRelayPort[port] = tuple
        io.log("a\(serial) \(username) \(tuple.client) relayed \(STUNAddress(ip: config.relayAddress, port: port)) lifetime \(lifetime)s")
        io.send(bytes, to: tuple)
    }

    /// A free port (even, and with a free odd successor for `pair`), opened through `io`.
    mutating func pickPort(even: Bool, pair: Bool, io: inout some TURNIO) -> UInt16? {
        let range = config.relayPorts
        let size = Int(range.upperBound) - Int(range.lowerBound) + 1
        // Random probes first (unpredictable ports), then a scan, so a nearly full range still finds its last port.
        let start = Int.random(in: 0..<size, using: &rng)
        for attempt in 0..<(32 + size) {
            let offset = attempt < 32 ? Int.random(in: 0..<size, using: &rng) : (start + attempt - 32) % size
            var p = UInt16(Int(range.lowerBound) + offset)
            if even && p & 1 == 1 { if p == range.lowerBound { continue }; p -= 1 }
            if pair && p == range.upperBound { continue }
            // Claimed across shards first; the bind (`openRelay`) can still fail (a socket not ours).
            guard shared.claim(p, pair: pair) else { continue }
            guard io.openRelay(port: p) else { shared.unclaim(p); if pair { shared.unclaim(p + 1) }; continue }
            if pair {
                guard io.openRelay(port: p + 1) else { io.closeRelay(port: p); shared.unclaim(p, p + 1); continue }
            }
            return p
        }
        return nil
    }

    mutating func refresh(_ m: STUNMessage, _ reply: Reply, tuple: TURNFiveTuple, now: TURNTime, io: inout some TURNIO) {
        guard var a = allocations[tuple], a.expires > now.monotonic else {
            return reject(m, .allocationMismatch, reply, to: tuple, io: &io)
        }
        if case .requestedAddressFamily(let f)? = m.first(.requestedAddressFamily), f != .ipv4 {
            return reject(m, .peerAddressFamilyMismatch, reply, to: tuple, io: &io)
        }
        if m.lifetime == 0 {
            end(tuple, state: "deleted", now: now, io: &io)
            return send(.successResponse(to: m, attributes: [.lifetime(0)]), reply, to: tuple, io: &io)
        }
        let lifetime = lifetime(requested: m.lifetime)
        a.expires = now.monotonic + Double(lifetime)
        allocations[tuple] = a
        send(.successResponse(to: m, attributes: [.lifetime(lifetime)]), reply, to: tuple, io: &io)
    }

    /// nil when a permission for `peer` may be installed, else the error. The relayed address's IP is
    /// allowed (two clients of one relay reach each other relay to relay, as ICE with relay-only
    /// candidates does), but only its live relayed ports: see `mayReach`.
    func forbidden(_ peer: STUNAddress) -> STUNErrorCode? {
        guard peer.family == .ipv4 else { return .peerAddressFamilyMismatch }
        if peer.ip != config.relayAddress && config.ownAddresses.contains(peer.ip) { return .forbidden }
        if config.deniedPeers.contains(where: { $0.contains(peer.ip) }) { return .forbidden }
        return nil
    }

    /// Never relay into the server itself (its listening ports, unused relay ports): only to other
    /// allocations' relayed addresses.
    @inline(__always)
    func mayReach(_ peer: STUNAddress) -> Bool {
        peer.ip != config.relayAddress || byRelayPort[peer.port] != nil || shared.isAllocated(peer.port)
    }

    mutating func createPermission(_ m: STUNMessage, _ reply: Reply, tuple: TURNFiveTuple, now: TURNTime,
                                   io: inout some TURNIO) {
        guard var a = allocations[tuple], a.expires > now.monotonic else {
            return reject(m, .allocationMismatch, reply, to: tuple, io: &io)
        }
        let peers = m.xorPeerAddresses
        guard !peers.isEmpty else { return reject(m, .badRequest, reply, to: tuple, io: &io) }
        // All or nothing (RFC 8656 §9.2).
        for p in peers { if let e = forbidden(p) { return reject(m, e, reply, to: tuple, io: &io) } }
        for p in peers {
            a.permissions[p.ip] = max(a.permissions[p.ip] ?? 0, now.monotonic + config.permissionLifetime)
        }
        allocations[tuple] = a
        io.activateRelay(port: a.relayPort)
        send(.successResponse(to: m), reply, to: tuple, io: &io)
    }

    mutating func channelBind(_ m: STUNMessage, _ reply: Reply, tuple: TURNFiveTuple, now: TURNTime,
                              io: inout some TURNIO) {
        guard var a = allocations[tuple], a.expires > now.monotonic else {
            return reject(m, .allocationMismatch, reply, to: tuple, io: &io)
        }
        guard let number = m.channelNumber, Self.channelNumbers.contains(number),
              let peer = m.xorPeerAddresses.first else {
            return reject(m, .badRequest, reply, to: tuple, io: &io)
        }
        if let e = forbidden(peer) { return reject(m, e, reply, to: tuple, io: &io) }
        let t = now.monotonic
        // A number binds one peer, a peer one number (RFC 8656 §11.2).
        if let ch = a.channels[number], ch.expires > t, ch.peer != peer { return reject(m, .badRequest, reply, to: tuple, io: &io) }
        if let c = a.channelOfPeer[peer], c != number, let ch = a.channels[c], ch.expires > t {
            return reject(m, .badRequest, reply, to: tuple, io: &io)
        }
        if let old = a.channels[number], old.peer != peer { a.channelOfPeer[old.peer] = nil }
        if a.channels[number] == nil || a.channels[number]!.peer != peer {
            a.channelHistory.append(.init(number: number, peer: peer.description))
        }
        a.channels[number] = Channel(peer: peer, expires: t + config.channelLifetime)
        a.channelOfPeer[peer] = number
        // The permission lives as long as the channel (as coturn does; aioice never sends CreatePermission).
        a.permissions[peer.ip] = max(a.permissions[peer.ip] ?? 0, t + max(config.channelLifetime, config.permissionLifetime))
        allocations[tuple] = a
        io.activateRelay(port: a.relayPort)
        send(.successResponse(to: m), reply, to: tuple, io: &io)
    }

    mutating func handleSend(_ m: STUNMessage, from tuple: TURNFiveTuple, now: TURNTime, io: inout some TURNIO) {
        guard var a = allocations[tuple], a.expires > now.monotonic else { return drop("no allocation") }
        guard let peer = m.xorPeerAddresses.first, let data = m.data else { return drop("malformed") }
        guard forbidden(peer) == nil, mayReach(peer) else { return drop("denied peer") }
        guard let p = a.permissions[peer.ip], p > now.monotonic else { return drop("no permission") }
        a.toPeers.add(data.count)
        if a.peers.count < 64 { a.peers.insert(peer) }
        allocations[tuple] = a
        io.relay(data[...], fromPort: a.relayPort, to: peer)
    }

    // MARK: Statistics

    func stats(of a: Allocation, now: TURNTime) -> TURNAllocationStats {
        let toWall = { (m: Double) in now.wall + (m - now.monotonic) }
        return TURNAllocationStats(
            id: "a\(a.serial)", username: a.username, transport: a.fiveTuple.transport.rawValue, client: a.fiveTuple.client.description,
            server: a.fiveTuple.server.description,
            relayed: STUNAddress(ip: config.relayAddress, port: a.relayPort).description,
            created: a.created.wall, expires: toWall(a.expires), ended: nil, state: "active",
            toPeers: a.toPeers, fromPeers: a.fromPeers, peers: a.peers.map(\.description).sorted(),
            permissions: a.permissions.filter { $0.value > now.monotonic }.keys.map(\.description).sorted(),
            channels: a.channelHistory)
    }

    public func snapshot(now: TURNTime, listen: [String], started: Double) -> TURNStatsSnapshot {
        let live = allocations.values.sorted { $0.serial < $1.serial }.map { stats(of: $0, now: now) }
        return TURNStatsSnapshot(
            realm: config.realm, listen: listen, relayAddress: config.relayAddress.description, pid: getpid(),
            started: started, updated: now.wall, activeAllocations: live.count, totalAllocations: shared.totalAllocations,
            errors: Dictionary(uniqueKeysWithValues: errors.map { (String($0.key), $0.value) }),
            dropped: dropped, allocations: live + history.suffix(config.historyLimit).map { h in
                var s = stats(of: h.allocation, now: h.ended)
                s.state = h.state
                s.ended = h.ended.wall
                s.permissions = []
                return s
            })
    }
}
