import CLinuxSupport
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The one thread of the process that changes network namespace.
///
/// `setns`/`unshare(CLONE_NEWNET)` change only the calling thread, and every thread that thread later
/// creates inherits its namespace — libdispatch and Swift-concurrency pool threads included, so a
/// namespace switch on a pool thread can silently move unrelated future work into a lab namespace.
/// Hence: a single long-lived, owned pthread (no Dispatch, no Swift concurrency) with a plain
/// mutex/condvar queue runs every excursion as a synchronous bracket:
///
///     setns(target) → body → setns(host) → only then wake the caller
///
/// If switching back fails the thread is poisoned and the process aborts: handing a result to the
/// caller (or running another job) from inside a lab namespace is exactly the bug this type prevents.
///
/// **Rules for `body`:** synchronous leaf work only — open sockets / netlink sockets / nft contexts,
/// write sysctls, `posix_spawn`. Never `DispatchQueue.async`, `Task {}`, `await`, continuations,
/// `Thread`/`pthread_create`, `Foundation.Process` (it uses Dispatch), NIO event loops, or async
/// logging: anything that may create a thread there would create it inside the namespace.
/// Sockets created in the body keep their namespace for life and can be used from any thread after.
public final class NamespaceWorker: @unchecked Sendable {
    // @unchecked: all mutable state lives in `Queue`, guarded by its pthread mutex.

    /// Inode of the host network namespace (the one `init` ran in).
    public let hostNamespaceInode: UInt64

    private let queue: Queue
    private let thread: pthread_t

    /// Must be called on a thread that is in the host network namespace (normally the main thread, at
    /// startup). Opens the host namespace fd eagerly from that thread, then starts the worker thread
    /// (which inherits the same namespace).
    public init() throws {
        let fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw LinuxNetworkingError.lastErrno(call: "open", context: "/proc/thread-self/ns/net (host namespace)")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let error = LinuxNetworkingError.lastErrno(call: "fstat", context: "/proc/thread-self/ns/net")
            close(fd)
            throw error
        }
        hostNamespaceInode = UInt64(st.st_ino)
        let queue = Queue(hostFD: fd)
        self.queue = queue

        var tid = pthread_t()
        let context = Unmanaged.passRetained(queue).toOpaque()
        let rc = pthread_create(&tid, nil, { raw in
            let queue = Unmanaged<Queue>.fromOpaque(raw!).takeRetainedValue()
            queue.loop()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<Queue>.fromOpaque(context).release()
            close(fd)
            throw LinuxNetworkingError.system(call: "pthread_create", errno: Errno(rawValue: rc),
                                              context: "namespace worker thread")
        }
        thread = tid
    }

    deinit {
        queue.shutdown()
        if pthread_equal(pthread_self(), thread) != 0 {
            pthread_detach(thread)   // last reference dropped by a job on the worker itself
        } else {
            pthread_join(thread, nil)
        }
    }

    /// Runs `body` synchronously on the worker thread inside `namespace` (nil: the host namespace),
    /// switches the worker back to the host namespace, and only then returns `body`'s result or error.
    ///
    /// Mirrors `ip netns exec NAME …` for in-process leaf work. See the type's rules for `body`.
    public func run<T>(in namespace: NamespaceFile?, _ body: () throws -> T) throws -> T {
        let entry: Entry = namespace.map { .join(fd: $0.fileDescriptor, label: $0.path) } ?? .stay
        return try submit(entry, body)
    }

    /// Runs `body` on the worker thread inside a brand-new, anonymous network namespace
    /// (`unshare(CLONE_NEWNET)`), then returns to the host namespace. The namespace disappears with the
    /// excursion unless `body` pins it (bind mount, open fd, socket).
    public func runInNewNamespace<T>(_ body: () throws -> T) throws -> T {
        try submit(.unshare, body)
    }

    /// `runInNewNamespace` on several workers at once: `body(i)` runs on `workers[i]`, each in a
    /// brand-new namespace, all at the same time; returns once every one is back in the host namespace,
    /// with each result (or its error). No thread is created: the calling thread queues the jobs and
    /// waits for them. Not from a job of one of `workers` (it would wait for itself).
    public static func runInNewNamespaces<T>(_ workers: [NamespaceWorker],
                                             _ body: (Int) throws -> T) -> [Result<T, any Error>] {
        precondition(!workers.contains { $0.isCurrentThread }, "runInNewNamespaces from one of its own workers")
        return withoutActuallyEscaping(body) { body in
            // Each job writes only its own slot, before the worker marks it done; read after every wait.
            let results = UnsafeMutableBufferPointer<Result<T, any Error>?>.allocate(capacity: workers.count)
            results.initialize(repeating: nil)
            defer { results.deinitialize().deallocate() }
            let jobs = workers.indices.map { i in Job(entry: .unshare) { results[i] = Result { try body(i) } } }
            for (worker, job) in zip(workers, jobs) { worker.queue.enqueue(job) }
            for (worker, job) in zip(workers, jobs) { worker.queue.wait(for: job) }
            return jobs.indices.map { i in jobs[i].entryError.map { .failure($0) } ?? results[i]! }
        }
    }

    /// True on the worker thread (for assertions in callers).
    public var isCurrentThread: Bool { pthread_equal(pthread_self(), thread) != 0 }

    // MARK: - Implementation

    enum Entry {
        case stay
        case join(fd: Int32, label: String)
        case unshare
    }

    private func submit<T>(_ entry: Entry, _ body: () throws -> T) throws -> T {
        if isCurrentThread {
            // A nested call from inside a job: queueing would deadlock, so bracket in place,
            // returning to whatever namespace the outer job was in.
            return try queue.nested(entry, body)
        }
        return try withoutActuallyEscaping(body) { body in
            var result: Result<T, any Error>?
            // The closure runs on the worker while this thread blocks in `wait`; `result` outlives it.
            let job = Job(entry: entry) { result = Result { try body() } }
            queue.enqueueAndWait(job)
            if let failure = job.entryError { throw failure }
            return try result!.get()
        }
    }

    final class Job: @unchecked Sendable {
        // @unchecked: written by the worker before `done` is set under the mutex, read by the caller after.
        let entry: Entry
        /// Cleared by the worker before `done` is set: the caller's closure is only borrowed
        /// (`withoutActuallyEscaping`), and must have no references left when the caller resumes.
        var work: (() -> Void)?
        var entryError: LinuxNetworkingError?
        var done = false
        init(entry: Entry, work: @escaping () -> Void) {
            self.entry = entry
            self.work = work
        }
    }

    final class Queue: @unchecked Sendable {
        // @unchecked: `jobs` and `stopping` are only touched with `mutex` held.
        let hostFD: Int32
        private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        private let finished = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        private var jobs: [Job] = []
        private var stopping = false

        init(hostFD: Int32) {
            self.hostFD = hostFD
            pthread_mutex_init(mutex, nil)
            pthread_cond_init(wake, nil)
            pthread_cond_init(finished, nil)
        }

        deinit {
            close(hostFD)
            pthread_cond_destroy(finished)
            pthread_cond_destroy(wake)
            pthread_mutex_destroy(mutex)
            finished.deallocate()
            wake.deallocate()
            mutex.deallocate()
        }

        func enqueueAndWait(_ job: Job) {
            enqueue(job)
            wait(for: job)
        }

        func enqueue(_ job: Job) {
            pthread_mutex_lock(mutex)
            precondition(!stopping, "NamespaceWorker used after shutdown")
            jobs.append(job)
            pthread_cond_signal(wake)
            pthread_mutex_unlock(mutex)
        }

        func wait(for job: Job) {
            pthread_mutex_lock(mutex)
            while !job.done { pthread_cond_wait(finished, mutex) }
            pthread_mutex_unlock(mutex)
        }

        func shutdown() {
            pthread_mutex_lock(mutex)
            stopping = true
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(mutex)
        }

        /// The worker thread's body.
        func loop() {
            while true {
                pthread_mutex_lock(mutex)
                while jobs.isEmpty && !stopping { pthread_cond_wait(wake, mutex) }
                if jobs.isEmpty {   // stopping and drained
                    pthread_mutex_unlock(mutex)
                    return
                }
                let job = jobs.removeFirst()
                pthread_mutex_unlock(mutex)

                execute(job)

                // Only reached in the host namespace: `execute` aborts otherwise.
                pthread_mutex_lock(mutex)
                job.work = nil
                job.done = true
                pthread_cond_broadcast(finished)
                pthread_mutex_unlock(mutex)
            }
        }

        private func execute(_ job: Job) {
            switch enter(job.entry) {
            case .failure(let error):
                job.entryError = error
                return
            case .success(let switched):
                job.work?()
                if switched { returnTo(hostFD, label: "host") }
            }
        }

        /// Switches the calling (worker) thread as `entry` says. Returns whether it left its namespace.
        private func enter(_ entry: Entry) -> Result<Bool, LinuxNetworkingError> {
            switch entry {
            case .stay:
                return .success(false)
            case .join(let fd, let label):
                let rc = cls_setns(fd, CLS_CLONE_NEWNET)
                if rc < 0 { return .failure(.fromNegative(rc, call: "setns", context: "into \(label)")) }
                return .success(true)
            case .unshare:
                let rc = cls_unshare(CLS_CLONE_NEWNET)
                if rc < 0 { return .failure(.fromNegative(rc, call: "unshare(CLONE_NEWNET)", context: "on the namespace worker")) }
                return .success(true)
            }
        }

        /// The switch back. Failure poisons the thread: never hand anything over from here.
        private func returnTo(_ fd: Int32, label: String) {
            let rc = cls_setns(fd, CLS_CLONE_NEWNET)
            if rc < 0 {
                let message = "natlab: fatal: namespace worker cannot return to the \(label) network namespace (errno \(-rc)); aborting\n"
                _ = message.withCString { write(2, $0, strlen($0)) }
                abort()
            }
        }

        /// In-place bracket for a `run` called from inside a job (already on the worker thread).
        func nested<T>(_ entry: Entry, _ body: () throws -> T) throws -> T {
            if case .stay = entry {
                // "nil = host namespace": go to the host for the body, then back to where the job was.
                return try nestedBracket(enter: { () -> LinuxNetworkingError? in
                    let rc = cls_setns(hostFD, CLS_CLONE_NEWNET)
                    return rc < 0 ? .fromNegative(rc, call: "setns", context: "into the host namespace") : nil
                }, body)
            }
            return try nestedBracket(enter: { () -> LinuxNetworkingError? in
                if case .failure(let error) = self.enter(entry) { return error }
                return nil
            }, body)
        }

        private func nestedBracket<T>(enter: () -> LinuxNetworkingError?, _ body: () throws -> T) throws -> T {
            let saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
            guard saved >= 0 else {
                throw LinuxNetworkingError.lastErrno(call: "open", context: "/proc/thread-self/ns/net (nested excursion)")
            }
            defer { close(saved) }
            if let error = enter() { throw error }
            defer { returnTo(saved, label: "enclosing job's") }
            return try body()
        }
    }
}
