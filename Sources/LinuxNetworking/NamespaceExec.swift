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
}
