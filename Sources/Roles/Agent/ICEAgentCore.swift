// The ICE agent's logic (RFC 8445 with RFC 7675 consent freshness), as a value driven by the
// caller's clock: check list and pair states, paced ordinary and triggered checks with
// retransmission, role-conflict resolution, peer-reflexive candidates, regular nomination by the
// controlling side (any USE-CANDIDATE accepted on the controlled side, so aggressive peers work),
// selection, consent freshness and a restart of the checks after consent is lost. No sockets: every
// input is a call with `now` (seconds on any monotonic clock), every output an `ICETransmit`.
import STUNWire

/// How a local base sends: from the agent's own socket, or through its TURN allocation.
public enum ICEVia: String, Sendable, Hashable, Codable {
    case direct, relay
}

/// One datagram the agent wants sent.
public struct ICETransmit: Sendable, Hashable {
    public var via: ICEVia
    public var to: STUNAddress
    public var bytes: [UInt8]
}

public enum ICEPairState: String, Sendable, Hashable {
    case frozen, waiting, inProgress = "in-progress", succeeded, failed
}

public struct ICEPair: Sendable, Hashable, CustomStringConvertible {
    /// The local base (host or relay candidate) the checks are sent from.
    public var local: ICECandidate
    public var remote: ICECandidate
    public var state: ICEPairState = .frozen
    public var priority: UInt64 = 0
    /// The local candidate the peer saw (from XOR-MAPPED-ADDRESS): srflx, prflx, relay or host.
    public var validLocal: ICECandidate?
    public var nominated = false
    /// The peer sent USE-CANDIDATE on this pair (we are controlled).
    public var remoteNominated = false
    /// We (controlling) are nominating it.
    public var nominating = false

    public var via: ICEVia { local.type == .relay ? .relay : .direct }
    public var foundation: String { local.foundation + ":" + remote.foundation }
    public var description: String { "\(validLocal ?? local) -> \(remote) [\(state.rawValue)\(nominated ? ", nominated" : "")]" }
}

public struct ICEConfiguration: Sendable, Hashable {
    /// Pacing: one new check every Ta seconds (RFC 8445 default 50 ms; small in the lab).
    public var ta: Double = 0.02
    /// First retransmission timeout of a check; doubles up to `maxRTO`.
    public var rto: Double = 0.2
    public var maxRTO: Double = 1.6
    public var maxRetransmits = 6
    /// The controlling side nominates the best valid pair once no better pair is pending, or this
    /// long after the first pair succeeded.
    public var nominationWait: Double = 0.5
    /// Consent requests every `consentInterval` × U(0.8, 1.2) (RFC 7675: 5 s); also the keepalive.
    public var consentInterval: Double = 5
    /// Consent is lost this long after the last valid response (RFC 7675: 30 s).
    public var consentTimeout: Double = 30
    public var maxPairs = 100
    public init() {}
}

public enum ICEEvent: Sendable, Hashable {
    case roleChanged(controlling: Bool, reason: String)
    case learnedRemote(ICECandidate)
    case learnedLocal(ICECandidate)
    case pairSelected(ICEPair)
    case consentLost(ICEPair, silentFor: Double)
    case pairFailed(ICEPair)
}

public struct ICEAgentCore: Sendable {
    public private(set) var controlling: Bool
    public let tieBreaker: UInt64
    public let localCredentials: ICECredentials
    public private(set) var remoteCredentials: ICECredentials?
    public var config: ICEConfiguration
    public private(set) var localCandidates: [ICECandidate] = []
    public private(set) var remoteCandidates: [ICECandidate] = []
    public private(set) var pairs: [ICEPair] = []
    public private(set) var selected: Int?
    /// How many times consent was lost (and the checks restarted).
    public private(set) var consentLosses = 0
    public private(set) var checksSent = 0

    private var triggered: [Int] = []
    private struct Transaction: Sendable {
        var pair: Int
        var consent: Bool
        var useCandidate: Bool
        var sentControlling: Bool
        var prflxPriority: UInt32
        var bytes: [UInt8]
        var sentAt: Double
        var rto: Double
        var retries: Int
    }
    private var transactions: [STUNTransactionID: Transaction] = [:]
    private var lastCheckAt = -Double.infinity
    private var firstValidAt: Double?
    private var lastConsentAt = 0.0
    private var nextConsentAt = 0.0
    private var early: [(from: STUNAddress, via: ICEVia, priority: UInt32, useCandidate: Bool)] = []
    private var rng: UInt64
    private var events: [ICEEvent] = []

    public init(controlling: Bool, tieBreaker: UInt64 = UInt64.random(in: 1...UInt64.max),
                credentials: ICECredentials = .random(), config: ICEConfiguration = ICEConfiguration()) {
        self.controlling = controlling
        self.tieBreaker = tieBreaker
        self.localCredentials = credentials
        self.config = config
        self.rng = tieBreaker | 1
    }

    /// Events since the last call.
    public mutating func drainEvents() -> [ICEEvent] {
        defer { events.removeAll() }
        return events
    }

    public var selectedPair: ICEPair? { selected.map { pairs[$0] } }

    // MARK: candidates

    /// Adds a gathered local candidate (host, srflx or relay). Host and relay candidates are bases
    /// that pair with every remote candidate; a srflx's base is its host, so it adds no pair.
    public mutating func addLocal(_ c: ICECandidate) {
        guard !localCandidates.contains(where: { $0.type == c.type && $0.address == c.address }) else { return }
        localCandidates.append(c)
        if c.type == .host || c.type == .relay { for r in remoteCandidates { addPair(local: c, remote: r) } }
    }

    /// The peer's credentials and candidates (from its offer). Checks that arrived earlier are processed now.
    public mutating func setRemote(credentials: ICECredentials, candidates: [ICECandidate], now: Double) -> [ICETransmit] {
        remoteCredentials = credentials
        for c in candidates { addRemote(c) }
        let queued = early
        early.removeAll()
        for e in queued { processCheck(from: e.from, via: e.via, priority: e.priority, useCandidate: e.useCandidate, now: now) }
        return []
    }

    private mutating func addRemote(_ c: ICECandidate) {
        guard c.component == 1, !remoteCandidates.contains(where: { $0.address == c.address }) else { return }
        remoteCandidates.append(c)
        for l in localCandidates where l.type == .host || l.type == .relay { addPair(local: l, remote: c) }
    }

    @discardableResult
    private mutating func addPair(local: ICECandidate, remote: ICECandidate) -> Int? {
        guard local.address.family == remote.address.family else { return nil }
        if let i = pairs.firstIndex(where: { $0.local.address == local.address && $0.local.type == local.type
            && $0.remote.address == remote.address }) { return i }
        guard pairs.count < config.maxPairs else { return nil }
        var p = ICEPair(local: local, remote: remote)
        p.priority = pairPriority(p)
        let active = pairs.contains { $0.foundation == p.foundation && ($0.state == .waiting || $0.state == .inProgress) }
        p.state = active ? .frozen : .waiting
        pairs.append(p)
        return pairs.count - 1
    }

    private func pairPriority(_ p: ICEPair) -> UInt64 {
        controlling ? icePairPriority(controlling: p.local.priority, controlled: p.remote.priority)
                    : icePairPriority(controlling: p.remote.priority, controlled: p.local.priority)
    }

    private mutating func switchRole(reason: String) {
        controlling.toggle()
        for i in pairs.indices {
            pairs[i].priority = pairPriority(pairs[i])
            pairs[i].nominating = false
        }
        events.append(.roleChanged(controlling: controlling, reason: reason))
    }

    /// The pair order of the check list: highest priority first.
    public var orderedPairs: [ICEPair] { pairs.sorted { $0.priority > $1.priority } }

    // MARK: timers

    public mutating func tick(now: Double) -> [ICETransmit] {
        var out: [ICETransmit] = []
        // Retransmissions and timeouts.
        for (tid, var t) in transactions where now >= t.sentAt + t.rto {
            if t.consent || t.retries >= config.maxRetransmits {
                transactions[tid] = nil
                if !t.consent, pairs[t.pair].state == .inProgress {
                    pairs[t.pair].state = .failed
                    if pairs[t.pair].nominating { pairs[t.pair].nominating = false }
                    events.append(.pairFailed(pairs[t.pair]))
                }
                continue
            }
            t.retries += 1
            t.sentAt = now
            t.rto = min(t.rto * 2, config.maxRTO)
            transactions[tid] = t
            out.append(ICETransmit(via: pairs[t.pair].via, to: pairs[t.pair].remote.address, bytes: t.bytes))
        }
        // Nomination (controlling, regular).
        if controlling, selected == nil, !pairs.contains(where: { $0.nominating || $0.nominated }),
           let best = pairs.indices.filter({ pairs[$0].state == .succeeded }).max(by: { pairs[$0].priority < pairs[$1].priority }) {
            let better = pairs.contains { [.frozen, .waiting, .inProgress].contains($0.state) && $0.priority > pairs[best].priority }
            if !better || now - (firstValidAt ?? now) >= config.nominationWait {
                pairs[best].nominating = true
                triggered.removeAll { $0 == best }
                triggered.insert(best, at: 0)
            }
        }
        // One new check per Ta.
        if remoteCredentials != nil, now - lastCheckAt >= config.ta - 1e-9 {
            var next: Int?
            if !triggered.isEmpty {
                next = triggered.removeFirst()
            } else if selected == nil, !pairs.contains(where: { $0.nominating }) {
                next = pairs.indices.filter { pairs[$0].state == .waiting }.max { pairs[$0].priority < pairs[$1].priority }
                if next == nil, let f = pairs.indices.filter({ pairs[$0].state == .frozen }).max(by: { pairs[$0].priority < pairs[$1].priority }) {
                    next = f
                }
            }
            if let i = next {
                out.append(sendCheck(i, consent: false, now: now))
                lastCheckAt = now
            }
        }
        // Consent freshness on the selected pair.
        if let s = selected {
            if now - lastConsentAt >= config.consentTimeout {
                let lost = pairs[s]
                events.append(.consentLost(lost, silentFor: now - lastConsentAt))
                consentLosses += 1
                restartChecks()
            } else if now >= nextConsentAt {
                out.append(sendCheck(s, consent: true, now: now))
                nextConsentAt = now + config.consentInterval * jitter()
            }
        }
        return out
    }

    /// When the next call to `tick` may have something to do.
    public func nextDeadline(now: Double) -> Double {
        var d = now + 0.25
        if !triggered.isEmpty || pairs.contains(where: { $0.state == .waiting || $0.state == .frozen }) {
            d = min(d, max(now, lastCheckAt + config.ta))
        }
        for t in transactions.values { d = min(d, t.sentAt + t.rto) }
        if selected != nil { d = min(d, nextConsentAt, lastConsentAt + config.consentTimeout) }
        return max(d, now)
    }

    private mutating func jitter() -> Double {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
        return 0.8 + 0.4 * Double(rng % 10_000) / 10_000
    }

    private mutating func restartChecks() {
        selected = nil
        firstValidAt = nil
        transactions.removeAll()
        triggered.removeAll()
        for i in pairs.indices {
            pairs[i].state = .frozen
            pairs[i].nominated = false
            // The peer's nomination stands (it may still have the pair selected and will not
            // nominate again): a controlled agent re-selects the pair once its check succeeds.
            pairs[i].nominating = false
            pairs[i].validLocal = nil
        }
        var seen = Set<String>()
        for i in pairs.indices.sorted(by: { pairs[$0].priority > pairs[$1].priority }) where seen.insert(pairs[i].foundation).inserted {
            pairs[i].state = .waiting
        }
    }

    // MARK: messages

    private var localKey: STUNIntegrityKey { .shortTerm(password: localCredentials.pwd, preparation: .none) }
    private var remoteKey: STUNIntegrityKey? { remoteCredentials.map { .shortTerm(password: $0.pwd, preparation: .none) } }

    private mutating func sendCheck(_ i: Int, consent: Bool, now: Double) -> ICETransmit {
        let p = pairs[i]
        let useCandidate = !consent && controlling && p.nominating
        let prflxPriority = ICECandidate.priority(type: .prflx, localPreference: (p.local.priority >> 8) & 0xFFFF)
        var attrs: [STUNAttribute] = [
            .username("\(remoteCredentials?.ufrag ?? ""):\(localCredentials.ufrag)"),
            .priority(prflxPriority),
            controlling ? .iceControlling(tieBreaker: tieBreaker) : .iceControlled(tieBreaker: tieBreaker),
        ]
        if useCandidate { attrs.append(.useCandidate) }
        let msg = STUNMessage(type: .bindingRequest, attributes: attrs)
        let bytes = msg.encode(integrity: remoteKey, fingerprint: true)
        transactions[msg.transactionID] = Transaction(pair: i, consent: consent, useCandidate: useCandidate,
                                                      sentControlling: controlling, prflxPriority: prflxPriority,
                                                      bytes: bytes, sentAt: now, rto: max(config.rto, config.ta), retries: 0)
        if !consent, pairs[i].state != .succeeded { pairs[i].state = .inProgress }
        checksSent += 1
        return ICETransmit(via: p.via, to: p.remote.address, bytes: bytes)
    }

    /// Whether `tid` is a transaction of this agent (the edge routes responses by transaction ID).
    public func owns(_ tid: STUNTransactionID) -> Bool { transactions[tid] != nil }

    /// A STUN message that arrived from `from` (directly, or unwrapped from the TURN relay).
    public mutating func receive(_ packet: STUNPacket, from: STUNAddress, via: ICEVia, now: Double) -> [ICETransmit] {
        guard packet.type.method == .binding else { return [] }
        switch packet.type.messageClass {
        case .request: return handleRequest(packet, from: from, via: via, now: now)
        case .successResponse, .errorResponse: handleResponse(packet, from: from, now: now); return []
        case .indication: return []
        }
    }

    private mutating func handleRequest(_ packet: STUNPacket, from: STUNAddress, via: ICEVia, now: Double) -> [ICETransmit] {
        guard let msg = try? packet.message() else { return [] }
        func reply(_ m: STUNMessage, signed: Bool) -> [ICETransmit] {
            [ICETransmit(via: via, to: from, bytes: m.encode(integrity: signed ? localKey : nil, fingerprint: true))]
        }
        guard let user = msg.username, packet.messageIntegrityOffset != nil else {
            return reply(.errorResponse(to: msg, error: .badRequest), signed: false)
        }
        let parts = user.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, parts[0] == localCredentials.ufrag, packet.verifyMessageIntegrity(key: localKey) == true else {
            return reply(.errorResponse(to: msg, error: .unauthenticated), signed: false)
        }
        if let r = remoteCredentials, r.ufrag != parts[1] { return reply(.errorResponse(to: msg, error: .unauthenticated), signed: false) }
        // Role conflict (RFC 8445 §7.3.1.1).
        for a in msg.attributes {
            switch a {
            case .iceControlling(let remote) where controlling:
                if tieBreaker >= remote { return reply(.errorResponse(to: msg, error: .roleConflict), signed: true) }
                switchRole(reason: "role conflict: the peer is controlling with a larger tie-breaker")
            case .iceControlled(let remote) where !controlling:
                if tieBreaker >= remote { switchRole(reason: "role conflict: both controlled, our tie-breaker is larger") }
                else { return reply(.errorResponse(to: msg, error: .roleConflict), signed: true) }
            default: break
            }
        }
        let out = reply(.successResponse(to: msg, attributes: [.xorMappedAddress(from)]), signed: true)
        let useCandidate = msg.contains(.useCandidate)
        let priority = msg.priority ?? ICECandidate.priority(type: .prflx)
        if remoteCredentials == nil {
            if early.count < 100 { early.append((from, via, priority, useCandidate)) }
        } else {
            processCheck(from: from, via: via, priority: priority, useCandidate: useCandidate, now: now)
        }
        return out
    }

    private mutating func processCheck(from: STUNAddress, via: ICEVia, priority: UInt32, useCandidate: Bool, now: Double) {
        let base = localCandidates.first { via == .relay ? $0.type == .relay : ($0.type == .host && $0.address.family == from.family) }
        guard let local = base else { return }
        if !remoteCandidates.contains(where: { $0.address == from }) {
            let c = ICECandidate(type: .prflx, address: from, priority: priority,
                                 foundation: ICECandidate.foundation(type: .prflx, baseIP: from.ip, server: nil))
            remoteCandidates.append(c)
            events.append(.learnedRemote(c))
        }
        guard let remote = remoteCandidates.first(where: { $0.address == from }),
              let i = addPair(local: local, remote: remote) else { return }
        if useCandidate && !controlling { pairs[i].remoteNominated = true }
        switch pairs[i].state {
        case .succeeded:
            if pairs[i].remoteNominated && !controlling && !pairs[i].nominated {
                pairs[i].nominated = true
                reselect(now: now)
            }
        case .inProgress:
            break
        case .frozen, .waiting, .failed:
            pairs[i].state = .waiting
            if !triggered.contains(i) { triggered.append(i) }
        }
    }

    private mutating func handleResponse(_ packet: STUNPacket, from: STUNAddress, now: Double) {
        guard let t = transactions[packet.transactionID] else { return }
        guard let key = remoteKey, packet.verifyMessageIntegrity(key: key) == true,
              let msg = try? packet.message() else { return }  // unsigned or forged: as if lost
        transactions[packet.transactionID] = nil
        let i = t.pair
        guard from == pairs[i].remote.address else {  // not symmetric: the check fails (RFC 8445 §7.2.5.2.1)
            if !t.consent { pairs[i].state = .failed; events.append(.pairFailed(pairs[i])) }
            return
        }
        if t.consent {
            if msg.messageClass == .successResponse { lastConsentAt = now }
            return
        }
        if msg.messageClass == .errorResponse {
            if msg.errorCode?.code == 487, t.sentControlling == controlling {
                switchRole(reason: "role conflict: the peer answered 487")
            }
            if msg.errorCode?.code == 487 {
                pairs[i].state = .waiting
                if !triggered.contains(i) { triggered.append(i) }
            } else {
                pairs[i].state = .failed
                pairs[i].nominating = false
                events.append(.pairFailed(pairs[i]))
            }
            return
        }
        guard let mapped = msg.xorMappedAddress else { return }
        let relayed = pairs[i].local.type == .relay
        var valid = localCandidates.first { $0.address == mapped && ($0.type == .relay) == relayed }
        if valid == nil {
            let c = ICECandidate(type: .prflx, address: mapped, base: pairs[i].local.base, related: pairs[i].local.base,
                                 priority: t.prflxPriority,
                                 foundation: ICECandidate.foundation(type: .prflx, baseIP: pairs[i].local.base.ip, server: nil))
            localCandidates.append(c)
            events.append(.learnedLocal(c))
            valid = c
        }
        pairs[i].validLocal = valid
        pairs[i].state = .succeeded
        if firstValidAt == nil { firstValidAt = now }
        let f = pairs[i].foundation
        for j in pairs.indices where pairs[j].state == .frozen && pairs[j].foundation == f { pairs[j].state = .waiting }
        if t.useCandidate && controlling {
            pairs[i].nominated = true
            pairs[i].nominating = false
            reselect(now: now)
        } else if !controlling && pairs[i].remoteNominated {
            pairs[i].nominated = true
            reselect(now: now)
        }
    }

    private mutating func reselect(now: Double) {
        guard let best = pairs.indices.filter({ pairs[$0].nominated }).max(by: { pairs[$0].priority < pairs[$1].priority }),
              best != selected else { return }
        selected = best
        lastConsentAt = now
        nextConsentAt = now + config.consentInterval * jitter()
        events.append(.pairSelected(pairs[best]))
    }
}
