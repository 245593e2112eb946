// CONTRACT FILE (shared by Topology, Lab and the shell renderer).

/// One kernel operation of a lab build, addressed by node name (the executor maps a node to its
/// namespace, `natlab-<lab>-<node>`). Steps come ordered so that consecutive steps of one node can run
/// in one namespace excursion, and every step only needs objects made by earlier steps.
public enum BuildStep: Sendable, Equatable, Codable {
    /// A named network namespace for `node` (iproute2-compatible, under /run/netns).
    case createNamespace(node: String)
    /// `ip -n NS link set LINK up` (also used for `lo`).
    case setUp(node: String, link: String)
    /// `ip netns exec NS sysctl -w KEY=VALUE`; key dotted (`net.ipv4.ip_forward`).
    case sysctl(node: String, key: String, value: String)
    /// `ip -n NS link add NAME type bridge` and set it up.
    case addBridge(node: String, name: String)
    /// `ip -n NS link add NAME [master M] up type veth peer name PEER netns PEERNS`, both ends up.
    case addVeth(node: String, name: String, master: String?, peerNode: String, peerName: String)
    /// `ip -n NS addr add CIDR dev LINK`; an IPv6 CIDR is added with `nodad` (`ip -6 … nodad`): the plan's
    /// addresses are unique, and duplicate address detection would only keep them tentative for a while.
    case addAddress(node: String, link: String, cidr: String)
    /// `ip -n NS route add DEST|default via GATEWAY` (`ip -6` when GATEWAY is IPv6).
    case addRoute(node: String, destination: String?, gateway: String)
    /// `ip netns exec NS nft -f -` with this text, then `ip netns exec NS conntrack -F`: entries made
    /// before the load would keep their old translation (reference/nat-recipes.md, P3). natlab skips
    /// the flush when the namespace has no entry. The planner's text is for a namespace without
    /// natlab's table (`NATRuleset.renderForNewNamespace`).
    case applyNFTables(node: String, ruleset: String)

    public var node: String {
        switch self {
        case .createNamespace(let n), .setUp(let n, _), .sysctl(let n, _, _), .addBridge(let n, _),
             .addVeth(let n, _, _, _, _), .addAddress(let n, _, _), .addRoute(let n, _, _),
             .applyNFTables(let n, _):
            return n
        }
    }

    /// True for an IPv6 address or CIDR (the family of an `addAddress`/`addRoute` step).
    public static func isIPv6(_ addressOrCIDR: String) -> Bool { addressOrCIDR.contains(":") }
}
