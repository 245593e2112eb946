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

    public static func install() {
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { sig in Interrupts.received.store(sig, ordering: .relaxed) }
        }
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
