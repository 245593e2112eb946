/// Renders a `LabPlan` as a standalone bash script using `ip` (iproute2) and `nft`: the teaching and
/// benchmark baseline of `natlab up`, doing exactly the plan's steps.
public enum ShellScript {
    /// `namespace` maps a node name to its namespace name (e.g. `{ "natlab-\(plan.name)-\($0)" }`).
    public static func render(_ plan: LabPlan, namespace: (String) -> String) -> String {
        var out: [String] = []
        func ns(_ node: String) -> String { quote(namespace(node)) }
        out.append("""
        #!/usr/bin/env bash
        # natlab lab '\(plan.name)' as a plain iproute2 + nftables script.
        #
        # This is the teaching/baseline equivalent of `natlab up`: the same namespaces, links, addresses,
        # routes, sysctls and NAT rulesets, step by step, so you can read (or time) what natlab does.
        # Every command runs inside a lab namespace (`ip -n NS`, `ip netns exec NS`); the root namespace
        # is never touched. Needs root, iproute2 and nft.
        #
        # Usage: \(scriptName(plan)) [up|down]     (default: up; `down` deletes the lab's namespaces)
        set -euo pipefail

        up() {
        """)
        var current: String? = nil
        for step in plan.steps {
            if case .createNamespace = step {} else if step.node != current {
                current = step.node
                let kind = plan.node(named: step.node)?.kind.rawValue ?? "node"
                out.append("\n  # --- \(step.node) (\(kind)) ---")
            }
            switch step {
            case .createNamespace(let node):
                out.append("  ip netns add \(ns(node))")
            case .setUp(let node, let link):
                out.append("  ip -n \(ns(node)) link set \(quote(link)) up")
            case .sysctl(let node, let key, let value):
                if key.hasPrefix("net.bridge.") {
                    // Only present when br_netfilter is loaded; without it there is nothing to turn off (P10).
                    out.append("  ip netns exec \(ns(node)) sysctl -qw \(quote("\(key)=\(value)")) 2>/dev/null || true")
                } else {
                    out.append("  ip netns exec \(ns(node)) sysctl -qw \(quote("\(key)=\(value)"))")
                }
            case .addBridge(let node, let name):
                out.append("  ip -n \(ns(node)) link add \(quote(name)) type bridge")
                out.append("  ip -n \(ns(node)) link set \(quote(name)) up")
            case .addVeth(let node, let name, let master, let peerNode, let peerName):
                out.append("  ip -n \(ns(node)) link add \(quote(name)) type veth peer name \(quote(peerName)) netns \(ns(peerNode))")
                if let master {
                    out.append("  ip -n \(ns(node)) link set \(quote(name)) master \(quote(master)) up")
                } else {
                    out.append("  ip -n \(ns(node)) link set \(quote(name)) up")
                }
                out.append("  ip -n \(ns(peerNode)) link set \(quote(peerName)) up")
            case .addAddress(let node, let link, let cidr):
                if BuildStep.isIPv6(cidr) {
                    out.append("  ip -6 -n \(ns(node)) addr add \(quote(cidr)) dev \(quote(link)) nodad")
                } else {
                    out.append("  ip -n \(ns(node)) addr add \(quote(cidr)) dev \(quote(link))")
                }
            case .addRoute(let node, let destination, let gateway):
                let family = BuildStep.isIPv6(gateway) ? "-6 " : ""
                out.append("  ip \(family)-n \(ns(node)) route add \(quote(destination ?? "default")) via \(quote(gateway))")
            case .applyNFTables(let node, let ruleset):
                var delimiter = "NFT"
                let lines = ruleset.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                while lines.contains(delimiter) { delimiter += "_" }
                out.append("  ip netns exec \(ns(node)) nft -f - <<'\(delimiter)'")
                out.append(ruleset.hasSuffix("\n") ? String(ruleset.dropLast()) : ruleset)
                out.append(delimiter)
                // P3: existing conntrack entries keep the old rules' translation (needs conntrack-tools).
                out.append("  ip netns exec \(ns(node)) conntrack -F 2>/dev/null || true")
            }
        }
        out.append("}")
        out.append("")
        out.append("down() {")
        for node in plan.nodes.reversed() {
            out.append("  ip netns del \(ns(node.name)) 2>/dev/null || true")
        }
        out.append("}")
        out.append("")
        out.append("""
        case "${1:-up}" in
          up) up ;;
          down) down ;;
          *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
        esac
        """)
        return out.joined(separator: "\n") + "\n"
    }

    private static func scriptName(_ plan: LabPlan) -> String { "\(plan.name).sh" }

    /// Single-quotes a word for bash unless it is made of safe characters only.
    static func quote(_ word: String) -> String {
        let safe = word.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "-_./:=@%+,".unicodeScalars.contains($0)
        }
        if safe && !word.isEmpty { return word }
        return "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }
}
