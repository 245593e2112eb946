#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Ctrl-C, SIGTERM and SIGHUP while a lab is being built or torn down.
///
/// The handler only records the signal (an atomic store is async-signal-safe); the builder checks
/// between steps and tears down what it made. Long kernel work is never interrupted half-way, so
/// the journal and the kernel always agree.
public enum Interrupts {
    private static let received = Atomic<Int32>(0)

    /// The signal received since `install()`, or nil.
    public static var pending: Int32? {
        let s = received.load(ordering: .relaxed)
        return s == 0 ? nil : s
    }

    /// Call on the main thread. Also unblocks the signals: a process inherits its parent thread's
    /// signal mask, and some launchers (test runners, Foundation's Process from a pool thread) start
    /// children with SIGINT/SIGTERM blocked — natlab would then never notice Ctrl-C.
    public static func install() {
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { sig in Interrupts.received.store(sig, ordering: .relaxed) }
        }
        var set = sigset_t()
        sigemptyset(&set)
        for sig in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, sig) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// Before exec'ing a user's command: default dispositions and nothing blocked, so the command
    /// reacts to Ctrl-C and `kill` like it would from a shell.
    public static func resetForExec() {
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { signal(sig, SIG_DFL) }
        var empty = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, nil)
    }

    /// Back to the default actions (a finished `up` leaves the lab running and exits normally).
    public static func uninstall() {
        for sig in [SIGINT, SIGTERM, SIGHUP] { signal(sig, SIG_DFL) }
    }

    public static func name(_ sig: Int32) -> String {
        switch sig {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        case SIGHUP: return "SIGHUP"
        default: return "signal \(sig)"
        }
    }
}
