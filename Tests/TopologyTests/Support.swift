import Testing
@testable import Topology

/// Diagnostics of `yaml` as `line:column: message` (file name left out), or [] when it loads.
func problems(_ yaml: String, file: String = "lab.yaml") -> [String] {
    do {
        _ = try TopologyLoader.parse(yaml, file: file)
        return []
    } catch {
        return error.diagnostics.map { "\($0.line):\($0.column): \($0.message)" }
    }
}

func load(_ yaml: String, file: String = "lab.yaml") throws -> Topology {
    try TopologyLoader.parse(yaml, file: file)
}

/// The repository's Topologies/ directory, found from this file's path.
let topologiesDirectory: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)   // Tests/TopologyTests/Support.swift
    return parts.joined(separator: "/") + "/Topologies"
}()
