// The RFC 5780 discovery procedure, written against `ProbeTransport` so tests can run it against a
// scripted NAT and server.
//
// Sockets (each a fresh local port, so that no test sees state another one made):
// - mapping: one socket runs tests I (primary A:p), II (alternate IP, primary port B:p) and III
//   (alternate IP and port B:p'), RFC 5780 §4.3.
// - filtering: two sockets in parallel; each opens its mapping towards A:p, then asks for an answer
//   from B:p' (CHANGE-REQUEST ip+port, test II) or from A:p' (CHANGE-REQUEST port, test III), §4.4.
//   Separate sockets because the mapping socket has already talked to B, which opens ADF/APDF filters.
// - hairpin: two sockets learn their mappings, then send to each other's public mapping (the same
//   NAT path two LAN hosts would take: into the router's LAN side, turned around, out again). It works
//   when either datagram arrives; REQ-9 also wants the receiver to see the sender's public address.
// - lifetime (optional): one socket per idle time T, each making its mapping with exactly one request
//   (so conntrack keeps the non-stream timeout, nat-recipes P5), then after T a second socket asks the
//   server to answer to the first one's public port (RESPONSE-PORT, §4.6). The trials run in parallel,
//   so the whole measurement takes about the lifetime plus two seconds.

import STUNWire

public struct LifetimeOptions: Sendable, Equatable {
    /// Idle times tried: step, 2·step, … up to max (seconds).
    public var step: Double
    public var max: Double
    public init(step: Double = 0.5, max: Double = 40) { self.step = step; self.max = max }
}

public struct ProbeOptions: Sendable {
    public var server: STUNAddress
    public var policy: RetransmissionPolicy
    public var hairpin: Bool
    public var lifetime: LifetimeOptions?
    /// Keep retrying mapping test I this long (a server that is still starting).
    public var serverWait: Duration
    /// Bind the mapping-test socket to this port (nil: any).
    public var localPort: UInt16?
    public init(server: STUNAddress, policy: RetransmissionPolicy = RetransmissionPolicy(), hairpin: Bool = true,
                lifetime: LifetimeOptions? = nil, serverWait: Duration = .zero, localPort: UInt16? = nil) {
        self.server = server; self.policy = policy; self.hairpin = hairpin; self.lifetime = lifetime
        self.serverWait = serverWait; self.localPort = localPort
    }
}

public enum ProbeError: Error, CustomStringConvertible, Equatable {
    case noAnswer(server: String, waited: String)
    case noMappedAddress(server: String)
    case errorResponse(server: String, code: Int, reason: String)

    public var description: String {
        switch self {
        case .noAnswer(let s, let w): "no answer from the STUN server \(s) (gave up after \(w))"
        case .noMappedAddress(let s): "the STUN server \(s) answered without XOR-MAPPED-ADDRESS or MAPPED-ADDRESS"
        case .errorResponse(let s, let c, let r): "the STUN server \(s) answered with error \(c) \(r)"
        }
    }
}

public struct ProbeRunner: Sendable {
    public let transport: any ProbeTransport
    public let options: ProbeOptions

    public init(transport: any ProbeTransport, options: ProbeOptions) {
        self.transport = transport; self.options = options
    }

    static func bindingRequest(_ extra: [STUNAttribute] = []) -> STUNMessage {
        STUNMessage(method: .binding, class: .request, attributes: extra)
    }

    private var server: STUNAddress { options.server }

    /// Test I on `socket`: the answer must be a success with a mapped address.
    private func testI(_ socket: any ProbeSocket, name: String) async throws -> (ProbeReceived, STUNAddress, ProbeTest) {
        guard let answer = try await socket.transact(Self.bindingRequest(), to: server, policy: options.policy) else {
            throw ProbeError.noAnswer(server: "\(server)", waited: "\(options.policy.giveUpAfter)")
        }
        if answer.message.messageClass == .errorResponse {
            let e = answer.message.errorCode
            throw ProbeError.errorResponse(server: "\(server)", code: Int(e?.code ?? 0), reason: e?.reason ?? "")
        }
        guard let mapped = answer.message.reflexiveAddress else { throw ProbeError.noMappedAddress(server: "\(server)") }
        return (answer, mapped, ProbeTest(name: name, local: "\(socket.local)", to: "\(server)", mapped: "\(mapped)", from: "\(answer.source)"))
    }

    public func run() async throws -> ProbeReport {
        let socket = try await transport.open(towards: server, port: options.localPort)
        defer { Task { await socket.close() } }
        let deadline = ContinuousClock.now + options.serverWait
        var attempt: (ProbeReceived, STUNAddress, ProbeTest)?
        while attempt == nil {
            do {
                attempt = try await testI(socket, name: "mapping I")
            } catch ProbeError.noAnswer(let s, let w) {
                if ContinuousClock.now >= deadline { throw ProbeError.noAnswer(server: s, waited: w) }
            }
        }
        let (first, mappedI, t1) = attempt!
        var tests = [t1]
        var notes: [String] = []
        let other = first.message.attributes.lazy.compactMap { a -> STUNAddress? in
            if case .otherAddress(let o) = a { return o } else { return nil }
        }.first
        if other == nil {
            notes.append("the server sent no OTHER-ADDRESS (it has one address): mapping and filtering cannot be classified")
        }

        async let filteringPart: (MeasuredFiltering?, [ProbeTest], [String]) = other == nil ? (nil, [], []) : filtering(other: other!)
        async let hairpinPart: (HairpinResult?, [ProbeTest]) = options.hairpin ? hairpin() : (nil, [])
        async let lifetimePart: (LifetimeResult?, [String]) = options.lifetime == nil ? (nil, []) : measureLifetime(options.lifetime!)

        var mapping: MeasuredMapping? = ProbeClassifier.mapping(local: socket.local, testI: mappedI, testII: nil, testIII: nil)
        if mapping == nil, let other {
            let toII = STUNAddress(ip: other.ip, port: server.port)
            let answerII = try await socket.transact(Self.bindingRequest(), to: toII, policy: options.policy)
            let mappedII = answerII?.message.reflexiveAddress
            tests.append(ProbeTest(name: "mapping II", local: "\(socket.local)", to: "\(toII)", mapped: mappedII.map { "\($0)" },
                                   from: answerII.map { "\($0.source)" }))
            var mappedIII: STUNAddress?
            // RFC 5780 needs test III only when II differs from I; it is run anyway as evidence
            // (an endpoint-independent mapping must give the same address a third time).
            if mappedII != nil {
                let answerIII = try await socket.transact(Self.bindingRequest(), to: other, policy: options.policy)
                mappedIII = answerIII?.message.reflexiveAddress
                tests.append(ProbeTest(name: "mapping III", local: "\(socket.local)", to: "\(other)", mapped: mappedIII.map { "\($0)" },
                                       from: answerIII.map { "\($0.source)" }))
            }
            mapping = ProbeClassifier.mapping(local: socket.local, testI: mappedI, testII: mappedII, testIII: mappedIII)
            if mapping == nil { notes.append("the server's alternate address did not answer: mapping not classified") }
        }

        let (filtering, filteringTests, filteringNotes) = try await filteringPart
        let (hairpin, hairpinTests) = try await hairpinPart
        let (lifetime, lifetimeNotes) = try await lifetimePart
        tests += filteringTests + hairpinTests
        notes += filteringNotes + lifetimeNotes
        return ProbeReport(server: "\(server)", otherAddress: other.map { "\($0)" }, local: "\(socket.local)", mapped: "\(mappedI)",
                           mapping: mapping, filtering: filtering, portPreserved: mappedI.port == socket.local.port,
                           hairpin: hairpin, lifetime: lifetime, tests: tests, notes: notes)
    }

    // MARK: filtering

    private func filtering(other: STUNAddress) async throws -> (MeasuredFiltering?, [ProbeTest], [String]) {
        async let ipAndPort = filteringTest(name: "filtering II", change: [.changeIP, .changePort],
                                            expectedSource: other)
        async let portOnly = filteringTest(name: "filtering III", change: [.changePort],
                                           expectedSource: STUNAddress(ip: server.ip, port: other.port))
        let (a, b) = try await (ipAndPort, portOnly)
        var notes: [String] = []
        for r in [a, b] { if let n = r.note { notes.append(n) } }
        let filtering = ProbeClassifier.filtering(changedIPAndPortAnswered: a.answered, changedPortAnswered: b.answered)
        return (filtering, a.tests + b.tests, notes)
    }

    private func filteringTest(name: String, change: STUNChangeRequest, expectedSource: STUNAddress) async throws
        -> (answered: Bool, tests: [ProbeTest], note: String?) {
        let socket = try await transport.open(towards: server)
        defer { Task { await socket.close() } }
        let (_, _, t1) = try await testI(socket, name: name + " (test I)")
        let flags = change.contains(.changeIP) ? "ip+port" : "port"
        let answer = try await socket.transact(Self.bindingRequest([.changeRequest(change)]), to: server, policy: options.policy)
        let test = ProbeTest(name: name, local: "\(socket.local)", to: "\(server)", changeRequest: flags,
                             mapped: answer?.message.reflexiveAddress.map { "\($0)" }, from: answer.map { "\($0.source)" })
        guard let answer else { return (false, [t1, test], nil) }
        if answer.message.messageClass == .errorResponse {
            let code = answer.message.errorCode.map { "\($0.code)" } ?? "?"
            return (false, [t1, test], "\(name): the server refused CHANGE-REQUEST (error \(code)): filtering not measurable")
        }
        if answer.source == server {
            return (false, [t1, test], "\(name): the answer came from \(answer.source), not \(expectedSource): the server ignores CHANGE-REQUEST \(flags)")
        }
        guard answer.source == expectedSource else {
            // It got in, but its source was rewritten on the way (e.g. a router SNATing inbound packets).
            return (true, [t1, test], "\(name): the answer got in but arrived from \(answer.source), not \(expectedSource): "
                    + "a NAT on the path rewrites the source of inbound packets")
        }
        return (true, [t1, test], nil)
    }

    // MARK: hairpin

    private func hairpin() async throws -> (HairpinResult?, [ProbeTest]) {
        let a = try await transport.open(towards: server)
        let b = try await transport.open(towards: server)
        defer { Task { await a.close(); await b.close() } }
        let (_, mappedA, ta) = try await testI(a, name: "hairpin (socket A, test I)")
        let (_, mappedB, tb) = try await testI(b, name: "hairpin (socket B, test I)")
        // B → A's public mapping, and A → B's, like two LAN peers punching through their own NAT.
        let toA = Self.bindingRequest(), toB = Self.bindingRequest()
        var arrived: ProbeReceived?
        var senderMapped = mappedB
        for wait in options.policy.waits {
            try await b.send(toA, to: mappedA)
            try await a.send(toB, to: mappedB)
            async let atA = a.receive(transactionID: toA.transactionID, timeout: wait)
            async let atB = b.receive(transactionID: toB.transactionID, timeout: wait)
            let (gotA, gotB) = await (atA, atB)
            if let gotA { arrived = gotA; senderMapped = mappedB; break }
            if let gotB { arrived = gotB; senderMapped = mappedA; break }
        }
        let test = ProbeTest(name: "hairpin", local: "\(b.local)", to: "\(mappedA)", mapped: nil, from: arrived.map { "\($0.source)" })
        guard let arrived else { return (HairpinResult(works: false), [ta, tb, test]) }
        return (HairpinResult(works: true, sourceSeen: "\(arrived.source)", sourceIsPublic: arrived.source.ip == senderMapped.ip),
                [ta, tb, test])
    }

    // MARK: lifetime

    private func measureLifetime(_ lifetime: LifetimeOptions) async throws -> (LifetimeResult?, [String]) {
        let idles: [Double] = Array(stride(from: lifetime.step, through: lifetime.max + 1e-9, by: lifetime.step))
        guard !idles.isEmpty else { return (nil, []) }
        let asker = try await transport.open(towards: server)
        defer { Task { await asker.close() } }
        var outcomes: [Double: Bool?] = [:]
        var measuredIdle: [Double: Double] = [:]
        var ignoredResponsePort = false
        try await withThrowingTaskGroup(of: (Double, Double, Bool?, Bool).self) { group in
            for idle in idles {
                group.addTask { try await self.lifetimeTrial(idle: idle, asker: asker) }
            }
            for try await (idle, actual, delivered, ignored) in group {
                outcomes[idle] = delivered
                measuredIdle[idle] = actual
                if ignored { ignoredResponsePort = true }
                // Two losses in a row with every shorter idle time known: the rest cannot change the answer.
                let known = idles.prefix { outcomes[$0] != nil }
                let tail = known.suffix(2)
                if tail.count == 2, tail.allSatisfy({ outcomes[$0]! == false }) { group.cancelAll() }
            }
        }
        // The idle time each trial really had (a loaded machine oversleeps), not the one it asked for.
        let trials = idles.map { LifetimeTrial(idle: ((measuredIdle[$0] ?? $0) * 1000).rounded() / 1000, delivered: outcomes[$0] ?? nil) }
        var notes: [String] = []
        if ignoredResponsePort {
            notes.append("the server answered the sending socket instead of RESPONSE-PORT: lifetime not measurable")
            return (nil, notes)
        }
        let result = LifetimeResult.estimate(trials)
        if result.upper == nil { notes.append("every trial up to \(lifetime.max) s was delivered: the lifetime is longer") }
        return (result, notes)
    }

    /// (idle asked for, idle measured, delivered — nil if cancelled, server ignored RESPONSE-PORT)
    private func lifetimeTrial(idle: Double, asker: any ProbeSocket) async throws -> (Double, Double, Bool?, Bool) {
        let socket = try await transport.open(towards: server)
        defer { Task { await socket.close() } }
        guard let answer = try await socket.transact(Self.bindingRequest(), to: server, policy: options.policy),
              let mapped = answer.message.reflexiveAddress else { return (idle, idle, nil, false) }
        let answered = ContinuousClock.now
        do {
            try await Task.sleep(for: .milliseconds(Int(idle * 1000)))
        } catch {
            return (idle, idle, nil, false)
        }
        let elapsed = ContinuousClock.now - answered
        let actual = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let request = Self.bindingRequest([.responsePort(mapped.port)])
        for wait in options.policy.waits {
            if Task.isCancelled { return (idle, actual, nil, false) }
            try await asker.send(request, to: server)
            if await socket.receive(transactionID: request.transactionID, timeout: wait) != nil { return (idle, actual, true, false) }
            if await asker.receive(transactionID: request.transactionID, timeout: .zero) != nil { return (idle, actual, nil, true) }
        }
        return (idle, actual, false, false)
    }
}
