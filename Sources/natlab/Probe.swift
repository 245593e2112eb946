import ArgumentParser
import Foundation
import Lab
import LinuxNetworking
import Roles
import STUNWire
import Topology

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Classify the NAT(s) between here and a STUN server (RFC 5780 behaviour discovery).",
        discussion: """
        Runs RFC 5780's tests against a STUN server that has two addresses and two ports \
        (OTHER-ADDRESS, CHANGE-REQUEST, RESPONSE-PORT — natlab's own server or coturn's turnserver \
        with two -L addresses) and prints the result in RFC 4787 terms and in RFC 3489 cone terms:
          mapping      tests I/II/III: the public address seen by A:p, B:p and B:p'
          filtering    CHANGE-REQUEST ip+port, then port: which answers get in
          ports        whether the public port equals the local port
          hairpin      two local sockets send to each other's public mapping
          lifetime     (--lifetime) idle time after which the server's packet (RESPONSE-PORT,
                       sent from a second socket) no longer reaches a mapping made by one request

        With LAB NODE the probe runs inside that lab node; --server then defaults to the lab's \
        STUN host (a `run: stun-server` or `coturn` host). Without, it runs where it is.
        Every NAT between the node and the server is measured as one: to measure one router alone, \
        put the server on that router's upstream segment (`natlab verify` does).

          natlab probe two-homes alice
          natlab probe two-homes alice --server 203.0.113.3 --lifetime --lifetime-max 40 --json
        """
    )

    @Argument(help: "Lab name (with NODE: run inside that node).")
    var lab: String?

    @Argument(help: "Node to probe from.")
    var node: String?

    @Option(help: "STUN server address, IP[:PORT] (port 3478 by default).")
    var server: String?

    @Flag(help: "Also measure the binding lifetime (takes about the lifetime plus two seconds).")
    var lifetime = false

    @Option(help: "Lifetime trials: idle times step, 2·step, … (seconds).")
    var lifetimeStep: Double = 0.5

    @Option(help: "Longest idle time tried (seconds).")
    var lifetimeMax: Double = 40

    @Option(help: "Initial retransmission timeout in milliseconds (RFC 8489 RTO; the lab default is short).")
    var rto: Int = 100

    @Option(help: "Transmissions per request (RFC 8489 Rc).")
    var transmissions: Int = 4

    @Option(help: "Keep retrying mapping test I for this many seconds while the server starts.")
    var waitServer: Double = 0

    @Option(help: "Local port of the mapping-test socket (default: any).")
    var localPort: UInt16?

    @Flag(help: "Skip the hairpin test.")
    var noHairpin = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        if (lab == nil) != (node == nil), lab != nil { throw ValidationError("give both LAB and NODE, or neither") }
        if lab == nil, server == nil { throw ValidationError("--server is required without LAB NODE") }
        if lifetimeStep <= 0 || lifetimeMax < lifetimeStep { throw ValidationError("need 0 < --lifetime-step <= --lifetime-max") }
        if rto <= 0 || transmissions <= 0 { throw ValidationError("--rto and --transmissions must be positive") }
    }

    func run() throws {
        if let lab, let node {
            try reportingErrors { try runInside(lab: lab, node: node) }
            return
        }
        guard let text = server, let address = Self.parseServer(text) else {
            throw ValidationError("--server must be IPv4[:PORT], not '\(server ?? "")'")
        }
        let options = ProbeOptions(server: address,
                                   policy: RetransmissionPolicy(rto: .milliseconds(rto), maxTransmissions: transmissions),
                                   hairpin: !noHairpin,
                                   lifetime: lifetime ? LifetimeOptions(step: lifetimeStep, max: lifetimeMax) : nil,
                                   serverWait: .milliseconds(Int(waitServer * 1000)), localPort: localPort)
        let result: Result<ProbeReport, any Error> = runBlocking {
            let transport = NIOProbeTransport()
            do {
                let report = try await ProbeRunner(transport: transport, options: options).run()
                await transport.shutdown()
                return report
            } catch {
                await transport.shutdown()
                throw error
            }
        }
        switch result {
        case .success(let report):
            print(json ? Self.json(report) : Self.render(report))
        case .failure(let error):
            printError("probe: \(error)")
            throw ExitCode(1)
        }
    }

    /// Re-executes `natlab probe …` (without LAB NODE) inside the node, like `natlab exec`.
    private func runInside(lab: String, node: String) throws {
        try requireRoot("probe")
        let record = try LabEngine().record(of: lab)
        guard record.plan.nodes.contains(where: { $0.name == node }) else {
            throw LabError.noSuchNode(lab: lab, node: node, known: record.plan.nodes.map(\.name))
        }
        guard let target = server ?? Self.defaultServer(record.plan) else {
            throw LabError.invalidRole(node: node, "lab \(lab) has no STUN host (run: stun-server or coturn): give --server")
        }
        var argv = [Self.selfPath, "probe", "--server", target, "--rto", "\(rto)", "--transmissions", "\(transmissions)"]
        if lifetime { argv += ["--lifetime", "--lifetime-step", "\(lifetimeStep)", "--lifetime-max", "\(lifetimeMax)"] }
        if noHairpin { argv.append("--no-hairpin") }
        if waitServer > 0 { argv += ["--wait-server", "\(waitServer)"] }
        if let localPort { argv += ["--local-port", "\(localPort)"] }
        if json { argv.append("--json") }
        Interrupts.resetForExec()
        let error = NamespaceExec.exec(namespacePath: NetworkNamespace.path(of: record.namespace(of: node)), argv: argv)
        throw LabError.kernel(error)
    }

    static var selfPath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// The first host running a STUN server role: natlab's, coturn, or an exec'd turnserver.
    static func defaultServer(_ plan: LabPlan) -> String? {
        let host = plan.nodes.first { node in
            switch node.role {
            case .stunServer?, .coturn?: return true
            case .exec(let argv)?: return argv.first.map { $0.hasSuffix("turnserver") } ?? false
            default: return false
            }
        }
        return host?.upstreamAddresses.first
    }

    static func parseServer(_ text: String) -> STUNAddress? {
        if let a = STUNAddress(text) { return a }
        if let ip = STUNIPAddress(text) { return STUNAddress(ip: ip, port: 3478) }
        return nil
    }

    static func json(_ report: ProbeReport) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(report)) ?? Data(), as: UTF8.self)
    }

    static func render(_ r: ProbeReport) -> String {
        var rows: [[String]] = []
        rows.append(["server", r.server + (r.otherAddress.map { "  (other address \($0))" } ?? "")])
        rows.append(["local", r.local])
        rows.append(["mapped", r.mapped + (r.portPreserved ? "  (port preserved)" : "  (port not preserved)")])
        rows.append(["mapping", r.mapping.map { "\($0.rawValue) (\($0.abbreviation))" } ?? "not classified"])
        rows.append(["filtering", r.filtering.map { "\($0.rawValue) (\($0.abbreviation))" } ?? "not classified"])
        if let h = r.hairpin {
            let detail = h.works ? "yes, the receiver saw \(h.sourceSeen ?? "?")" + (h.sourceIsPublic == true ? " (public mapping, REQ-9)" : " (NOT the public mapping)") : "no"
            rows.append(["hairpin", detail])
        }
        if let l = r.lifetime {
            let text: String
            if let s = l.seconds, let upper = l.upper {
                text = String(format: "%.2f s (delivered after %.1f s idle, lost after %.1f s)", s, l.lower, upper)
            } else {
                text = String(format: "longer than %.1f s", l.lower)
            }
            rows.append(["binding lifetime", text])
        }
        rows.append(["RFC 4787", r.summary])
        rows.append(["classic (RFC 3489)", r.classic ?? "not classified"])
        var out = Table.render(rows)
        for note in r.notes { out += "\nnote: \(note)" }
        return out
    }
}

/// Runs async work from a synchronous command (the command tree is synchronous).
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> Result<T, any Error> {
    let semaphore = DispatchSemaphore(value: 0)
    let box = ResultBox<T>()
    Task {
        do { box.value = .success(try await body()) } catch { box.value = .failure(error) }
        semaphore.signal()
    }
    semaphore.wait()
    return box.value!
}

final class ResultBox<T: Sendable>: @unchecked Sendable {
    var value: Result<T, any Error>?
}
