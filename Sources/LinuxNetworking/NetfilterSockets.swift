#if canImport(Glibc)
import Glibc
#endif
import CLinuxSupport

/// NETLINK_NETFILTER sockets (libnftables contexts, ctnetlink) whose close is postponed.
///
/// An nf_tables commit that deletes or replaces objects queues kernel work that frees them after an
/// RCU grace period. Closing the last reference to *any* bound NETLINK_NETFILTER socket sends
/// NETLINK_URELEASE, and nf_tables' handler of that event waits for the queued work (`flush_work`).
/// So a process that commits such a ruleset and closes its socket at once — as `nft -f` does, and as
/// natlab did per router — waits for a grace period per commit. Measured with a C loop on fresh
/// namespaces (kernel 6.18, 2 cores): the close waits 18.6 ms right after the commit, 7.9 ms 10 ms
/// later, 0.5 ms 20 ms later. After a commit that only adds, the close took 0.03–0.04 ms (a build's
/// rulesets now only add; the observer's still replace their table).
///
/// So a lab build hands its sockets to one `NetfilterSockets`, loads its rulesets first, and calls
/// `close()` at the end. `close()` does not wait either: a child keeps a copy of every netfilter
/// socket of the process while this process closes its own (no longer the last references, so
/// instant), and the child closes its copies, which does whatever waiting is left. The child shares
/// natlab's memory (clone with CLONE_VM, on a stack of its own) instead of being forked: a fork copied
/// the page tables of natlab's 110 MB binary, about 0.9 ms of every `up`. The rulesets are committed
/// and in force either way; only the kernel's freeing of old transactions is left to the child.
///
/// The child then stays until natlab has exited (200 ms at most): while it shares natlab's memory,
/// natlab's exit is not the last user of it, so the kernel tears the address space down (~0.5 ms
/// for `up`'s ~20 MB resident) when the child exits, after natlab's exit has been reported to
/// whoever waits for it.
///
/// Thread-safe; `close()` is idempotent and also runs on deinit.
public final class NetfilterSockets: @unchecked Sendable {
    private let lock = PThreadLock()
    private var contexts: [OpaquePointer] = []
    private var descriptors: [Int32] = []

    public init() {}

    deinit { close() }

    /// Closes every socket held without waiting for nf_tables (see above); if the child cannot be
    /// forked, closes them here and waits.
    public func close() {
        let (held, fds) = lock.withLock { () -> ([OpaquePointer], [Int32]) in
            defer { contexts = []; descriptors = [] }
            return (contexts, descriptors)
        }
        guard !held.isEmpty || !fds.isEmpty else { return }
        var release: Int32 = -1
        var stack: UnsafeMutableRawPointer?
        let closer = cls_netfilter_closer_start(&release, &stack)
        for fd in fds { _ = Glibc.close(fd) }
        if !held.isEmpty { NFTables.free(held) }
        if release >= 0 { _ = Glibc.close(release) }
        if closer > 0 { Self.reap(adding: (closer, stack)) }
    }

    /// Children of earlier `close()` calls not reaped yet, with their stacks: a long-lived natlab
    /// (`natlab run`) reaps each at its next `close()` and unmaps its stack; whatever is left when
    /// natlab exits, init reaps.
    private static let closersLock = PThreadLock()
    nonisolated(unsafe) private static var closers: [(pid: pid_t, stack: UnsafeMutableRawPointer?)] = []

    private static func reap(adding child: (pid: pid_t, stack: UnsafeMutableRawPointer?)) {
        closersLock.withLock {
            closers.append(child)
            closers.removeAll { child in
                var status: Int32 = 0
                // Reaped, or not ours any more: either way it no longer runs on its stack.
                guard waitpid(child.pid, &status, WNOHANG) != 0 else { return false }
                if let stack = child.stack { munmap(stack, cls_netfilter_closer_stack_size()) }
                return true
            }
        }
    }

    func hold(context: OpaquePointer) { lock.withLock { contexts.append(context) } }
    func hold(descriptor: Int32) { lock.withLock { descriptors.append(descriptor) } }
}
