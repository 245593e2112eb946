import Testing
import STUNWire
@testable import Roles

private func addr(_ s: String) -> STUNAddress { STUNAddress(s)! }

private func host(_ s: String, pref: UInt32 = 65535) -> ICECandidate {
    let a = addr(s)
    return ICECandidate(type: .host, address: a, priority: ICECandidate.priority(type: .host, localPreference: pref),
                        foundation: ICECandidate.foundation(type: .host, baseIP: a.ip, server: nil))
}

/// Two cores joined by a lossless in-memory network (optionally dropping packets), on a fake clock.
private struct Sim {
    var a: ICEAgentCore
    var b: ICEAgentCore
    let aAddr: STUNAddress
    let bAddr: STUNAddress
    var now = 0.0
    var drop: (Double) -> Bool = { _ in false }
    var sentByA: [[UInt8]] = []

    init(aControlling: Bool, bControlling: Bool, aTB: UInt64 = 10, bTB: UInt64 = 20, config: ICEConfiguration = ICEConfiguration()) {
        aAddr = addr("10.0.0.1:1000")
        bAddr = addr("10.0.0.2:2000")
        a = ICEAgentCore(controlling: aControlling, tieBreaker: aTB, config: config)
        b = ICEAgentCore(controlling: bControlling, tieBreaker: bTB, config: config)
        a.addLocal(host("10.0.0.1:1000"))
        b.addLocal(host("10.0.0.2:2000"))
    }

    mutating func exchangeOffers() {
        _ = a.setRemote(credentials: b.localCredentials, candidates: b.localCandidates, now: now)
        _ = b.setRemote(credentials: a.localCredentials, candidates: a.localCandidates, now: now)
    }

    mutating func deliver(_ out: [ICETransmit], fromA: Bool) {
        var queue = out.map { ($0, fromA) }
        while !queue.isEmpty {
            let (t, isA) = queue.removeFirst()
            if isA { sentByA.append(t.bytes) }
            if drop(now) { continue }
            guard let p = try? STUNPacket(t.bytes) else { continue }
            if isA, t.to == bAddr { queue += b.receive(p, from: aAddr, via: .direct, now: now).map { ($0, false) } }
            if !isA, t.to == aAddr { queue += a.receive(p, from: bAddr, via: .direct, now: now).map { ($0, true) } }
        }
    }

    mutating func run(until end: Double, step: Double = 0.001) {
        while now < end {
            deliver(a.tick(now: now), fromA: true)
            deliver(b.tick(now: now), fromA: false)
            now += step
        }
    }
}

struct AgentCandidateTests {
    @Test("candidate priorities follow RFC 8445 §5.1.2 with the recommended type preferences")
    func priorities() {
        #expect(ICECandidate.priority(type: .host) == 2_130_706_431)
        #expect(ICECandidate.priority(type: .prflx) == 1_862_270_975)
        #expect(ICECandidate.priority(type: .srflx) == 1_694_498_815)
        #expect(ICECandidate.priority(type: .relay) == 16_777_215)
        #expect(ICECandidate.priority(type: .host, localPreference: 65534) == 2_130_706_431 - 256)
        #expect(ICECandidate.priority(type: .host, component: 2) == 2_130_706_430)
    }

    @Test("pair priority: 2^32·min(G,D) + 2·max(G,D) + (G>D), symmetric on both sides")
    func pairPriority() {
        let g: UInt32 = 2_130_706_431, d: UInt32 = 1_694_498_815
        #expect(icePairPriority(controlling: g, controlled: d) == (UInt64(d) << 32) + 2 * UInt64(g) + 1)
        #expect(icePairPriority(controlling: d, controlled: g) == (UInt64(d) << 32) + 2 * UInt64(g))
        // host-host beats srflx-srflx beats relay-anything
        let hh = icePairPriority(controlling: g, controlled: g)
        let ss = icePairPriority(controlling: d, controlled: d)
        let rr = icePairPriority(controlling: 16_777_215, controlled: g)
        #expect(hh > ss && ss > rr)
    }

    @Test("foundations: equal for the same type, base and server; different otherwise")
    func foundations() {
        let ip = STUNIPAddress("10.1.0.2")!, s1 = STUNIPAddress("203.0.113.3")!, s2 = STUNIPAddress("203.0.113.5")!
        #expect(ICECandidate.foundation(type: .srflx, baseIP: ip, server: s1) == ICECandidate.foundation(type: .srflx, baseIP: ip, server: s1))
        #expect(ICECandidate.foundation(type: .srflx, baseIP: ip, server: s1) != ICECandidate.foundation(type: .srflx, baseIP: ip, server: s2))
        #expect(ICECandidate.foundation(type: .host, baseIP: ip, server: nil) != ICECandidate.foundation(type: .srflx, baseIP: ip, server: nil))
        let f = ICECandidate.foundation(type: .relay, baseIP: ip, server: s2)
        #expect(!f.isEmpty && f.count <= 32 && f.allSatisfy { $0.isLetter || $0.isNumber })
    }

    @Test("SDP candidate lines round-trip and aioice's form parses")
    func sdp() throws {
        let c = ICECandidate(type: .srflx, address: addr("203.0.113.1:40000"), base: addr("10.1.0.2:40000"),
                             related: addr("10.1.0.2:40000"), priority: 1_694_498_815, foundation: "abc")
        #expect(c.sdp == "candidate:abc 1 udp 1694498815 203.0.113.1 40000 typ srflx raddr 10.1.0.2 rport 40000")
        let back = try #require(ICECandidate.parse(sdp: c.sdp))
        #expect(back.type == .srflx && back.address == c.address && back.related == c.related && back.priority == c.priority)
        let aio = try #require(ICECandidate.parse(sdp: "6815297761 1 udp 2130706431 10.2.0.2 51234 typ host"))
        #expect(aio.type == .host && aio.address == addr("10.2.0.2:51234") && aio.foundation == "6815297761")
        #expect(ICECandidate.parse(sdp: "a=candidate:1 1 tcp 1 10.0.0.1 9 typ host") == nil)
        #expect(ICECandidate.parse(sdp: "candidate:1 1 udp x 10.0.0.1 9 typ host") == nil)
    }
}

struct AgentChecklistTests {
    @Test("two agents connect: both select the same host pair, the controlling one nominates")
    func connect() throws {
        var s = Sim(aControlling: true, bControlling: false)
        s.exchangeOffers()
        s.run(until: 1.0)
        let pa = try #require(s.a.selectedPair), pb = try #require(s.b.selectedPair)
        #expect(pa.remote.address == s.bAddr && pb.remote.address == s.aAddr)
        #expect(pa.nominated && pb.nominated)
        #expect(s.a.controlling && !s.b.controlling)
        let ev = s.a.drainEvents()
        #expect(ev.contains { if case .pairSelected = $0 { true } else { false } })
    }

    @Test("role conflict, both controlling: the larger tie-breaker stays controlling (487 or switch)", arguments: [(UInt64(10), UInt64(20)), (UInt64(20), UInt64(10))])
    func conflictBothControlling(aTB: UInt64, bTB: UInt64) throws {
        var s = Sim(aControlling: true, bControlling: true, aTB: aTB, bTB: bTB)
        s.exchangeOffers()
        s.run(until: 2.0)
        #expect(s.a.controlling == (aTB > bTB))
        #expect(s.b.controlling == (bTB > aTB))
        #expect(s.a.selectedPair != nil && s.b.selectedPair != nil)
        let roleEvents = (s.a.drainEvents() + s.b.drainEvents()).filter { if case .roleChanged = $0 { true } else { false } }
        #expect(roleEvents.count == 1)
    }

    @Test("role conflict, both controlled: the larger tie-breaker becomes controlling", arguments: [(UInt64(10), UInt64(20)), (UInt64(20), UInt64(10))])
    func conflictBothControlled(aTB: UInt64, bTB: UInt64) throws {
        var s = Sim(aControlling: false, bControlling: false, aTB: aTB, bTB: bTB)
        s.exchangeOffers()
        s.run(until: 2.0)
        #expect(s.a.controlling == (aTB > bTB))
        #expect(s.b.controlling == (bTB > aTB))
        #expect(s.a.selectedPair != nil && s.b.selectedPair != nil)
    }

    @Test("checks are paced: one new check per Ta, retransmissions apart")
    func pacing() {
        var config = ICEConfiguration()
        config.ta = 0.05
        config.rto = 10  // no retransmissions in the window
        var core = ICEAgentCore(controlling: true, tieBreaker: 1, config: config)
        core.addLocal(host("10.0.0.1:1000"))
        let remotes = (1...8).map { host("10.0.1.\($0):2000") }
        _ = core.setRemote(credentials: ICECredentials(ufrag: "rrrr", pwd: "pppppppppppppppppppppp"), candidates: remotes, now: 0)
        var sends: [Double] = []
        var t = 0.0
        while t <= 0.2201 {
            for _ in core.tick(now: t) { sends.append(t) }
            t += 0.001
        }
        #expect(sends.count == 5, "\(sends)")  // t = 0, .05, .10, .15, .20
        for (x, y) in zip(sends, sends.dropFirst()) { #expect(y - x >= 0.05 - 1e-6) }
        // highest-priority pair first
        #expect(core.orderedPairs.first?.state == .inProgress)
    }

    @Test("a check from an unknown address teaches a peer-reflexive remote candidate and is answered")
    func peerReflexive() throws {
        var s = Sim(aControlling: true, bControlling: false)
        s.exchangeOffers()
        // b sees a's checks from a NAT mapping it does not know
        let mapped = addr("198.51.100.7:62000")
        let out = s.a.tick(now: 0)
        let p = try STUNPacket(try #require(out.first).bytes)
        let replies = s.b.receive(p, from: mapped, via: .direct, now: 0)
        #expect(replies.count == 1 && replies[0].to == mapped)
        let learned = s.b.drainEvents().compactMap { if case .learnedRemote(let c) = $0 { c } else { nil } }
        #expect(learned.map(\.type) == [.prflx] && learned[0].address == mapped)
        #expect(learned[0].priority == ICECandidate.priority(type: .prflx))
    }

    @Test("unauthenticated checks get 401/400 and change nothing")
    func badChecks() throws {
        var core = ICEAgentCore(controlling: false, tieBreaker: 1)
        core.addLocal(host("10.0.0.1:1000"))
        let bad = STUNMessage(type: .bindingRequest, attributes: [.username("\(core.localCredentials.ufrag):x")])
        let wrongKey = bad.encode(integrity: .shortTerm(password: "wrongwrongwrongwrongwrong", preparation: .none), fingerprint: true)
        let out = core.receive(try STUNPacket(wrongKey), from: addr("10.0.0.9:9"), via: .direct, now: 0)
        let r = try STUNMessage.decode(try #require(out.first).bytes)
        #expect(r.errorCode?.code == 401)
        let noMI = core.receive(try STUNPacket(bad.encode(fingerprint: true)), from: addr("10.0.0.9:9"), via: .direct, now: 0)
        #expect(try STUNMessage.decode(noMI[0].bytes).errorCode?.code == 400)
        #expect(core.remoteCandidates.isEmpty)
    }
}

struct AgentConsentTests {
    @Test("consent: requests every interval keep the pair; silence expires it after the timeout and checks restart")
    func expiry() throws {
        var config = ICEConfiguration()
        config.consentInterval = 1
        config.consentTimeout = 5
        var s = Sim(aControlling: true, bControlling: false, config: config)
        s.exchangeOffers()
        s.run(until: 10, step: 0.01)
        #expect(s.a.selectedPair != nil && s.a.consentLosses == 0)
        let sentBefore = s.sentByA.count
        #expect(sentBefore > 10, "consent requests flow while the path is up")
        _ = s.a.drainEvents()
        s.drop = { $0 >= 10 }  // the path dies at t = 10
        // the last response came at most 1.2 intervals before the drop: loss in [13.8, 15]
        s.run(until: 13.75, step: 0.01)
        #expect(s.a.consentLosses == 0)
        s.run(until: 15.05, step: 0.01)
        #expect(s.a.consentLosses == 1)
        let lost = s.a.drainEvents().compactMap { if case .consentLost(_, let silent) = $0 { silent } else { nil } }
        #expect(lost.count == 1 && lost[0] >= 5 && lost[0] < 6.2)
        #expect(s.a.selectedPair == nil)
        // the path comes back: checks restart and a pair is selected again
        s.drop = { _ in false }
        s.run(until: 20, step: 0.01)
        #expect(s.a.selectedPair != nil)
        #expect(s.a.drainEvents().contains { if case .pairSelected = $0 { true } else { false } })
    }
}

struct AgentTURNClientTests {
    @Test("TURN client: 401 challenge, authenticated Allocate, Send indication then ChannelData")
    func allocate() throws {
        var c = TURNClient(server: addr("203.0.113.5:3478"), username: "user", password: "pass")
        let first = try STUNMessage.decode(c.start(now: 0)[0])
        #expect(first.method == .allocate && !first.contains(.messageIntegrity))
        let challenge = STUNMessage.errorResponse(to: first, error: .unauthenticated, attributes: [.realm("lab"), .nonce("n1")])
        let second = c.handle(try STUNPacket(challenge.encode()), now: 0.01)
        let p2 = try STUNPacket(second[0])
        let key = STUNIntegrityKey.longTerm(username: "user", realm: "lab", password: "pass", preparation: .none)
        #expect(p2.verifyMessageIntegrity(key: key) == true)
        let m2 = try p2.message()
        #expect(m2.username == "user" && m2.realm == "lab" && m2.nonce == "n1")
        let ok = STUNMessage.successResponse(to: m2, attributes: [.xorRelayedAddress(addr("203.0.113.5:50000")),
                                                                   .xorMappedAddress(addr("203.0.113.1:40000")), .lifetime(600)])
        _ = c.handle(try STUNPacket(ok.encode(integrity: key)), now: 0.02)
        #expect(c.isAllocated && c.relayed == addr("203.0.113.5:50000"))
        #expect(c.drainEvents().contains(.allocated(relayed: addr("203.0.113.5:50000"), mapped: addr("203.0.113.1:40000"), lifetime: 600)))
        let peer = addr("203.0.113.2:41000")
        let perm = c.permit([peer.ip], now: 0.03)
        #expect(perm.count == 1)
        #expect(try STUNMessage.decode(perm[0]).method == .createPermission)
        let send = try STUNMessage.decode(c.wrap([1, 2, 3], to: peer))
        #expect(send.method == .send && send.data == [1, 2, 3] && send.xorPeerAddresses == [peer])
        let bind = try STUNMessage.decode(c.bindChannel(peer, now: 0.04)[0])
        #expect(bind.method == .channelBind && bind.channelNumber == 0x4000)
        _ = c.handle(try STUNPacket(STUNMessage.successResponse(to: bind).encode(integrity: key)), now: 0.05)
        let cd = try ChannelData.decode(c.wrap([9, 9], to: peer))
        #expect(cd.channelNumber == 0x4000 && cd.data == [9, 9])
        #expect(c.unwrap(channelData: ChannelData(channelNumber: 0x4000, data: [7]).encode(padded: false))?.peer == peer)
    }
}

struct AgentRendezvousTests {
    @Test("rendezvous: register, queue for late peers, forward bodies, report errors")
    func router() throws {
        var r = RendezvousRouter()
        let reg = r.receive(#"{"type":"register","id":"alice"}"#, from: 1)
        #expect(reg.count == 1 && reg[0].1 == "{\"id\":\"alice\",\"peers\":[],\"type\":\"registered\"}\n")
        // bob is not there yet: queued
        #expect(r.receive(RendezvousWire.send(to: "bob", body: ["kind": "offer", "ufrag": "abcd"]), from: 1).isEmpty)
        let bob = r.receive(RendezvousWire.register(id: "bob"), from: 2)
        #expect(bob.count == 2 && bob.allSatisfy { $0.0 == 2 })
        let msg = try #require(RendezvousWire.decode(bob[1].1.dropLast()))
        #expect(msg["type"] as? String == "message" && msg["from"] as? String == "alice")
        #expect((msg["body"] as? [String: Any])?["ufrag"] as? String == "abcd")
        // direct delivery once registered
        let back = r.receive(RendezvousWire.send(to: "alice", body: ["kind": "done"]), from: 2)
        #expect(back.count == 1 && back[0].0 == 1)
        // errors
        #expect(r.receive("not json", from: 3)[0].1.contains("\"error\""))
        #expect(r.receive(RendezvousWire.send(to: "alice", body: [:]), from: 3)[0].1.contains("register first"))
        #expect(r.receive(#"{"type":"register"}"#, from: 3)[0].1.contains("error"))
        r.closed(1)
        #expect(r.ids["alice"] == nil && r.ids["bob"] == 2)
    }

    @Test("report lines are single JSON objects with sorted keys; path classification")
    func report() {
        #expect(AgentReport.line(["event": "data", "sent": 1]) == "{\"event\":\"data\",\"sent\":1}\n")
        let h1 = host("10.1.0.2:1"), h2 = host("10.1.0.3:2")
        let s1 = ICECandidate(type: .srflx, address: addr("203.0.113.1:5"), priority: 1, foundation: "s")
        let s2 = ICECandidate(type: .srflx, address: addr("203.0.113.2:6"), priority: 1, foundation: "s")
        let s1b = ICECandidate(type: .prflx, address: addr("203.0.113.1:7"), priority: 1, foundation: "p")
        let r = ICECandidate(type: .relay, address: addr("203.0.113.5:50000"), priority: 1, foundation: "r")
        #expect(AgentReport.classify(local: h1, remote: h2) == ("direct", "local"))
        #expect(AgentReport.classify(local: s1, remote: s2) == ("direct", nil))
        #expect(AgentReport.classify(local: s1, remote: s1b) == ("hairpin", nil))
        #expect(AgentReport.classify(local: r, remote: s2) == ("relay", "local"))
        #expect(AgentCommand.argv(natlab: "/n", id: "a", peer: "b", rendezvous: "1.2.3.4:7000", stun: "1.2.3.4:3478")
            == ["/n", "agent", "--id", "a", "--peer", "b", "--rendezvous", "1.2.3.4:7000", "--stun", "1.2.3.4:3478"])
    }
}
