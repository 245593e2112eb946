#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import LinuxNetworking
import Topology

/// A role process natlab started inside a lab node.
public struct RoleProcess: Codable, Sendable, Equatable {
    public var node: String
    public var argv: [String]
    public var pid: Int32
    /// stdout and stderr of the role.
    public var log: String
}

/// Turns `run:` roles into commands and starts them inside their nodes.
///
/// Roles start after the network is built, each as its own session (so they outlive `natlab up`
/// and ignore the terminal's Ctrl-C), with the node's view of the system (like `natlab exec`), output
/// in `<state>/labs/<lab>/roles/<node>.log`. `down` stops them with everything else in the lab.
public enum RoleLauncher {
    /// The command a role runs, or nil when this version cannot run that role yet.
    /// `{ exec: [...] }` arguments may name other nodes' addresses: `${bob.address}` (the node's
    /// first address), `${stun.address2}` (its second), `${alice.public}` (how the internet sees it).
    public static func command(for node: PlannedNode, in plan: LabPlan) throws(LabError) -> [String]? {
        switch node.role {
        case .exec(let argv)?:
            return try argv.map { arg throws(LabError) in try substitute(arg, plan: plan, node: node.name) }
        case .rendezvous?:
            return [natlabExecutable, "serve", "rendezvous", "--port", "\(rendezvousPort)"]
        case .stunServer?:
            // natlab's own STUN server on the host's addresses (two: RFC 5780).
            return [natlabExecutable, "serve", "stun"] + node.upstreamAddresses.flatMap { ["--listen", $0] }
        case .turnServer?, .coturn?:
            return turnCommand(for: node)
        default:
            return nil
        }
    }

    /// Roles natlab knows but cannot start in this version (shown by `up`).
    public static func pending(in plan: LabPlan) -> [(node: String, role: Role)] {
        plan.nodes.compactMap { node in
            switch node.role {
            case nil, .exec?, .rendezvous?, .stunServer?, .turnServer?, .coturn?: return nil
            // Agents need a peer: `natlab run` starts them per check.
            case .agent?: return nil
            case let role?: return (node.name, role)
            }
        }
    }

    /// Every role command of the plan, resolved; bad references are bad input, found before
    /// anything is built.
    public static func commands(in plan: LabPlan) throws(LabError) -> [(node: String, argv: [String])] {
        var result: [(String, [String])] = []
        for node in plan.nodes {
            if let argv = try command(for: node, in: plan) { result.append((node.name, argv)) }
        }
        return result
    }

    /// This natlab binary (roles run `natlab serve …` inside their nodes).
    static func substitute(_ arg: String, plan: LabPlan, node: String) throws(LabError) -> String {
        var out = ""
        var rest = Substring(arg)
        while let open = rest.range(of: "${") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                throw .invalidRole(node: node, "unterminated '${' in argument '\(arg)'")
            }
            let reference = String(rest[open.upperBound..<close])
            out += try resolve(reference, plan: plan, node: node)
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }

    static func resolve(_ reference: String, plan: LabPlan, node: String) throws(LabError) -> String {
        let parts = reference.split(separator: ".", maxSplits: 1).map(String.init)
        guard parts.count == 2, let target = plan.node(named: parts[0]) else {
            throw .invalidRole(node: node, "'${\(reference)}' names no node (nodes: \(plan.nodes.map(\.name).joined(separator: ", ")))")
        }
        let addresses = target.upstreamAddresses.map { String($0.split(separator: "/")[0]) }
        switch parts[1] {
        case "address" where !addresses.isEmpty: return addresses[0]
        case "address2" where addresses.count > 1: return addresses[1]
        case "public" where !(target.publicAddresses ?? []).isEmpty: return target.publicAddresses![0]
        default:
            throw .invalidRole(node: node, "'${\(reference)}': \(target.name) has no '\(parts[1])' (use address, address2 or public)")
        }
    }

    /// Starts the lab's roles; returns them. Throws (after stopping those it started) if one cannot
    /// start or exits at once with a failure.
    static func start(_ commands: [(node: String, argv: [String])], lab: String, store: LabStore) throws -> [RoleProcess] {
        guard !commands.isEmpty else { return [] }
        let directory = store.directory(of: lab) + "/roles"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devNull) }
        var started: [RoleProcess] = []
        do {
            var roles: [(node: String, argv: [String], log: String, fd: Int32)] = []
            defer { for role in roles { close(role.fd) } }
            for (node, argv) in commands {
                let log = "\(directory)/\(node).log"
                let fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
                guard fd >= 0 else { throw LabError.state("cannot open \(log): \(String(cString: strerror(errno)))") }
                roles.append((node, argv.map { $0.replacingOccurrences(of: rolesDirectoryToken, with: directory) }, log, fd))
            }
            // Two at a time, on this thread and the spare one (every other role each): a spawn suspends
            // only its calling thread until the program is exec'd. One at a time, the second waited for
            // a core while the first role (a natlab process too) was starting up: two-homes' two spawns
            // took 5.8 ms (median of 9, NATLAB_TIMING=1), 2.8 ms at once.
            let spawned = Mutex<[Result<pid_t, any Error>?]>(Array(repeating: nil, count: roles.count))
            let toSpawn = roles
            let spawn = { @Sendable (i: Int) in
                let role = toSpawn[i]
                let path = NetworkNamespace.path(of: LabNaming.namespace(lab: lab, node: role.node))
                let result = Result { () throws -> pid_t in
                    try Timing.measure("spawn \(role.node)", indent: 2) {
                        try NamespaceExec.spawn(namespacePath: path, argv: role.argv, stdin: devNull, stdout: role.fd, stderr: role.fd)
                    }
                }
                spawned.withLock { $0[i] = result }
            }
            SpareThread.pair { half in
                for i in stride(from: half, to: toSpawn.count, by: 2) { spawn(i) }
            }
            var failure: (any Error)?
            for (role, result) in zip(roles, spawned.withLock { $0 }) {
                switch result {
                case .success(let pid)?: started.append(RoleProcess(node: role.node, argv: role.argv, pid: pid, log: role.log))
                case .failure(let error)?: failure = failure ?? error
                case nil: break
                }
            }
            if let failure { throw failure }
            // A user's program that dies at once is a broken command line: say so now, not at the
            // first check. (natlab's own servers are waited for by their ports instead.)
            let ownServers = [natlabExecutable, "/proc/self/exe"]
            if commands.contains(where: { !ownServers.contains($0.argv[0]) }) {
                usleep(200_000)
            }
            for role in started {
                var status: Int32 = 0
                guard waitpid(role.pid, &status, WNOHANG) == role.pid else { continue }
                let code = (status & 0x7f) == 0 ? "exit status \((status >> 8) & 0xff)" : "signal \(status & 0x7f)"
                if status != 0 {
                    let tail = (try? String(contentsOfFile: role.log, encoding: .utf8))?
                        .split(separator: "\n").suffix(5).joined(separator: "\n") ?? ""
                    throw LabError.roleFailed(node: role.node, detail: "\(role.argv.joined(separator: " ")) ended at once with \(code)"
                                              + (tail.isEmpty ? "" : ":\n\(tail)"))
                }
            }
        } catch {
            for role in started { kill(role.pid, SIGKILL) }
            throw error
        }
        return started
    }
}

extension RoleLauncher {
    /// This natlab binary: natlab's own roles run as `natlab serve …` / `natlab agent …`.
    public static let natlabExecutable: String = {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    }()

    /// The rendezvous server's port (`natlab serve rendezvous`).
    public static let rendezvousPort = 7000

    /// Waits until a process has a socket bound to `port` in its network namespace (read from
    /// /proc/PID/net/{udp,tcp}, which shows the namespace of that process): a service is ready
    /// before clients are started. False on timeout or when the process ended.
    public static func waitForPort(pid: Int32, port: Int, tcp: Bool, timeout: Double) -> Bool {
        let hex = String(format: ":%04X", port)
        let end = Date().addingTimeInterval(timeout)
        repeat {
            guard LabEngine.isRunning(pid) else { return false }
            for file in tcp ? ["tcp", "tcp6"] : ["udp", "udp6"] {
                let text = (try? String(contentsOfFile: "/proc/\(pid)/net/\(file)", encoding: .utf8)) ?? ""
                for line in text.split(separator: "\n").dropFirst() {
                    let fields = line.split(separator: " ")
                    // local_address is field 1; a TCP listener has state 0A.
                    if fields.count > 3, fields[1].hasSuffix(hex), !tcp || fields[3] == "0A" { return true }
                }
            }
            usleep(10_000)
        } while Date() < end
        return false
    }
}
