// natlab's traversal agent at the edge: one UDP socket (NIO DatagramChannel) that carries STUN
// (gathering, checks, consent), TURN (allocation, ChannelData, Data indications) and the
// application data, demultiplexed by source and first byte; a TCP connection to the rendezvous
// server; a 5 ms pump driving `ICEAgentCore` and `TURNClient`; JSON-lines reports on stdout.
// Everything runs on one event loop thread, so the state below needs no locks.
import Foundation
import NIOCore
import NIOPosix
import STUNWire

public struct AgentOptions: Sendable {
    public var id: String
    public var peer: String
    public var rendezvousHost: String
    public var rendezvousPort: Int
    public var stun: STUNAddress?
    public var turn: STUNAddress?
    public var turnUser = ""
    public var turnPassword = ""
    /// Candidate types offered to the peer. Without host and srflx the agent sends only through its relay.
    public var candidateTypes: Set<ICECandidateType> = [.host, .srflx, .relay]
    /// nil: the agent whose id sorts first is controlling.
    public var controlling: Bool?
    public var tieBreaker: UInt64?
    public var ice = ICEConfiguration()
    /// Give up (path none) when no pair is selected this long after start; also the hard stop.
    public var deadline = 30.0
    public var bytes = 16_384
    public var chunk = 1_000
    /// Keep the path (consent checks only) this long after the data exchange before finishing.
    public var hold = 0.0
    /// Wait at most this long for the peer's "done" after our own.
    public var linger = 2.0
    public var gatherTimeout = 3.0
    public var port = 0

    public init(id: String, peer: String, rendezvousHost: String, rendezvousPort: Int) {
        self.id = id
        self.peer = peer
        self.rendezvousHost = rendezvousHost
        self.rendezvousPort = rendezvousPort
    }
}

/// Application data starts with this byte: not STUN (0–3), not ChannelData (64–79).
public let agentDataMarker: UInt8 = 0xA5

public final class AgentRunner: @unchecked Sendable {
    private let o: AgentOptions
    private let report: AgentReporter
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private var loop: EventLoop { group.next() }
    private let t0 = NIODeadline.now()
    private var udp: Channel?
    private var rdv: Channel?
    private var core: ICEAgentCore
    private var turn: TURNClient?
    private var stunTxn: (tid: STUNTransactionID, bytes: [UInt8], sentAt: Double, rto: Double, retries: Int)?
    private var hostBase: STUNAddress?
    private var registered = false
    private var offerSent = false
    private var peerBytes: Int?
    private var peerDone = false
    private var checksStartedAt: Double?
    private var sent = 0
    private var received = 0
    private var receivedDirect = 0
    private var receivedRelayed = 0
    private var doneAt: Double?
    private var everSelected = false
    private var consentLost = 0
    private var finished: EventLoopPromise<Int32>?
    private var pump: RepeatedTask?
    private var reportedLocal = Set<String>()
    private var rdvRetryAt = 0.0
    private var rdvWarned = false

    public init(options: AgentOptions, reporter: AgentReporter) {
        o = options
        report = reporter
        var c = ICEAgentCore(controlling: options.controlling ?? (options.id < options.peer),
                             tieBreaker: options.tieBreaker ?? UInt64.random(in: 1...UInt64.max), config: options.ice)
        c.config = options.ice
        core = c
    }

    private var now: Double { Double((NIODeadline.now() - t0).nanoseconds) / 1e9 }

    /// Runs to the end; returns the exit status (0: connected and all data exchanged, consent kept).
    public func run() -> Int32 {
        let promise = loop.makePromise(of: Int32.self)
        finished = promise
        loop.execute { self.begin() }
        let status = (try? promise.futureResult.wait()) ?? 1
        pump?.cancel()
        try? udp?.close().wait()
        try? rdv?.close().wait()
        try? group.syncShutdownGracefully()
        return status
    }

    // MARK: start

    private func begin() {
        report.emit("start", ["peer": o.peer, "role": core.controlling ? "controlling" : "controlled", "version": AgentReport.version,
                              "ta": o.ice.ta, "keepalive": o.ice.consentInterval, "consent-timeout": o.ice.consentTimeout,
                              "deadline": o.deadline, "bytes": o.bytes,
                              "candidate-types": o.candidateTypes.map(\.rawValue).sorted()])
        let bootstrap = DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { ch in ch.pipeline.addHandler(DatagramHandler { [self] bytes, from in self.datagram(bytes, from: from) }) }
        bootstrap.bind(host: "0.0.0.0", port: o.port).whenComplete { [self] result in
            switch result {
            case .failure(let e): fail("cannot bind UDP port \(o.port): \(e)")
            case .success(let ch):
                udp = ch
                gather(port: ch.localAddress?.port ?? 0)
                connectRendezvous()
                pump = loop.scheduleRepeatedTask(initialDelay: .milliseconds(5), delay: .milliseconds(5)) { [self] _ in tick() }
            }
        }
    }

    private func gather(port: Int) {
        let useHost = o.candidateTypes.contains(.host) || o.candidateTypes.contains(.srflx)
        var pref: UInt32 = 65535
        let devices = (try? System.enumerateDevices()) ?? []
        for d in devices {
            guard let a = d.address, case .v4 = a, let ipText = a.ipAddress, !ipText.hasPrefix("127."),
                  let ip = STUNIPAddress(ipText) else { continue }
            let addr = STUNAddress(ip: ip, port: UInt16(port))
            if hostBase == nil { hostBase = addr }
            guard useHost else { continue }
            let c = ICECandidate(type: .host, address: addr, priority: ICECandidate.priority(type: .host, localPreference: pref),
                                 foundation: ICECandidate.foundation(type: .host, baseIP: ip, server: nil))
            pref -= 1
            addLocal(c)
        }
        if hostBase == nil { report.emit("error", ["message": "no IPv4 address on any interface", "fatal": false]) }
        if let s = o.stun, o.candidateTypes.contains(.srflx) {
            let msg = STUNMessage(type: .bindingRequest)
            let bytes = msg.encode(fingerprint: true)
            stunTxn = (msg.transactionID, bytes, now, 0.25, 0)
            send(bytes, to: s)
        }
        if let t = o.turn, o.candidateTypes.contains(.relay) {
            var client = TURNClient(server: t, username: o.turnUser, password: o.turnPassword)
            let out = client.start(now: now)
            turn = client
            for b in out { send(b, to: t) }
        }
    }

    private func addLocal(_ c: ICECandidate) {
        core.addLocal(c)
        let key = "\(c.type.rawValue) \(c.address)"
        guard reportedLocal.insert(key).inserted else { return }
        var f = AgentReport.candidate(c, full: true)
        f["side"] = "local"
        f["offered"] = o.candidateTypes.contains(c.type)
        report.emit("candidate", f)
    }

    private var gatheringComplete: Bool {
        if now >= o.gatherTimeout { return true }
        if stunTxn != nil { return false }
        if let t = turn, t.state == .allocating { return false }
        return true
    }

    // MARK: rendezvous

    private func connectRendezvous() {
        ClientBootstrap(group: loop)
            .channelInitializer { [self] ch in
                ch.pipeline.addHandler(JSONLineHandler(onLine: { [self] _, line in rendezvousLine(line) },
                                                       onClose: { [self] _ in rendezvousClosed() }))
            }
            .connect(host: o.rendezvousHost, port: o.rendezvousPort).whenComplete { [self] result in
                switch result {
                case .failure(let e):
                    // The server may not be up yet: retry until the deadline, say so once.
                    if !rdvWarned {
                        rdvWarned = true
                        report.emit("error", ["message": "rendezvous \(o.rendezvousHost):\(o.rendezvousPort) unreachable (\(e)); retrying",
                                              "fatal": false])
                    }
                    rdvRetryAt = now + 0.2
                case .success(let ch):
                    rdv = ch
                    write(RendezvousWire.register(id: o.id))
                }
            }
    }

    private func rendezvousClosed() {
        rdv = nil
        registered = false
        if finished != nil, doneAt == nil { rdvRetryAt = now + 0.2 }
    }

    private func write(_ line: String) {
        guard let ch = rdv else { return }
        var buf = ch.allocator.buffer(capacity: line.utf8.count)
        buf.writeString(line)
        ch.writeAndFlush(buf, promise: nil)
    }

    private func rendezvousLine(_ line: String) {
        guard let msg = RendezvousWire.decode(line), let type = msg["type"] as? String else { return }
        switch type {
        case "registered": registered = true
        case "error": report.emit("error", ["message": "rendezvous: \(msg["reason"] as? String ?? line)", "fatal": false])
        case "message":
            guard msg["from"] as? String == o.peer, let body = msg["body"] as? [String: Any] else { return }
            switch body["kind"] as? String {
            case "offer": remoteOffer(body)
            case "done": peerDone = true
            default: break
            }
        default: break
        }
    }

    private func sendOffer() {
        let offered = core.localCandidates.filter { o.candidateTypes.contains($0.type) && $0.type != .prflx }
        write(RendezvousWire.send(to: o.peer, body: [
            "kind": "offer", "ufrag": core.localCredentials.ufrag, "pwd": core.localCredentials.pwd,
            "candidates": offered.map(\.sdp), "bytes": o.bytes,
        ]))
        offerSent = true
    }

    private func remoteOffer(_ body: [String: Any]) {
        guard core.remoteCredentials == nil else { return }
        guard let ufrag = body["ufrag"] as? String, let pwd = body["pwd"] as? String else {
            report.emit("error", ["message": "offer without ufrag/pwd", "fatal": false])
            return
        }
        let lines = body["candidates"] as? [String] ?? []
        let cands = lines.compactMap { ICECandidate.parse(sdp: $0) }
        peerBytes = (body["bytes"] as? Int) ?? (body["bytes"] as? NSNumber)?.intValue
        for c in cands {
            var f = AgentReport.candidate(c, full: true)
            f["side"] = "remote"
            report.emit("candidate", f)
        }
        if turn != nil { permit(cands.map(\.address.ip)) }
        checksStartedAt = now
        for t in core.setRemote(credentials: ICECredentials(ufrag: ufrag, pwd: pwd), candidates: cands, now: now) { transmit(t) }
    }

    private func permit(_ ips: [STUNIPAddress]) {
        guard var t = turn else { return }
        let out = t.permit(ips, now: now)
        turn = t
        for b in out { send(b, to: t.server) }
    }

    // MARK: the pump

    private func tick() {
        guard finished != nil else { return }
        let n = now
        if rdv == nil, rdvRetryAt > 0, n >= rdvRetryAt {
            rdvRetryAt = 0
            connectRendezvous()
        }
        if var s = stunTxn, n >= s.sentAt + s.rto, let server = o.stun {
            if s.retries >= 5 {
                stunTxn = nil
                report.emit("error", ["message": "no answer from the STUN server \(server)", "fatal": false])
            } else {
                s.retries += 1
                s.sentAt = n
                s.rto *= 2
                stunTxn = s
                send(s.bytes, to: server)
            }
        }
        if var t = turn {
            let out = t.tick(now: n)
            turn = t
            for b in out { send(b, to: t.server) }
            turnEvents()
        }
        if !offerSent, registered, gatheringComplete { sendOffer() }
        for t in core.tick(now: n) { transmit(t) }
        coreEvents()
        sendData()
        if let d = doneAt, n >= d + o.hold, peerDone || n >= d + o.hold + o.linger {
            finish()
        } else if n >= o.deadline + (doneAt == nil ? 0 : o.hold + o.linger) {
            if !everSelected {
                report.emit("path", ["state": "none", "path": "none"])
                report.emit("error", ["message": "no candidate pair succeeded within the deadline (\(o.deadline) s)", "fatal": true])
            }
            finish()
        }
    }

    private func sendData() {
        guard let p = core.selectedPair else { return }
        var burst = 0
        while sent < o.bytes && burst < 16 {
            let n = min(o.chunk, o.bytes - sent)
            var chunk = [UInt8](repeating: 0x5A, count: n)
            chunk[0] = agentDataMarker
            transmit(ICETransmit(via: p.via, to: p.remote.address, bytes: chunk))
            sent += n
            burst += 1
        }
        checkDone()
    }

    private func checkDone() {
        guard doneAt == nil, sent >= o.bytes, let pb = peerBytes, received >= pb else { return }
        doneAt = now
        write(RendezvousWire.send(to: o.peer, body: ["kind": "done", "received": received]))
    }

    private func finish() {
        guard let p = finished else { return }
        finished = nil
        let complete = sent >= o.bytes && peerBytes.map { received >= $0 } == true
        report.emit("data", ["sent": sent, "received": received, "expected": peerBytes ?? -1, "complete": complete,
                             "received-direct": receivedDirect, "received-relayed": receivedRelayed])
        let ok = everSelected && complete && consentLost == 0
        var f: [String: Any] = ["ok": ok, "consent-lost": consentLost, "checks": core.checksSent]
        if let s = core.selectedPair {
            f["path"] = AgentReport.classify(local: s.validLocal ?? s.local, remote: s.remote).path
        }
        report.emit("done", f)
        if var t = turn {
            let out = t.deallocate(now: now)
            turn = t
            for b in out { send(b, to: t.server) }
        }
        p.succeed(ok ? 0 : 1)
    }

    private func fail(_ message: String) {
        report.emit("error", ["message": message, "fatal": true])
        if let p = finished {
            finished = nil
            p.succeed(1)
        }
    }

    // MARK: events

    private func turnEvents() {
        guard var t = turn else { return }
        let events = t.drainEvents()
        turn = t
        for e in events {
            switch e {
            case .allocated(let relayed, let mapped, let lifetime):
                let c = ICECandidate(type: .relay, address: relayed, related: mapped,
                                     priority: ICECandidate.priority(type: .relay),
                                     foundation: ICECandidate.foundation(type: .relay, baseIP: hostBase?.ip ?? relayed.ip, server: t.server.ip))
                addLocal(c)
                report.emit("turn", ["state": "allocated", "relayed": "\(relayed)", "mapped": mapped.map { "\($0)" } ?? "",
                                     "lifetime": Int(lifetime), "server": "\(t.server)"])
                if let m = mapped, let base = hostBase, m != base, o.candidateTypes.contains(.srflx),
                   !core.localCandidates.contains(where: { $0.type == .srflx && $0.address == m }) {
                    addLocal(ICECandidate(type: .srflx, address: m, base: base, related: base,
                                          priority: ICECandidate.priority(type: .srflx),
                                          foundation: ICECandidate.foundation(type: .srflx, baseIP: base.ip, server: t.server.ip)))
                }
                permit(core.remoteCandidates.map(\.address.ip))
            case .failed(let why):
                report.emit("error", ["message": "TURN: \(why)", "fatal": false])
            case .permitted, .channelBound:
                break
            }
        }
    }

    private func coreEvents() {
        for e in core.drainEvents() {
            switch e {
            case .roleChanged(let controlling, let reason):
                report.emit("role", ["role": controlling ? "controlling" : "controlled", "reason": reason])
            case .learnedRemote(let c):
                var f = AgentReport.candidate(c, full: true)
                f["side"] = "remote"
                report.emit("candidate", f)
            case .learnedLocal(let c):
                addLocal(c)
            case .pairSelected(let p):
                let local = p.validLocal ?? p.local
                let first = !everSelected
                everSelected = true
                let (path, detail) = AgentReport.classify(local: local, remote: p.remote)
                var f: [String: Any] = ["local": AgentReport.candidate(local), "remote": AgentReport.candidate(p.remote),
                                        "via": p.via.rawValue, "role": core.controlling ? "controlling" : "controlled",
                                        "checks": core.checksSent, "restarts": core.consentLosses]
                if let s = checksStartedAt { f["elapsed"] = ((now - s) * 1000).rounded() / 1000 }
                if p.via == .relay, let t = turn { f["relay"] = "\(t.server)" }
                report.emit("pair-selected", f)
                var pf: [String: Any] = ["state": first ? "up" : "re-established", "path": path, "via": p.via.rawValue]
                if let detail { pf["detail"] = detail }
                report.emit("path", pf)
                if p.via == .relay, var t = turn {
                    let out = t.bindChannel(p.remote.address, now: now)
                    turn = t
                    for b in out { send(b, to: t.server) }
                }
            case .consentLost(let p, let silent):
                consentLost += 1
                let (path, _) = AgentReport.classify(local: p.validLocal ?? p.local, remote: p.remote)
                report.emit("path", ["state": "lost", "path": path, "via": p.via.rawValue, "reason": "consent-expired",
                                     "silent": (silent * 1000).rounded() / 1000])
            case .pairFailed:
                break
            }
        }
    }

    // MARK: datagrams

    private func transmit(_ t: ICETransmit) {
        switch t.via {
        case .direct: send(t.bytes, to: t.to)
        case .relay:
            guard let c = turn, c.isAllocated else { return }
            send(c.wrap(t.bytes, to: t.to), to: c.server)
        }
    }

    private func send(_ bytes: [UInt8], to: STUNAddress) {
        guard let ch = udp, let addr = try? SocketAddress(ipAddress: "\(to.ip)", port: Int(to.port)) else { return }
        var buf = ch.allocator.buffer(capacity: bytes.count)
        buf.writeBytes(bytes)
        ch.writeAndFlush(AddressedEnvelope(remoteAddress: addr, data: buf), promise: nil)
    }

    private func datagram(_ bytes: [UInt8], from: SocketAddress) {
        guard finished != nil, let ipText = from.ipAddress, let ip = STUNIPAddress(ipText), let port = from.port,
              !bytes.isEmpty else { return }
        let src = STUNAddress(ip: ip, port: UInt16(port))
        let n = now
        if var t = turn, src == t.server {
            if STUNMessage.classify(firstByte: bytes[0]) == .channelData {
                if let (peer, data) = t.unwrap(channelData: bytes) { fromPeer(data, from: peer, via: .relay) }
                return
            }
            if let packet = try? STUNPacket(bytes) {
                if t.owns(packet.transactionID) {
                    let out = t.handle(packet, now: n)
                    turn = t
                    for b in out { send(b, to: t.server) }
                    turnEvents()
                    return
                }
                if let (peer, data) = t.unwrap(indication: packet) { fromPeer(data, from: peer, via: .relay); return }
            }
        }
        if let s = stunTxn, src == o.stun, let packet = try? STUNPacket(bytes), packet.transactionID == s.tid {
            stunTxn = nil
            if let msg = try? packet.message(), let mapped = msg.reflexiveAddress, let base = hostBase {
                if mapped != base {
                    addLocal(ICECandidate(type: .srflx, address: mapped, base: base, related: base,
                                          priority: ICECandidate.priority(type: .srflx),
                                          foundation: ICECandidate.foundation(type: .srflx, baseIP: base.ip, server: o.stun?.ip)))
                }
            }
            return
        }
        fromPeer(bytes, from: src, via: .direct)
    }

    private func fromPeer(_ bytes: [UInt8], from: STUNAddress, via: ICEVia) {
        if STUNMessage.isSTUN(bytes), let packet = try? STUNPacket(bytes) {
            for t in core.receive(packet, from: from, via: via, now: now) { transmit(t) }
            coreEvents()
            return
        }
        guard bytes.first == agentDataMarker || !STUNMessage.isSTUN(bytes) else { return }
        received += bytes.count
        if via == .relay { receivedRelayed += bytes.count } else { receivedDirect += bytes.count }
        checkDone()
    }
}

/// Hands every datagram to a closure; never closes the socket on errors (ICMP unreachable
/// surfaces as ECONNREFUSED on a later read/write and must not end the agent).
final class DatagramHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    private let onDatagram: ([UInt8], SocketAddress) -> Void
    init(_ onDatagram: @escaping ([UInt8], SocketAddress) -> Void) { self.onDatagram = onDatagram }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let env = unwrapInboundIn(data)
        onDatagram(Array(env.data.readableBytesView), env.remoteAddress)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {}
}
