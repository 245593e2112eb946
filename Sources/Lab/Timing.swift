import Foundation

/// `NATLAB_TIMING=1`: how long each phase of `up` takes, on stderr — where a slow build spends its
/// time (namespace set-up, nftables commits, process start). Off by default; costs nothing then.
public enum Timing {
    public static let enabled = Environment.value("NATLAB_TIMING") == "1"

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Prints one line: `ms` and what it measured (indent for sub-steps).
    static func report(_ nanoseconds: UInt64, _ what: String, indent: Int = 0) {
        FileHandle.standardError.write(Data(String(format: "natlab: timing %7.2f ms  %@%@\n", Double(nanoseconds) / 1e6,
                                                   String(repeating: " ", count: indent), what).utf8))
    }

    /// Runs `body`; with timing on, reports how long it took.
    public static func measure<T>(_ what: @autoclosure () -> String, indent: Int = 0, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let start = now()
        defer { report(now() - start, what(), indent: indent) }
        return try body()
    }
}
