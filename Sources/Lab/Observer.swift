import Foundation
import LinuxNetworking
import Topology

/// Installs a lab's observation counters (see `Observation`) and reads them back.
public struct Observer {
    public let plan: ObservationPlan
    let lab: String
    let worker: NamespaceWorker

    init(plan: ObservationPlan, lab: String, worker: NamespaceWorker) {
        self.plan = plan
        self.lab = lab
        self.worker = worker
    }

    /// Loads every node's counter tables (replacing earlier ones, which zeroes the counters).
    func install() throws {
        // One commit per node; their sockets are closed together at the end, without waiting for
        // nf_tables' clean-up of each commit (see `NetfilterSockets`).
        let netfilter = NetfilterSockets()
        defer { netfilter.close() }
        for (node, script) in plan.scripts.sorted(by: { $0.key < $1.key }) {
            let file = try NetworkNamespace.open(name: LabNaming.namespace(lab: lab, node: node))
            do {
                try worker.run(in: file) { try NFTables.apply(script, deferClose: netfilter) }
            } catch {
                throw LabError.state("cannot install the traffic counters in \(node): \(error)")
            }
        }
    }

    /// Current bytes per counter name.
    func read() throws -> [String: Int] {
        var values: [String: Int] = [:]
        for node in plan.scripts.keys.sorted() {
            let file = try NetworkNamespace.open(name: LabNaming.namespace(lab: lab, node: node))
            let text = try worker.run(in: file) {
                var out = ""
                for family in ["bridge", "inet"] {
                    out += (try? NFTables.run("list table \(family) natlab_observe")) ?? ""
                }
                return out
            }
            for (name, bytes) in Self.parseCounters(text) { values[name, default: 0] += bytes }
        }
        return values
    }

    /// `… counter packets P bytes B comment "NAME"` lines → bytes per NAME (rules sharing a name add up).
    static func parseCounters(_ text: String) -> [String: Int] {
        var values: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            guard let b = line.range(of: " bytes "), let c = line.range(of: "comment \"") else { continue }
            let bytes = Int(line[b.upperBound...].prefix { $0.isNumber }) ?? 0
            let name = String(line[c.upperBound...].prefix { $0 != "\"" })
            values[name, default: 0] += bytes
        }
        return values
    }
}

extension LabEngine {
    /// Counters for `checks` in a live lab, installed and zeroed. `relays`: the relaying hosts.
    public func observe(lab: String, checks: [Check], relays: [String]) throws -> (ObservationPlan, () throws -> [String: Int]) {
        let record = try record(of: lab)
        let plan = Observation.plan(record.plan, checks: checks, relays: relays)
        let observer = Observer(plan: plan, lab: lab, worker: try worker())
        try observer.install()
        return (plan, { try observer.read() })
    }
}
