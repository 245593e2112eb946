#if canImport(Glibc)
import Glibc
#endif

/// natlab's environment variables (`NATLAB_TIMING`, `NATLAB_STATE_DIR`, …), read with `getenv`.
///
/// `ProcessInfo.processInfo.environment` builds a dictionary of the whole environment on every call
/// (~27 µs), and its first call sets up `ProcessInfo` itself (~0.3 ms, measured in a static Swift
/// binary): both on the main thread of every `up`, for three variables that are almost never set.
enum Environment {
    static func value(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
