import Foundation
import Testing
import Lab
import TestSupport

/// `run: { exec: [...] }` roles: the user's own programs started inside lab nodes.
@Suite(.enabled(if: Privilege.shouldRun, "needs root and network namespaces"))
struct RoleTests {
    static func topology(_ hosts: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("natlab-roles-\(UUID().uuidString).yaml")
        try "name: roles\nrouters:\n  home: {}\nhosts:\n\(hosts)".write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    @Test("exec roles start inside their nodes, see each other by ${node.address}, and stop with down")
    func rolesRunAndTalk() throws {
        try Privilege.require()
        let lab = Harness.uniqueLab("role")
        let file = try Self.topology("""
          srv: { attach: internet, run: { exec: [python3, -u, \(Harness.udpTool), reflect, "3478"] } }
          cli: { attach: home, run: { exec: [sh, -c, "sleep 0.3; python3 -u \(Harness.udpTool) probe 4000 ${srv.address}:3478; sleep 60"] } }
        """)
        defer { try? FileManager.default.removeItem(at: file) }
        let up = try Harness.natlab("up", file.path, "--name", lab)
        #expect(up.status == 0, "\(up.stderr)")
        defer { _ = try? Harness.natlab("down", lab) }
        #expect(up.stdout.contains("running"))
        let info = try Harness.labJSON(lab)
        let wan = try #require(Harness.address(info, node: "home", interface: "wan"))
        let roles = try #require(info["roles"] as? [[String: Any]])
        #expect(roles.count == 2)
        let cliLog = try #require(roles.first { $0["node"] as? String == "cli" }?["log"] as? String)
        #expect(Harness.waitUntil(timeout: 5) {
            ((try? String(contentsOfFile: cliLog, encoding: .utf8)) ?? "").contains("\(wan):4000")
        }, "the client role never saw its reply through the NAT")
        let pids = roles.compactMap { $0["pid"] as? Int32 }
        let down = try Harness.natlab("down", lab)
        #expect(down.status == 0)
        for pid in pids { #expect(!LabEngine.isRunning(pid), "role \(pid) survived down") }
    }

    @Test("a role that fails at once fails up, which leaves nothing")
    func failingRole() throws {
        try Privilege.require()
        let lab = Harness.uniqueLab("rolef")
        let file = try Self.topology("  a: { attach: home, run: { exec: [sh, -c, \"echo boom >&2; exit 3\"] } }\n")
        defer { try? FileManager.default.removeItem(at: file) }
        let up = try Harness.natlab("up", file.path, "--name", lab)
        defer { _ = try? Harness.natlab("down", lab) }
        #expect(up.status == 1)
        #expect(up.stderr.contains("exit status 3") && up.stderr.contains("boom"), "\(up.stderr)")
        #expect(Harness.namespaces(ofLab: lab).isEmpty)
        let missing = try Self.topology("  a: { attach: home, run: { exec: [no-such-program-natlab] } }\n")
        defer { try? FileManager.default.removeItem(at: missing) }
        let up2 = try Harness.natlab("up", missing.path, "--name", lab)
        #expect(up2.status == 1)
        #expect(up2.stderr.contains("execvp") && up2.stderr.contains("No such file"), "\(up2.stderr)")
        #expect(Harness.namespaces(ofLab: lab).isEmpty)
    }
}

struct RoleReferenceTests {
    @Test("a ${reference} to an unknown node is bad input, found by validate")
    func badReference() throws {
        let file = try RoleTests.topology("  a: { attach: home, run: { exec: [ping, \"${nobody.address}\"] } }\n")
        defer { try? FileManager.default.removeItem(at: file) }
        let r = try Harness.natlab("validate", file.path)
        #expect(r.status == 2)
        #expect(r.stderr.contains("nobody"), "\(r.stderr)")
    }
}
