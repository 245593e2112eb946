#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LinuxNetworking
import Topology
import Crypto

/// `natlab run`: build → services → checks → verdicts → teardown.
public struct RunOptions: Sendable {
    /// Leave the lab up (state `up`) when a check fails, for `natlab exec`.
    public var keepOnFailure = false
    /// Run every check this many times.
    public var repeatCount = 1
    /// Lab name; default: the topology's name with a random suffix, so parallel runs never clash.
    public var name: String?
    public init() {}
}

public struct RunReport: Codable, Sendable {
    public var lab: String
    public var topologyFile: String
    public var buildMilliseconds: Double?
    public var results: [CheckResult]
    public var kept: Bool
    public var passed: Bool { !results.isEmpty && results.allSatisfy(\.passed) }
}

extension LabEngine {
    /// The host name `run` adds for the rendezvous server when the file has none.
    static let rendezvousHost = "rendezvous"

    /// Adds a public rendezvous host when the checks need one and the file has none.
    public static func withRendezvous(_ topology: Topology) -> Topology {
        guard !topology.checks.isEmpty, !topology.hosts.contains(where: { $0.role == .rendezvous }) else { return topology }
        var t = topology
        var name = rendezvousHost
        var n = 2
        while t.hosts.contains(where: { $0.name == name }) || t.routers.contains(where: { $0.name == name }) {
            name = "rendezvous\(n)"; n += 1
        }
        t.hosts.append(Topology.Host(name: name, attach: Topology.internet, role: .rendezvous))
        return t
    }

    /// Builds the lab of `topology`, runs its checks, removes the lab (unless kept), reports.
    public func run(_ topology: Topology, file: String, options: RunOptions = RunOptions(),
                    progress: (String) -> Void = { _ in }) throws -> RunReport {
        guard !topology.checks.isEmpty else {
            throw LabError.state("\(file) has no `checks:`: nothing to run (see README, natlab run)")
        }
        let prepared = Self.withRendezvous(topology)
        let plan = Planner.plan(prepared)
        let name = options.name ?? "\(String(topology.name.prefix(18)))-\(String(format: "%04x", UInt16.random(in: 0...UInt16.max)))"
        let (record, _, lock, _) = try build(plan: plan, name: name, topologyFile: file, state: .owned)
        progress("lab \(name) up in \(String(format: "%.1f", record.buildMilliseconds ?? 0)) ms")
        var report = RunReport(lab: name, topologyFile: file, buildMilliseconds: record.buildMilliseconds, results: [], kept: false)
        // The lab is this process's: `down` at the end, `gc` after a kill -9 (state owned, lock gone).
        defer {
            lock.unlock()
            if report.kept, var r = store.record(of: name) {
                r.state = .up
                try? store.write(r)
            } else {
                try? down(name)
            }
        }
        Interrupts.install()
        defer { Interrupts.uninstall() }

        let services = try startedServices(record)
        let observation = Observation.plan(record.plan, checks: prepared.checks, relays: services.relays)
        let observer = Observer(plan: observation, lab: name, worker: try worker())
        let runner = CheckRunner(lab: name, record: record, services: services, observer: observer,
                                 natlab: RoleLauncher.natlabExecutable)
        for round in 0..<max(1, options.repeatCount) {
            for (i, check) in prepared.checks.enumerated() {
                try observer.install()   // zeroes every counter: each check counts only its own traffic
                progress("check \(i + 1)/\(prepared.checks.count)\(options.repeatCount > 1 ? " (round \(round + 1))" : ""): \(check.title), expect \(check.expect.rawValue)")
                report.results.append(try runner.run(i, check))
            }
        }
        report.kept = options.keepOnFailure && !report.passed
        return report
    }

    /// The lab's STUN, TURN and rendezvous endpoints, once each server is listening.
    func startedServices(_ record: LabRecord) throws -> Services {
        func endpoint(_ node: PlannedNode, _ port: Int) -> String { "\(node.upstreamAddresses.first ?? "?"):\(port)" }
        func pid(_ node: PlannedNode) -> Int32? { record.roles?.first { $0.node == node.name }?.pid }
        func ready(_ node: PlannedNode, _ port: Int, tcp: Bool, _ what: String) throws {
            guard let pid = pid(node) else {
                throw LabError.state("\(what) on \(node.name) is not running (this version cannot start it yet)")
            }
            guard RoleLauncher.waitForPort(pid: pid, port: port, tcp: tcp, timeout: 5) else {
                throw LabError.roleFailed(node: node.name, detail: "\(what) did not listen on port \(port) within 5 s")
            }
        }
        let nodes = record.plan.nodes
        guard let rendezvous = nodes.first(where: { $0.role == .rendezvous }) else {
            throw LabError.state("no rendezvous host")
        }
        try ready(rendezvous, RoleLauncher.rendezvousPort, tcp: true, "the rendezvous server")
        var services = Services(rendezvous: endpoint(rendezvous, RoleLauncher.rendezvousPort), relays: [])
        if let stun = nodes.first(where: { $0.role == .stunServer }) {
            try ready(stun, 3478, tcp: false, "the STUN server")
            services.stun = endpoint(stun, 3478)
        }
        for relay in nodes where relay.role?.turnOptions != nil {
            services.relays.append(relay.name)
            if services.turn == nil {
                try ready(relay, 3478, tcp: false, "the TURN relay")
                services.turn = endpoint(relay, 3478)
                (services.turnUser, services.turnPassword) = RoleLauncher.turnCredentials(relay.role!)
            }
        }
        return services
    }
}

extension Role {
    /// The relay options of `turn-server` and `coturn` roles.
    var turnOptions: TURNRoleOptions? {
        switch self {
        case .turnServer(let o), .coturn(let o): o
        default: nil
        }
    }
}

extension RoleLauncher {
    /// A user and password agents may use on a relay role: its first user, or with a shared secret
    /// the REST-style time-limited credential coturn's `use-auth-secret` accepts
    /// (user "EXPIRY:natlab", password base64(HMAC-SHA1(secret, user))).
    static func turnCredentials(_ role: Role) -> (String?, String?) {
        guard let o = role.turnOptions else { return (nil, nil) }
        if let secret = o.staticSecret {
            let user = "\(Int(Date().timeIntervalSince1970) + 24 * 3600):natlab"
            let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Data(user.utf8), using: SymmetricKey(data: Data(secret.utf8)))
            return (user, Data(mac).base64EncodedString())
        }
        guard let first = o.effectiveUsers.first else { return (nil, nil) }
        return (first.name, first.password)
    }
}
