// The thread a relay shard runs on: one epoll set of UDP sockets, a queue of tasks from other threads,
// and a once-a-second tick. natlab reads the relay's UDP sockets here instead of through swift-nio.
//
// Why: under `Scripts/bench turn` (2026-11-29) 42 % of the relay's CPU was in user space, most of it
// swift-nio's datagram read path, which makes each datagram of a recvmmsg batch an AddressedEnvelope
// with a SocketAddress (its host string formatted by inet_ntop) and a ByteBuffer and sends it through
// a channel pipeline. coturn spends about 15 % in user space. Here a datagram is a slot of a
// preallocated arena (`DatagramReceiver`) handed to the shard as raw bytes and a sockaddr_in.
// TCP clients and the statistics timer stay on swift-nio; they reach the shard through `execute`.
#if canImport(Glibc)
import Glibc
#endif
import CNIOLinux
import Foundation
import NIOConcurrencyHelpers

final class ShardLoop: @unchecked Sendable {
    struct SetupError: Error, CustomStringConvertible {
        var description: String
    }

    /// What the loop calls, all on its thread (hence unchecked: they never run anywhere else).
    struct Callbacks: @unchecked Sendable {
        /// `fd` is readable (level-triggered: what is not read now is reported again).
        var readable: (Int32) -> Void
        /// After the sockets and tasks of one wake-up: time to send what they queued.
        var afterEvents: () -> Void
        /// About once a second.
        var tick: () -> Void
    }

    private let epoll: Int32
    private let wakeup: Int32
    private let tasks = NIOLockedValueBox<[@Sendable () -> Void]>([])
    private let stopping = NIOLockedValueBox(false)
    private let finished = DispatchSemaphore(value: 0)
    private var thread: Thread?
    /// The loop's thread, once started (for `inLoop`).
    private let loopThread = NIOLockedValueBox<pthread_t?>(nil)

    init() throws(SetupError) {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw SetupError(description: "epoll_create1: \(String(cString: strerror(errno)))") }
        wakeup = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard wakeup >= 0 else {
            let e = errno
            close(epoll)
            throw SetupError(description: "eventfd: \(String(cString: strerror(e)))")
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = wakeup
        epoll_ctl(epoll, EPOLL_CTL_ADD, wakeup, &event)
    }

    deinit {
        close(wakeup)
        close(epoll)
    }

    /// Starts the thread. `callbacks` are only ever called on it.
    func start(name: String, _ callbacks: Callbacks) {
        let t = Thread { [self] in
            loopThread.withLockedValue { $0 = pthread_self() }
            run(callbacks)
            finished.signal()
        }
        t.name = name
        thread = t
        t.start()
    }

    /// Whether the caller is on the loop's thread.
    var inLoop: Bool {
        guard let t = loopThread.withLockedValue({ $0 }) else { return false }
        return pthread_equal(t, pthread_self()) != 0
    }

    /// Runs `task` on the loop's thread, after what it is doing now (tasks run in the order given).
    func execute(_ task: @escaping @Sendable () -> Void) {
        let wasEmpty = tasks.withLockedValue { q -> Bool in
            q.append(task)
            return q.count == 1
        }
        if wasEmpty { _ = eventfd_write(wakeup, 1) }
    }

    /// Runs `body` on the loop's thread and waits for its result (not from the loop's own thread).
    func submitAndWait<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        precondition(!inLoop, "submitAndWait on the loop's own thread would wait for ever")
        let result = NIOLockedValueBox<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        execute {
            let value = body()
            result.withLockedValue { $0 = value }
            done.signal()
        }
        done.wait()
        return result.withLockedValue { $0! }
    }

    /// Reads `fd` from now on (level-triggered); the loop reports it to `Callbacks.readable`.
    /// Closing the descriptor takes it out of the set.
    @discardableResult
    func watch(_ fd: Int32) -> Bool {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = fd
        return epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0
    }

    /// Stops the loop after the tasks queued so far and waits for its thread to end.
    func stop() {
        guard thread != nil else { return }
        precondition(!inLoop, "stop on the loop's own thread")
        stopping.withLockedValue { $0 = true }
        _ = eventfd_write(wakeup, 1)
        finished.wait()
        thread = nil
    }

    private func run(_ callbacks: Callbacks) {
        let capacity = 64
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        var nextTick = TURNTime.monotonicSeconds() + 1
        while true {
            let timeout = max(0, Int32(((nextTick - TURNTime.monotonicSeconds()) * 1000).rounded(.up)))
            let ready = epoll_wait(epoll, events, Int32(capacity), timeout)
            if ready > 0 {
                for i in 0..<Int(ready) {
                    let fd = events[i].data.fd
                    if fd == wakeup {
                        var value: eventfd_t = 0
                        _ = eventfd_read(wakeup, &value)
                        runTasks()
                    } else {
                        callbacks.readable(fd)
                    }
                }
            }
            callbacks.afterEvents()
            if stopping.withLockedValue({ $0 }) {
                runTasks()
                callbacks.afterEvents()
                return
            }
            if TURNTime.monotonicSeconds() >= nextTick {
                nextTick = TURNTime.monotonicSeconds() + 1
                callbacks.tick()
                callbacks.afterEvents()
            }
        }
    }

    private func runTasks() {
        // Taken out under the lock, run without it: a task may queue another.
        let batch = tasks.withLockedValue { q -> [@Sendable () -> Void] in
            let b = q
            q.removeAll(keepingCapacity: true)
            return b
        }
        for task in batch { task() }
    }
}
