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
        // Strings for C: strdup'd and freed only if exec fails (on success the process image is gone).
        let cStrings = argv.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var pointers: [UnsafeMutablePointer<CChar>?] = cStrings + [nil]
        let name = namespacePath.split(separator: "/").last.map(String.init) ?? "netns"
        var failedStep: UnsafePointer<CChar>?
        let rc = pointers.withUnsafeMutableBufferPointer { buffer in
            cls_netns_exec(namespacePath, name, buffer.baseAddress, &failedStep)
        }
        let step = failedStep.map { String(cString: $0) } ?? "exec"
        let context = step == "execvp" ? "'\(program)' in \(namespacePath)" : "for '\(program)' in \(namespacePath)"
        return .fromNegative(rc, call: step, context: context)
    }

    /// Starts `argv` inside the namespace as a child process, with the same view as `exec` (its own
    /// `/sys`), default signal handling and, with `newSession`, detached from natlab's session so it
    /// outlives the natlab command that started it (`natlab up` leaves roles running).
    /// `stdin`/`stdout`/`stderr` are file descriptors for the child (-1: inherit). Returns its pid once
    /// the program has really started (exec succeeded); a failure before that is thrown with its step.
    public static func spawn(namespacePath: String, argv: [String], stdin: Int32 = -1, stdout: Int32 = -1,
                             stderr: Int32 = -1, newSession: Bool = true) throws(LinuxNetworkingError) -> pid_t {
        guard let program = argv.first, !program.isEmpty else {
            throw .invalidArgument("spawn: no command given")
        }
        let cStrings = argv.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var pointers: [UnsafeMutablePointer<CChar>?] = cStrings + [nil]
        let name = namespacePath.split(separator: "/").last.map(String.init) ?? "netns"
        var failedStep: UnsafePointer<CChar>?
        let rc = pointers.withUnsafeMutableBufferPointer { buffer in
            cls_netns_spawn(namespacePath, name, buffer.baseAddress, stdin, stdout, stderr, newSession ? 1 : 0, &failedStep)
        }
        if rc >= 0 { return rc }
        let step = failedStep.map { String(cString: $0) } ?? "spawn"
        throw .fromNegative(rc, call: step, context: "'\(program)' in \(namespacePath)")
    }
}
