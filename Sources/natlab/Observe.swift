import ArgumentParser
import Foundation
import Lab
import Topology
#if canImport(Glibc)
import Glibc
#endif

struct Observe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "observe",
        abstract: "Watch two hosts of a live lab and say which path their traffic took.",
        discussion: """
        Installs byte counters (tables `natlab_observe`, next to the NAT rules) where the two hosts' \
        packets must meet — the internet core's or a router's bridge, the router's forwarding, and \
        every relay host — then waits while you run your programs, and reports the path from what \
        the network carried: direct (local when they share a LAN), hairpin (at which NAT), relay \
        (through which host), or none.

          natlab observe two-homes alice bob --seconds 20
          natlab observe cgnat carol dave --min-bytes 10000

        Relays watched: hosts with `run: turn-server` or `run: coturn`, plus any --relay.
        """
    )

    @Argument(help: "Lab name.") var lab: String
    @Argument(help: "First host.") var first: String
    @Argument(help: "Second host.") var second: String
    @Option(help: "How long to watch.") var seconds: Double = 10
    @Option(help: "Bytes a path must carry to count (default 4096).") var minBytes: Int = 4096
    @Option(help: "Also watch this host as a relay (repeatable).") var relay: [String] = []
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try reportingErrors {
            try requireRoot("observe")
            let engine = LabEngine()
            let record = try engine.record(of: lab)
            for host in [first, second] + relay {
                guard let node = record.plan.node(named: host), node.kind == .host else {
                    throw LabError.noSuchNode(lab: lab, node: host,
                                              known: record.plan.nodes.filter { $0.kind == .host }.map(\.name))
                }
            }
            let relays = relay + record.plan.nodes.filter {
                switch $0.role { case .turnServer?, .coturn?: true; default: false }
            }.map(\.name)
            let check = Check(peers: [first, second], expect: .direct)
            let (plan, read) = try engine.observe(lab: lab, checks: [check], relays: relays)
            Interrupts.install()
            let end = Date().addingTimeInterval(seconds)
            if !json {
                printError("watching \(first) ↔ \(second) for \(seconds) s (meeting point \(plan.meetingPoints[0])); Ctrl-C to stop early")
            }
            while Date() < end && Interrupts.pending == nil { usleep(50_000) }
            let verdict = NetworkVerdict.judge(check: 0, plan: plan, values: try read(), carried: minBytes)
            if json { print(try Report.json(verdict)); return }
            print("\(first) ↔ \(second): \(verdict)")
            for (way, bytes) in verdict.bytes.sorted(by: { $0.key < $1.key }) where bytes > 0 {
                print("  \(way): \(bytes) bytes")
            }
        }
    }
}
