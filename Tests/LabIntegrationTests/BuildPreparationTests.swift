import Foundation
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
