#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Lab
import Topology

/// Left-aligned columns separated by two spaces.
enum Table {
    static func render(_ rows: [[String]]) -> String {
        let widths = (0..<(rows.map(\.count).max() ?? 0)).map { col in
            rows.map { col < $0.count ? $0[col].count : 0 }.max() ?? 0
        }
        // Plain string work: a Regex here (to trim the padding) cost `natlab up` about 4 ms (first use).
        return rows.map { row in
            var line = row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }.joined(separator: "  ")
            while line.last == " " { line.removeLast() }
            return line
        }.joined(separator: "\n")
    }
}

/// The node/namespace/interface/address table of `up`, `status NAME` and `validate --plan`.
enum PlanTable {
    static func render(_ plan: LabPlan, lab: String) -> String {
        var rows = [["NODE", "KIND", "NAMESPACE", "INTERFACE", "ADDRESS", "NAT / ROLE"]]
        for node in plan.nodes {
            var detail = ""
            if let nat = node.nat { detail = (nat.preset.map { "\($0): " } ?? "") + nat.summary }
            if let role = node.role { detail = "run: \(role)" }
            let ns = LabNaming.namespace(lab: lab, node: node.name)
            let interfaces = node.interfaces.filter { !$0.addresses.isEmpty }
            if interfaces.isEmpty {
                rows.append([node.name, node.kind.rawValue, ns, "", "", detail])
            }
            for (i, interface) in interfaces.enumerated() {
                let first = i == 0
                rows.append([first ? node.name : "", first ? node.kind.rawValue : "", first ? ns : "",
                             interface.name, interface.addresses.joined(separator: " "), first ? detail : ""])
                // Dual stack: the IPv6 addresses on a line of their own under the interface's IPv4 ones.
                if let six = interface.addresses6, !six.isEmpty {
                    rows.append(["", "", "", "", six.joined(separator: " "), ""])
                }
            }
        }
        return Table.render(rows)
    }
}

/// Role processes of a lab: node, pid, whether it still runs, command, log.
enum RoleTable {
    static func render(_ record: LabRecord) -> String {
        guard let roles = record.roles, !roles.isEmpty else { return "" }
        var rows = [["ROLE ON", "PID", "STATE", "COMMAND", "LOG"]]
        for role in roles {
            let alive = LabEngine.isRunning(role.pid)
            rows.append([role.node, "\(role.pid)", alive ? "running" : "exited", role.argv.joined(separator: " "), role.log])
        }
        return "\n" + Table.render(rows)
    }
}

enum Report {
    /// Pretty-printed, sorted keys: the same encoder as the lab records (`LabStore.encoder`).
    static func json<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try LabStore.encoder.encode(value), as: UTF8.self)
    }

    static func collection(_ c: LabEngine.Collection) -> String {
        var parts: [String] = []
        if !c.labs.isEmpty { parts.append("labs \(c.labs.joined(separator: ", "))") }
        parts.append("\(c.namespaces.count) namespace\(c.namespaces.count == 1 ? "" : "s")")
        if !c.processes.isEmpty { parts.append("\(c.processes.count) processes") }
        return parts.joined(separator: ", ")
    }
}
