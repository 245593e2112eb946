import Foundation
import Testing
@testable import Topology

@Suite struct ShellRendering {
    @Test func snapshotOfASmallLab() throws {
        let plan = Planner.plan(try load("""
        name: tiny
        routers:
          lab: { nat: none, lan: 198.51.100.0/29 }
        hosts:
          pc: { attach: lab }
        """))
        let script = ShellScript.render(plan) { "natlab-tiny-\($0)" }
        let body = script.components(separatedBy: "set -euo pipefail\n")[1]
        #expect(script.hasPrefix("#!/usr/bin/env bash\n# natlab lab 'tiny' as a plain iproute2 + nftables script.\n"))
        #expect(script.contains("teaching/baseline equivalent of `natlab up`"))
        #expect(body == """

        up() {
          ip netns add natlab-tiny-internet
          ip netns add natlab-tiny-lab
          ip netns add natlab-tiny-pc

          # --- internet (internet) ---
          ip -n natlab-tiny-internet link set lo up
          ip netns exec natlab-tiny-internet sysctl -qw net.ipv4.ip_forward=1
          ip netns exec natlab-tiny-internet sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true
          ip netns exec natlab-tiny-internet sysctl -qw net.bridge.bridge-nf-call-ip6tables=0 2>/dev/null || true
          ip netns exec natlab-tiny-internet sysctl -qw net.bridge.bridge-nf-call-arptables=0 2>/dev/null || true
          ip -n natlab-tiny-internet link add ix type bridge
          ip -n natlab-tiny-internet link set ix up
          ip -n natlab-tiny-internet addr add 203.0.113.254/24 dev ix
          ip -n natlab-tiny-internet link add lab type veth peer name wan netns natlab-tiny-lab
          ip -n natlab-tiny-internet link set lab master ix up
          ip -n natlab-tiny-lab link set wan up
          ip -n natlab-tiny-internet route add 198.51.100.0/29 via 203.0.113.1

          # --- lab (router) ---
          ip -n natlab-tiny-lab link set lo up
          ip netns exec natlab-tiny-lab sysctl -qw net.ipv4.ip_forward=1
          ip netns exec natlab-tiny-lab sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true
          ip netns exec natlab-tiny-lab sysctl -qw net.bridge.bridge-nf-call-ip6tables=0 2>/dev/null || true
          ip netns exec natlab-tiny-lab sysctl -qw net.bridge.bridge-nf-call-arptables=0 2>/dev/null || true
          ip -n natlab-tiny-lab addr add 203.0.113.1/24 dev wan
          ip -n natlab-tiny-lab route add default via 203.0.113.254
          ip -n natlab-tiny-lab link add lan type bridge
          ip -n natlab-tiny-lab link set lan up
          ip -n natlab-tiny-lab addr add 198.51.100.1/29 dev lan
          ip -n natlab-tiny-lab link add pc type veth peer name eth0 netns natlab-tiny-pc
          ip -n natlab-tiny-lab link set pc master lan up
          ip -n natlab-tiny-pc link set eth0 up

          # --- pc (host) ---
          ip -n natlab-tiny-pc link set lo up
          ip -n natlab-tiny-pc addr add 198.51.100.2/29 dev eth0
          ip -n natlab-tiny-pc route add default via 198.51.100.1
        }

        down() {
          ip netns del natlab-tiny-pc 2>/dev/null || true
          ip netns del natlab-tiny-lab 2>/dev/null || true
          ip netns del natlab-tiny-internet 2>/dev/null || true
        }

        case "${1:-up}" in
          up) up ;;
          down) down ;;
          *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
        esac

        """)
    }

    @Test func rulesetsGoThroughAQuotedHeredoc() {
        let plan = LabPlan(name: "x", nodes: [], steps: [
            .applyNFTables(node: "r", ruleset: "table ip nat {\n  chain post { type nat hook postrouting priority srcnat; }\n}\nNFT\n"),
        ])
        let script = ShellScript.render(plan) { "ns it's-\($0)" }
        #expect(script.contains("""
          ip netns exec 'ns it'\\''s-r' nft -f - <<'NFT_'
        table ip nat {
          chain post { type nat hook postrouting priority srcnat; }
        }
        NFT
        NFT_

        """))
    }

    @Test func rendersEveryShippedTopologyAsValidBash() throws {
        for file in try shippedTopologies() {
            let plan = Planner.plan(try TopologyLoader.load(path: file))
            let script = ShellScript.render(plan) { "natlab-\(plan.name)-\($0)" }
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("natlab-topo-\(plan.name).sh").path
            try script.write(toFile: path, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = ["-n", path]   // syntax check only; nothing runs
            try p.run(); p.waitUntilExit()
            #expect(p.terminationStatus == 0, "\(file)")
            #expect(!script.contains("ip link") && !script.contains("ip addr") && !script.contains("ip route"),
                    "every ip command names a namespace")
        }
    }
}

func shippedTopologies() throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: topologiesDirectory)
        .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        .map { topologiesDirectory + "/" + $0 }
}

@Suite struct ShippedTopologies {
    @Test func allValidateAndPlan() throws {
        let files = try shippedTopologies()
        #expect(files.count >= 4)
        for file in files {
            do {
                let t = try TopologyLoader.load(path: file)
                let plan = Planner.plan(t)
                #expect(plan.nodes.count == 1 + t.routers.count + t.hosts.count)
                #expect(t.name + ".yaml" == (file as NSString).lastPathComponent, "name matches the file")
                let text = try String(contentsOfFile: file, encoding: .utf8)
                #expect(text.hasPrefix("# "), "\(file) starts with a header comment")
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    @Test func unreadableFileIsADiagnostic() {
        do {
            _ = try TopologyLoader.load(path: topologiesDirectory + "/does-not-exist.yaml")
            Issue.record("should fail")
        } catch {
            #expect(error.diagnostics.map(\.description) == [topologiesDirectory + "/does-not-exist.yaml:1:1: error: cannot read topology file: no such file"])
        }
    }

    @Test func directoryAndInvalidUTF8AreDiagnostics() throws {
        do {
            _ = try TopologyLoader.load(path: topologiesDirectory)
            Issue.record("should fail")
        } catch {
            #expect(error.diagnostics.map(\.description) == [topologiesDirectory + ":1:1: error: cannot read topology file: it is a directory"])
        }
        let file = FileManager.default.temporaryDirectory.path + "/natlab-not-utf8-\(getpid()).yaml"
        try Data([0x6e, 0x61, 0x6d, 0x65, 0x3a, 0x20, 0xff, 0x0a]).write(to: URL(fileURLWithPath: file))   // "name: \xff"
        defer { try? FileManager.default.removeItem(atPath: file) }
        do {
            _ = try TopologyLoader.load(path: file)
            Issue.record("should fail")
        } catch {
            #expect(error.diagnostics.map(\.description) == [file + ":1:1: error: cannot read topology file: not valid UTF-8"])
        }
    }
}
