import CLinuxSupport
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// An open network-namespace file (`/run/netns/NAME` or `/proc/<pid>/task/<tid>/ns/net`).
///
/// Holding it keeps the namespace alive (as any open nsfs fd does); the fd is closed when the last
/// reference goes away. Close these before deleting a lab's namespaces so they really disappear.
public final class NamespaceFile: Sendable {
    /// The path it was opened from.
    public let path: String
    /// The open fd (O_RDONLY|O_CLOEXEC). Valid for the object's lifetime; do not close it.
    public let fileDescriptor: Int32
    /// Short alias of `fileDescriptor`.
    public var fd: Int32 { fileDescriptor }
    /// nsfs inode: identifies the namespace (what `ls -i /proc/self/ns/net` or `ip netns identify` compare).
    public let inode: UInt64
    /// Device of the nsfs file, compared together with `inode`.
    public let device: UInt64

    /// Opens `path` and checks that it really is a namespace (an nsfs bind mount or a /proc ns link):
    /// a plain leftover file under /run/netns would otherwise fail later, inside `setns`, with EINVAL.
    public init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw LinuxNetworkingError.lastErrno(call: "open namespace", context: path) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let error = LinuxNetworkingError.lastErrno(call: "fstat namespace", context: path)
            close(fd)
            throw error
        }
        let type = cls_statfs_type(path)
        guard type == CLS_NSFS_MAGIC else {
            close(fd)
            if type < 0 { throw LinuxNetworkingError.fromNegative(Int32(type), call: "statfs namespace", context: path) }
            throw LinuxNetworkingError.system(call: "open namespace", errno: .invalidArgument,
                                              context: "\(path) (not a namespace: no nsfs mount; stale entry?)")
        }
        self.path = path
        self.fileDescriptor = fd
        self.inode = UInt64(st.st_ino)
        self.device = UInt64(st.st_dev)
    }

    deinit { close(fileDescriptor) }
}

/// Named network namespaces, compatible with iproute2 (`ip netns add/del/list/exec/pids`).
public enum NetworkNamespace {
    /// Where named namespaces live. iproute2 uses `/var/run/netns` (= `/run/netns` on Debian).
    /// Set it once at startup (before any other call) — e.g. a temporary directory for rootless tests.
    nonisolated(unsafe) public static var directory: String = "/run/netns"

    /// Path of the namespace file for `name`.
    public static func path(of name: String) -> String { directory + "/" + name }

    /// iproute2's `invalid_name`: non-empty, ≤ NAME_MAX, no '/', not "." or "..".
    public static func validate(name: String) throws {
        if name.isEmpty || name.utf8.count > Int(NAME_MAX) || name.contains("/") || name == "." || name == ".." {
            throw LinuxNetworkingError.invalidArgument("invalid network namespace name '\(name)'")
        }
    }

    /// `ip netns add NAME`.
    public static func create(name: String, worker: NamespaceWorker) throws {
        try create(names: [name], worker: worker)
    }

    /// `ip netns add` for several names with a single worker excursion (one lock, one switch back).
    ///
    /// Procedure as iproute2 `netns_add`: mkdir the directory, `flock` it, make it a shared mount
    /// (bind-mounting it onto itself first if it is not a mount point, so an unmount in any mount
    /// namespace frees the netns), create each empty file with O_EXCL, then on the worker thread
    /// `unshare(CLONE_NEWNET)` and bind-mount `/proc/thread-self/ns/net` onto the file — *thread*-self,
    /// because `/proc/self` would be the main thread's (host) namespace.
    ///
    /// An existing name fails with EEXIST (`isAlreadyExists`) and is left untouched. On any failure the
    /// files this call created are removed again (and unmounted), so a failed call leaves nothing behind.
    public static func create(names: [String], worker: NamespaceWorker) throws {
        try create(names: names, workers: [worker])
    }

    /// `create(names:worker:)` with the namespaces shared out over several workers, which create
    /// theirs at the same time (contiguous slices, in order). The kernel sets up network namespaces
    /// in parallel (copy_net_ns holds its lock shared): on 2 cores, 8 namespaces took 3.3 ms on one
    /// thread and 2.7 ms on two (C loop, kernel 6.18). All or nothing, as with one worker.
    public static func create(names: [String], workers: [NamespaceWorker]) throws {
        precondition(!workers.isEmpty, "create(names:workers:) needs a worker")
        for name in names { try validate(name: name) }
        if Set(names).count != names.count {
            throw LinuxNetworkingError.invalidArgument("duplicate network namespace names in \(names)")
        }
        let dir = directory
        try withLockedDirectory(dir) {
            try makeSharedMount(dir)

            var created: [String] = []
            var mounted: [String] = []
            var succeeded = false
            defer {
                if !succeeded {
                    for path in mounted { _ = cls_umount2(path, CLS_MNT_DETACH) }
                    for path in created { unlink(path) }
                }
            }
            for name in names {
                let path = dir + "/" + name
                let fd = Glibc.open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0)
                guard fd >= 0 else {
                    let e = Glibc.errno
                    if e == EEXIST {
                        throw LinuxNetworkingError.system(call: "create network namespace", errno: .fileExists,
                                                          context: "'\(name)': namespace already exists (\(path))")
                    }
                    throw LinuxNetworkingError.system(call: "create network namespace file", errno: Errno(rawValue: e),
                                                      context: path)
                }
                close(fd)
                created.append(path)
            }

            // One excursion per worker, all at once: each unshare replaces the thread's (anonymous)
            // namespace, and the bind mount is what keeps each one alive after the thread moves on.
            // Every slice runs to its end or its first failure before anything is thrown, so the
            // roll-back above sees every mount made.
            let slices = slice(created, into: workers.count)
            let outcomes = NamespaceWorker.runInNewNamespaces(Array(workers.prefix(slices.count))) { i -> (mounted: [String], error: (any Error)?) in
                var done: [String] = []
                do { try mountNew(slices[i], mounted: &done) } catch { return (done, error) }
                return (done, nil)
            }
            var failure: (any Error)?
            for outcome in outcomes {
                switch outcome {
                case .success(let slice):
                    mounted += slice.mounted
                    failure = failure ?? slice.error
                case .failure(let error):   // the worker could not enter a new namespace
                    failure = failure ?? error
                }
            }
            if let failure { throw failure }
            succeeded = true
        }
    }

    /// On a worker already in a new namespace: bind-mounts it onto the first of `paths` (empty files),
    /// then a new one onto each next; `mounted` lists each one done, also when a later one fails.
    private static func mountNew(_ paths: [String], mounted: inout [String]) throws {
        for (index, path) in paths.enumerated() {
            if index > 0 {
                let rc = cls_unshare(CLS_CLONE_NEWNET)
                if rc < 0 { throw LinuxNetworkingError.fromNegative(rc, call: "unshare(CLONE_NEWNET)", context: "for \(path)") }
            }
            let rc = cls_mount("/proc/thread-self/ns/net", path, "none", CLS_MS_BIND)
            if rc < 0 {
                throw LinuxNetworkingError.fromNegative(rc, call: "bind-mount network namespace", context: "onto \(path)")
            }
            mounted.append(path)
        }
    }

    /// `items` in at most `count` contiguous, non-empty slices of near-equal size, in order.
    static func slice<T>(_ items: [T], into count: Int) -> [[T]] {
        let parts = max(1, min(count, items.count))
        return (0..<parts).map { i in Array(items[(i * items.count / parts)..<((i + 1) * items.count / parts)]) }
    }

    /// `ip netns del NAME`: lazy unmount + unlink. A missing name is not an error.
    ///
    /// The namespace itself lives on while anything still references it (open `NamespaceFile`s,
    /// sockets created inside it, processes): close those first.
    public static func delete(name: String) throws {
        try validate(name: name)
        let path = path(of: name)
        let rc = cls_umount2(path, CLS_MNT_DETACH)
        // EINVAL: not a mount point (a stale file); ENOENT: already gone. Both fine for an idempotent delete.
        if rc < 0 && rc != -EINVAL && rc != -ENOENT {
            throw LinuxNetworkingError.fromNegative(rc, call: "umount2", context: "network namespace '\(name)' (\(path))")
        }
        if unlink(path) != 0 && Glibc.errno != ENOENT {
            throw LinuxNetworkingError.lastErrno(call: "unlink", context: "network namespace '\(name)' (\(path))")
        }
    }

    /// Opens `/run/netns/NAME` (what `ip netns exec` / `ip -n` do before `setns`).
    public static func open(name: String) throws -> NamespaceFile {
        try validate(name: name)
        return try NamespaceFile(path: path(of: name))
    }

    /// `ip netns list` (names only): the directory's entries, sorted. Empty when the directory is missing.
    public static func list() -> [String] {
        (directoryEntries(directory) ?? []).sorted()
    }

    /// Whether `/run/netns/NAME` exists (mounted or not — like `ip netns list`).
    public static func exists(name: String) -> Bool {
        guard (try? validate(name: name)) != nil else { return false }
        return access(path(of: name), F_OK) == 0
    }

    /// `ip netns pids NAME`: processes whose `/proc/PID/ns/net` is this namespace (same st_dev/st_ino).
    /// Empty when the namespace does not exist. Processes that exit mid-scan are skipped.
    public static func processes(inNamespace name: String) -> [pid_t] {
        processes(inNamespaces: [name])[name] ?? []
    }

    /// `ip netns pids` for several namespaces with one walk over /proc (a lab has ~10 namespaces
    /// and /proc hundreds of entries: one walk each made `natlab down` measurably slower).
    public static func processes(inNamespaces names: [String]) -> [String: [pid_t]] {
        struct Key: Hashable { var dev: UInt64; var ino: UInt64 }
        var wanted: [Key: String] = [:]
        for name in names where (try? validate(name: name)) != nil {
            var st = stat()
            if stat(path(of: name), &st) == 0 { wanted[Key(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino))] = name }
        }
        var result: [String: [pid_t]] = [:]
        guard !wanted.isEmpty, let entries = directoryEntries("/proc") else { return result }
        for entryName in entries {
            guard let pid = pid_t(entryName) else { continue }
            var st = stat()
            guard stat("/proc/\(pid)/ns/net", &st) == 0,
                  let name = wanted[Key(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino))] else { continue }
            result[name, default: []].append(pid)
        }
        return result.mapValues { $0.sorted() }
    }

    // MARK: - iproute2 netns_add helpers

    /// mkdir + flock(LOCK_EX) around `body`. Parallel `ip netns add`s without the lock stacked shared
    /// mounts on the directory (Debian bug 949235). Locking failures are tolerated, as in iproute2.
    private static func withLockedDirectory<T>(_ dir: String, _ body: () throws -> T) throws -> T {
        if mkdir(dir, 0o755) != 0 && Glibc.errno != EEXIST {
            throw LinuxNetworkingError.lastErrno(call: "mkdir", context: dir)
        }
        let fd = Glibc.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = flock(fd, LOCK_EX) }
        defer {
            if fd >= 0 {
                _ = flock(fd, LOCK_UN)
                close(fd)
            }
        }
        return try body()
    }

    /// `mount --make-rshared DIR`, bind-mounting DIR onto itself first if it is not a mount point (EINVAL).
    private static func makeSharedMount(_ dir: String) throws {
        var rc = cls_mount("", dir, "none", CLS_MS_SHARED | CLS_MS_REC)
        if rc == -EINVAL {
            rc = cls_mount(dir, dir, "none", CLS_MS_BIND | CLS_MS_REC)
            if rc < 0 { throw LinuxNetworkingError.fromNegative(rc, call: "bind-mount", context: "\(dir) onto itself") }
            rc = cls_mount("", dir, "none", CLS_MS_SHARED | CLS_MS_REC)
        }
        if rc < 0 { throw LinuxNetworkingError.fromNegative(rc, call: "make shared mount", context: dir) }
    }
}
