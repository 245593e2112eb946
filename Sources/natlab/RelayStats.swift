import ArgumentParser
import Foundation
import Lab
import Roles

struct RelayStats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay-stats",
        abstract: "Show a lab's TURN relay statistics: every allocation and the traffic it carried.",
        discussion: """
        Reads what the `run: turn-server` role of NODE writes next to its log \
        (<state>/labs/<lab>/roles/<node>.turn.json, about once a second).

          natlab relay-stats two-homes relay
          natlab relay-stats two-homes relay --json
        """
    )

    @Argument(help: "Lab name.") var lab: String
    @Argument(help: "Node running the relay.") var node: String
    @Flag(help: "Print the JSON as written by the relay.") var json = false

    func run() throws {
        try reportingErrors {
            let record = try LabEngine().record(of: lab)
            guard record.plan.nodes.contains(where: { $0.name == node }) else {
                throw LabError.noSuchNode(lab: lab, node: node, known: record.plan.nodes.map(\.name))
            }
            let path = RoleLauncher.turnStatsPath(lab: lab, node: node)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw LabError.state("no relay statistics for \(node) in \(lab) (\(path)): is it running `run: turn-server`?")
            }
            if json {
                print(String(decoding: data, as: UTF8.self))
                return
            }
            let s = try JSONDecoder().decode(TURNStatsSnapshot.self, from: data)
            print("relay \(node): listening on \(s.listen.joined(separator: ", ")), relayed from \(s.relayAddress), realm \(s.realm)")
            print("allocations: \(s.activeAllocations) active, \(s.totalAllocations) since start")
            if !s.errors.isEmpty { print("errors: " + s.errors.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")) }
            if !s.dropped.isEmpty { print("dropped: " + s.dropped.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")) }
            guard !s.allocations.isEmpty else { return }
            func when(_ t: Double) -> String {
                let f = DateFormatter()
                f.dateFormat = "HH:mm:ss"
                return f.string(from: Date(timeIntervalSince1970: t))
            }
            let rows = s.allocations.map { a -> [String] in
                [a.id, a.state, a.username, a.transport, a.client, a.relayed,
                 "\(a.toPeers.packets)/\(a.toPeers.bytes)", "\(a.fromPeers.packets)/\(a.fromPeers.bytes)",
                 a.peers.isEmpty ? "-" : a.peers.joined(separator: " "),
                 a.channels.isEmpty ? "-" : a.channels.map { "0x\(String($0.number, radix: 16))" }.joined(separator: " "),
                 when(a.created), a.ended.map(when) ?? when(a.expires)]
            }
            let header = ["ALLOC", "STATE", "USER", "VIA", "CLIENT", "RELAYED", "TO PEERS pkt/B", "FROM PEERS pkt/B", "PEERS", "CHANNELS", "CREATED", "ENDS"]
            var widths = header.map(\.count)
            for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
            for r in [header] + rows {
                print(r.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                    .trimmingCharacters(in: .whitespaces))
            }
        }
    }
}
