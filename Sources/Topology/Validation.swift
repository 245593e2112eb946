import NATModel

/// The IPv6 side of a topology file as read: whether the lab is dual-stack and its core subnet.
struct V6Settings {
    var enabled = false
    var subnet: Located<IPv6Network>? = nil
    var subnetInvalid = false
}

// Stage 2: semantic validation of the raw declarations (names, references, cycles, address plan).
extension Checker {
    mutating func validate(name: String, description: String?, internetSubnet: IPv4Network, internetPos: Pos,
                           internetValid: Bool, rootPos: Pos, routers raw: [RawRouter], hosts: [RawHost],
                           v6: V6Settings = V6Settings()) -> Topology? {
        let internet = Topology.internet
        // Names: unique across routers and hosts (duplicates inside one section are duplicate keys).
        var routerIndex: [String: Int] = [:]
        for (i, r) in raw.enumerated() where routerIndex[r.name] == nil { routerIndex[r.name] = i }
        var hostIndex: [String: Int] = [:]
        for (i, h) in hosts.enumerated() {
            if let r = routerIndex[h.name] {
                error(h.namePos, "duplicate name '\(h.name)': already used by the router at \(raw[r].namePos)")
            } else if hostIndex[h.name] == nil {
                hostIndex[h.name] = i
            }
        }
        let targets = raw.map(\.name) + [internet]

        // Upstreams: `internet` or another router.
        var parent: [Int?] = Array(repeating: nil, count: raw.count)   // nil: the internet
        var upstreamOK = Array(repeating: true, count: raw.count)
        for (i, r) in raw.enumerated() {
            guard let up = r.upstream else { continue }
            if up.value == internet { continue }
            if up.value == r.name {
                error(up.pos, "upstream cycle: \(r.name) → \(r.name) (a router cannot be its own upstream)")
                upstreamOK[i] = false
            } else if let j = routerIndex[up.value] {
                parent[i] = j
            } else if hostIndex[up.value] != nil {
                error(up.pos, "upstream '\(up.value)' of router '\(r.name)' is a host; a router's upstream is `internet` or another router")
                upstreamOK[i] = false
            } else {
                error(up.pos, "unknown upstream '\(up.value)' of router '\(r.name)'" + Checker.suggestion(up.value, among: targets)
                      + " (routers: \(targets.joined(separator: ", ")))")
                upstreamOK[i] = false
            }
        }

        // Cycles: a router is rooted when its upstream chain reaches the internet.
        var rooted: [Bool?] = Array(repeating: nil, count: raw.count)
        for start in raw.indices where rooted[start] == nil {
            var path: [Int] = []
            var i = start
            var result: Bool
            while true {
                if let known = rooted[i] { result = known; break }
                if !upstreamOK[i] { result = false; path.append(i); break }
                if let k = path.firstIndex(of: i) {
                    let cycle = Array(path[k...])
                    let first = cycle.min()!
                    let rotated = Array(cycle.drop { $0 != first }) + Array(cycle.prefix { $0 != first })
                    let names = (rotated + [first]).map { raw[$0].name }.joined(separator: " → ")
                    error(raw[first].upstream!.pos, "upstream cycle: \(names)")
                    result = false
                    break
                }
                path.append(i)
                guard let p = parent[i] else { result = true; break }
                i = p
            }
            for p in path { rooted[p] = result }
        }
        let isRooted = rooted.map { $0 ?? false }

        // Hosts attach to `internet` or a router.
        var hostParent: [Int?] = Array(repeating: nil, count: hosts.count)
        var hostOK = Array(repeating: false, count: hosts.count)
        for (i, h) in hosts.enumerated() {
            guard let a = h.attach else { continue }
            if a.value == internet {
                hostOK[i] = true
            } else if let j = routerIndex[a.value] {
                hostParent[i] = j; hostOK[i] = true
            } else if hostIndex[a.value] != nil || h.name == a.value {
                error(a.pos, "host '\(h.name)' is attached to '\(a.value)', which is a host; hosts attach to a router or `internet`")
            } else {
                error(a.pos, "unknown attach target '\(a.value)' of host '\(h.name)'" + Checker.suggestion(a.value, among: targets)
                      + " (routers: \(targets.joined(separator: ", ")))")
            }
        }

        // Automatic LANs: 10.K.0.0/24 (100.64.K.0/24 for cgnat), K = 1-based router index, skipping taken K.
        var lans: [IPv4Network?] = raw.map { $0.lan?.value }
        var explicitNets = raw.compactMap { $0.lan?.value }
        if internetValid { explicitNets.append(internetSubnet) }
        var autoNets: [IPv4Network] = []
        for (i, r) in raw.enumerated() where r.lan == nil && !r.lanInvalid {
            let cgnat = r.nat?.preset == "cgnat"
            var k = i + 1
            while k <= 255 {
                let net = IPv4Network(network: IPv4Address(cgnat ? (100 << 24 | 64 << 16 | UInt32(k) << 8) : (10 << 24 | UInt32(k) << 16)),
                                      prefixLength: 24)!
                if !explicitNets.contains(where: { $0.overlaps(net) }) && !autoNets.contains(where: { $0.overlaps(net) }) {
                    lans[i] = net; autoNets.append(net); break
                }
                k += 1
            }
            if lans[i] == nil { error(r.namePos, "no free automatic LAN for router '\(r.name)': give it a `lan:`") }
        }

        // IPv6 (dual stack): the core /64 and one /64 per router; every LAN is routed (no NAT66), so all
        // IPv6 subnets share one address realm and must not overlap. Automatic LANs: 2001:db8:K::/64.
        let internet6: IPv6Network? = v6.enabled && !v6.subnetInvalid ? (v6.subnet?.value ?? Topology.defaultInternetSubnet6) : nil
        var lans6: [IPv6Network?] = raw.map { v6.enabled ? $0.lan6?.value : nil }
        if v6.enabled {
            var taken6 = raw.compactMap { $0.lan6?.value } + (internet6.map { [$0] } ?? [])
            for (i, r) in raw.enumerated() where r.lan6 == nil && !r.lan6Invalid {
                var k = i + 1
                while let net = AddressPlan6.automaticLAN(k) {
                    if !taken6.contains(where: { $0.overlaps(net) }) { lans6[i] = net; taken6.append(net); break }
                    k += 1
                }
                if lans6[i] == nil { error(r.namePos, "no free automatic IPv6 LAN for router '\(r.name)': give it a `lan6:`") }
            }
            for (i, r) in raw.enumerated() {
                guard let lan = r.lan6 else { continue }
                if let inet = internet6, inet.overlaps(lan.value) {
                    error(lan.pos, "IPv6 LAN \(lan.value) of '\(r.name)' overlaps the internet subnet6 \(inet)")
                }
                for (j, o) in raw.enumerated() where j < i {
                    if let other = o.lan6, other.value.overlaps(lan.value) {
                        error(lan.pos, "IPv6 LAN \(lan.value) of '\(r.name)' overlaps \(other.value), the IPv6 LAN of '\(o.name)' "
                              + "(IPv6 is routed without translation: every IPv6 subnet of a lab must be distinct)")
                    }
                }
            }
        }

        // Segments: the internet core and every router's LAN, with the children on them.
        struct Child {
            var name: String; var address: Located<IPv4Address>?; var count: Int
            var consecutive = false; var namePos: Pos
            var address6: Located<IPv6Address>? = nil
            var isRouter = false
            var request: AddressAllocation.Request {
                .init(name: name, explicit: address?.value, count: count, consecutive: consecutive)
            }
        }
        func children(of segment: Int?) -> [Child] {
            var out: [Child] = []
            for (i, r) in raw.enumerated() where upstreamOK[i] && parent[i] == segment {
                let n = r.addressCount?.value ?? 1
                out.append(Child(name: r.name, address: r.address, count: n, consecutive: n > 1, namePos: r.namePos,
                                 address6: r.address6, isRouter: true))
            }
            for (i, h) in hosts.enumerated() where hostOK[i] && hostParent[i] == segment {
                out.append(Child(name: h.name, address: h.address, count: h.role?.addressCount ?? 1, namePos: h.namePos,
                                 address6: h.address6))
            }
            return out
        }
        // Upstream addresses of every router whose segment's plan fits, for the NAT context check below.
        var allocated: [String: [IPv4Address]] = [:]
        func checkSegment(_ net: IPv4Network, gateway: IPv4Address, owner: String, gatewayText: String, pos: Pos, children: [Child],
                          net6: IPv6Network? = nil, pos6: Pos? = nil) {
            let before = diagnostics.count
            defer {
                if diagnostics.count == before {
                    let plan = AddressAllocation.allocate(net, gateway: gateway, children.map(\.request))
                    allocated.merge(plan.addresses) { a, _ in a }
                    if let net6 { checkSegment6(net6, net4: net, gateway: gateway, owner: owner, pos: pos6 ?? pos,
                                                children: children, v4: plan.addresses) }
                    for r in plan.unplaced {
                        let c = children.first { $0.name == r.name }!
                        error(c.namePos, "no room for the \(r.count) consecutive addresses of '\(r.name)' on \(net), the subnet of "
                              + "\(owner): a NAT pool is one unbroken block (nft `snat to A-B`); free some addresses or use a "
                              + "larger subnet")
                    }
                }
            }
            let needed = 1 + children.reduce(0) { $0 + $1.count }
            if needed > net.usableCount {
                let list = children.map { $0.count > 1 ? "\($0.name) (\($0.count) addresses)" : $0.name }.joined(separator: ", ")
                error(pos, "subnet \(net) of \(owner) is too small: \(net.usableCount) usable addresses, needs \(needed) ("
                      + (children.isEmpty ? "its own address)" : "its own address and \(list))"))
            }
            var used: [IPv4Address: String] = [:]
            for c in children {
                guard let first = c.address else { continue }
                let block = AddressAllocation.reserved(c.request)
                if c.consecutive, block.count < c.count {
                    error(first.pos, "the \(c.count) addresses of '\(c.name)' from \(first.value) run past 255.255.255.255")
                    continue
                }
                for (k, value) in block.enumerated() {
                let a = Located(value: value, pos: first.pos)
                let of = c.count == 1 ? "'\(c.name)'" : "'\(c.name)' (in its pool \(first.value)-\(block.last!))"
                if k > 0, !net.contains(a.value) || a.value == net.broadcast {
                    error(a.pos, "the \(c.count) consecutive addresses of '\(c.name)' from \(first.value) do not fit in \(net), "
                          + "the subnet of \(owner) (the last usable address is \(net.lastUsable))")
                    break
                }
                if !net.contains(a.value) {
                    error(a.pos, "address \(a.value) of \(of) is outside \(net), the subnet of \(owner)")
                } else if net.usableCount == 0 {
                    continue
                } else if a.value == net.network {
                    error(a.pos, "address \(a.value) of \(of) is the network address of \(net)")
                } else if a.value == net.broadcast {
                    error(a.pos, "address \(a.value) of \(of) is the broadcast address of \(net)")
                } else if a.value == gateway {
                    error(a.pos, "address \(a.value) of \(of) is \(gatewayText)")
                } else if let other = used[a.value] {
                    error(a.pos, "address \(a.value) of \(of) is already used by '\(other)'")
                } else {
                    used[a.value] = c.name
                }
                }
            }
        }
        // IPv6 addresses mirror the IPv4 plan of the segment (see `AddressPlan6`); explicit ones must be free.
        func checkSegment6(_ net6: IPv6Network, net4: IPv4Network, gateway: IPv4Address, owner: String, pos: Pos,
                           children: [Child], v4: [String: [IPv4Address]]) {
            let tooSmall = "is too small to mirror the IPv4 plan of \(owner) (interface IDs are IPv4 host numbers): use a /64"
            guard let gw6 = AddressPlan6.mirror(gateway, in: net4, onto: net6) else {
                error(pos, "IPv6 subnet \(net6) \(tooSmall)")
                return
            }
            var used: [IPv6Address: String] = [gw6: owner == "the internet" ? "the internet core" : owner]
            for c in children {
                let mine = v4[c.name] ?? []
                var six: [IPv6Address?] = (c.isRouter ? Array(mine.prefix(1)) : mine).map { AddressPlan6.mirror($0, in: net4, onto: net6) }
                if let explicit = c.address6, !six.isEmpty { six[0] = explicit.value }
                for (k, a) in six.enumerated() {
                    let at = k == 0 ? (c.address6?.pos ?? c.namePos) : c.namePos
                    guard let a else { error(pos, "IPv6 subnet \(net6) \(tooSmall)"); return }
                    if !net6.contains(a) {
                        error(at, "IPv6 address \(a) of '\(c.name)' is outside \(net6), the IPv6 subnet of \(owner)")
                    } else if a == net6.network {
                        error(at, "IPv6 address \(a) of '\(c.name)' is the subnet-router anycast address of \(net6)")
                    } else if let other = used[a] {
                        error(at, "IPv6 address \(a) of '\(c.name)' is already used by \(other.hasPrefix("the ") || other.hasPrefix("router ") ? other : "'\(other)'")")
                    } else {
                        used[a] = c.name
                    }
                }
            }
        }
        if internetValid {
            checkSegment(internetSubnet, gateway: internetSubnet.lastUsable, owner: "the internet", 
                         gatewayText: "the internet core's own address (the last usable one)",
                         pos: internetPos, children: children(of: nil), net6: internet6, pos6: v6.subnet?.pos)
        }
        for (i, r) in raw.enumerated() {
            guard let lan = lans[i] else { continue }
            checkSegment(lan, gateway: lan.firstUsable, owner: "router '\(r.name)'",
                         gatewayText: "the LAN address of router '\(r.name)' (the first usable one)",
                         pos: r.lan?.pos ?? r.namePos, children: children(of: i), net6: lans6[i], pos6: r.lan6?.pos)
        }

        // Address pools: only a translating router has use for several public addresses, and a pooling
        // behaviour only means something with a pool. Then the ruleset must be renderable (never trap).
        for (i, r) in raw.enumerated() {
            guard let nat = r.nat else { continue }
            let count = r.addressCount?.value ?? 1
            if count > 1, nat.kind != .nat, let pos = r.addressCount?.pos {
                let what = nat.kind == .none ? "plain routing (nat: none)" : "a firewall without translation"
                error(pos, "`addresses: \(count)` makes a pool of public addresses for a NAT; router '\(r.name)' is \(what) "
                      + "and takes exactly one upstream address")
            }
            if count == 1, nat.kind == .nat, let pos = r.poolingPos {
                error(pos, "`pooling` chooses among several public addresses, but router '\(r.name)' has one; "
                      + "give it a pool with `addresses: N` (N > 1) or leave `pooling` out")
            }
            guard let wan = allocated[r.name], let lan = lans[i] else { continue }
            let context = NATRulesetContext(wanInterface: "wan", lanInterface: "lan",
                                            wanAddresses: wan.map(\.description), lanSubnets: [lan.description])
            for problem in NATRuleset.problems(in: context, for: nat) {
                error(r.addressCount?.pos ?? r.address?.pos ?? r.namePos, "router '\(r.name)': \(problem.message)")
            }
        }

        // Overlaps that matter: a LAN against every subnet on its path to the internet, and against every
        // other LAN routed without translation into the same address realm. NAT'd LANs may repeat.
        func translates(_ i: Int) -> Bool { (raw[i].nat?.kind ?? .nat) == .nat }
        func ancestors(_ i: Int) -> [Int] {
            var out: [Int] = []
            var p = parent[i]
            while let j = p { out.append(j); p = parent[j] }
            return out
        }
        var realm: [Int: String] = [:]
        for i in raw.indices where isRooted[i] {
            var j = i
            while !translates(j), let p = parent[j] { j = p }
            realm[i] = translates(j) ? raw[j].name : internet
        }
        for (i, r) in raw.enumerated() where isRooted[i] {
            guard let lan = r.lan else { continue }   // automatic LANs avoid every explicit subnet
            for j in ancestors(i) {
                if let other = lans[j], other.overlaps(lan.value) {
                    error(lan.pos, "LAN \(lan.value) of '\(r.name)' overlaps \(other), the LAN of '\(raw[j].name)' on its path to the internet")
                }
            }
            if internetValid && internetSubnet.overlaps(lan.value) {
                error(lan.pos, "LAN \(lan.value) of '\(r.name)' overlaps the internet subnet \(internetSubnet)")
            }
            for j in raw.indices where j < i && isRooted[j] && realm[j] == realm[i] {
                guard let other = lans[j], other.overlaps(lan.value),
                      !ancestors(i).contains(j), !ancestors(j).contains(i) else { continue }
                let where_ = realm[i] == internet ? "on the internet" : "behind NAT '\(realm[i]!)'"
                error(lan.pos, "LAN \(lan.value) of '\(r.name)' overlaps \(other), the LAN of '\(raw[j].name)': both are routed without translation \(where_)")
            }
        }

        guard diagnostics.isEmpty else { return nil }
        return Topology(
            name: name, description: description, internetSubnet: internetSubnet,
            routers: raw.enumerated().map { i, r in
                Topology.Router(name: r.name, upstream: r.upstream?.value ?? internet, lan: lans[i]!,
                                lanIsExplicit: r.lan != nil, nat: r.nat!, address: r.address?.value,
                                addressCount: r.addressCount?.value ?? 1,
                                lan6: lans6[i], address6: v6.enabled ? r.address6?.value : nil)
            },
            hosts: hosts.map { Topology.Host(name: $0.name, attach: $0.attach!.value, address: $0.address?.value, role: $0.role,
                                             address6: v6.enabled ? $0.address6?.value : nil) },
            internetSubnet6: internet6)
    }
}
