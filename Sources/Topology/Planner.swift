import NATModel

/// Everything a build needs: the nodes with their interfaces and addresses, and the ordered kernel steps.
public struct LabPlan: Codable, Sendable, Equatable {
    public var name: String
    /// The internet first, then parents before children (depth first: each router followed by its subtree).
    public var nodes: [PlannedNode]
    public var steps: [BuildStep]

    public init(name: String, nodes: [PlannedNode], steps: [BuildStep]) {
        self.name = name; self.nodes = nodes; self.steps = steps
    }
    public func node(named name: String) -> PlannedNode? { nodes.first { $0.name == name } }
}

public struct PlannedNode: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case internet, router, host }

    public var name: String
    public var kind: Kind
    /// The node this one attaches to (nil for the internet).
    public var parent: String?
    /// Upstream interface first (`wan` / `eth0`), then the bridge (`ix` / `lan`), then one veth end per child
    /// (named after the child). `lo` is not listed.
    public var interfaces: [PlannedInterface]
    /// Next hop of the default route (the parent's address on the shared segment).
    public var gateway: String?
    /// The subnet this node's bridge carries (the internet core or a router's LAN), CIDR.
    public var subnet: String?
    public var nat: NATProfile?
    public var role: Role?
    /// The addresses the internet sees this node's traffic come from: its own upstream addresses, replaced
    /// by each translating router on the way out (the outermost one wins). Nil for the internet itself.
    public var publicAddresses: [String]?
    /// Dual-stack labs only (nil otherwise): next hop of the IPv6 default route, and the IPv6 subnet of the
    /// node's bridge. IPv6 is never translated: a node's public IPv6 address is its own.
    public var gateway6: String?
    public var subnet6: String?

    public init(name: String, kind: Kind, parent: String?, interfaces: [PlannedInterface], gateway: String?,
                subnet: String?, nat: NATProfile?, role: Role?, publicAddresses: [String]?,
                gateway6: String? = nil, subnet6: String? = nil) {
        self.name = name; self.kind = kind; self.parent = parent; self.interfaces = interfaces
        self.gateway = gateway; self.subnet = subnet; self.nat = nat; self.role = role
        self.publicAddresses = publicAddresses
        self.gateway6 = gateway6; self.subnet6 = subnet6
    }

    /// This node's addresses on its upstream interface (`wan` / `eth0`), without prefix length.
    public var upstreamAddresses: [String] {
        interfaces.first { $0.name == "wan" || $0.name == "eth0" }?.addresses.map { String($0.prefix { $0 != "/" }) } ?? []
    }
    /// This node's IPv6 addresses on its upstream interface, without prefix length (empty: IPv4-only lab).
    public var upstreamAddresses6: [String] {
        interfaces.first { $0.name == "wan" || $0.name == "eth0" }?.addresses6?.map { String($0.prefix { $0 != "/" }) } ?? []
    }
}

public struct PlannedInterface: Codable, Sendable, Equatable {
    public var name: String
    /// IPv4 CIDRs (`192.168.1.1/24`).
    public var addresses: [String]
    /// IPv6 CIDRs (`2001:db8:1::1/64`) in a dual-stack lab; nil when the interface has none (kept out of
    /// `addresses` so IPv4 consumers and IPv4-only plans are unchanged).
    public var addresses6: [String]?
    /// The node at the other end of a veth (nil for a bridge).
    public var peer: String?
    public init(name: String, addresses: [String], peer: String?, addresses6: [String]? = nil) {
        self.name = name; self.addresses = addresses; self.peer = peer; self.addresses6 = addresses6
    }
}

/// Turns a validated `Topology` into a `LabPlan`.
///
/// Address plan (deterministic; the loader has already checked that it fits):
/// - The `internet` node carries bridge `ix` with the core subnet (default 203.0.113.0/24); the core itself
///   takes the last usable address (.254) and is every top-level node's gateway.
/// - Every router carries bridge `lan` with its LAN subnet and takes the first usable address (.1).
/// - On each segment the children (routers whose upstream it is, then hosts attached to it, each in file
///   order) get addresses from the first usable one upward (.1 on the core, .2 on a LAN), skipping explicit
///   addresses and the gateway. A `run: stun-server` host takes two (RFC 5780 needs a second IP): its
///   explicit address, if any, then the next free one. A router with `addresses: N` takes a block of N
///   consecutive addresses (its explicit address first, else the first free run), its NAT's pool.
/// - A LAN left out is `10.K.0.0/24` (`100.64.K.0/24` for the `cgnat` preset, RFC 6598), K the router's
///   1-based index in file order, moved up past any K whose subnet overlaps an explicit subnet or an earlier
///   automatic one (chosen by `TopologyLoader`, recorded in `Topology.Router.lan`).
/// - Interfaces: in a parent's namespace the veth end to a child is named after the child; in the child it
///   is `wan` (router) or `eth0` (host).
/// - Routes: every router and host has a default route via its parent's address on the shared segment.
///   A router that does not translate (`kind` `.none` or `.firewall`) gets its LAN routed: its upstream
///   node routes the LAN via the router's upstream address, and so on up the chain while the ancestors do
///   not translate either (the internet core included). A translating router's ruleset covers its own LAN
///   and the routed LANs behind it.
///
/// IPv6 (dual-stack labs, `Topology.internetSubnet6` set): every segment also carries an IPv6 subnet (the core's
/// `subnet6`, each router's `lan6`), and every address of the IPv4 plan has an IPv6 twin whose interface ID is
/// the IPv4 host number (`AddressPlan6`; an explicit `address6:` replaces a node's first). A router has one
/// IPv6 address (no pools: nothing is translated). IPv6 addresses are added with `nodad` (the lab is an
/// island with planned addresses: duplicate address detection would only delay it). Every LAN is routed in
/// IPv6, NAT or not (no NAT66): every ancestor up to the core routes a router's `lan6` via the next hop
/// below it; a translating router filters IPv6 statefully with its declared filtering (`NATRuleset`).
/// `net.ipv6.conf.all.forwarding=1` on the core and routers. IPv4-only topologies get exactly the IPv4 steps.
///
/// Steps: `createNamespace` for every node (order of `LabPlan.nodes`), then one contiguous group per node
/// in the same order: `setUp lo`, sysctls, upstream addresses, default route, bridge, bridge address,
/// one veth per child, routes to routed LANs, nftables ruleset.
public enum Planner {
    public static func plan(_ topology: Topology) -> LabPlan {
        let t = topology
        let internet = Topology.internet
        let routerByName = Dictionary(t.routers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })

        // Segments and children.
        func childRouters(_ seg: String) -> [Topology.Router] { t.routers.filter { $0.upstream == seg } }
        func childHosts(_ seg: String) -> [Topology.Host] { t.hosts.filter { $0.attach == seg } }
        func subnet(_ seg: String) -> IPv4Network { seg == internet ? t.internetSubnet : routerByName[seg]!.lan }
        func gatewayAddress(_ seg: String) -> IPv4Address {
            seg == internet ? t.internetSubnet.lastUsable : routerByName[seg]!.lan.firstUsable
        }

        // Address allocation per segment.
        var addresses: [String: [IPv4Address]] = [:]
        for seg in [internet] + t.routers.map(\.name) {
            let requests = childRouters(seg).map {
                AddressAllocation.Request(name: $0.name, explicit: $0.address, count: $0.addressCount,
                                          consecutive: $0.addressCount > 1)
            } + childHosts(seg).map {
                AddressAllocation.Request(name: $0.name, explicit: $0.address, count: $0.role?.addressCount ?? 1,
                                          consecutive: false)
            }
            let allocated = AddressAllocation.allocate(subnet(seg), gateway: gatewayAddress(seg), requests)
            precondition(allocated.unplaced.isEmpty, "Planner: the loader let through an address plan that does not fit")
            addresses.merge(allocated.addresses) { a, _ in a }
        }

        // Node order: the internet, then depth first (routers before hosts, file order).
        var order: [String] = []
        func visit(_ seg: String) {
            order.append(seg)
            for r in childRouters(seg) { visit(r.name) }
            for h in childHosts(seg) { order.append(h.name) }
        }
        visit(internet)

        // IPv6 twins of the IPv4 plan (dual stack only).
        let dual = t.isDualStack
        func subnet6(_ seg: String) -> IPv6Network? { seg == internet ? t.internetSubnet6 : routerByName[seg]!.lan6 }
        func gatewayAddress6(_ seg: String) -> IPv6Address? {
            subnet6(seg).flatMap { AddressPlan6.mirror(gatewayAddress(seg), in: subnet(seg), onto: $0) }
        }
        var addresses6: [String: [IPv6Address]] = [:]
        if dual {
            for seg in [internet] + t.routers.map(\.name) {
                let net6 = subnet6(seg)!
                for r in childRouters(seg) {
                    addresses6[r.name] = [r.address6 ?? AddressPlan6.mirror(addresses[r.name]![0], in: subnet(seg), onto: net6)!]
                }
                for h in childHosts(seg) {
                    var six = addresses[h.name]!.map { AddressPlan6.mirror($0, in: subnet(seg), onto: net6)! }
                    if let explicit = h.address6 { six[0] = explicit }
                    addresses6[h.name] = six
                }
            }
        }
        // IPv6 routes: every LAN is routed (no NAT66), by every ancestor up to the core.
        var extraRoutes6: [String: [(destination: String, via: String)]] = [:]
        if dual {
            for r in t.routers {
                var child = r
                while true {
                    extraRoutes6[child.upstream, default: []].append((r.lan6!.description, addresses6[child.name]![0].description))
                    guard child.upstream != internet, let u = routerByName[child.upstream] else { break }
                    child = u
                }
            }
        }

        // Routes towards LANs that are not translated.
        var extraRoutes: [String: [(destination: String, via: String)]] = [:]
        for r in t.routers where !r.translates {
            var child = r
            while true {
                let up = child.upstream
                extraRoutes[up, default: []].append((r.lan.description, addresses[child.name]![0].description))
                guard up != internet, let u = routerByName[up], !u.translates else { break }
                child = u
            }
        }
        // LAN subnets a router's ruleset covers: its own and the routed ones behind it.
        func coveredSubnets(_ r: Topology.Router) -> [String] {
            var out = [r.lan.description]
            for d in t.routers where d.name != r.name && !d.translates {
                var cur = d
                while true {
                    if cur.upstream == r.name { out.append(d.lan.description); break }
                    guard cur.upstream != internet, let u = routerByName[cur.upstream], !u.translates else { break }
                    cur = u
                }
            }
            return out
        }
        // IPv6 LANs behind a router (its own and every descendant's: all of them are routed through it).
        func lanSubnets6(_ r: Topology.Router) -> [String] {
            var out: [String] = []
            func walk(_ x: Topology.Router) {
                if let l = x.lan6 { out.append(l.description) }
                for c in childRouters(x.name) { walk(c) }
            }
            walk(r)
            return out
        }
        func publicAddresses(_ name: String) -> [String] {
            var current = addresses[name]!
            var up = routerByName[name]?.upstream ?? t.host(named: name)!.attach
            while up != internet, let u = routerByName[up] {
                if u.translates { current = addresses[u.name]! }
                up = u.upstream
            }
            return current.map(\.description)
        }

        var nodes: [PlannedNode] = []
        var steps: [BuildStep] = order.map { .createNamespace(node: $0) }
        let bridgeSysctls = ["net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
                             "net.bridge.bridge-nf-call-arptables"]
        for name in order {
            let router = routerByName[name]
            let host = router == nil ? t.host(named: name) : nil
            let kind: PlannedNode.Kind = name == internet ? .internet : router != nil ? .router : .host
            let parent = router?.upstream ?? host?.attach
            let upLink = kind == .router ? "wan" : "eth0"
            let bridge = kind == .internet ? "ix" : "lan"
            var interfaces: [PlannedInterface] = []

            steps.append(.setUp(node: name, link: "lo"))
            if kind != .host {
                steps.append(.sysctl(node: name, key: "net.ipv4.ip_forward", value: "1"))
                if dual { steps.append(.sysctl(node: name, key: "net.ipv6.conf.all.forwarding", value: "1")) }
                for key in bridgeSysctls { steps.append(.sysctl(node: name, key: key, value: "0")) }
            }
            if let router {
                for s in NATRuleset.sysctls(for: router.nat) { steps.append(.sysctl(node: name, key: s.key, value: s.value)) }
            }
            var gateway: String? = nil
            var gateway6: String? = nil
            if let parent {
                let net = subnet(parent)
                let cidrs = addresses[name]!.map { net.cidr($0) }
                for c in cidrs { steps.append(.addAddress(node: name, link: upLink, cidr: c)) }
                gateway = gatewayAddress(parent).description
                steps.append(.addRoute(node: name, destination: nil, gateway: gateway!))
                var cidrs6: [String]? = nil
                if dual, let net6 = subnet6(parent) {
                    cidrs6 = addresses6[name]!.map { net6.cidr($0) }
                    for c in cidrs6! { steps.append(.addAddress(node: name, link: upLink, cidr: c)) }
                    gateway6 = gatewayAddress6(parent)!.description
                    steps.append(.addRoute(node: name, destination: nil, gateway: gateway6!))
                }
                interfaces.append(PlannedInterface(name: upLink, addresses: cidrs, peer: parent, addresses6: cidrs6))
            }
            var ownSubnet: String? = nil
            var ownSubnet6: String? = nil
            if kind != .host {
                let net = subnet(name)
                ownSubnet = net.description
                let cidr = net.cidr(gatewayAddress(name))
                steps.append(.addBridge(node: name, name: bridge))
                steps.append(.addAddress(node: name, link: bridge, cidr: cidr))
                var cidrs6: [String]? = nil
                if dual, let net6 = subnet6(name) {
                    ownSubnet6 = net6.description
                    cidrs6 = [net6.cidr(gatewayAddress6(name)!)]
                    steps.append(.addAddress(node: name, link: bridge, cidr: cidrs6![0]))
                }
                interfaces.append(PlannedInterface(name: bridge, addresses: [cidr], peer: nil, addresses6: cidrs6))
                for r in childRouters(name) {
                    steps.append(.addVeth(node: name, name: r.name, master: bridge, peerNode: r.name, peerName: "wan"))
                    interfaces.append(PlannedInterface(name: r.name, addresses: [], peer: r.name))
                }
                for h in childHosts(name) {
                    steps.append(.addVeth(node: name, name: h.name, master: bridge, peerNode: h.name, peerName: "eth0"))
                    interfaces.append(PlannedInterface(name: h.name, addresses: [], peer: h.name))
                }
                for route in extraRoutes[name] ?? [] {
                    steps.append(.addRoute(node: name, destination: route.destination, gateway: route.via))
                }
                for route in extraRoutes6[name] ?? [] {
                    steps.append(.addRoute(node: name, destination: route.destination, gateway: route.via))
                }
            }
            if let router {
                let context = NATRulesetContext(wanInterface: "wan", lanInterface: "lan",
                                                wanAddresses: addresses[name]!.map(\.description),
                                                lanSubnets: coveredSubnets(router),
                                                lanSubnets6: dual ? lanSubnets6(router) : [])
                if let ruleset = NATRuleset.renderForNewNamespace(router.nat, context: context) {
                    steps.append(.applyNFTables(node: name, ruleset: ruleset))
                }
            }
            nodes.append(PlannedNode(name: name, kind: kind, parent: parent, interfaces: interfaces, gateway: gateway,
                                     subnet: ownSubnet, nat: router?.nat, role: host?.role,
                                     publicAddresses: kind == .internet ? nil : publicAddresses(name),
                                     gateway6: gateway6, subnet6: ownSubnet6))
        }
        return LabPlan(name: t.name, nodes: nodes, steps: steps)
    }
}
