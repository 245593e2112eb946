#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM for the long-running servers (`natlab serve …`), taken with `sigwait`.
///
/// Why not a DispatchSource: on Linux, libdispatch reads the signal from a signalfd and blocks it only
/// in the thread that registered the source. Every other thread (the event loops, the main thread)
/// still accepts it, and when the kernel picks one of those, the signal is consumed there and the
/// source never fires: `natlab down` then waited its full 500 ms and SIGKILLed the server (about one
/// STUN server in eight). Blocking both signals before any thread exists makes every later thread
/// inherit the block, so the one `sigwait` receives each of them.
enum StopSignals {
    private static var set: sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        return set
    }

    /// Blocks SIGINT and SIGTERM in the calling thread and in every thread it starts afterwards. Call
    /// first thing in the command, before any event loop or dispatch queue starts a thread.
    static func block() {
        var set = set
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits for SIGINT or SIGTERM (blocked by `block()`); returns which one came.
    @discardableResult
    static func wait() -> Int32 {
        var set = set
        var signal: Int32 = 0
        while sigwait(&set, &signal) != 0 {}
        return signal
    }

    /// Ends a `wait()` from another thread (for example on end of standard input).
    static func stop() { kill(getpid(), SIGTERM) }
}
