#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LinuxNetworking
import Topology

/// What one agent said about a check (its JSON-lines report, see README "Agent reports").
public struct AgentSummary: Codable, Sendable, Equatable {
    public var agent: String
    /// `done.path`, or the last `path` event's path, or "none".
    public var path: String
    public var detail: String?
    /// "srflx ↔ srflx": local and remote candidate types of the selected pair.
    public var pair: String?
    /// Seconds from start to pair selection.
    public var connectSeconds: Double?
    public var sent: Int
    public var received: Int
    public var complete: Bool
    public var consentLost: Bool
    public var errors: [String]
    public var exitStatus: Int32?

    init(agent: String) {
        self.agent = agent; path = "none"; sent = 0; received = 0; complete = false; consentLost = false; errors = []
    }

    /// Folds one report line in (unknown events and fields are ignored, as the contract says).
    mutating func read(_ line: String) {
        guard let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
              let event = o["event"] as? String else { return }
        switch event {
        case "pair-selected":
            let l = (o["local"] as? [String: Any])?["type"] as? String ?? "?"
            let r = (o["remote"] as? [String: Any])?["type"] as? String ?? "?"
            pair = "\(l) ↔ \(r)"
            connectSeconds = o["elapsed"] as? Double
        case "path":
            if let p = o["path"] as? String { path = p }
            detail = o["detail"] as? String
            if o["state"] as? String == "lost" { consentLost = true }
        case "data":
            sent = o["sent"] as? Int ?? sent
            received = o["received"] as? Int ?? received
            complete = o["complete"] as? Bool ?? complete
        case "done":
            if let p = o["path"] as? String { path = p }
            if let lost = o["consent-lost"] as? Int, lost > 0 { consentLost = true }
            if let lost = o["consent-lost"] as? Bool, lost { consentLost = true }
        case "error":
            if let m = o["message"] as? String, o["fatal"] as? Bool ?? false { errors.append(m) }
        default:
            break
        }
    }

    public var pathText: String { detail.map { "\(path) (\($0))" } ?? path }
}

/// The outcome of one check.
public struct CheckResult: Codable, Sendable {
    public var index: Int
    public var check: Check
    public var network: NetworkVerdict
    public var agents: [AgentSummary]
    public var passed: Bool
    /// Why it failed, in one sentence; nil when it passed.
    public var failure: String?
    public var seconds: Double
}

/// Where the lab's services are, for the agents.
struct Services {
    var stun: String?
    var turn: String?
    var turnUser: String?
    var turnPassword: String?
    var rendezvous: String
    var relays: [String]
}

/// Runs checks in a live lab: agents in both peers, their reports, the counters, the verdict.
struct CheckRunner {
    let lab: String
    let record: LabRecord
    let services: Services
    let observer: Observer
    let natlab: String

    /// Spawns an agent inside `node`, its report on a pipe; returns pid and the pipe's read end.
    func spawnAgent(_ node: String, peer: String, check: Check) throws -> (pid_t, Int32) {
        var argv = [natlab, "agent", "--id", node, "--peer", peer, "--rendezvous", services.rendezvous]
        if let stun = services.stun { argv += ["--stun", stun] }
        if let turn = services.turn {
            argv += ["--turn", turn]
            if let u = services.turnUser, let p = services.turnPassword { argv += ["--turn-user", u, "--turn-password", p] }
        }
        var offer = check.offer
        if services.turn == nil { offer.removeAll { $0 == .relay } }
        argv += ["--candidates", offer.map(\.rawValue).joined(separator: ","),
                 "--deadline", seconds(check.deadlineMilliseconds), "--bytes", "\(check.bytes)",
                 "--keepalive", seconds(check.keepaliveMilliseconds), "--hold", seconds(check.holdMilliseconds),
                 "--consent-timeout", seconds(check.consentTimeoutMilliseconds)]
        var fds: [Int32] = [0, 0]
        // Close-on-exec so no other child inherits it; the spawn hands the write end over as stdout.
        guard pipe(&fds) == 0 else { throw LabError.state("pipe: \(String(cString: strerror(errno)))") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        defer { close(fds[1]) }
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devNull) }
        let path = NetworkNamespace.path(of: record.namespace(of: node))
        do {
            let pid = try NamespaceExec.spawn(namespacePath: path, argv: argv, stdin: devNull, stdout: fds[1],
                                              stderr: fds[1], newSession: false)
            return (pid, fds[0])
        } catch {
            close(fds[0])
            throw error
        }
    }

    func seconds(_ ms: Int) -> String { String(format: "%.3f", Double(ms) / 1000) }

    func run(_ index: Int, _ check: Check) throws -> CheckResult {
        let start = Date()
        let (a, b) = (check.peers[0], check.peers[1])
        var summaries = [AgentSummary(agent: a), AgentSummary(agent: b)]
        let one = try spawnAgent(a, peer: b, check: check)
        let two: (pid_t, Int32)
        do { two = try spawnAgent(b, peer: a, check: check) } catch { kill(one.0, SIGKILL); close(one.1); throw error }
        // Read both reports until both agents close them; the agents bound their own life with
        // --deadline, natlab adds a margin and then stops them.
        let limit = Date().addingTimeInterval(Double(check.deadlineMilliseconds + check.holdMilliseconds) / 1000 + 15)
        var buffers = [Data(), Data()]
        var open = [true, true]
        var fds = [pollfd(fd: one.1, events: Int16(POLLIN), revents: 0), pollfd(fd: two.1, events: Int16(POLLIN), revents: 0)]
        var chunk = [UInt8](repeating: 0, count: 65536)
        while open.contains(true) && Date() < limit && Interrupts.pending == nil {
            for i in 0..<2 { fds[i].fd = open[i] ? (i == 0 ? one.1 : two.1) : -1 }
            let n = poll(&fds, 2, 100)
            if n <= 0 { continue }
            for i in 0..<2 where open[i] && fds[i].revents != 0 {
                let got = read(fds[i].fd, &chunk, chunk.count)
                if got <= 0 { open[i] = false; continue }
                buffers[i].append(contentsOf: chunk[0..<got])
                while let nl = buffers[i].firstIndex(of: 10) {
                    let line = String(decoding: buffers[i][buffers[i].startIndex..<nl], as: UTF8.self)
                    buffers[i] = Data(buffers[i][(nl + 1)...])
                    summaries[i].read(line)
                }
            }
        }
        for (i, agent) in [one, two].enumerated() {
            if open[i] || LabEngine.isRunning(agent.0) { kill(agent.0, SIGKILL) }
            var status: Int32 = 0
            if waitpid(agent.0, &status, 0) == agent.0 {
                summaries[i].exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            }
            close(agent.1)
        }
        if let sig = Interrupts.pending { throw LabError.interrupted(signal: sig) }

        let network = NetworkVerdict.judge(check: index, plan: observer.plan, values: try observer.read(),
                                           carried: max(1024, check.bytes / 2))
        var failure: String?
        let reported = Set(summaries.map(\.path))
        if network.path != check.expect {
            failure = "expected \(check.expect.rawValue), the network carried \(network)"
        } else if reported != [network.path.rawValue] {
            failure = "the network carried \(network) but the agents report " + summaries.map { "\($0.agent): \($0.pathText)" }.joined(separator: ", ")
        } else if check.expect != .none, let short = summaries.first(where: { !$0.complete }) {
            failure = "\(short.agent) received \(short.received) of \(check.bytes) bytes"
        } else if check.lost, !summaries.contains(where: \.consentLost) {
            failure = "the path was expected to be lost while held, but consent never expired"
        } else if !check.lost, let gone = summaries.first(where: \.consentLost) {
            failure = "\(gone.agent) lost the path (consent expired) while it was held"
        }
        return CheckResult(index: index, check: check, network: network, agents: summaries, passed: failure == nil,
                           failure: failure, seconds: Date().timeIntervalSince(start))
    }
}
