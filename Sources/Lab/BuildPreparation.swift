#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import LinuxNetworking
import Topology

/// What a build will need, done on the second core while the first is still reading the command
/// line (ArgumentParser keeps it busy for ~2 ms): opening libnftables, loading the topology file
/// the command line names, and the first JSON encoding of a record. An `up` read without
/// ArgumentParser leaves the first core free at once: then only libnftables is opened here
/// (`startLibraryOnly`). Nothing here is visible outside the process, so starting it for a command
/// line that turns out to be bad costs only the idle core's time.
public enum BuildPreparation {
    /// Starts the preparation on a thread of its own; `topologyFile` is the file the command line
    /// seems to name (nil: none). Once per process; later calls do nothing.
    public static func start(topologyFile: String?) {
        guard isFirstStart() else { return }
        prefetch.expect(topologyFile)
        if !startThread(warmUp: true) { prefetch.expect(nil) }   // no thread: the caller loads its file itself
    }

    /// For a command line read without ArgumentParser (`up`'s usual ones): the main thread is free
    /// at once and loads the topology and writes the first record itself, before the spare thread
    /// could (it opens libnftables first, ~1.3–2.5 ms); a warm-up of the record encoding then only
    /// ran beside the main thread's own first encoding, both paying the first-use costs. So only
    /// libnftables is opened. Once per process, and not with `start`.
    public static func startLibraryOnly() {
        guard isFirstStart() else { return }
        _ = startThread(warmUp: false)
    }

    /// For `down`: the first decoding and encoding of a record (`down` reads the lab's record and
    /// writes it back as tearing down), done on the spare core while ArgumentParser reads the command
    /// line. Once per process, and not with `start`.
    public static func startTeardown() {
        guard isFirstStart() else { return }
        _ = detachedThread { _ in ThreadPlacement.allowCreatorsCPUs(); BuildPreparation.warmUpRecordCoding(); return nil }
    }

    private static func isFirstStart() -> Bool {
        startOnce.withLock { started in defer { started = true }; return !started }
    }

    private static func startThread(warmUp: Bool) -> Bool {
        warmUp ? detachedThread { _ in BuildPreparation.prepare(warmUp: true) }
               : detachedThread { _ in BuildPreparation.prepare(warmUp: false) }
    }

    /// A plain pthread (Foundation's `Thread` costs the calling thread ~0.5 ms the first time: its
    /// class and run-loop machinery), started on another CPU than the caller's: Linux mostly put it
    /// on the main thread's CPU, where it waited for the main thread to sleep (`ThreadPlacement`).
    /// The body calls `ThreadPlacement.allowCreatorsCPUs()` first.
    private static func detachedThread(_ body: ThreadPlacement.Body) -> Bool {
        ThreadPlacement.startDetachedElsewhere(body)
    }

    /// Then the thread stays, as the build's second thread (`SpareThread`).
    private static func prepare(warmUp: Bool) -> Never {
        ThreadPlacement.allowCreatorsCPUs()
        // libnftables first: dlopen holds glibc's TLS lock while it loads, and every pthread_create
        // waits for that lock. Opened last, it was still loading when the build created its
        // namespace workers, and held the main thread up by 0.6-1.6 ms.
        NFTables.preload()
        if warmUp { warmUpRecordEncoding(prefetch.load()) }
        SpareThread.shared.serve()
    }

    /// The topology at `path` as `TopologyLoader.load(path:)` returns it, with its plan when it is
    /// valid, if the preparation was started for this very path: waits for it while it is being
    /// loaded. Nil otherwise (not started, another path, or not reached yet: then the caller loads it).
    public static func topology(at path: String) -> TopologyPrefetch.Loaded? {
        prefetch.take(path)
    }

    static let prefetch = TopologyPrefetch()
    private static let startOnce = Mutex(false)

    /// Encodes the record of `plan` (a small built-in lab without one) once and throws it away. The
    /// first JSON encoding of a record in a process costs ~1 ms more than the next (type metadata,
    /// protocol-conformance look-ups, all cached process-wide); done here, the build's own first
    /// record does not pay it. Returns the encoded size (0 if the built-in topology no longer
    /// parses: a test guards that).
    @discardableResult
    static func warmUpRecordEncoding(_ plan: LabPlan? = nil) -> Int {
        warmUpRecord(plan)?.count ?? 0
    }

    /// `warmUpRecordEncoding` of the built-in lab, then its decoding; true if it came back whole.
    @discardableResult
    static func warmUpRecordCoding() -> Bool {
        guard let data = warmUpRecord(nil), let back = try? LabStore.decoder.decode(LabRecord.self, from: data) else {
            return false
        }
        return back.name == "warm-up" && !back.plan.nodes.isEmpty && back.roles?.count == 1
    }

    private static func warmUpRecord(_ plan: LabPlan?) -> Data? {
        guard let plan = plan ?? (try? TopologyLoader.parse(warmUpTopology, file: "(warm-up)")).map(Planner.plan) else {
            return nil
        }
        // The same record a build writes, first and last (with its build time and roles).
        var record = LabRecord.building("warm-up", from: plan, topologyFile: "")
        record.buildMilliseconds = 0
        record.roles = [RoleProcess(node: "host", argv: ["natlab"], pid: 0, log: "")]
        return try? LabStore.encoder.encode(record)
    }

    /// One of each kind of node a record describes: a NAT router, a host behind it, a public host.
    private static let warmUpTopology = """
        name: warm-up
        routers:
          home: { nat: port-restricted-cone }
        hosts:
          host: { attach: home, run: agent }
          server: { attach: internet, run: stun-server }
        """
}

/// One topology file, loaded ahead of the caller by another thread: whoever comes first does it.
/// The caller gets exactly what `TopologyLoader.load(path:)` returns for the path it asks for, or
/// nil (and loads the file itself); it never gets the load of another path.
public final class TopologyPrefetch: Sendable {
    public struct Loaded: Sendable {
        public let topology: Result<Topology, TopologyError>
        /// `Planner.plan` of the topology, when it is valid.
        public let plan: LabPlan?
    }

    private enum State {
        case waiting(String)
        case loading(String)
        case loaded(String, Loaded)
        case none
    }
    private let state = Mutex(State.none)
    private let done = DispatchSemaphore(value: 0)

    public init() {}

    /// The path the loading thread is to load (nil: none).
    func expect(_ path: String?) {
        state.withLock { $0 = path.map { .waiting($0) } ?? .none }
    }

    /// On the loading thread: loads the expected file unless the caller took it over. Returns its
    /// plan, if it made one.
    @discardableResult
    func load() -> LabPlan? {
        let path: String? = state.withLock { state in
            guard case .waiting(let path) = state else { return nil }
            state = .loading(path)
            return path
        }
        guard let path else { return nil }
        let topology = Result { () throws(TopologyError) -> Topology in try TopologyLoader.load(path: path) }
        let loaded = Loaded(topology: topology, plan: (try? topology.get()).map(Planner.plan))
        state.withLock { $0 = .loaded(path, loaded) }
        done.signal()
        return loaded.plan
    }

    /// On the caller's thread: the load of `path`, waiting while it is under way. Nil when another
    /// path was expected, or when the loading thread has not started on it (it then never will).
    func take(_ path: String) -> Loaded? {
        enum Next { case use(Loaded), wait, loadYourself }
        let next: Next = state.withLock { state in
            switch state {
            case .waiting(let expected) where expected == path:
                state = .none
                return .loadYourself
            case .loading(let expected) where expected == path:
                return .wait
            case .loaded(let expected, let loaded) where expected == path:
                return .use(loaded)
            default:
                return .loadYourself
            }
        }
        switch next {
        case .use(let loaded): return loaded
        case .loadYourself: return nil
        case .wait:
            done.wait()
            done.signal()   // for any other caller waiting on the same load
            return state.withLock { state in
                if case .loaded(let expected, let loaded) = state, expected == path { return loaded }
                return nil
            }
        }
    }
}
