// An allocation-churn load generator for benchmarks (`natlab bench-client turn-alloc`): SOCKETS
// concurrent clients, one thread, epoll, straight Glibc. Each cycle is what a real client does for one
// allocation, from a new source port (a new 5-tuple): Allocate without credentials (→ 401 with realm
// and nonce), Allocate with long-term credentials (→ success with a relayed address), Refresh
// LIFETIME=0 (→ success). Only then does the cycle count, and the client moves to a new port.
//
// Why a new port per cycle: coturn 4.6.1 answers a second Allocate on a 5-tuple whose allocation was
// deleted with 437 (Allocation Mismatch) and still answers the next Refresh(0) with success. Until
// 2026-11-29 this generator reused its sockets and counted Allocate-437-Refresh as a cycle, so
// coturn's "allocations" were mostly error answers while natlab made real ones. Now any error answer
// other than the 401/438 challenge fails the run.
//
// It replaced a Python generator that used a whole core on its own, so that `Scripts/bench turn`
// measures the relays rather than the generator. It drives natlab's relay and coturn alike.
#if canImport(Glibc)
import Glibc
#endif
// swift-nio's C shim: epoll (Glibc's module map hides it).
import CNIOLinux
import CLinuxSupport
import STUNWire

public enum TURNAllocLoadGenerator {
    public struct Options: Sendable {
        public var server: STUNAddress
        public var username: String
        public var password: String
        public var duration: Double = 5
        public var sockets: Int = 32
        /// An unanswered request is sent again (same transaction) after this long.
        public var timeout: Double = 0.5
        /// Each new client takes the next of these source ports: below Linux's ephemeral range, so
        /// that other clients on the host (turnutils_uclient in `Scripts/bench turn`) do not hold them.
        public var sourcePorts: ClosedRange<UInt16> = 1024...32_767

        public init(server: STUNAddress, username: String, password: String) {
            self.server = server
            self.username = username
            self.password = password
        }
    }

    public struct Result: Sendable {
        /// Cycles completed: an allocation made (success with XOR-RELAYED-ADDRESS) and deleted.
        public var allocations: Int
        public var seconds: Double
        public var timeouts: Int
        /// New clients whose Allocate got 437: the server still held that 5-tuple for an earlier
        /// client on the port (an allocation, or coturn's memory of one); the client moved on to
        /// the next port, and the cycle does not count.
        public var busy: Int
        public var rate: Double { seconds > 0 ? Double(allocations) / seconds : 0 }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// One client's state (a new client, on a new socket, every cycle).
    struct Client {
        enum Step { case challenge, allocate, delete, idle }
        var fd: Int32
        var step = Step.challenge
        var realm: String?
        var nonce: String?
        var key: STUNIntegrityKey?
        var transaction = STUNTransactionID.random()
        var sentAt = 0.0
        /// The request in flight, sent again unchanged (same transaction) when unanswered.
        var request: [UInt8] = []
    }

    public static func run(_ o: Options) throws(Failure) -> Result {
        let sockets: LoadSockets
        do { sockets = try LoadSockets(server: o.server, count: max(1, o.sockets), sourcePorts: o.sourcePorts) } catch {
            throw Failure(description: error.description)
        }
        let epfd = sockets.epoll
        defer { withExtendedLifetime(sockets) {} }   // its deinit closes the sockets
        var clients = sockets.fds.map { Client(fd: $0) }

        let start = STUNLoadGenerator.now()
        let end = start + o.duration
        var done = 0, timeouts = 0, busy = 0
        for i in clients.indices { send(&clients[i], o, now: start) }
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: clients.count)
        defer { events.deallocate() }
        var buffer = [UInt8](repeating: 0, count: 2048)
        var now = start
        // After `end`, clients start no new cycle and delete what they allocated (for at most a
        // second), so the next run finds the server empty.
        var draining = false
        while now < end + 1 {
            if !draining && now >= end {
                draining = true
                for i in clients.indices where clients[i].step == .challenge { clients[i].step = .idle }
            }
            if draining && !clients.contains(where: { $0.step != .idle }) { break }
            let ready = epoll_wait(epfd, events, Int32(clients.count), 50)
            now = STUNLoadGenerator.now()
            for e in 0..<Int(max(0, ready)) {
                let s = Int(events[e].data.u32)
                while clients[s].step != .idle {
                    let n = buffer.withUnsafeMutableBytes { recv(clients[s].fd, $0.baseAddress, $0.count, CLS_MSG_DONTWAIT) }
                    guard n > 0 else { break }
                    guard let m = try? STUNMessage.decode(Array(buffer[0..<n])),
                          m.transactionID == clients[s].transaction else { continue }
                    let completed: Bool
                    if clients[s].step != .delete && m.errorCode?.code == 437 {
                        busy += 1
                        completed = true
                    } else {
                        completed = try receive(m, client: &clients[s], o)
                        if completed && !draining { done += 1 }
                    }
                    if completed {
                        if draining { clients[s].step = .idle; break }
                        // The next cycle is a new client: a new socket, no credentials yet.
                        do { clients[s] = Client(fd: try sockets.reopen(s)) } catch { throw Failure(description: error.description) }
                        send(&clients[s], o, now: now)
                        break
                    }
                    send(&clients[s], o, now: now)
                }
            }
            for i in clients.indices where clients[i].step != .idle && now - clients[i].sentAt > o.timeout {
                // A retransmission (same transaction): servers answer it as they answered the original.
                timeouts += 1
                clients[i].sentAt = now
                _ = clients[i].request.withUnsafeBytes { Glibc.send(clients[i].fd, $0.baseAddress, $0.count, CLS_MSG_DONTWAIT) }
            }
        }
        return Result(allocations: done, seconds: o.duration, timeouts: timeouts, busy: busy)
    }

    /// Advances a client on an answer to its current request; true when that completed a cycle.
    static func receive(_ m: STUNMessage, client c: inout Client, _ o: Options) throws(Failure) -> Bool {
        let code = m.errorCode?.code
        if (code == 401 && c.step != .delete) || code == 438 {
            // The challenge (or a stale nonce): the Allocate again, with credentials.
            guard let nonce = m.nonce, let realm = m.realm ?? c.realm else {
                throw Failure(description: "bench-client: \(code!) without NONCE and REALM: \(m)")
            }
            c.nonce = nonce
            c.realm = realm
            c.key = .longTerm(username: o.username, realm: realm, password: o.password)
            if c.step == .challenge { c.step = .allocate }
            return false
        }
        switch (m.messageClass, c.step, code) {
        case (.successResponse, .allocate, _):
            guard m.first(.xorRelayedAddress) != nil else {
                throw Failure(description: "bench-client: Allocate success without XOR-RELAYED-ADDRESS: \(m)")
            }
            c.step = .delete
            return false
        case (.successResponse, .delete, _), (.errorResponse, .delete, 437?):
            // 437 to a Refresh(0): a retransmission whose original already deleted the allocation.
            return true
        default:
            throw Failure(description: "bench-client: unexpected answer in step \(c.step): \(m)")
        }
    }

    /// Sends the client's current request as a new transaction.
    static func send(_ c: inout Client, _ o: Options, now: Double) {
        c.transaction = .random()
        c.sentAt = now
        var attributes: [STUNAttribute] = []
        let method: STUNMethod
        switch c.step {
        case .challenge, .allocate:
            method = .allocate
            attributes.append(.requestedTransport(17))
        case .delete:
            method = .refresh
            attributes.append(.lifetime(0))
        case .idle:
            return
        }
        var key: STUNIntegrityKey?
        if c.step != .challenge, let nonce = c.nonce, let realm = c.realm, let k = c.key {
            attributes += [.username(o.username), .realm(realm), .nonce(nonce)]
            key = k
        }
        let m = STUNMessage(method: method, class: .request, transactionID: c.transaction, attributes: attributes)
        c.request = m.encode(integrity: key, fingerprint: true)
        _ = c.request.withUnsafeBytes { Glibc.send(c.fd, $0.baseAddress, $0.count, CLS_MSG_DONTWAIT) }
    }
}
