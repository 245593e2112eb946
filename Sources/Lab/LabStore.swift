#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LinuxNetworking
import Topology

/// What natlab remembers about a lab, in `<state>/labs/<name>/lab.json`.
public struct LabRecord: Codable, Sendable {
    public enum State: String, Codable, Sendable {
        /// `up` or `run` is creating it; its owner holds the lab lock.
        case building
        /// Built and left running on purpose (`natlab up`); only `down` removes it.
        case up
        /// Owned by a running process (`natlab run`) for that process's lifetime.
        case owned
        case tearingDown = "tearing-down"
    }
    public var name: String
    public var state: State
    public var topologyFile: String
    public var ownerPID: Int32
    public var created: Date
    /// Wall time of the kernel build (namespaces to last ruleset), milliseconds.
    public var buildMilliseconds: Double?
    /// The plan's nodes; its `steps` are empty (not kept: see `building(_:from:topologyFile:)`).
    public var plan: LabPlan
    /// Role processes started in the lab (`run:`).
    public var roles: [RoleProcess]?

    public func namespace(of node: String) -> String { LabNaming.namespace(lab: name, node: node) }
    public var namespaces: [String] { plan.nodes.map { namespace(of: $0.name) } }

    /// The record of a lab about to be built from `plan`, by this process, now. It keeps the plan's
    /// nodes, not its build steps: they were the builder's input, nothing reads them back, and they
    /// would be most of the record's first JSON encoding (an enum of eight cases, rulesets as text):
    /// 1–1.5 ms of every `up`. `natlab up --emit-shell` shows them.
    static func building(_ name: String, from plan: LabPlan, topologyFile: String) -> LabRecord {
        var nodesOnly = plan
        nodesOnly.steps = []
        return LabRecord(name: name, state: .building, topologyFile: topologyFile, ownerPID: getpid(), created: Date(),
                         buildMilliseconds: nil, plan: nodesOnly, roles: nil)
    }
}

/// The on-disk state of every lab: `<root>/labs/<name>/{lock,lab.json,journal}`.
///
/// - `journal` lists, one per line, every namespace *before* it is created, so a `kill -9` at any
///   point leaves a complete list of what may exist.
/// - `lock` is flock'ed by the process that builds, owns or removes the lab. The kernel drops the
///   lock when that process dies, which is how `gc` tells a dead owner from a live one without
///   trusting PIDs.
/// - `<root>/lock` serialises lab creation against collection, so `gc` never sees a lab directory
///   whose owner has not locked it yet.
/// The root defaults to /run/natlab (tmpfs: gone after a reboot, like the namespaces);
/// `NATLAB_STATE_DIR` moves it.
public struct LabStore: Sendable {
    public let root: String

    public init(root: String? = nil) {
        self.root = root ?? Environment.value("NATLAB_STATE_DIR") ?? "/run/natlab"
    }

    var labsDirectory: String { root + "/labs" }
    func directory(of lab: String) -> String { labsDirectory + "/" + lab }
    func recordPath(of lab: String) -> String { directory(of: lab) + "/lab.json" }
    func journalPath(of lab: String) -> String { directory(of: lab) + "/journal" }

    /// Names of every lab with a state directory. Plain system calls here and in `withGlobalLock`:
    /// every `up` runs both on its main thread before building, and `FileManager.default`'s first
    /// use in a process costs ~0.1 ms.
    public func labNames() -> [String] {
        (directoryEntries(labsDirectory) ?? []).sorted()
    }

    public func record(of lab: String) -> LabRecord? {
        guard let data = FileManager.default.contents(atPath: recordPath(of: lab)) else { return nil }
        return try? Self.decoder.decode(LabRecord.self, from: data)
    }

    /// Writes the record and returns the JSON it wrote (what `natlab up --json` prints).
    @discardableResult
    public func write(_ record: LabRecord) throws -> Data {
        let data = try Self.encoder.encode(record)
        let path = recordPath(of: record.name)
        // Write-then-rename: a reader never sees half a record. No fsync (Foundation's Data.write does
        // one, 2–6 ms on a disk-backed /run): the record only matters while this boot's namespaces
        // exist, and after a crash `gc` judges a lab by its journal and its owner's lock anyway.
        let fd = open(path + ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LabError.state("cannot write \(path).tmp: \(String(cString: strerror(errno)))") }
        let written = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let err = errno
        close(fd)
        guard written == data.count else {
            throw LabError.state("cannot write \(path).tmp: \(written < 0 ? String(cString: strerror(err)) : "short write")")
        }
        guard rename(path + ".tmp", path) == 0 else {
            throw LabError.state("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        return data
    }

    /// Appends names to the journal; called before the objects exist.
    public func journal(_ names: [String], of lab: String) throws {
        let fd = open(journalPath(of: lab), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LabError.state("cannot open journal of \(lab): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let text = names.map { $0 + "\n" }.joined()
        let written = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        guard written == text.utf8.count else { throw LabError.state("cannot write journal of \(lab)") }
    }

    public func journaled(of lab: String) -> [String] {
        guard let text = try? String(contentsOfFile: journalPath(of: lab), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }

    public func removeDirectory(of lab: String) {
        try? FileManager.default.removeItem(atPath: directory(of: lab))
    }

    /// Creates `<root>/labs` and takes the global lock for the duration of `body`.
    public func withGlobalLock<T>(_ body: () throws -> T) throws -> T {
        try makeDirectories(labsDirectory)
        let lock = try FileLock(path: root + "/lock")
        try lock.lock(wait: true)
        defer { lock.unlock() }
        return try body()
    }

    /// `mkdir -p`: each missing directory of `path`, mode 0755.
    private func makeDirectories(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + String(part)
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw LabError.state("cannot create \(prefix): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Creates the lab's directory and returns its lock, taken. Call under the global lock.
    public func createLab(_ lab: String) throws -> FileLock {
        if mkdir(directory(of: lab), 0o755) != 0 {
            let err = errno
            if err == EEXIST { throw LabError.labExists(lab) }
            throw LabError.state("cannot create \(directory(of: lab)): \(String(cString: strerror(err)))")
        }
        let lock = try FileLock(path: directory(of: lab) + "/lock")
        try lock.lock(wait: false)
        return lock
    }

    /// The lab's lock, to keep (`down`, `verify`), if nobody holds it; nil when its owner is alive.
    /// Taken under the global lock: a collection (every `up` runs one) and `status` hold each lab's
    /// lock for a moment, under the global lock, to read its state, and a `down` that ran into that
    /// moment failed as "busy" and left the lab up (seen once in a CI run of the TURN tests).
    public func claim(_ lab: String) throws -> FileLock? {
        try withGlobalLock { try tryLock(lab) }
    }

    /// The lab's lock if nobody holds it (its owner is gone or it never had one), else nil.
    public func tryLock(_ lab: String) throws -> FileLock? {
        let lock = try FileLock(path: directory(of: lab) + "/lock")
        do { try lock.lock(wait: false) } catch { return nil }
        return lock
    }

    /// The one JSON shape natlab writes and prints (records, `--json` reports): pretty-printed with
    /// sorted keys, so that `up --json` prints the very bytes the record file holds instead of
    /// encoding the record a second time, and the file reads well.
    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.dateEncodingStrategy = .custom { date, encoder in   // as `.iso8601`, without ICU (RecordTime)
            var container = encoder.singleValueContainer()
            try container.encode(RecordTime.format(date))
        }
        return e
    }()
    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = RecordTime.parse(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription:
                    "expected a UTC time like 2026-11-29T19:10:29Z, found \(text)")
            }
            return date
        }
        return d
    }()
}

/// An flock(2) on a file; released on `unlock`, on deinit, or by the kernel when the process dies.
public final class FileLock {
    private let fd: Int32
    public let path: String

    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LabError.state("cannot open \(path): \(String(cString: strerror(errno)))") }
    }

    public func lock(wait: Bool) throws {
        while flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0 {
            if errno == EINTR { continue }
            throw LabError.state("\(path) is locked by another natlab process")
        }
    }

    public func unlock() { _ = flock(fd, LOCK_UN) }

    deinit { close(fd) }
}

extension LabStore {
    /// Drops names from the journal once what they name is gone (`natlab verify`'s temporary nodes).
    public func unjournal(_ names: [String], of lab: String) {
        let drop = Set(names)
        let kept = journaled(of: lab).filter { !drop.contains($0) }
        let text = kept.map { $0 + "\n" }.joined()
        try? text.write(toFile: journalPath(of: lab), atomically: true, encoding: .utf8)
    }
}
