import Foundation
import Synchronization
import Testing
import Topology
@testable import Lab

/// The topology file `up` and `run` load ahead on their spare thread (pure: no kernel).
struct BuildPreparationTests {
    @Test("a prefetched topology is exactly what loading the same path gives, with its plan")
    func prefetchedEqualsDirectLoad() throws {
        let path = Harness.topology("cgnat.yaml")
        let prefetch = TopologyPrefetch()
        prefetch.expect(path)
        let plan = prefetch.load()
        let taken = try #require(prefetch.take(path))
        let direct = try TopologyLoader.load(path: path)
        #expect(try taken.topology.get() == direct)
        #expect(taken.plan == Planner.plan(direct))
        #expect(plan == taken.plan)
        #expect(prefetch.take(Harness.topology("two-homes.yaml")) == nil, "another path is never answered")
    }

    @Test("a file with errors is reported as loading it directly reports it")
    func prefetchedErrorsAreTheSame() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("natlab-prefetch-\(getpid()).yaml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "name: bad\nhosts:\n  a: { attach: nowhere }\n".write(toFile: path, atomically: true, encoding: .utf8)
        let prefetch = TopologyPrefetch()
        prefetch.expect(path)
        prefetch.load()
        let taken = try #require(prefetch.take(path))
        #expect(taken.plan == nil)
        #expect(throws: Self.error(loading: path)) {
            try taken.topology.get()
        }
    }

    @Test("when the caller comes first it loads the file itself, and the other thread then does nothing")
    func callerFirst() {
        let prefetch = TopologyPrefetch()
        prefetch.expect("/nonexistent/topology.yaml")
        #expect(prefetch.take("/nonexistent/topology.yaml") == nil)
        #expect(prefetch.load() == nil)
        #expect(prefetch.take("/nonexistent/topology.yaml") == nil)
    }

    static func error(loading path: String) -> TopologyError {
        do { _ = try TopologyLoader.load(path: path); return TopologyError(diagnostics: []) } catch { return error }
    }
}

/// The spare thread as the build's second thread (pure: no kernel).
struct SpareThreadTests {
    @Test("pair runs its two halves at the same time: through libdispatch without a spare thread, on the spare thread once it waits")
    func pairRunsBothHalvesAtOnce() throws {
        let spare = SpareThread()
        #expect(Self.runBoth(spare) != nil, "fallback: both halves ran, at once")

        let serving = Mutex<pthread_t?>(nil)
        Thread { serving.withLock { $0 = pthread_self() }; spare.serve() }.start()   // stays for the test process
        let deadline = Date().addingTimeInterval(5)
        while !spare.isWaiting, Date() < deadline { usleep(1000) }
        #expect(spare.isWaiting)
        let second = try #require(Self.runBoth(spare))
        #expect(pthread_equal(second, try #require(serving.withLock { $0 })) != 0, "the second half ran on the spare thread")
        #expect(Self.runBoth(spare) != nil, "and it serves again")
    }

    /// Runs a pair whose first half waits for the second to start (so they must overlap); returns
    /// the thread the second half ran on, or nil if the first waited in vain.
    private static func runBoth(_ spare: SpareThread) -> pthread_t? {
        let started = DispatchSemaphore(value: 0)
        let result = Mutex<(overlapped: Bool, second: pthread_t?)>((false, nil))
        spare.pair { half in
            if half == 0 {
                let overlapped = started.wait(timeout: .now() + 5) == .success
                result.withLock { $0.overlapped = overlapped }
            } else {
                result.withLock { $0.second = pthread_self() }
                started.signal()
            }
        }
        return result.withLock { $0.overlapped ? $0.second : nil }
    }
}
