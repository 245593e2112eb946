import Foundation
import Synchronization
import Testing
@testable import Roles
import STUNWire

// The probe's discovery and classification against a scripted NAT and RFC 5780 server: no sockets.

/// A NAT (RFC 4787 behaviour as parameters) in front of one inside host, and an RFC 5780 server with
/// addresses A and B and ports 3478/3479 behind it. Datagrams are delivered synchronously.
final class ScriptedNetwork: ProbeTransport, @unchecked Sendable {
    enum Mapping { case none, eim, adm, apdm }
    enum Filtering { case eif, adf, apdf }

    static let inside = STUNIPAddress("10.0.0.2")!
    static let publicIP = STUNIPAddress("203.0.113.1")!
    static let a = STUNIPAddress("198.51.100.1")!
    static let b = STUNIPAddress("198.51.100.2")!
    static let server = STUNAddress(ip: a, port: 3478)

    var mapping: Mapping
    var filtering: Filtering
    var hairpin: Bool
    var preservePorts: Bool
    var lifetime: Duration?
    var serverHasOtherAddress = true
    var serverHonoursChangeRequest = true

    struct Entry {
        var owner: ScriptedSocket
        var contacted: Set<STUNAddress> = []
        var lastActive: ContinuousClock.Instant
    }
    private struct State {
        var nextLocal: UInt16 = 40000
        var nextRandom: UInt16 = 20000
        /// mapping key → external port
        var keys: [String: UInt16] = [:]
        /// external port → entry
        var entries: [UInt16: Entry] = [:]
    }
    private let state = Mutex(State())

    init(mapping: Mapping, filtering: Filtering, hairpin: Bool = false, preservePorts: Bool = true, lifetime: Duration? = nil) {
        self.mapping = mapping; self.filtering = filtering; self.hairpin = hairpin
        self.preservePorts = preservePorts; self.lifetime = lifetime
    }

    func open(towards server: STUNAddress, port: UInt16?) async throws -> any ProbeSocket {
        let port = state.withLock { s -> UInt16 in s.nextLocal += 1; return s.nextLocal }
        return ScriptedSocket(network: self, local: STUNAddress(ip: Self.inside, port: port))
    }

    private func alive(_ e: Entry, now: ContinuousClock.Instant) -> Bool {
        guard let lifetime else { return true }
        return now - e.lastActive < lifetime
    }

    /// Outbound: translate, then hand to the server or hairpin.
    func send(_ message: STUNMessage, from socket: ScriptedSocket, to destination: STUNAddress) {
        let now = ContinuousClock.now
        let external: STUNAddress = state.withLock { s in
            if mapping == .none {
                // A firewall: no translation, the filter state is kept per local port the same way.
                if s.entries[socket.local.port] == nil {
                    s.entries[socket.local.port] = Entry(owner: socket, lastActive: now)
                }
                s.entries[socket.local.port]!.contacted.insert(destination)
                s.entries[socket.local.port]!.lastActive = now
                return socket.local
            }
            let key: String
            switch mapping {
            case .eim, .none: key = "\(socket.local.port)"
            case .adm: key = "\(socket.local.port)|\(destination.ip)"
            case .apdm: key = "\(socket.local.port)|\(destination)"
            }
            if let port = s.keys[key], let e = s.entries[port], alive(e, now: now), e.owner === socket {
                s.entries[port]!.contacted.insert(destination)
                s.entries[port]!.lastActive = now
                return STUNAddress(ip: Self.publicIP, port: port)
            }
            var port = socket.local.port
            if !preservePorts || mapping != .eim || s.entries[port] != nil {
                s.nextRandom += 7
                port = s.nextRandom
            }
            s.keys[key] = port
            s.entries[port] = Entry(owner: socket, contacted: [destination], lastActive: now)
            return STUNAddress(ip: Self.publicIP, port: port)
        }
        if destination.ip == Self.publicIP {
            guard hairpin else { return }
            let owner = state.withLock { $0.entries[destination.port]?.owner }
            owner?.mailbox.deliver(ProbeReceived(message: message, source: external))
            return
        }
        guard [Self.a, Self.b].contains(destination.ip), [3478, 3479].contains(destination.port) else { return }
        serve(message, arrivedAt: destination, from: external)
    }

    /// The RFC 5780 server.
    private func serve(_ request: STUNMessage, arrivedAt: STUNAddress, from client: STUNAddress) {
        var source = arrivedAt
        var change: STUNChangeRequest = []
        var responsePort: UInt16?
        for attribute in request.attributes {
            if case .changeRequest(let c) = attribute { change = c }
            if case .responsePort(let p) = attribute { responsePort = p }
        }
        if serverHonoursChangeRequest {
            if change.contains(.changeIP) { source.ip = source.ip == Self.a ? Self.b : Self.a }
            if change.contains(.changePort) { source.port = source.port == 3478 ? 3479 : 3478 }
        }
        var attributes: [STUNAttribute] = [.xorMappedAddress(client), .responseOrigin(source)]
        if serverHasOtherAddress {
            attributes.append(.otherAddress(STUNAddress(ip: arrivedAt.ip == Self.a ? Self.b : Self.a,
                                                        port: arrivedAt.port == 3478 ? 3479 : 3478)))
        }
        let response = STUNMessage.successResponse(to: request, attributes: attributes)
        var destination = client
        if let responsePort { destination.port = responsePort }
        inbound(response, from: source, to: destination)
    }

    /// Inbound: filtering and lifetime decide.
    private func inbound(_ message: STUNMessage, from source: STUNAddress, to destination: STUNAddress) {
        let now = ContinuousClock.now
        let owner: ScriptedSocket? = state.withLock { s in
            guard var e = s.entries[destination.port], alive(e, now: now) else { return nil }
            switch filtering {
            case .eif: break
            case .adf: guard e.contacted.contains(where: { $0.ip == source.ip }) else { return nil }
            case .apdf: guard e.contacted.contains(source) else { return nil }
            }
            e.lastActive = now
            s.entries[destination.port] = e
            return e.owner
        }
        owner?.mailbox.deliver(ProbeReceived(message: message, source: source))
    }
}

final class ScriptedSocket: ProbeSocket, @unchecked Sendable {
    let network: ScriptedNetwork
    let local: STUNAddress
    let mailbox = ProbeMailbox()
    init(network: ScriptedNetwork, local: STUNAddress) { self.network = network; self.local = local }
    func send(_ message: STUNMessage, to destination: STUNAddress) async throws {
        network.send(message, from: self, to: destination)
    }
    func receive(transactionID: STUNTransactionID, timeout: Duration) async -> ProbeReceived? {
        await mailbox.receive(transactionID, timeout: timeout)
    }
    func close() async { mailbox.close() }
}

let fastPolicy = RetransmissionPolicy(rto: .milliseconds(5), maxTransmissions: 2, finalWaitMultiplier: 2)

func probe(_ network: ScriptedNetwork, lifetime: LifetimeOptions? = nil) async throws -> ProbeReport {
    try await ProbeRunner(transport: network,
                          options: ProbeOptions(server: ScriptedNetwork.server, policy: fastPolicy, lifetime: lifetime)).run()
}

@Suite struct ProbeClassificationTests {
    static let grid: [(ScriptedNetwork.Mapping, ScriptedNetwork.Filtering, Bool)] = {
        var out: [(ScriptedNetwork.Mapping, ScriptedNetwork.Filtering, Bool)] = []
        for m in [ScriptedNetwork.Mapping.eim, .adm, .apdm] {
            for f in [ScriptedNetwork.Filtering.eif, .adf, .apdf] { for h in [false, true] { out.append((m, f, h)) } }
        }
        return out
    }()

    @Test("every mapping × filtering × hairpin is classified as scripted", arguments: grid)
    func gridClassification(_ m: ScriptedNetwork.Mapping, _ f: ScriptedNetwork.Filtering, _ h: Bool) async throws {
        let report = try await probe(ScriptedNetwork(mapping: m, filtering: f, hairpin: h))
        let expectedMapping: MeasuredMapping = switch m {
        case .eim: .endpointIndependent
        case .adm: .addressDependent
        case .apdm: .addressAndPortDependent
        case .none: .none
        }
        let expectedFiltering: MeasuredFiltering = switch f {
        case .eif: .endpointIndependent
        case .adf: .addressDependent
        case .apdf: .addressAndPortDependent
        }
        #expect(report.mapping == expectedMapping, "\(report.tests)")
        #expect(report.filtering == expectedFiltering, "\(report.tests)")
        #expect(report.hairpin?.works == h)
        if h { #expect(report.hairpin?.sourceIsPublic == true) }
        #expect(report.portPreserved == (m == .eim))
        #expect(report.mapped.hasPrefix("203.0.113.1:"))
        #expect(report.notes.isEmpty, "\(report.notes)")
    }

    @Test("no NAT on the path: mapping none; classic names for open internet and a UDP firewall")
    func noNAT() async throws {
        let open = try await probe(ScriptedNetwork(mapping: .none, filtering: .eif))
        #expect(open.mapping == MeasuredMapping.none)
        #expect(open.classic == "open internet")
        #expect(open.portPreserved)
        #expect(open.tests.filter { $0.name.hasPrefix("mapping") }.count == 1, "no test II/III needed")
        let eim = try await probe(ScriptedNetwork(mapping: .eim, filtering: .apdf))
        #expect(eim.tests.filter { $0.name.hasPrefix("mapping") }.compactMap(\.mapped) == Array(repeating: eim.mapped, count: 3),
                "tests I–III all see one address behind EIM")
    }

    @Test("EIM with random ports: not preserved, still endpoint-independent")
    func randomPorts() async throws {
        let r = try await probe(ScriptedNetwork(mapping: .eim, filtering: .apdf, preservePorts: false))
        #expect(r.mapping == .endpointIndependent)
        #expect(!r.portPreserved)
        #expect(r.classic == "port-restricted cone")
    }

    @Test("a server without OTHER-ADDRESS: mapping and filtering unclassified, said in a note")
    func singleAddressServer() async throws {
        let n = ScriptedNetwork(mapping: .eim, filtering: .eif)
        n.serverHasOtherAddress = false
        let r = try await probe(n)
        #expect(r.mapping == nil)
        #expect(r.filtering == nil)
        #expect(r.notes.contains { $0.contains("OTHER-ADDRESS") })
    }

    @Test("a server that ignores CHANGE-REQUEST is not taken for endpoint-independent filtering")
    func ignoredChangeRequest() async throws {
        let n = ScriptedNetwork(mapping: .eim, filtering: .eif)
        n.serverHonoursChangeRequest = false
        let r = try await probe(n)
        #expect(r.filtering == .addressAndPortDependent)
        #expect(r.notes.contains { $0.contains("ignores CHANGE-REQUEST") })
    }

    @Test("binding lifetime: bracketed within one step of the scripted lifetime, trials stop early")
    func lifetime() async throws {
        let n = ScriptedNetwork(mapping: .eim, filtering: .apdf, lifetime: .milliseconds(900))
        let r = try await probe(n, lifetime: LifetimeOptions(step: 0.2, max: 5))
        let l = try #require(r.lifetime)
        let seconds = try #require(l.seconds)
        // Brackets are measured idle times, so oversleeping on a loaded machine does not bias them.
        #expect(l.lower < 0.9 && (l.upper ?? 0) >= 0.9, "\(l)")
        #expect(abs(seconds - 0.9) <= 0.3, "\(l)")
        // Early stop shows in the outcomes, not in wall time (no timing assertions in tests).
        #expect(l.trials.contains { $0.delivered == nil }, "later trials were cancelled after two losses")
    }

    @Test("lifetime estimate from trial outcomes")
    func lifetimeEstimate() {
        let t = LifetimeResult.estimate([.init(idle: 3, delivered: false), .init(idle: 1, delivered: true),
                                         .init(idle: 2, delivered: true), .init(idle: 4, delivered: false),
                                         .init(idle: 5, delivered: nil)])
        #expect(t.lower == 2 && t.upper == 3 && t.seconds == 2.5)
        let unbounded = LifetimeResult.estimate([.init(idle: 1, delivered: true)])
        #expect(unbounded.upper == nil && unbounded.seconds == nil && unbounded.lower == 1)
    }

    @Test("RFC 5780 §4.3 mapping decisions and RFC 3489 names")
    func classifier() {
        let local = STUNAddress("10.0.0.2:40000")!
        let m1 = STUNAddress("203.0.113.1:40000")!, m2 = STUNAddress("203.0.113.1:50000")!, m3 = STUNAddress("203.0.113.1:50001")!
        #expect(ProbeClassifier.mapping(local: local, testI: local, testII: nil, testIII: nil) == MeasuredMapping.none)
        #expect(ProbeClassifier.mapping(local: local, testI: m1, testII: m1, testIII: nil) == .endpointIndependent)
        #expect(ProbeClassifier.mapping(local: local, testI: m1, testII: m2, testIII: m2) == .addressDependent)
        #expect(ProbeClassifier.mapping(local: local, testI: m1, testII: m2, testIII: m3) == .addressAndPortDependent)
        #expect(ProbeClassifier.mapping(local: local, testI: m1, testII: nil, testIII: nil) == nil)
        #expect(ProbeClassifier.filtering(changedIPAndPortAnswered: true, changedPortAnswered: false) == .endpointIndependent)
        #expect(ProbeClassifier.filtering(changedIPAndPortAnswered: false, changedPortAnswered: true) == .addressDependent)
        #expect(ProbeClassifier.filtering(changedIPAndPortAnswered: false, changedPortAnswered: false) == .addressAndPortDependent)
        #expect(ProbeClassifier.classicName(mapping: .endpointIndependent, filtering: .endpointIndependent) == "full cone")
        #expect(ProbeClassifier.classicName(mapping: .endpointIndependent, filtering: .addressDependent) == "restricted cone")
        #expect(ProbeClassifier.classicName(mapping: .endpointIndependent, filtering: .addressAndPortDependent) == "port-restricted cone")
        #expect(ProbeClassifier.classicName(mapping: .addressDependent, filtering: .endpointIndependent) == "symmetric")
        #expect(ProbeClassifier.classicName(mapping: .addressAndPortDependent, filtering: .addressAndPortDependent) == "symmetric")
        #expect(ProbeClassifier.classicName(mapping: MeasuredMapping.none, filtering: .addressAndPortDependent) == "symmetric UDP firewall")
    }

    @Test("retransmission schedule: RTO doubling, Rm × RTO after the last send")
    func retransmission() {
        let p = RetransmissionPolicy()
        #expect(p.waits == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(400)])
        #expect(p.giveUpAfter == .milliseconds(1100))
        #expect(RetransmissionPolicy(rto: .milliseconds(500), maxTransmissions: 7, finalWaitMultiplier: 16).giveUpAfter == .milliseconds(39_500))
    }

    @Test("mailbox: a message that arrived before the wait is returned; a wait times out with nil")
    func mailbox() async {
        let box = ProbeMailbox()
        let m = STUNMessage(method: .binding, class: .successResponse)
        box.deliver(ProbeReceived(message: m, source: ScriptedNetwork.server))
        #expect(await box.receive(m.transactionID, timeout: .milliseconds(1))?.message == m)
        #expect(await box.receive(m.transactionID, timeout: .milliseconds(5)) == nil)
    }
}
