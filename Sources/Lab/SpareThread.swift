import Dispatch
import Synchronization

/// The thread `BuildPreparation` starts, kept once its preparation is done: it waits for the build's
/// two-way jobs (the second half of the configuration, every other role's spawn, the final record while
/// the netfilter sockets are handed over) instead of exiting.
///
/// `DispatchQueue.concurrentPerform` started a libdispatch worker thread for those, which in turn
/// started libdispatch's manager thread (with its epoll set): ~0.25 ms between the namespaces being
/// ready and the routers' rulesets starting to load, in the middle of the build. The spare thread is
/// already there and idle. When it is not (no preparation was started, as in `down` or the tests, or
/// it is still preparing), `pair` falls back to `concurrentPerform`.
final class SpareThread: Sendable {
    static let shared = SpareThread()

    private enum State { case absent, waiting, busy }
    private let state = Mutex(State.absent)
    private let jobReady = DispatchSemaphore(value: 0)
    private let jobDone = DispatchSemaphore(value: 0)
    /// Written by the caller before `jobReady.signal()`, read by the spare thread after its `wait()`.
    nonisolated(unsafe) private var job: (@Sendable (Int) -> Void)?

    /// On the spare thread, once it has nothing else to do: serves jobs until the process exits.
    func serve() -> Never {
        while true {
            state.withLock { $0 = .waiting }
            jobReady.wait()
            job?(1)
            job = nil
            jobDone.signal()
        }
    }

    /// `body(0)` on the calling thread and `body(1)` on the spare thread (or on a libdispatch thread
    /// if the spare one is not waiting), at the same time; returns when both have returned.
    static func pair(_ body: @Sendable (Int) -> Void) {
        shared.pair(body)
    }

    /// True while the spare thread waits for a job.
    var isWaiting: Bool { state.withLock { $0 == .waiting } }

    func pair(_ body: @Sendable (Int) -> Void) {
        let claimed = state.withLock { state -> Bool in
            guard state == .waiting else { return false }
            state = .busy
            return true
        }
        guard claimed else {
            DispatchQueue.concurrentPerform(iterations: 2, execute: body)
            return
        }
        withoutActuallyEscaping(body) { body in
            job = body   // safe: this call waits for the job to be done before `body` goes away
            jobReady.signal()
            body(0)
            jobDone.wait()
        }
    }
}
