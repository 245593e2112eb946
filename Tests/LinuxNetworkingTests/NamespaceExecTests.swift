import Foundation
import Testing
import LinuxNetworking
import TestSupport

@Suite struct NamespaceExecTests {
    /// Fails before touching any namespace: safe to run in the test process itself.
    @Test func missingNamespaceFileFailsAtOpen() {
        let error = NamespaceExec.exec(namespacePath: "/nonexistent/natlab-lntest-none", argv: ["true"])
        #expect(error.isNotFound)
        #expect(error.description == "open for 'true' in /nonexistent/natlab-lntest-none: No such file or directory (ENOENT)")
        let empty = NamespaceExec.exec(namespacePath: "/nonexistent", argv: [])
        #expect(empty.errno == nil)
    }

    /// spawn's child (clone with CLONE_VM|CLONE_VFORK) reports a failure before exec with its step and
    /// errno: safe without root, the namespace file does not exist.
    @Test func spawnReportsFailureBeforeExec() {
        #expect {
            try NamespaceExec.spawn(namespacePath: "/nonexistent/natlab-lntest-none", argv: ["true"], newSession: false)
        } throws: { error in
            let e = error as? LinuxNetworkingError
            return e?.isNotFound == true && e?.description == "open 'true' in /nonexistent/natlab-lntest-none: No such file or directory (ENOENT)"
        }
    }

    /// The whole child path (setns, a private mount namespace, sysfs) then a program that does not
    /// exist: the failure comes back as execvp's, and a real program starts and is waited for.
    @Test(.enabled(if: Privilege.shouldRun))
    func spawnInsideNamespace() throws {
        try Privilege.require()
        try withNamespaces("spawn", count: 1) { names, _ in
            let path = NetworkNamespace.path(of: names[0])
            #expect {
                try NamespaceExec.spawn(namespacePath: path, argv: ["/nonexistent/natlab-no-such-program"], newSession: false)
            } throws: { error in
                (error as? LinuxNetworkingError)?.description.hasPrefix("execvp '/nonexistent/natlab-no-such-program'") == true
            }
            let pid = try NamespaceExec.spawn(namespacePath: path, argv: ["sh", "-c", "exit 7"], newSession: false)
            var status: Int32 = 0
            #expect(waitpid(pid, &status, 0) == pid)
            #expect((status >> 8) & 0xff == 7)
        }
    }

    /// The real thing in a forked child (exec replaces it): the command sees only the namespace's
    /// interfaces, in /sys too, and runs in the namespace.
    @Test(.enabled(if: Privilege.shouldRun))
    func execRunsCommandInsideNamespaceWithItsSysfs() throws {
        try Privilege.require()
        try withNamespaces("exec", count: 1) { names, files in
            let output = "/tmp/\(uniqueName("exec")).out"
            defer { unlink(output) }
            let path = NetworkNamespace.path(of: names[0])
            let argv = ["sh", "-c", "ls /sys/class/net > \(output); stat -L -c %i /proc/self/ns/net >> \(output)"]
            let pid = fork()
            if pid == 0 {
                // Child: only the exec helper, then _exit if it returned (failure).
                let error = NamespaceExec.exec(namespacePath: path, argv: argv)
                _ = "\(error)\n".withCString { write(2, $0, strlen($0)) }
                _exit(127)
            }
            #expect(pid > 0)
            var status: Int32 = 0
            var waited: pid_t = 0
            for _ in 0..<500 {   // ≤ 5 s, then kill: never hang the suite
                waited = waitpid(pid, &status, WNOHANG)
                if waited != 0 { break }
                usleep(10_000)
            }
            if waited == 0 {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                Issue.record("exec child did not finish")
                return
            }
            #expect(status == 0, "child exit status \(status)")
            let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n").map(String.init)
            #expect(lines == ["lo", String(files[0].inode)])
        }
        // The host's /sys was not remounted for us.
        #expect(FileManager.default.fileExists(atPath: "/sys/class/net/lo"))
    }
}
