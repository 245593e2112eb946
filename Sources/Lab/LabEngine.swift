#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import LinuxNetworking
import Topology

/// Builds, lists, removes and collects labs. One engine per natlab process; create it on the main
/// thread (the namespace worker records the host namespace when it starts).
public final class LabEngine {
    public let store: LabStore
    private var _worker: NamespaceWorker?

    public init(store: LabStore = LabStore()) {
        self.store = store
    }

    func worker() throws -> NamespaceWorker {
        if let w = _worker { return w }
        let w = try NamespaceWorker()
        _worker = w
        return w
    }

    /// The second worker of a build: it loads the routers' rulesets while `worker()` does the links.
    private var _rulesetWorker: NamespaceWorker?
    func rulesetWorker() throws -> NamespaceWorker {
        if let w = _rulesetWorker { return w }
        let w = try NamespaceWorker()
        _rulesetWorker = w
        return w
    }

    /// What `gc` removed.
    public struct Collection: Sendable {
        public var labs: [String] = []
        public var namespaces: [String] = []
        public var processes: [Int32] = []
        public var isEmpty: Bool { labs.isEmpty && namespaces.isEmpty }
    }

    /// Builds a lab and leaves it to the caller's `state` (`.up` for `natlab up`).
    /// Collects stale labs first. On any failure or signal, removes everything it made and throws.
    /// Without `roles`, the nodes' `run:` roles are not started (`natlab up --no-roles`).
    /// Also returns the record's JSON as written to the lab's directory (`LabStore.encoder`).
    public func up(plan: LabPlan, name: String, topologyFile: String, state: LabRecord.State = .up,
                   roles: Bool = true) throws -> (record: LabRecord, collected: Collection, json: Data) {
        let built = try build(plan: plan, name: name, topologyFile: topologyFile, state: state, roles: roles)
        built.lock.unlock()
        return (built.record, built.collected, built.json)
    }

    /// `up`, returning the lab's lock still held: an owned lab (`natlab run`) keeps it for its life,
    /// so no `gc` ever takes it for a dead one.
    func build(plan: LabPlan, name: String, topologyFile: String, state: LabRecord.State,
               roles: Bool = true) throws -> (record: LabRecord, collected: Collection, lock: FileLock, json: Data) {
        if let why = LabNaming.problem(withLabName: name) { throw LabError.invalidName(why) }
        // Resolved even when not started: a bad `${node.address}` is bad input either way.
        let resolved = try RoleLauncher.commands(in: plan)
        let roleCommands = roles ? resolved : []
        let worker = try worker()
        Interrupts.install()
        defer { Interrupts.uninstall() }

        let (collected, lock) = try Timing.measure("collect stale labs, create the lab's directory") {
            try store.withGlobalLock { () throws -> (Collection, FileLock) in
                let collected = try collectLocked(all: false)
                return (collected, try store.createLab(name))
            }
        }
        var record = LabRecord.building(name, from: plan, topologyFile: topologyFile)
        var created: [String] = []
        // The build's netfilter sockets, closed once the roles have started and without waiting for
        // nf_tables' clean-up of the commits (NetfilterSockets); on failure, by deinit.
        let netfilter = NetfilterSockets()
        let json: Data
        do {
            try Timing.measure("write record and journal") {
                try store.write(record)
                try store.journal(record.namespaces, of: name)
            }
            let start = DispatchTime.now().uptimeNanoseconds
            try LabBuilder(lab: name, worker: worker, rulesetWorker: try rulesetWorker(), netfilter: netfilter,
                           choosesIndexes: true)
                .build(plan.steps) { created.append($0) }
            record.buildMilliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            record.roles = try Timing.measure("start \(roleCommands.count) role processes") {
                try RoleLauncher.start(roleCommands, lab: name, store: store)
            }
            // The hand-over of the netfilter sockets and the final record, at once on the two cores.
            record.state = state
            let final = record, labs = store
            let written = Mutex<Result<Data, any Error>?>(nil)
            SpareThread.pair { half in
                if half == 0 {
                    Timing.measure("close netfilter sockets") { netfilter.close() }
                } else {
                    written.withLock { $0 = Result { try Timing.measure("write record") { try labs.write(final) } } }
                }
            }
            if let sig = Interrupts.pending { throw LabError.interrupted(signal: sig) }
            json = try written.withLock { $0! }.get()
        } catch {
            // Only what this run created: a name clash must not delete somebody else's namespace.
            removeNamespaces(created)
            store.removeDirectory(of: name)
            lock.unlock()
            throw error
        }
        return (record, collected, lock, json)
    }

    /// Removes a lab: stops its processes, deletes its namespaces, forgets it.
    @discardableResult
    public func down(_ name: String) throws -> [Int32] {
        guard store.labNames().contains(name) else { throw LabError.noSuchLab(name) }
        guard let lock = try store.claim(name) else {
            let owner = store.record(of: name).map { " by natlab pid \($0.ownerPID)" } ?? ""
            throw LabError.labBusy(name, detail: "it is being built or used\(owner); try again when that finishes")
        }
        defer { lock.unlock() }
        if var record = store.record(of: name) {
            record.state = .tearingDown
            try? store.write(record)
        }
        let removed = removeNamespaces(namespaces(of: name))
        store.removeDirectory(of: name)
        return removed.processes
    }

    /// Removes every lab whose owner is gone (a `kill -9` during `up` or `run`), and every natlab
    /// namespace that no lab claims. With `all`, also labs left up on purpose.
    public func gc(all: Bool = false) throws -> Collection {
        try store.withGlobalLock { try collectLocked(all: all) }
    }

    private func collectLocked(all: Bool) throws -> Collection {
        var result = Collection()
        var claimed = Set<String>()
        var kept = Set<String>()
        for name in store.labNames() {
            let names = namespaces(of: name)
            guard let lock = try? store.tryLock(name) else {
                // Its owner is alive, and may be creating namespaces its journal does not list yet.
                kept.insert(name)
                continue
            }
            let record = store.record(of: name)
            if !all, record?.state == .up {
                claimed.formUnion(names)
                kept.insert(name)
                lock.unlock()
                continue
            }
            let removed = removeNamespaces(names)
            result.processes += removed.processes
            result.namespaces += removed.namespaces
            store.removeDirectory(of: name)
            result.labs.append(name)
            lock.unlock()
        }
        // Orphans: natlab namespaces that no kept lab claims. A namespace's name says its lab, so a
        // lab being built right now keeps its namespaces even before its journal lists them.
        for ns in NetworkNamespace.list() where ns.hasPrefix(LabNaming.namespacePrefix) && !claimed.contains(ns) {
            if let lab = LabNaming.lab(ofNamespace: ns), kept.contains(lab) { continue }
            if result.namespaces.contains(ns) { continue }
            let removed = removeNamespaces([ns])
            result.processes += removed.processes
            result.namespaces += removed.namespaces
        }
        return result
    }

    /// The journal is the truth; the record is a fallback when the journal was never written.
    private func namespaces(of lab: String) -> [String] {
        let journaled = store.journaled(of: lab)
        if !journaled.isEmpty { return journaled }
        return store.record(of: lab)?.namespaces ?? []
    }

    /// Stops processes inside the namespaces, then deletes them. Returns the namespaces that
    /// existed and the PIDs it signalled.
    @discardableResult
    private func removeNamespaces(_ names: [String]) -> (namespaces: [String], processes: [Int32]) {
        let existing = names.filter { NetworkNamespace.exists(name: $0) }
        let pids = NetworkNamespace.processes(inNamespaces: existing).values.flatMap { $0 }
        if !pids.isEmpty {
            for pid in pids { kill(pid, SIGTERM) }
            // Give them half a second to exit cleanly, then insist.
            if Processes.waitForExit(pids, milliseconds: 500) > 0 {
                for pid in pids where Self.isRunning(pid) { kill(pid, SIGKILL) }
            }
        }
        for ns in existing.reversed() {
            try? NetworkNamespace.delete(name: ns)
        }
        return (existing, pids)
    }

    /// True while `pid` exists and has not exited (a zombie waiting to be reaped has exited).
    public static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let rest = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces)
        return !(rest.hasPrefix("Z") || rest.hasPrefix("X"))
    }

    /// Every lab with a state directory, with whether its owner is alive.
    public func status() -> [(record: LabRecord, ownerAlive: Bool)] {
        // Under the global lock, like a collection: this look at each lab's lock must not make a
        // concurrent `down` take it for a live owner (see `LabStore.claim`).
        let peek = {
            self.store.labNames().compactMap { name -> (record: LabRecord, ownerAlive: Bool)? in
                guard let record = self.store.record(of: name) else { return nil }
                let lock = try? self.store.tryLock(name)
                lock?.unlock()
                return (record, lock == nil)
            }
        }
        return (try? store.withGlobalLock(peek)) ?? peek()
    }

    public func record(of name: String) throws -> LabRecord {
        guard let r = store.record(of: name) else { throw LabError.noSuchLab(name) }
        return r
    }
}
