import ArgumentParser
import Foundation
import Lab
import NATModel
import Roles
import Topology
#if canImport(Glibc)
import Glibc
#endif

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Probe every router of a lab and compare what it does with what the topology declares.",
        discussion: """
        One NAT layer at a time: for each router, an RFC 5780 server with two addresses is started \
        in a temporary node on the router's upstream segment (the internet core, or the upstream \
        router's LAN behind a CGNAT), and `natlab probe` runs in a host on the router's LAN (a \
        temporary one when the LAN has no host). Routers sharing an upstream segment share a server; \
        all routers are probed in parallel. Temporary nodes and servers are removed afterwards, also \
        on failure and Ctrl-C (they are journaled, so `natlab down` removes them even after kill -9).

        Compared: mapping, filtering, hairpin, port preservation and — when the router declares \
        udp-timeout (or with --lifetime) — the binding lifetime (±1 s). Exit status 1 on any mismatch.

          natlab verify two-homes
          natlab verify cgnat --json
        """
    )

    @Argument(help: "Lab name.")
    var lab: String

    @Option(help: "RFC 5780 server: natlab (natlab serve stun), coturn (turnserver), or auto (natlab's when this build has it).")
    var server: ServerKind = .auto

    @Flag(help: "Measure the lifetime also where the kernel default applies (30 s; slow).")
    var lifetime = false

    @Flag(help: "Never measure the lifetime.")
    var noLifetime = false

    @Option(help: "Probes run at once.")
    var parallel: Int = 16

    @Flag(help: "Print the result as JSON.")
    var json = false

    enum ServerKind: String, ExpressibleByArgument, CaseIterable { case auto, natlab, coturn }

    static var natlabServerAvailable: Bool { !ServeSTUN.configuration.abstract.contains("not implemented") }

    func run() throws {
        try reportingErrors {
            try requireRoot("verify")
            let start = Date()
            let kind: ServerKind = server == .auto ? (Self.natlabServerAvailable ? .natlab : .coturn) : server
            if kind == .natlab, !Self.natlabServerAvailable {
                throw LabError.state("this natlab has no STUN server yet (natlab serve stun is a placeholder): use --server coturn")
            }
            let verifier = try LabVerifier(lab: lab)
            Interrupts.install()
            defer { Interrupts.uninstall() }
            var results: [RouterResult] = []
            do {
                try verifier.buildTemporaryNodes()
                results = try measure(verifier, kind: kind)
                verifier.cleanUp()
            } catch {
                verifier.cleanUp()
                throw error
            }
            let seconds = Date().timeIntervalSince(start)
            let unmeasured = VerifyPlan.make(verifier.record.plan).sites.map(\.router)
            let missing = verifier.record.plan.nodes.filter { $0.kind == .router && !unmeasured.contains($0.name) }.map(\.name)
            if json {
                let out = VerifyOutput(lab: lab, server: kind.rawValue, seconds: seconds, routers: results,
                                       unmeasured: missing, ok: results.allSatisfy(\.ok) && missing.isEmpty)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(out), as: UTF8.self))
            } else {
                print(Self.render(results, lab: lab, server: kind, seconds: seconds, unmeasured: missing))
            }
            if !results.allSatisfy(\.ok) || !missing.isEmpty { throw ExitCode(1) }
        }
    }

    private func serverArgv(_ kind: ServerKind, addresses: [String], pidfile: String) -> [String] {
        switch kind {
        case .coturn, .auto:
            return ["turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls", "--no-tcp", "--no-tcp-relay", "-z",
                    "-L", addresses[0], "-L", addresses[1], "-p", "3478", "-m", "1",
                    "--log-file", "stdout", "--simple-log", "--no-software-attribute", "--pidfile", pidfile]
        case .natlab:
            return [Probe.selfPath, "serve", "stun", "--listen", addresses[0], "--listen", addresses[1], "--port", "3478",
                    "--no-tcp", "--threads", "1"]
        }
    }

    private func measure(_ verifier: LabVerifier, kind: ServerKind) throws -> [RouterResult] {
        let plan = verifier.plan
        // One server per segment.
        var started = Set<String>()
        for site in plan.sites where !started.contains(site.serverNode) {
            started.insert(site.serverNode)
            try verifier.spawn(serverArgv(kind, addresses: site.serverAddresses, pidfile: "/run/natlab-verify-\(verifier.lab)-\(site.serverNode).pid"),
                               in: site.serverNode, tag: "server-\(site.serverNode)")
        }
        var results: [RouterResult] = []
        var pending = plan.sites[...]
        var running: [(VerifySite, VerifyProcess, Date)] = []
        while !pending.isEmpty || !running.isEmpty {
            while running.count < max(1, parallel), let site = pending.first {
                pending = pending.dropFirst()
                var argv = [Probe.selfPath, "probe", "--server", "\(site.serverAddresses[0]):3478", "--json",
                            "--wait-server", "5"]
                if !(site.profile.kind == .nat) { argv.append("--no-hairpin") }
                if let timeout = lifetimeToMeasure(site.profile) {
                    argv += ["--lifetime", "--lifetime-step", "0.5", "--lifetime-max", "\(timeout + 3)"]
                }
                let p = try verifier.spawn(argv, in: site.probeHost, tag: "probe-\(site.router)")
                running.append((site, p, Date()))
            }
            let (site, process, began) = running.removeFirst()
            let (status, output) = try verifier.wait(process, timeout: 120)
            let elapsed = Date().timeIntervalSince(began)
            var report: ProbeReport?
            var error: String?
            if status == 0, let r = try? JSONDecoder().decode(ProbeReport.self, from: Data(output.utf8)) {
                report = r
            } else {
                error = "probe exited with status \(status): " + output.split(separator: "\n").suffix(3).joined(separator: " ")
            }
            results.append(RouterResult.compare(site: site, report: report, error: error, seconds: elapsed,
                                                lifetimeMeasured: lifetimeToMeasure(site.profile) != nil))
        }
        return results.sorted { a, b in
            (plan.sites.firstIndex { $0.router == a.router } ?? 0) < (plan.sites.firstIndex { $0.router == b.router } ?? 0)
        }
    }

    private func lifetimeToMeasure(_ profile: NATProfile) -> Int? {
        if noLifetime || profile.kind == .none { return nil }
        if let t = profile.udpTimeout { return t }
        return lifetime ? 30 : nil
    }

    static func render(_ results: [RouterResult], lab: String, server: ServerKind, seconds: Double, unmeasured: [String]) -> String {
        var rows: [[String]] = [["ROUTER", "ASPECT", "DECLARED", "MEASURED", ""]]
        for r in results {
            for (i, c) in r.checks.enumerated() {
                rows.append([i == 0 ? r.router : "", c.aspect, c.declared, c.measured, c.ok ? "✓" : "✗"])
            }
            if let e = r.error { rows.append([r.checks.isEmpty ? r.router : "", "error", "", e, "✗"]) }
        }
        var out = "natlab verify \(lab): RFC 5780 server \(server == .natlab ? "natlab serve stun" : "coturn turnserver") on each router's upstream segment\n"
        out += Table.render(rows) + "\n"
        for r in results {
            out += "\(r.router): probed from \(r.probedFrom)\(r.temporaryHost ? " (temporary host: the LAN has none)" : ""), server \(r.server) on \(r.segment)'s segment, \(String(format: "%.1f", r.seconds)) s\n"
        }
        for u in unmeasured { out += "\(u): not measured (no LAN address free for a temporary host or no upstream segment)\n" }
        let bad = results.filter { !$0.ok }.count + unmeasured.count
        out += bad == 0 ? "all \(results.count) routers behave as declared (\(String(format: "%.1f", seconds)) s)"
                        : "\(bad) of \(results.count + unmeasured.count) routers do not behave as declared (\(String(format: "%.1f", seconds)) s)"
        return out
    }
}

struct VerifyOutput: Codable {
    var lab: String
    var server: String
    var seconds: Double
    var routers: [RouterResult]
    var unmeasured: [String]
    var ok: Bool
}

struct VerifyCheck: Codable, Equatable {
    var aspect: String
    var declared: String
    var measured: String
    var ok: Bool
}

struct RouterResult: Codable {
    var router: String
    var segment: String
    var server: String
    var probedFrom: String
    var temporaryHost: Bool
    var seconds: Double
    var checks: [VerifyCheck]
    var error: String?
    var report: ProbeReport?
    var ok: Bool

    static func compare(site: VerifySite, report: ProbeReport?, error: String?, seconds: Double, lifetimeMeasured: Bool) -> RouterResult {
        let p = site.profile
        var checks: [VerifyCheck] = []
        if let r = report {
            let declaredMapping = (p.kind == .nat) ? p.mapping.rawValue : "none"
            let measuredMapping = r.mapping?.rawValue ?? "not classified"
            checks.append(VerifyCheck(aspect: "mapping", declared: declaredMapping, measured: measuredMapping, ok: declaredMapping == measuredMapping))
            // A plain router filters nothing: everything reaches the host (endpoint-independent).
            let declaredFiltering = p.kind == .none ? NATProfile.Filtering.endpointIndependent.rawValue : p.filtering.rawValue
            let measuredFiltering = r.filtering?.rawValue ?? "not classified"
            checks.append(VerifyCheck(aspect: "filtering", declared: declaredFiltering, measured: measuredFiltering, ok: declaredFiltering == measuredFiltering))
            if (p.kind == .nat) {
                let h = r.hairpin
                let measured = h.map { $0.works ? ($0.sourceIsPublic == true ? "on" : "on (private source seen)") : "off" } ?? "not measured"
                checks.append(VerifyCheck(aspect: "hairpin", declared: p.hairpin ? "on" : "off", measured: measured,
                                          ok: h != nil && h!.works == p.hairpin && (!p.hairpin || h!.sourceIsPublic == true)))
            }
            // Inbound packets must arrive from their real sender (a rewritten source hides the peer).
            let rewritten = r.notes.filter { $0.contains("rewrites the source") }
            if !rewritten.isEmpty {
                checks.append(VerifyCheck(aspect: "inbound source", declared: "kept", measured: rewritten.joined(separator: "; "), ok: false))
            }
            let mappedPort = Int(r.mapped.split(separator: ":").last ?? "") ?? -1
            let measuredPorts = r.portPreserved ? "preserved (\(r.mapped))" : "not preserved (\(r.local) → \(r.mapped))"
            switch ((p.kind == .nat), (p.kind == .nat) ? effectivePorts(p) : .preserve) {
            case (false, _):
                checks.append(VerifyCheck(aspect: "ports", declared: "kept (no translation)", measured: measuredPorts, ok: r.portPreserved))
            case (true, .preserve):
                checks.append(VerifyCheck(aspect: "ports", declared: "preserve", measured: measuredPorts, ok: r.portPreserved))
            case (true, .random):
                checks.append(VerifyCheck(aspect: "ports", declared: "random", measured: measuredPorts, ok: !r.portPreserved))
            case (true, .range(let lo, let hi)):
                checks.append(VerifyCheck(aspect: "ports", declared: "\(lo)-\(hi)", measured: "\(mappedPort)", ok: (lo...hi).contains(mappedPort)))
            }
            if lifetimeMeasured {
                let declared = p.udpTimeout ?? 30
                if let l = r.lifetime, let s = l.seconds {
                    checks.append(VerifyCheck(aspect: "lifetime", declared: "\(declared) s" + (p.udpTimeout == nil ? " (kernel)" : ""),
                                              measured: String(format: "%.2f s (%.1f–%.1f)", s, l.lower, l.upper ?? 0),
                                              ok: abs(s - Double(declared)) <= 1))
                } else {
                    checks.append(VerifyCheck(aspect: "lifetime", declared: "\(declared) s", measured: r.lifetime.map { String(format: "> %.1f s", $0.lower) } ?? "not measured", ok: false))
                }
            }
        }
        let serverText = site.serverAddresses.joined(separator: "+")
        return RouterResult(router: site.router, segment: site.segment, server: serverText, probedFrom: site.probeHost,
                            temporaryHost: site.probeHostIsTemporary, seconds: seconds, checks: checks, error: error, report: report,
                            ok: error == nil && report != nil && checks.allSatisfy(\.ok))
    }

    /// Endpoint-dependent mappings always take fresh random ports (NATProfile.ports).
    static func effectivePorts(_ p: NATProfile) -> NATProfile.PortAssignment {
        if p.mapping != .endpointIndependent, p.ports == .preserve { return .random }
        return p.ports
    }
}
