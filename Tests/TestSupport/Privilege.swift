#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Gate for tests that need root and network namespaces.
///
/// Outside CI such tests are skipped (with the reason) on an unprivileged machine. Under `CI=true` they
/// always run, and `Privilege.require()` fails them: a CI that passes because privileged tests were
/// silently skipped would hide every kernel regression.
public enum Privilege {
    public static let isCI: Bool = ProcessInfo.processInfo.environment["CI"] == "true"

    /// Why privileged tests cannot run here, or nil when they can.
    public static let unavailableReason: String? = {
        if geteuid() != 0 { return "needs root (euid is \(geteuid()))" }
        if access("/proc/self/ns/net", F_OK) != 0 { return "this kernel exposes no network namespaces" }
        return nil
    }()

    /// For `@Test(.enabled(if: Privilege.shouldRun))`: true when privileged, and always under CI.
    public static var shouldRun: Bool { isCI || unavailableReason == nil }

    /// First line of every privileged test: throws (so the test fails) when privileges are missing.
    public static func require() throws {
        if let reason = unavailableReason { throw PrivilegeError(reason: reason) }
    }
}

public struct PrivilegeError: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { "privileged test cannot run: \(reason) (CI=true forbids skipping)" }
}
