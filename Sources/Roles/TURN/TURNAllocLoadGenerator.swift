// An allocation-churn load generator for benchmarks (`natlab bench-client turn-alloc`): SOCKETS UDP
// sockets, each cycling Allocate (long-term credentials) → Refresh LIFETIME=0, one thread, epoll,
// straight Glibc. It replaced a Python generator that used a whole core on its own, so that
// `Scripts/bench turn` measures the relays rather than the generator. It drives natlab's relay and
// coturn alike.
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
        /// An unanswered request is sent again (new transaction) after this long.
        public var timeout: Double = 0.5

        public init(server: STUNAddress, username: String, password: String) {
            self.server = server
            self.username = username
            self.password = password
        }
    }

    public struct Result: Sendable {
        /// Allocate + Refresh(0) cycles completed.
        public var allocations: Int
        public var seconds: Double
        public var timeouts: Int
        public var rate: Double { seconds > 0 ? Double(allocations) / seconds : 0 }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// One client socket's state.
    struct Client {
        enum Step { case allocate, delete }
        var fd: Int32
        var step = Step.allocate
        var realm: String?
        var nonce: String?
        var key: STUNIntegrityKey?
        var transaction = STUNTransactionID.random()
        var sentAt = 0.0
    }

    public static func run(_ o: Options) throws(Failure) -> Result {
        let sockets: LoadSockets
        do { sockets = try LoadSockets(server: o.server, count: max(1, o.sockets)) } catch {
            throw Failure(description: error.description)
        }
        let epfd = sockets.epoll
        defer { withExtendedLifetime(sockets) {} }   // its deinit closes the sockets
        var clients = sockets.fds.map { Client(fd: $0) }

        let start = STUNLoadGenerator.now()
        let end = start + o.duration
        var done = 0, timeouts = 0
        for i in clients.indices { send(&clients[i], o, now: start) }
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: clients.count)
        defer { events.deallocate() }
        var buffer = [UInt8](repeating: 0, count: 2048)
        var now = start
        while now < end {
            let ready = epoll_wait(epfd, events, Int32(clients.count), 50)
            now = STUNLoadGenerator.now()
            for e in 0..<Int(max(0, ready)) {
                let s = Int(events[e].data.u32)
                while true {
                    let n = buffer.withUnsafeMutableBytes { recv(clients[s].fd, $0.baseAddress, $0.count, CLS_MSG_DONTWAIT) }
                    guard n > 0 else { break }
                    guard let m = try? STUNMessage.decode(Array(buffer[0..<n])),
                          m.transactionID == clients[s].transaction else { continue }
                    done += try receive(m, client: &clients[s], o)
                    send(&clients[s], o, now: now)
                }
            }
            for i in clients.indices where now - clients[i].sentAt > o.timeout {
                timeouts += 1
                send(&clients[i], o, now: now)
            }
        }
        return Result(allocations: done, seconds: STUNLoadGenerator.now() - start, timeouts: timeouts)
    }

    /// Advances a client on an answer to its current request; 1 when that completed a cycle.
    static func receive(_ m: STUNMessage, client c: inout Client, _ o: Options) throws(Failure) -> Int {
        let code = m.errorCode?.code
        if code == 401 || code == 438 {
            // The challenge (or a stale nonce): the same request again, with credentials.
            c.nonce = m.nonce
            c.realm = m.realm ?? c.realm
            if let realm = c.realm {
                c.key = .longTerm(username: o.username, realm: realm, password: o.password)
            }
            return 0
        }
        switch (m.messageClass, c.step, code) {
        case (.successResponse, .allocate, _):
            c.step = .delete
            return 0
        case (.successResponse, .delete, _):
            c.step = .allocate
            return 1
        case (.errorResponse, .allocate, 437?):
            c.step = .delete   // left over from a lost answer: delete it, then allocate again
            return 0
        case (.errorResponse, .delete, 437?):
            c.step = .allocate  // a retransmitted delete: the first one deleted it
            return 1
        default:
            throw Failure(description: "bench-client: unexpected answer \(m)")
        }
    }

    /// Sends the client's current request as a new transaction.
    static func send(_ c: inout Client, _ o: Options, now: Double) {
        c.transaction = .random()
        c.sentAt = now
        var attributes: [STUNAttribute] = []
        let method: STUNMethod
        switch c.step {
        case .allocate:
            method = .allocate
            attributes.append(.requestedTransport(17))
            if c.nonce != nil { attributes.append(.lifetime(600)) }
        case .delete:
            method = .refresh
            attributes.append(.lifetime(0))
        }
        var key: STUNIntegrityKey?
        if let nonce = c.nonce, let realm = c.realm, let k = c.key {
            attributes += [.username(o.username), .realm(realm), .nonce(nonce)]
            key = k
        }
        let m = STUNMessage(method: method, class: .request, transactionID: c.transaction, attributes: attributes)
        let bytes = m.encode(integrity: key, fingerprint: true)
        _ = bytes.withUnsafeBytes { Glibc.send(c.fd, $0.baseAddress, $0.count, CLS_MSG_DONTWAIT) }
    }
}
