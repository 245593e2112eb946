#if canImport(Glibc)
import Glibc
#endif
import CLinuxSupport

/// Threads meant to run *beside* their creator from their first instruction.
///
/// Linux places a new thread on its creator's CPU more often than not (5 of 6 `up` runs, scheduler
/// trace on this 2-CPU VM), even with the other CPU idle: the new thread then waits until its
/// creator sleeps (2–3 ms at the start of `up`), or preempts it, and the idle CPU pulls one of them
/// only at its next balance. `up`'s preparation thread exists to use that idle CPU at once, so it
/// is started on another CPU than its creator's, then allowed every CPU again.
public enum ThreadPlacement {
    public typealias Body = @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?

    /// A detached pthread started on a CPU other than the caller's when the process may use one
    /// (glibc sets the affinity before the thread runs). The thread should call
    /// `allowCreatorsCPUs()` first. False if the thread could not be created.
    public static func startDetachedElsewhere(_ body: Body) -> Bool {
        var thread = pthread_t()
        guard cls_pthread_create_elsewhere(&thread, body, nil) == 0 else { return false }
        pthread_detach(thread)
        return true
    }

    /// On a thread `startDetachedElsewhere` started: every CPU its creator could use, so the
    /// scheduler moves it freely from now on. A failure leaves it on the other CPUs, which still run it.
    public static func allowCreatorsCPUs() {
        _ = cls_thread_allow_cpus_of_creator()
    }

    /// How many CPUs the calling thread may run on (0 if unknown).
    public static func allowedCPUs() -> Int {
        Int(cls_thread_allowed_cpus())
    }
}
