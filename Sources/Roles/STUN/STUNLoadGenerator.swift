// A Binding-request load generator for benchmarks (`natlab bench-client stun`): closed loop, fixed
// window of outstanding requests per socket, sendmmsg/recvmmsg batches, epoll; straight Glibc so the
// generator is not the bottleneck. It drives natlab's server and coturn alike.
#if canImport(Glibc)
import Glibc
#endif
// swift-nio's C shim: sendmmsg/recvmmsg (Glibc's module map hides them) and epoll.
import CNIOLinux
import CLinuxSupport
import Foundation
import STUNWire

public enum STUNLoadGenerator {
    public struct Options: Sendable {
        public var server: STUNAddress
        /// Measured seconds (after the warm-up).
        public var duration: Double = 5
        public var warmup: Double = 0.5
        public var threads: Int = 1
        /// Sockets (source ports) per thread: SO_REUSEPORT servers spread clients by source port.
        public var sockets: Int = 8
        /// Requests outstanding per socket.
        public var window: Int = 32

        public init(server: STUNAddress) { self.server = server }
    }

    public struct Result: Sendable, Codable {
        /// Requests sent and valid Binding success responses received during the measured interval.
        public var sent: Int
        public var received: Int
        public var seconds: Double
        /// Times a socket's window was presumed lost (no answer for 100 ms) and refilled.
        public var stalls: Int
        public var rate: Double { seconds > 0 ? Double(received) / seconds : 0 }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    public static func run(_ options: Options) throws -> Result {
        guard case .ipv4 = options.server.ip else { throw Failure(description: "bench-client: IPv4 servers only") }
        let results = ResultBox(count: options.threads)
        let done = DispatchSemaphore(value: 0)
        let start = now() + 0.05
        for t in 0..<options.threads {
            Thread.detachNewThread {
                let r = worker(options: options, thread: t, start: start)
                results.set(t, r)
                done.signal()
            }
        }
        for _ in 0..<options.threads { done.wait() }
        var total = Result(sent: 0, received: 0, seconds: options.duration, stalls: 0)
        for r in results.all() {
            switch r {
            case .success(let v):
                total.sent += v.sent
                total.received += v.received
                total.stalls += v.stalls
            case .failure(let e):
                throw e
            case nil:
                throw Failure(description: "bench-client: a worker gave no result")
            }
        }
        return total
    }

    final class ResultBox: @unchecked Sendable {
        private let lock = NSLock()
        private var results: [Swift.Result<Result, Failure>?]
        init(count: Int) { results = Array(repeating: nil, count: count) }
        func set(_ i: Int, _ r: Swift.Result<Result, Failure>) { lock.lock(); results[i] = r; lock.unlock() }
        func all() -> [Swift.Result<Result, Failure>?] { lock.lock(); defer { lock.unlock() }; return results }
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

extension STUNLoadGenerator {
    /// One worker thread.
    static func worker(options o: Options, thread: Int, start: Double) -> Swift.Result<Result, Failure> {
        typealias F = STUNLoadGenerator.Failure
        let batch = 64, slot = 512
        let sockets: LoadSockets
        do { sockets = try LoadSockets(server: o.server, count: o.sockets, receiveBuffer: 1 << 20) } catch {
            return .failure(F(description: error.description))
        }
        let epfd = sockets.epoll, fds = sockets.fds
        defer { withExtendedLifetime(sockets) {} }   // its deinit closes the sockets
        // Requests: Binding, no attributes; transaction ID = thread, socket, then random bytes.
        var requests = [UInt8](repeating: 0, count: o.sockets * 20)
        for s in 0..<o.sockets {
            let tid = STUNTransactionID.random().bytes
            let base = s * 20
            requests[base + 1] = 0x01
            requests[base + 4] = 0x21; requests[base + 5] = 0x12; requests[base + 6] = 0xA4; requests[base + 7] = 0x42
            for i in 0..<12 { requests[base + 8 + i] = tid[i] }
            requests[base + 8] = UInt8(truncatingIfNeeded: thread)
            requests[base + 9] = UInt8(truncatingIfNeeded: s)
        }
        let recvBuffer = UnsafeMutableRawPointer.allocate(byteCount: batch * slot, alignment: 16)
        defer { recvBuffer.deallocate() }
        let iov = UnsafeMutablePointer<iovec>.allocate(capacity: batch)
        defer { iov.deallocate() }
        let msgs = UnsafeMutablePointer<CNIOLinux_mmsghdr>.allocate(capacity: batch)
        defer { msgs.deallocate() }
        let sendIov = UnsafeMutablePointer<iovec>.allocate(capacity: 1)
        defer { sendIov.deallocate() }
        let sendMsgs = UnsafeMutablePointer<CNIOLinux_mmsghdr>.allocate(capacity: max(batch, o.window))
        defer { sendMsgs.deallocate() }
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: o.sockets)
        defer { events.deallocate() }

        var inflight = [Int](repeating: 0, count: o.sockets)
        var lastProgress = [Double](repeating: 0, count: o.sockets)
        var sent = 0, received = 0, stalls = 0
        let measureFrom = start + o.warmup
        let end = measureFrom + o.duration

        func send(_ s: Int, _ count: Int) -> Int {
            guard count > 0 else { return 0 }
            return requests.withUnsafeMutableBytes { req -> Int in
                sendIov.pointee = iovec(iov_base: req.baseAddress! + s * 20, iov_len: 20)
                let n = min(count, max(batch, o.window))
                for i in 0..<n {
                    var h = msghdr()
                    h.msg_iov = sendIov
                    h.msg_iovlen = 1
                    sendMsgs[i] = CNIOLinux_mmsghdr(msg_hdr: h, msg_len: 0)
                }
                let r = CNIOLinux_sendmmsg(fds[s], sendMsgs, UInt32(n), CLS_MSG_DONTWAIT)
                return r > 0 ? Int(r) : 0
            }
        }

        while STUNLoadGenerator.now() < start {}
        var t = STUNLoadGenerator.now()
        for s in 0..<o.sockets {
            inflight[s] = send(s, o.window)
            lastProgress[s] = t
        }
        while t < end {
            let ready = epoll_wait(epfd, events, Int32(o.sockets), 10)
            t = STUNLoadGenerator.now()
            let measuring = t >= measureFrom && t < end
            if ready > 0 {
                for e in 0..<Int(ready) {
                    let s = Int(events[e].data.u32)
                    for i in 0..<batch {
                        iov[i] = iovec(iov_base: recvBuffer + i * slot, iov_len: slot)
                        var h = msghdr()
                        h.msg_iov = iov + i
                        h.msg_iovlen = 1
                        msgs[i] = CNIOLinux_mmsghdr(msg_hdr: h, msg_len: 0)
                    }
                    let n = CNIOLinux_recvmmsg(fds[s], msgs, UInt32(batch), CLS_MSG_DONTWAIT, nil)
                    guard n > 0 else { continue }
                    var valid = 0
                    for i in 0..<Int(n) where msgs[i].msg_len >= 20 {
                        let p = (recvBuffer + i * slot).assumingMemoryBound(to: UInt8.self)
                        if p[0] == 0x01 && p[1] == 0x01 && p[4] == 0x21 && p[5] == 0x12
                            && p[8] == UInt8(truncatingIfNeeded: thread) && p[9] == UInt8(truncatingIfNeeded: s) {
                            valid += 1
                        }
                    }
                    inflight[s] = max(0, inflight[s] - Int(n))
                    lastProgress[s] = t
                    if measuring { received += valid }
                    let k = send(s, o.window - inflight[s])
                    inflight[s] += k
                    if measuring { sent += k }
                }
            }
            // A window lost to drops would stall its socket: refill it after 100 ms of silence.
            for s in 0..<o.sockets where t - lastProgress[s] > 0.1 {
                stalls += 1
                inflight[s] = 0
                lastProgress[s] = t
                let k = send(s, o.window)
                inflight[s] = k
                if measuring { sent += k }
            }
        }
        return .success(STUNLoadGenerator.Result(sent: sent, received: received, seconds: o.duration, stalls: stalls))
    }
}
