import Topology

// `run: turn-server` and `run: coturn`: the relay natlab runs, and the coturn baseline, with the
// users (or shared secret) the topology gives.
extension RoleLauncher {
    /// Stands for the lab's role directory (`<state>/labs/<lab>/roles`) in role commands; replaced at start.
    static let rolesDirectoryToken = "@NATLAB_ROLES_DIR@"

    /// Where `natlab serve turn` in NODE writes its statistics (read by `natlab relay-stats`).
    public static func turnStatsPath(lab: String, node: String, store: LabStore = LabStore()) -> String {
        store.directory(of: lab) + "/roles/\(node).turn.json"
    }

    static func turnCommand(for node: PlannedNode) -> [String]? {
        guard let address = node.upstreamAddresses.first.map({ String($0.split(separator: "/")[0]) }) else { return nil }
        switch node.role {
        case .turnServer(let o)?:
            var argv = ["/proc/self/exe", "serve", "turn", "--listen", "\(address):3478", "--realm", o.realm]
            if let secret = o.staticSecret { argv += ["--static-secret", secret] }
            for u in o.effectiveUsers { argv += ["--user", "\(u.name):\(u.password)"] }
            if let m = o.maxLifetime { argv += ["--max-lifetime", String(m)] }
            if let q = o.userQuota { argv += ["--user-quota", String(q)] }
            return argv + ["--stats", "\(rolesDirectoryToken)/\(node.name).turn.json"]
        case .coturn(let o)?:
            // Flags: reference stun-turn-ice.md §2.1 (coturn 4.6.1): command line only, no TLS/DTLS/CLI,
            // long-term credentials, FINGERPRINT in responses, log to stdout (the role's log).
            var argv = ["turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls", "-L", address, "-E", address, "-p", "3478",
                        "-r", o.realm, "-f", "--log-file", "stdout", "--simple-log",
                        "--pidfile", "\(rolesDirectoryToken)/\(node.name).turnserver.pid", "--min-port", "49152", "--max-port", "65535"]
            if let secret = o.staticSecret {
                argv += ["--use-auth-secret", "--static-auth-secret=\(secret)"]
            } else {
                argv += ["-a"]
                for u in o.effectiveUsers { argv += ["-u", "\(u.name):\(u.password)"] }
            }
            if let m = o.maxLifetime { argv += ["--max-allocate-lifetime=\(m)"] }
            if let q = o.userQuota { argv += ["--user-quota=\(q)"] }
            return argv
        default:
            return nil
        }
    }
}
