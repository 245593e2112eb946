// How a lab starts the agent and the rendezvous server: argv builders for the launcher of
// `natlab up` / `natlab run` (RoleLauncher maps `run: agent` / `run: rendezvous` through these).

/// The argv a `run: agent` role maps to (for the launcher of `natlab up`/`natlab run`): natlab's own
/// binary, `agent`, and the options the lab knows (addresses of the rendezvous, STUN and TURN hosts).
public enum AgentCommand {
    public static func argv(natlab: String, id: String, peer: String, rendezvous: String, stun: String? = nil,
                            turn: String? = nil, turnUser: String? = nil, turnPassword: String? = nil,
                            extra: [String] = []) -> [String] {
        var a = [natlab, "agent", "--id", id, "--peer", peer, "--rendezvous", rendezvous]
        if let stun { a += ["--stun", stun] }
        if let turn { a += ["--turn", turn] }
        if let turnUser { a += ["--turn-user", turnUser] }
        if let turnPassword { a += ["--turn-password", turnPassword] }
        return a + extra
    }

    /// `natlab serve rendezvous` on its default port.
    public static func rendezvousArgv(natlab: String, port: Int = 7000) -> [String] {
        [natlab, "serve", "rendezvous", "--port", "\(port)"]
    }
}
