import CLinuxSupport
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// `ip netns exec NAME CMD…` for `natlab exec`.
public enum NamespaceExec {
    /// Replaces the process with `argv` running inside the namespace at `namespacePath`, the way
    /// `ip netns exec` does: join the network namespace on the calling thread, `unshare(CLONE_NEWNS)`,
    /// make `/` recursively a slave, remount `/sys` (so `/sys/class/net` lists the namespace's
    /// interfaces), then `execvp` (searching PATH).
    ///
    /// The syscall sequence runs in C with no Swift code in between. Only returns on failure, with the
    /// error; by then the calling thread may already be inside the namespace and a private mount
    /// namespace, so the caller must report the error and exit — not carry on.
    public static func exec(namespacePath: String, argv: [String]) -> LinuxNetworkingError {
        guard let program = argv.first, !program.isEmpty else {
            return .invalidArgument("exec: no command given")
        }
        let (rc, step) = withCArguments(namespacePath, argv) { path, name, args, failedStep in
            Int32(cls_netns_exec(path, name, args, failedStep))
        }
        let context = step == "execvp" ? "'\(program)' in \(namespacePath)" : "for '\(program)' in \(namespacePath)"
        return .fromNegative(rc, call: step ?? "exec", context: context)
    }

    /// Starts `argv` inside the namespace as a child process, with the same view as `exec` (its own
    /// `/sys`), default signal handling and, with `newSession`, detached from natlab's session so it
    /// outlives the natlab command that started it (`natlab up` leaves roles running). The child
    /// inherits no file descriptor but the three given (-1: natlab's own).
    /// Returns its pid once the program has really started (exec succeeded); a failure before that is
    /// thrown with its step.
    public static func spawn(namespacePath: String, argv: [String], stdin: Int32 = -1, stdout: Int32 = -1,
                             stderr: Int32 = -1, newSession: Bool = true) throws(LinuxNetworkingError) -> pid_t {
        guard let program = argv.first, !program.isEmpty else {
            throw .invalidArgument("spawn: no command given")
        }
        let (rc, step) = withCArguments(namespacePath, argv) { path, name, args, failedStep in
            cls_netns_spawn(path, name, args, stdin, stdout, stderr, newSession ? 1 : 0, failedStep)
        }
        if rc >= 0 { return rc }
        throw .fromNegative(rc, call: step ?? "spawn", context: "'\(program)' in \(namespacePath)")
    }

    /// argv as a NULL-terminated C array (strdup'd; freed after `body` — which for a successful
    /// exec never returns, the process image being gone), the namespace's name for the sysfs mount,
    /// and the C helper's failed-step report.
    private static func withCArguments(
        _ namespacePath: String, _ argv: [String],
        _ body: (String, String, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Int32
    ) -> (Int32, String?) {
        let cStrings = argv.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var pointers: [UnsafeMutablePointer<CChar>?] = cStrings + [nil]
        let name = namespacePath.split(separator: "/").last.map(String.init) ?? "netns"
        var failedStep: UnsafePointer<CChar>?
        let rc = pointers.withUnsafeMutableBufferPointer { buffer in
            body(namespacePath, name, buffer.baseAddress, &failedStep)
        }
        return (rc, failedStep.map { String(cString: $0) })
    }
}

/// Processes that need not be ours (a lab's roles outlive the `natlab up` that started them).
public enum Processes {
    /// Waits until every process in `pids` has exited, or `milliseconds` have passed; returns how many
    /// may still be running. Wakes the moment the last one exits (pidfd), not at the next poll tick.
    public static func waitForExit(_ pids: [Int32], milliseconds: Int) -> Int {
        guard !pids.isEmpty else { return 0 }
        return Int(pids.withUnsafeBufferPointer { cls_wait_for_exit($0.baseAddress, Int32($0.count), Int32(milliseconds)) })
    }
}
