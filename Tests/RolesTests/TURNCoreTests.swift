import Testing
import STUNWire
@testable import Roles

/// Records what the core asks of its sockets.
struct FakeIO: TURNIO {
    var toClients: [(bytes: [UInt8], to: TURNFiveTuple)] = []
    var toPeers: [(bytes: [UInt8], port: UInt16, peer: STUNAddress)] = []
    var open: Set<UInt16> = []
    var taken: Set<UInt16> = []
    mutating func send(_ bytes: [UInt8], to client: TURNFiveTuple) { toClients.append((bytes, client)) }
    mutating func relay(_ bytes: ArraySlice<UInt8>, fromPort relayPort: UInt16, to peer: STUNAddress) {
        toPeers.append((Array(bytes), relayPort, peer))
    }
    mutating func openRelay(port: UInt16) -> Bool {
        guard !taken.contains(port), !open.contains(port) else { return false }
        open.insert(port)
        return true
    }
    mutating func closeRelay(port: UInt16) { open.remove(port) }
}

/// A TURN client talking to a `TURNServerCore` in memory, with a clock the test moves. A class, so
/// `#expect(rig.request(…))` can call it.
final class Rig {
    var core: TURNServerCore
    var io = FakeIO()
    var now = TURNTime(monotonic: 1000, wall: 1_800_000_000)
    let server = STUNAddress("203.0.113.5:3478")!
    var client = STUNAddress("198.51.100.7:40000")!
    var tuple: TURNFiveTuple { TURNFiveTuple(client: client, server: server) }
    var user = "alice", password = "secret"
    var nonce: String?

    init(shared: TURNShared = TURNShared(), _ configure: (inout TURNConfig) -> Void = { _ in }) {
        var c = TURNConfig(relayAddress: STUNIPAddress("203.0.113.5")!)
        c.realm = "lab"
        c.credentials = .users(["alice": "secret", "bob": "hunter2"])
        c.ownAddresses = [STUNIPAddress("203.0.113.5")!]
        configure(&c)
        core = TURNServerCore(config: c, nonceSecret: Array(repeating: 7, count: 32), shared: shared)
    }

    var key: STUNIntegrityKey { .longTerm(username: user, realm: "lab", password: password, preparation: .none) }

    /// Sends raw bytes; returns the decoded answer, if any.
    func raw(_ bytes: [UInt8]) -> STUNMessage? {
        let before = io.toClients.count
        core.handleClient(bytes, from: tuple, now: now, io: &io)
        guard io.toClients.count > before else { return nil }
        return try? STUNMessage.decode(io.toClients.last!.bytes)
    }

    /// Sends an authenticated request (fetching a nonce first when needed).
    func request(_ method: STUNMethod, _ attrs: [STUNAttribute], sha256: Bool = false,
                          transaction: STUNTransactionID = .random()) -> STUNMessage {
        if nonce == nil {
            let r = raw(STUNMessage(method: .allocate, class: .request).encode(fingerprint: true))!
            nonce = r.nonce
        }
        let m = STUNMessage(method: method, class: .request, transactionID: transaction,
                            attributes: attrs + [.username(user), .realm("lab"), .nonce(nonce!)])
        let answer = raw(m.encode(integrity: key, integrityMode: sha256 ? .sha256() : .sha1, fingerprint: true))!
        if answer.errorCode?.code == 438 { nonce = answer.nonce }
        return answer
    }

    func allocate(_ extra: [STUNAttribute] = []) -> STUNMessage {
        request(.allocate, [.requestedTransport(17)] + extra)
    }
}

@Suite struct TURNCoreTests {
    @Test("401 with REALM and NONCE, then an authenticated Allocate gets relayed and mapped addresses and a signed LIFETIME")
    func allocate() throws {
        let rig = Rig()
        let challenge = try #require(rig.raw(STUNMessage(method: .allocate, class: .request, attributes: [.requestedTransport(17)]).encode()))
        #expect(challenge.errorCode?.code == 401)
        #expect(challenge.realm == "lab")
        #expect(challenge.nonce != nil)
        #expect(!challenge.contains(.messageIntegrity))
        let ok = rig.allocate([.lifetime(777)])
        #expect(ok.messageClass == .successResponse, "\(ok)")
        #expect(ok.lifetime == 777)
        #expect(ok.xorMappedAddress == rig.client)
        let relayed = try #require(ok.xorRelayedAddress)
        #expect(relayed.ip == STUNIPAddress("203.0.113.5"))
        #expect(rig.io.open.contains(relayed.port))
        let packet = try STUNPacket(rig.io.toClients.last!.bytes)
        #expect(packet.verifyIntegrity(key: rig.key).isValid)
        #expect(packet.fingerprintOffset != nil)
        #expect(rig.core.allocationCount == 1)
    }

    @Test("MESSAGE-INTEGRITY-SHA256 requests get SHA-256-signed answers")
    func sha256() throws {
        let rig = Rig()
        let ok = rig.request(.allocate, [.requestedTransport(17)], sha256: true)
        #expect(ok.messageClass == .successResponse)
        let packet = try STUNPacket(rig.io.toClients.last!.bytes)
        #expect(packet.messageIntegritySHA256Offset != nil)
        #expect(packet.verifyIntegrity(key: rig.key) == .valid(sha256: true))
    }

    @Test("lifetimes: default 600, clamped to the maximum, never below the default; Refresh 0 deletes")
    func lifetimes() {
        let rig = Rig { $0.maxLifetime = 3600 }
        #expect(rig.allocate().lifetime == 600)
        #expect(rig.request(.refresh, [.lifetime(100_000)]).lifetime == 3600)
        #expect(rig.request(.refresh, [.lifetime(30)]).lifetime == 600)
        let del = rig.request(.refresh, [.lifetime(0)])
        #expect(del.messageClass == .successResponse && del.lifetime == 0)
        #expect(rig.core.allocationCount == 0)
        #expect(rig.io.open.isEmpty)
        #expect(rig.request(.refresh, [.lifetime(600)]).errorCode?.code == 437)
    }

    @Test("retransmitted Allocate gets the same answer; a new one on the 5-tuple gets 437")
    func mismatch() {
        let rig = Rig()
        let t = STUNTransactionID.random()
        let a = rig.request(.allocate, [.requestedTransport(17)], transaction: t)
        let b = rig.request(.allocate, [.requestedTransport(17)], transaction: t)
        #expect(a == b)
        #expect(rig.allocate().errorCode?.code == 437)
    }

    @Test("error codes: 400 no transport, 442 TCP, 440 IPv6, 420 unknown attribute, 401 wrong password, 441 other user")
    func errors() {
        let rig = Rig()
        #expect(rig.request(.allocate, []).errorCode?.code == 400)
        #expect(rig.request(.allocate, [.requestedTransport(6)]).errorCode?.code == 442)
        #expect(rig.allocate([.requestedAddressFamily(.ipv6)]).errorCode?.code == 440)
        let unknown = rig.allocate([.unknown(type: 0x7777, value: [1, 2, 3, 4])])
        #expect(unknown.errorCode?.code == 420)
        guard case .unknownAttributes(let types)? = unknown.first(.unknownAttributes) else { Issue.record("no UNKNOWN-ATTRIBUTES"); return }
        #expect(types == [0x7777])
        #expect(rig.request(.createPermission, [.xorPeerAddress(STUNAddress("198.51.100.9:1")!)]).errorCode?.code == 437)
        rig.password = "wrong"
        let bad = rig.allocate()
        #expect(bad.errorCode?.code == 401 && bad.nonce != nil && !bad.contains(.messageIntegrity))
        rig.password = "secret"
        #expect(rig.allocate().messageClass == .successResponse)
        rig.user = "bob"; rig.password = "hunter2"
        #expect(rig.request(.refresh, [.lifetime(600)]).errorCode?.code == 441)
    }

    @Test("nonces expire (438 with a new nonce) and are bound to the 5-tuple")
    func staleNonce() {
        let rig = Rig { $0.nonceLifetime = 60 }
        #expect(rig.allocate().messageClass == .successResponse)
        rig.now = rig.now.advanced(by: 61)
        let old = rig.nonce
        let stale = rig.request(.refresh, [.lifetime(600)])
        #expect(stale.errorCode?.code == 438)
        #expect(stale.nonce != nil && stale.nonce != old && stale.realm == "lab")
        #expect(rig.request(.refresh, [.lifetime(600)]).messageClass == .successResponse)
        rig.client = STUNAddress("198.51.100.7:40001")!
        #expect(rig.allocate().errorCode?.code == 438, "a nonce from another 5-tuple is not valid")
    }

    @Test("malformed and unauthenticated datagrams leave no state")
    func malformed() {
        let rig = Rig()
        let good = STUNMessage(method: .allocate, class: .request, attributes: [.requestedTransport(17)]).encode(fingerprint: true)
        var badFingerprint = good; badFingerprint[badFingerprint.count - 1] ^= 1
        for junk: [UInt8] in [[], [0], [0x40, 0x00, 0x00, 0x10], Array(good.prefix(19)), badFingerprint, good + [0, 0, 0, 0],
                              [0xff] + Array(repeating: 0, count: 40)] {
            #expect(rig.raw(junk) == nil)
        }
        #expect(rig.core.allocationCount == 0)
        #expect(rig.core.dropped["malformed", default: 0] >= 6)
        // Unauthenticated requests get a challenge, and nothing is remembered.
        _ = rig.raw(good)
        #expect(rig.core.allocationCount == 0 && rig.io.open.isEmpty)
    }

    @Test("no relaying without permission; CreatePermission lets data through both ways; Data indications to the client")
    func permissions() throws {
        let rig = Rig()
        let relayed = try #require(rig.allocate().xorRelayedAddress)
        let peer = STUNAddress("198.51.100.9:5000")!
        let send = STUNMessage(method: .send, class: .indication, attributes: [.xorPeerAddress(peer), .data([1, 2, 3])]).encode()
        _ = rig.raw(send)
        #expect(rig.io.toPeers.isEmpty)
        rig.core.handlePeer([9, 9], relayPort: relayed.port, from: peer, now: rig.now, io: &rig.io)
        let answersBefore = rig.io.toClients.count
        #expect(rig.request(.createPermission, [.xorPeerAddress(STUNAddress("198.51.100.9:1")!)]).messageClass == .successResponse)
        _ = rig.raw(send)
        #expect(rig.io.toPeers.count == 1 && rig.io.toPeers[0].bytes == [1, 2, 3] && rig.io.toPeers[0].peer == peer)
        #expect(rig.io.toPeers[0].port == relayed.port)
        rig.core.handlePeer([4, 5], relayPort: relayed.port, from: STUNAddress("198.51.100.9:6000")!, now: rig.now, io: &rig.io)
        #expect(rig.io.toClients.count == answersBefore + 2)
        let data = try STUNMessage.decode(rig.io.toClients.last!.bytes)
        #expect(data.method == .data && data.messageClass == .indication)
        #expect(data.data == [4, 5] && data.xorPeerAddresses == [STUNAddress("198.51.100.9:6000")!])
        // Permissions last 300 s.
        rig.now = rig.now.advanced(by: 301)
        _ = rig.raw(send)
        #expect(rig.io.toPeers.count == 1)
    }

    @Test("403 for the relay's own address and denied ranges, 443 for IPv6 peers, 400 without a peer")
    func forbidden() {
        let rig = Rig { $0.deniedPeers += [TURNAddressRange("10.0.0.0/8")!] }
        _ = rig.allocate()
        #expect(rig.request(.createPermission, [.xorPeerAddress(STUNAddress("203.0.113.6:9")!)]).messageClass == .successResponse)
        #expect(rig.request(.createPermission, [.xorPeerAddress(STUNAddress("127.0.0.1:9")!)]).errorCode?.code == 403)
        #expect(rig.request(.createPermission, [.xorPeerAddress(STUNAddress("10.1.2.3:9")!)]).errorCode?.code == 403)
        #expect(rig.request(.channelBind, [.channelNumber(0x4000), .xorPeerAddress(STUNAddress("10.1.2.3:9")!)]).errorCode?.code == 403)
        #expect(rig.request(.createPermission, [.xorPeerAddress(STUNAddress("[2001:db8::1]:9")!)]).errorCode?.code == 443)
        #expect(rig.request(.createPermission, []).errorCode?.code == 400)
        // All or nothing.
        #expect(rig.request(.createPermission, [.xorPeerAddress(STUNAddress("198.51.100.1:9")!),
                                                .xorPeerAddress(STUNAddress("10.0.0.1:9")!)]).errorCode?.code == 403)
        let send = STUNMessage(method: .send, class: .indication, attributes: [.xorPeerAddress(STUNAddress("198.51.100.1:9")!), .data([1])]).encode()
        _ = rig.raw(send)
        #expect(rig.io.toPeers.isEmpty)
    }

    @Test("the relay's own IP: its listening port and unused ports are never reached, other allocations' relayed addresses are")
    func ownAddress() throws {
        let rig = Rig()
        let mine = try #require(rig.allocate().xorRelayedAddress)
        #expect(rig.request(.createPermission, [.xorPeerAddress(STUNAddress("203.0.113.5:1")!)]).messageClass == .successResponse)
        for target in [STUNAddress("203.0.113.5:3478")!, STUNAddress(ip: mine.ip, port: mine.port &+ 1)] {
            _ = rig.raw(STUNMessage(method: .send, class: .indication, attributes: [.xorPeerAddress(target), .data([1])]).encode())
        }
        #expect(rig.io.toPeers.isEmpty)
        #expect(rig.core.dropped["denied peer"] == 2)
        let me = rig.client
        rig.client = STUNAddress("198.51.100.8:1000")!
        rig.nonce = nil
        let theirs = try #require(rig.allocate().xorRelayedAddress)
        rig.client = me
        rig.nonce = nil
        _ = rig.raw(STUNMessage(method: .send, class: .indication, attributes: [.xorPeerAddress(theirs), .data([1])]).encode())
        #expect(rig.io.toPeers.count == 1 && rig.io.toPeers[0].peer == theirs)
    }

    @Test("ChannelBind: numbers 0x4000–0x7FFF (RFC 5766, as coturn), one peer per number and one number per peer; ChannelData both ways; the binding keeps the permission alive")
    func channels() throws {
        let rig = Rig()
        let relayed = try #require(rig.allocate().xorRelayedAddress)
        let peer = STUNAddress("198.51.100.9:5000")!
        #expect(rig.request(.channelBind, [.channelNumber(0x3FFF), .xorPeerAddress(peer)]).errorCode?.code == 400)
        #expect(rig.request(.channelBind, [.channelNumber(0x8000), .xorPeerAddress(peer)]).errorCode?.code == 400)
        #expect(rig.request(.channelBind, [.channelNumber(0x4001)]).errorCode?.code == 400)
        #expect(rig.request(.channelBind, [.channelNumber(0x4001), .xorPeerAddress(peer)]).messageClass == .successResponse)
        #expect(rig.request(.channelBind, [.channelNumber(0x4001), .xorPeerAddress(peer)]).messageClass == .successResponse)
        #expect(rig.request(.channelBind, [.channelNumber(0x4002), .xorPeerAddress(peer)]).errorCode?.code == 400)
        #expect(rig.request(.channelBind, [.channelNumber(0x4001), .xorPeerAddress(STUNAddress("198.51.100.9:5001")!)]).errorCode?.code == 400)
        _ = rig.raw(ChannelData(channelNumber: 0x4001, data: [7, 7, 7]).encode(padded: true))
        #expect(rig.io.toPeers.last?.bytes == [7, 7, 7] && rig.io.toPeers.last?.peer == peer)
        _ = rig.raw(ChannelData(channelNumber: 0x4002, data: [8]).encode(padded: false))
        #expect(rig.io.toPeers.count == 1, "unbound channel")
        rig.core.handlePeer([1, 2, 3, 4, 5], relayPort: relayed.port, from: peer, now: rig.now, io: &rig.io)
        #expect(try ChannelData.decode(rig.io.toClients.last!.bytes) == ChannelData(channelNumber: 0x4001, data: [1, 2, 3, 4, 5]))
        // 400 s later the permission (300 s) would have expired; the channel (600 s) keeps it, like coturn.
        _ = rig.request(.refresh, [.lifetime(3600)])
        rig.now = rig.now.advanced(by: 400)
        rig.core.expire(now: rig.now, io: &rig.io)
        rig.core.handlePeer([6], relayPort: relayed.port, from: peer, now: rig.now, io: &rig.io)
        #expect(try ChannelData.decode(rig.io.toClients.last!.bytes).data == [6])
        rig.now = rig.now.advanced(by: 201)
        rig.core.expire(now: rig.now, io: &rig.io)
        let n = rig.io.toClients.count
        rig.core.handlePeer([6], relayPort: relayed.port, from: peer, now: rig.now, io: &rig.io)
        #expect(rig.io.toClients.count == n, "channel and permission expired")
    }

    @Test("EVEN-PORT with R reserves the next port behind a RESERVATION-TOKEN; the token allocates it; DONT-FRAGMENT is accepted")
    func evenPort() throws {
        let rig = Rig()
        let a = rig.allocate([.evenPort(reserveNext: true), .dontFragment])
        let port = try #require(a.xorRelayedAddress?.port)
        #expect(port % 2 == 0)
        guard case .reservationToken(let token)? = a.first(.reservationToken) else { Issue.record("no token: \(a)"); return }
        rig.client = STUNAddress("198.51.100.7:40002")!
        rig.nonce = nil
        #expect(rig.allocate([.reservationToken(token), .evenPort(reserveNext: false)]).errorCode?.code == 400)
        let b = rig.allocate([.reservationToken(token)])
        #expect(b.xorRelayedAddress?.port == port + 1)
        rig.client = STUNAddress("198.51.100.7:40003")!
        rig.nonce = nil
        #expect(rig.allocate([.reservationToken(token)]).errorCode?.code == 508, "a token is used once")
        rig.client = STUNAddress("198.51.100.7:40004")!
        rig.nonce = nil
        #expect(try #require(rig.allocate([.evenPort(reserveNext: false)]).xorRelayedAddress).port % 2 == 0)
    }

    @Test("per-user quota 486, total capacity and exhausted ports 508")
    func quotas() {
        let rig = Rig { $0.userQuota = 1; $0.relayPorts = 50000...50001 }
        #expect(rig.allocate().messageClass == .successResponse)
        rig.client = STUNAddress("198.51.100.7:40005")!; rig.nonce = nil
        #expect(rig.allocate().errorCode?.code == 486)
        rig.user = "bob"; rig.password = "hunter2"
        let bob = rig.allocate()
        #expect(bob.messageClass == .successResponse, "\(bob)")
        rig.client = STUNAddress("198.51.100.7:40006")!; rig.nonce = nil
        rig.core.config.userQuota = 0
        #expect(rig.allocate().errorCode?.code == 508)
    }

    @Test("allocations expire; statistics count packets and bytes each way, peers and channels, and keep ended allocations")
    func expiryAndStats() throws {
        let rig = Rig()
        let relayed = try #require(rig.allocate().xorRelayedAddress)
        let peer = STUNAddress("198.51.100.9:5000")!
        _ = rig.request(.channelBind, [.channelNumber(0x4000), .xorPeerAddress(peer)])
        for _ in 0..<3 { _ = rig.raw(ChannelData(channelNumber: 0x4000, data: [1, 2, 3, 4]).encode(padded: false)) }
        rig.core.handlePeer(Array(repeating: 0, count: 10), relayPort: relayed.port, from: peer, now: rig.now, io: &rig.io)
        var snap = rig.core.snapshot(now: rig.now, listen: ["203.0.113.5:3478"], started: 0)
        let a = try #require(snap.allocations.first)
        #expect(a.toPeers == { var c = TURNCounter(); c.packets = 3; c.bytes = 12; return c }())
        #expect(a.fromPeers.packets == 1 && a.fromPeers.bytes == 10)
        #expect(a.peers == ["198.51.100.9:5000"] && a.channels.map(\.number) == [0x4000])
        #expect(a.relayed == relayed.description && a.client == rig.client.description && a.state == "active")
        #expect(a.expires == rig.now.wall + 600)
        rig.now = rig.now.advanced(by: 601)
        rig.core.expire(now: rig.now, io: &rig.io)
        #expect(rig.core.allocationCount == 0 && rig.io.open.isEmpty)
        snap = rig.core.snapshot(now: rig.now, listen: [], started: 0)
        #expect(snap.activeAllocations == 0 && snap.allocations.first?.state == "expired" && snap.allocations.first?.toPeers.packets == 3)
    }

    @Test("static secret: username expiry[:user], password base64(HMAC-SHA1(secret, username)); expired credentials get 401")
    func staticSecret() {
        let secret = "s3cret"
        let rig = Rig { $0.credentials = .staticSecret(secret) }
        rig.user = "\(Int(rig.now.wall) + 3600):alice"
        rig.password = TURNCredentials.restPassword(secret: secret, username: rig.user)
        #expect(rig.allocate().messageClass == .successResponse)
        // A vector computed with Python: base64(hmac.new(b"north", b"1700000000:alice", sha1)).
        #expect(TURNCredentials.restPassword(secret: "north", username: "1700000000:alice") == "Cd/49soE35ICqcJF/bCTn8Z4OyE=")
        let old = Rig { $0.credentials = .staticSecret(secret) }
        old.user = "\(Int(old.now.wall) - 1):alice"
        old.password = TURNCredentials.restPassword(secret: secret, username: old.user)
        #expect(old.allocate().errorCode?.code == 401)
    }

    @Test("Binding requests are answered without credentials")
    func binding() {
        let rig = Rig()
        let r = rig.raw(STUNMessage(method: .binding, class: .request).encode())
        #expect(r?.messageClass == .successResponse && r?.xorMappedAddress == rig.client)
    }

    // The relay runs one core per event loop (shard), all with one `TURNShared`: two rigs sharing one
    // stand for two shards, each with the clients the kernel handed its sockets.

    @Test("shards: the per-user quota and allocation serials hold across cores; freed by a deletion on either")
    func shardsShareQuotaAndSerials() throws {
        let shared = TURNShared()
        let a = Rig(shared: shared) { $0.userQuota = 1 }, b = Rig(shared: shared) { $0.userQuota = 1 }
        b.client = STUNAddress("198.51.100.8:40000")!
        #expect(a.allocate().messageClass == .successResponse)
        #expect(b.allocate().errorCode?.code == 486)
        #expect(a.request(.refresh, [.lifetime(0)]).messageClass == .successResponse)
        #expect(b.allocate().messageClass == .successResponse)
        let ids = a.core.snapshot(now: a.now, listen: [], started: 0).allocations.map(\.id)
            + b.core.snapshot(now: b.now, listen: [], started: 0).allocations.map(\.id)
        #expect(Set(ids) == ["a1", "a2"])
        #expect(shared.totalAllocations == 2)
    }

    @Test("shards: a RESERVATION-TOKEN from one core allocates its port on another; relay ports are never handed out twice")
    func shardsShareReservationsAndPorts() throws {
        let shared = TURNShared()
        let a = Rig(shared: shared) { $0.relayPorts = 50000...50003 }, b = Rig(shared: shared) { $0.relayPorts = 50000...50003 }
        b.client = STUNAddress("198.51.100.8:40000")!
        let rtp = a.allocate([.evenPort(reserveNext: true)])
        let port = try #require(rtp.xorRelayedAddress?.port)
        guard case .reservationToken(let token)? = rtp.first(.reservationToken) else { Issue.record("no token: \(rtp)"); return }
        #expect(b.allocate([.reservationToken(token)]).xorRelayedAddress?.port == port + 1)
        // Two ports left of four: one for each core, then none.
        b.client = STUNAddress("198.51.100.8:40001")!; b.nonce = nil
        a.client = STUNAddress("198.51.100.7:40001")!; a.nonce = nil
        let third = try #require(a.allocate().xorRelayedAddress?.port)
        let fourth = try #require(b.allocate().xorRelayedAddress?.port)
        #expect(Set([port, port + 1, third, fourth]) == Set(50000...50003))
        b.client = STUNAddress("198.51.100.8:40002")!; b.nonce = nil
        #expect(b.allocate().errorCode?.code == 508)
    }

    @Test("shards: a client reaches the relayed address of an allocation another core holds, and no unused relay port")
    func shardsRelayToRelay() throws {
        let shared = TURNShared()
        let a = Rig(shared: shared), b = Rig(shared: shared)
        b.client = STUNAddress("198.51.100.8:40000")!
        let theirs = try #require(b.allocate().xorRelayedAddress)
        _ = try #require(a.allocate().xorRelayedAddress)
        #expect(a.request(.channelBind, [.channelNumber(0x4000), .xorPeerAddress(theirs)]).messageClass == .successResponse)
        _ = a.raw(ChannelData(channelNumber: 0x4000, data: [1, 2]).encode(padded: false))
        #expect(a.io.toPeers.count == 1 && a.io.toPeers[0].peer == theirs)
        #expect(b.request(.refresh, [.lifetime(0)]).messageClass == .successResponse)
        _ = a.raw(ChannelData(channelNumber: 0x4000, data: [1, 2]).encode(padded: false))
        #expect(a.io.toPeers.count == 1 && a.core.dropped["denied peer"] == 1)
    }

    @Test("shards: statistics merge live allocations in creation order and ended ones by end time, errors and drops summed")
    func shardsMergeStatistics() throws {
        let shared = TURNShared()
        let a = Rig(shared: shared), b = Rig(shared: shared)
        b.client = STUNAddress("198.51.100.8:40000")!
        _ = a.allocate()
        _ = b.allocate()
        a.client = STUNAddress("198.51.100.7:40001")!; a.nonce = nil
        _ = a.allocate()
        b.now = b.now.advanced(by: 1)
        #expect(b.request(.refresh, [.lifetime(0)]).messageClass == .successResponse)
        _ = a.raw(ChannelData(channelNumber: 0x4000, data: [1]).encode(padded: false))
        _ = b.raw(ChannelData(channelNumber: 0x4000, data: [1]).encode(padded: false))
        let parts = [a, b].map { $0.core.snapshot(now: $0.now, listen: ["203.0.113.5:3478"], started: 0) }
        let merged = try #require(TURNStatsSnapshot.merging(parts, historyLimit: 10))
        #expect(merged.allocations.map(\.id) == ["a1", "a3", "a2"])
        #expect(merged.allocations.map(\.state) == ["active", "active", "deleted"])
        #expect(merged.activeAllocations == 2 && merged.totalAllocations == 3)
        #expect(merged.errors["401"] == parts[0].errors["401", default: 0] + parts[1].errors["401", default: 0])
        #expect(merged.dropped["no allocation", default: 0] + merged.dropped["unbound channel", default: 0] == 2)
        #expect(TURNStatsSnapshot.merging(parts, historyLimit: 0)?.allocations.count == 2)
    }
}
