import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Drives the natlab binary the way a user or CI job does, and inspects the host.
enum Harness {
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static let natlab: String = ProcessInfo.processInfo.environment["NATLAB_BIN"]
        ?? packageRoot + "/.build/debug/natlab"

    static let udpTool = packageRoot + "/Tests/LabIntegrationTests/udp.py"

    /// The Python with aioice: the venv Scripts/test makes (NATLAB_PYTHON overrides).
    static let python: String = ProcessInfo.processInfo.environment["NATLAB_PYTHON"]
        ?? (FileManager.default.isExecutableFile(atPath: packageRoot + "/.build/pyenv/bin/python")
            ? packageRoot + "/.build/pyenv/bin/python" : "python3")

    static func topology(_ name: String) -> String { packageRoot + "/Topologies/" + name }

    /// A lab name no other test (or earlier run) uses.
    static func uniqueLab(_ tag: String) -> String {
        "t\(tag)-\(UInt32.random(in: 0..<UInt32.max) % 100_000)"
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs a program to completion.
    @discardableResult
    static func run(_ path: String, _ args: [String], environment: [String: String] = [:]) throws -> Result {
        let p = try start(path, args, environment: environment)
        let out = p.stdout.fileHandleForReading.readDataToEndOfFile()
        let err = p.stderr.fileHandleForReading.readDataToEndOfFile()
        p.process.waitUntilExit()
        return Result(status: p.process.terminationStatus,
                      stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    static func natlab(_ args: String..., environment: [String: String] = [:]) throws -> Result {
        try run(natlab, args, environment: environment)
    }

    struct Started {
        var process: Process
        var stdout: Pipe
        var stderr: Pipe
    }

    static func start(_ path: String, _ args: [String], environment: [String: String] = [:]) throws -> Started {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        return Started(process: p, stdout: out, stderr: err)
    }

    /// Everything of the host's network state that a lab must never change.
    static func hostNetworkState() throws -> String {
        var parts: [String] = []
        for args in [["nft", "list", "ruleset"], ["ip", "-d", "link", "show"], ["ip", "route", "show", "table", "all"],
                     ["ip", "-6", "route", "show", "table", "all"], ["ip", "rule"], ["ip", "addr"],
                     ["sysctl", "net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"]] {
            let r = try run("/usr/bin/env", args)
            parts.append("$ \(args.joined(separator: " "))\n\(r.stdout)")
        }
        return parts.joined(separator: "\n")
    }

    /// Namespaces of one lab currently in /run/netns.
    static func namespaces(ofLab lab: String) -> [String] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        return all.filter { $0.hasPrefix("natlab-\(lab).") }.sorted()
    }

    /// Mounts under /run/netns belonging to the lab (a leaked bind mount keeps a namespace alive).
    static func mounts(ofLab lab: String) -> [String] {
        let text = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.contains("/run/netns/natlab-\(lab).") }.map(String.init)
    }

    /// The lab's plan as JSON (from `natlab status NAME --json`).
    static func labJSON(_ lab: String) throws -> [String: Any] {
        let r = try natlab("status", lab, "--json")
        #expect(r.status == 0, "status failed: \(r.stderr)")
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
    }

    /// A node's address on an interface, without the prefix length.
    static func address(_ lab: [String: Any], node: String, interface: String, index: Int = 0) -> String? {
        let plan = lab["plan"] as? [String: Any]
        let nodes = plan?["nodes"] as? [[String: Any]] ?? []
        guard let n = nodes.first(where: { $0["name"] as? String == node }) else { return nil }
        let ifs = n["interfaces"] as? [[String: Any]] ?? []
        guard let i = ifs.first(where: { $0["name"] as? String == interface }),
              let addrs = i["addresses"] as? [String], index < addrs.count else { return nil }
        return String(addrs[index].split(separator: "/")[0])
    }

    /// A node's IPv6 address on an interface (dual-stack labs), without the prefix length.
    static func address6(_ lab: [String: Any], node: String, interface: String, index: Int = 0) -> String? {
        let nodes = (lab["plan"] as? [String: Any])?["nodes"] as? [[String: Any]] ?? []
        guard let n = nodes.first(where: { $0["name"] as? String == node }),
              let i = (n["interfaces"] as? [[String: Any]] ?? []).first(where: { $0["name"] as? String == interface }),
              let addrs = i["addresses6"] as? [String], index < addrs.count else { return nil }
        return String(addrs[index].split(separator: "/")[0])
    }

    static func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }
}
