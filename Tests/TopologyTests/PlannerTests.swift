import Testing
@testable import Topology

/// Interface name -> addresses, for one node.
func addresses(_ plan: LabPlan, _ node: String) -> [String: [String]] {
    Dictionary(uniqueKeysWithValues: plan.node(named: node)!.interfaces.map { ($0.name, $0.addresses) })
}

@Suite struct AddressPlan {
    @Test func twoHomes() throws {
        let plan = Planner.plan(try TopologyLoader.load(path: topologiesDirectory + "/two-homes.yaml"))
        #expect(plan.name == "two-homes")
        #expect(plan.nodes.map(\.name) == ["internet", "home1", "alice", "home2", "bob", "stun", "relay"])
        #expect(addresses(plan, "internet") == ["ix": ["203.0.113.254/24"], "home1": [], "home2": [], "stun": [], "relay": []])
        #expect(addresses(plan, "home1") == ["wan": ["203.0.113.1/24"], "lan": ["10.1.0.1/24"], "alice": []])
        #expect(addresses(plan, "home2") == ["wan": ["203.0.113.2/24"], "lan": ["10.2.0.1/24"], "bob": []])
        #expect(addresses(plan, "alice") == ["eth0": ["10.1.0.2/24"]])
        #expect(addresses(plan, "bob") == ["eth0": ["10.2.0.2/24"]])
        #expect(addresses(plan, "stun") == ["eth0": ["203.0.113.3/24", "203.0.113.4/24"]])
        #expect(addresses(plan, "relay") == ["eth0": ["203.0.113.5/24"]])
        #expect(plan.nodes.map(\.gateway) == [nil, "203.0.113.254", "10.1.0.1", "203.0.113.254", "10.2.0.1", "203.0.113.254", "203.0.113.254"])
        #expect(plan.node(named: "alice")!.publicAddresses == ["203.0.113.1"])
        #expect(plan.node(named: "stun")!.publicAddresses == ["203.0.113.3", "203.0.113.4"])
        #expect(plan.node(named: "stun")!.role == .stunServer)
        #expect(plan.node(named: "home1")!.upstreamAddresses == ["203.0.113.1"])
        #expect(plan.node(named: "home1")!.nat?.preset == "port-restricted-cone")
        #expect(plan.node(named: "home1")!.interfaces.first { $0.name == "alice" }!.peer == "alice")
        #expect(plan.node(named: "alice")!.interfaces[0].peer == "home1")
    }

    @Test func cgnat() throws {
        let plan = Planner.plan(try TopologyLoader.load(path: topologiesDirectory + "/cgnat.yaml"))
        #expect(plan.nodes.map(\.name) == ["internet", "isp", "homec", "carol", "homed", "dave", "homee", "erin", "stun"])
        #expect(addresses(plan, "isp") == ["wan": ["203.0.113.10/24"], "lan": ["100.64.0.1/24"], "homec": [], "homed": []])
        #expect(addresses(plan, "homec") == ["wan": ["100.64.0.2/24"], "lan": ["192.168.1.1/24"], "carol": []])
        #expect(addresses(plan, "homed") == ["wan": ["100.64.0.3/24"], "lan": ["192.168.1.1/24"], "dave": []])
        #expect(addresses(plan, "homee") == ["wan": ["203.0.113.1/24"], "lan": ["10.4.0.1/24"], "erin": []])
        #expect(addresses(plan, "carol") == ["eth0": ["192.168.1.2/24"]])
        #expect(addresses(plan, "dave") == ["eth0": ["192.168.1.2/24"]])
        #expect(addresses(plan, "erin") == ["eth0": ["10.4.0.2/24"]])
        #expect(addresses(plan, "stun") == ["eth0": ["203.0.113.2/24", "203.0.113.3/24"]])
        #expect(plan.node(named: "homec")!.gateway == "100.64.0.1")
        #expect(plan.node(named: "carol")!.publicAddresses == ["203.0.113.10"])
        #expect(plan.node(named: "dave")!.publicAddresses == ["203.0.113.10"])
        #expect(plan.node(named: "erin")!.publicAddresses == ["203.0.113.1"])
    }

    @Test func automaticCGNATLAN() throws {
        // Only when NATModel knows the preset; the rule itself is in the loader.
        guard (try? NATProfileProbe.cgnat()) != nil else { return }
        let t = try load("routers:\n  home: {}\n  isp: { nat: cgnat }\n")
        #expect(t.routers.map(\.lan.description) == ["10.1.0.0/24", "100.64.2.0/24"])
    }

    @Test func explicitAddressesAreSkipped() throws {
        let plan = Planner.plan(try load("""
        routers:
          r1: {}
          r2: { address: 203.0.113.1 }
        hosts:
          a: { attach: r1, address: 10.1.0.3 }
          b: { attach: r1 }
          c: { attach: r1 }
          s: { attach: internet, run: stun-server, address: 203.0.113.3 }
          t: { attach: internet }
        """))
        #expect(plan.node(named: "r1")!.upstreamAddresses == ["203.0.113.2"])
        #expect(plan.node(named: "r2")!.upstreamAddresses == ["203.0.113.1"])
        #expect(plan.node(named: "a")!.upstreamAddresses == ["10.1.0.3"])
        #expect(plan.node(named: "b")!.upstreamAddresses == ["10.1.0.2"])
        #expect(plan.node(named: "c")!.upstreamAddresses == ["10.1.0.4"])
        #expect(plan.node(named: "s")!.upstreamAddresses == ["203.0.113.3", "203.0.113.4"])
        #expect(plan.node(named: "t")!.upstreamAddresses == ["203.0.113.5"])
    }

    @Test func routedLANsAreRoutedUpTheChain() throws {
        let plan = Planner.plan(try load("""
        internet: { subnet: 198.18.0.0/24 }
        routers:
          isp: { lan: 100.64.0.0/24 }
          flat: { upstream: isp, nat: none, lan: 10.50.0.0/24 }
          sub: { upstream: flat, nat: none, lan: 10.60.0.0/24 }
          campus: { nat: none, lan: 198.51.100.0/24 }
        hosts:
          h: { attach: sub }
        """))
        func routes(_ node: String) -> [String] {
            plan.steps.compactMap {
                if case .addRoute(node, let dest?, let gw) = $0 { return "\(dest) via \(gw)" }
                return nil
            }
        }
        #expect(routes("internet") == ["198.51.100.0/24 via 198.18.0.2"])
        #expect(routes("isp") == ["10.50.0.0/24 via 100.64.0.2", "10.60.0.0/24 via 100.64.0.2"])
        #expect(routes("flat") == ["10.60.0.0/24 via 10.50.0.2"])
        #expect(routes("sub") == [])
        #expect(plan.node(named: "h")!.publicAddresses == ["198.18.0.1"])
        #expect(plan.node(named: "internet")!.gateway == nil)
        #expect(plan.node(named: "internet")!.subnet == "198.18.0.0/24")
    }

    @Test func planIsCodable() throws {
        let plan = Planner.plan(try TopologyLoader.load(path: topologiesDirectory + "/office-lan.yaml"))
        let data = try JSONEncoderShim.encode(plan)
        #expect(try JSONEncoderShim.decode(data) == plan)
    }
}

@Suite struct StepOrder {
    static let files = ["two-homes", "cgnat", "office-lan", "routed"]

    @Test(arguments: files) func invariants(_ file: String) throws {
        let plan = Planner.plan(try TopologyLoader.load(path: topologiesDirectory + "/\(file).yaml"))
        let order = plan.nodes.map(\.name)
        // Namespaces first, one per node, in node order.
        let creates = plan.steps.prefix { if case .createNamespace = $0 { true } else { false } }
        #expect(creates.map(\.node) == order)
        let rest = plan.steps.dropFirst(creates.count)
        #expect(!rest.contains { if case .createNamespace = $0 { true } else { false } })
        // Every node's steps are one contiguous group, groups in node order (so parents before children).
        var groups: [String] = []
        for s in rest where groups.last != s.node { groups.append(s.node) }
        #expect(groups == order)
        for n in plan.nodes {
            if let parent = n.parent { #expect(order.firstIndex(of: parent)! < order.firstIndex(of: n.name)!) }
        }
        // Each group starts with `lo` up.
        for n in order { #expect(rest.first { $0.node == n } == .setUp(node: n, link: "lo")) }
        // No step uses a link, namespace or next hop before it exists.
        var namespaces = Set<String>()
        var links: [String: Set<String>] = [:]
        var subnets: [String: [IPv4Network]] = [:]
        for step in plan.steps {
            switch step {
            case .createNamespace(let n):
                namespaces.insert(n); links[n] = ["lo"]
            case .setUp(let n, let link):
                #expect(links[n]?.contains(link) == true, "\(step)")
            case .sysctl(let n, _, _):
                #expect(namespaces.contains(n))
            case .addBridge(let n, let name):
                #expect(links[n]?.contains(name) == false, "\(step)")
                links[n]!.insert(name)
            case .addVeth(let n, let name, let master, let peerNode, let peerName):
                #expect(namespaces.contains(peerNode))
                if let master { #expect(links[n]?.contains(master) == true, "\(step)") }
                #expect(links[n]?.contains(name) == false && links[peerNode]?.contains(peerName) == false, "\(step)")
                links[n]!.insert(name); links[peerNode]!.insert(peerName)
            case .addAddress(let n, let link, let cidr):
                #expect(links[n]?.contains(link) == true, "\(step)")
                let parts = cidr.split(separator: "/")
                let net = IPv4Network(network: IPv4Address(IPv4Address(parts[0])!.value & IPv4Network.mask(Int(parts[1])!)),
                                      prefixLength: Int(parts[1])!)!
                subnets[n, default: []].append(net)
            case .addRoute(let n, _, let gw):
                let g = IPv4Address(gw)!
                #expect(subnets[n, default: []].contains { $0.contains(g) }, "\(step): next hop not on a connected subnet")
            case .applyNFTables(let n, _):
                #expect(links[n]?.isSuperset(of: ["wan", "lan"]) == true)
            }
        }
        // Every router and public node forwards; every bridge node turns br_netfilter off.
        for n in plan.nodes where n.kind != .host {
            #expect(rest.contains(.sysctl(node: n.name, key: "net.ipv4.ip_forward", value: "1")))
            #expect(rest.contains(.sysctl(node: n.name, key: "net.bridge.bridge-nf-call-iptables", value: "0")))
        }
    }

    @Test func groupShapeOfARouter() throws {
        let plan = Planner.plan(try load("routers:\n  r: { nat: none, lan: 10.9.0.0/24 }\nhosts:\n  h: { attach: r }\n"))
        let r = plan.steps.filter { $0.node == "r" && $0 != .createNamespace(node: "r") }
        #expect(r == [
            .setUp(node: "r", link: "lo"),
            .sysctl(node: "r", key: "net.ipv4.ip_forward", value: "1"),
            .sysctl(node: "r", key: "net.bridge.bridge-nf-call-iptables", value: "0"),
            .sysctl(node: "r", key: "net.bridge.bridge-nf-call-ip6tables", value: "0"),
            .sysctl(node: "r", key: "net.bridge.bridge-nf-call-arptables", value: "0"),
            .addAddress(node: "r", link: "wan", cidr: "203.0.113.1/24"),
            .addRoute(node: "r", destination: nil, gateway: "203.0.113.254"),
            .addBridge(node: "r", name: "lan"),
            .addAddress(node: "r", link: "lan", cidr: "10.9.0.1/24"),
            .addVeth(node: "r", name: "h", master: "lan", peerNode: "h", peerName: "eth0"),
        ])
    }
}
