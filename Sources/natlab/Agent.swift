// `natlab agent`: natlab's ICE traversal agent (what a `run: agent` role starts inside a lab node).
// Reports JSON lines on stdout (README "Agent reports"); logs nothing else there.
import ArgumentParser
import Foundation
import Roles
import STUNWire

struct Agent: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "ICE traversal agent (RFC 8445): connect to a peer through NATs, exchange data, report JSON lines.",
        discussion: """
        Run inside a lab node (natlab exec LAB NODE -- natlab agent …). Registers with the \
        rendezvous server as --id, gathers host, server-reflexive (--stun) and relayed (--turn) \
        candidates on one UDP socket, exchanges them with --peer, runs connectivity checks, \
        selects a pair, sends --bytes of data over it and keeps consent (RFC 7675) until it is done.

        Exit status: 0 connected, all data exchanged, consent never lost; 1 otherwise; 2 bad arguments.
        Example:
          natlab agent --id alice --peer bob --rendezvous 203.0.113.3:7000 --stun 203.0.113.3:3478
        """
    )

    @Option(help: "This agent's id at the rendezvous server.") var id: String
    @Option(help: "The peer's id.") var peer: String
    @Option(help: "Rendezvous server HOST:PORT (natlab serve rendezvous; default port 7000).") var rendezvous: String
    @Option(help: "STUN server IP:PORT for server-reflexive candidates.") var stun: String?
    @Option(help: "TURN server IP:PORT (UDP) for a relayed candidate.") var turn: String?
    @Option(name: .customLong("turn-user"), help: "TURN username (long-term credentials).") var turnUser: String = ""
    @Option(name: .customLong("turn-password"), help: "TURN password.") var turnPassword: String = ""
    @Option(help: "Candidate types to offer, comma-separated: host,srflx,relay.") var candidates: String = "host,srflx,relay"
    @Flag(name: .customLong("no-host"), help: "Do not offer host candidates (the hairpin case).") var noHost = false
    @Flag(name: .customLong("no-srflx"), help: "Do not gather or offer server-reflexive candidates.") var noSrflx = false
    @Flag(name: .customLong("no-relay"), help: "Do not allocate a relayed candidate.") var noRelay = false
    @Flag(name: .customLong("relay-only"), help: "Offer and use only the relayed candidate.") var relayOnly = false
    @Flag(exclusivity: .exclusive, help: "Role hint (default: the id that sorts first is controlling); conflicts are resolved per RFC 8445 §7.3.1.1.")
    var role: RoleHint?
    @Option(help: "Ta: milliseconds between new checks.") var ta: Double = 20
    @Option(help: "First check retransmission timeout, milliseconds (doubles, at most 1600).") var rto: Double = 200
    @Option(help: "Seconds between consent/keepalive requests on the selected pair (×U(0.8,1.2)).") var keepalive: Double = 5
    @Option(name: .customLong("consent-timeout"), help: "Seconds without a consent response before the path counts as lost.") var consentTimeout: Double = 30
    @Option(name: .customLong("nomination-wait"), help: "Controlling: seconds after the first valid pair before nominating the best one.") var nominationWait: Double = 0.5
    @Option(help: "Seconds to connect before giving up (path none).") var deadline: Double = 30
    @Option(help: "Bytes of application data to send over the selected pair.") var bytes: Int = 16_384
    @Option(help: "Seconds to keep the path (consent only) after the data exchange.") var hold: Double = 0
    @Option(help: "Local UDP port (0: any).") var port: Int = 0
    @Option(name: .customLong("tie-breaker"), help: .hidden) var tieBreaker: UInt64?

    enum RoleHint: String, EnumerableFlag { case controlling, controlled }

    func validate() throws {
        guard Self.hostPort(rendezvous) != nil else { throw ValidationError("--rendezvous: expected HOST:PORT, got \(rendezvous)") }
        if let s = stun, STUNAddress(s) == nil { throw ValidationError("--stun: expected IP:PORT, got \(s)") }
        if let t = turn, STUNAddress(t) == nil { throw ValidationError("--turn: expected IP:PORT, got \(t)") }
        for t in candidates.split(separator: ",") where ICECandidateType(rawValue: String(t)) == nil || t == "prflx" {
            throw ValidationError("--candidates: unknown type \(t) (host, srflx, relay)")
        }
        if ta <= 0 || rto <= 0 || keepalive <= 0 || consentTimeout <= 0 || deadline <= 0 || bytes < 0 {
            throw ValidationError("--ta, --rto, --keepalive, --consent-timeout, --deadline must be positive, --bytes not negative")
        }
    }

    static func hostPort(_ s: String) -> (String, Int)? {
        guard let c = s.lastIndex(of: ":"), let p = Int(s[s.index(after: c)...]), p > 0, p < 65536 else { return nil }
        return (String(s[..<c]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), p)
    }

    func run() throws {
        let (host, p) = Self.hostPort(rendezvous)!
        var o = AgentOptions(id: id, peer: peer, rendezvousHost: host, rendezvousPort: p)
        o.stun = stun.flatMap(STUNAddress.init)
        o.turn = turn.flatMap(STUNAddress.init)
        o.turnUser = turnUser
        o.turnPassword = turnPassword
        var types = Set(candidates.split(separator: ",").compactMap { ICECandidateType(rawValue: String($0)) })
        if noHost { types.remove(.host) }
        if noSrflx { types.remove(.srflx) }
        if noRelay { types.remove(.relay) }
        if relayOnly { types = [.relay] }
        o.candidateTypes = types
        o.controlling = role.map { $0 == .controlling }
        o.tieBreaker = tieBreaker
        o.ice.ta = ta / 1000
        o.ice.rto = rto / 1000
        o.ice.consentInterval = keepalive
        o.ice.consentTimeout = consentTimeout
        o.ice.nominationWait = nominationWait
        o.deadline = deadline
        o.bytes = bytes
        o.hold = hold
        o.port = port
        let status = AgentRunner(options: o, reporter: AgentReporter(agent: id)).run()
        if status != 0 { throw ExitCode(status) }
    }
}
