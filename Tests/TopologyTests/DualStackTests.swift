import Foundation
import Testing
import NATModel
@testable import Topology

@Suite struct IPv6Values {
    @Test func parseAndFormatRFC5952() {
        for (text, canonical) in [("2001:db8::1", "2001:db8::1"), ("2001:0DB8:0:0:0:0:0:1", "2001:db8::1"),
                                  ("::", "::"), ("::1", "::1"), ("2001:db8:0:1:0:0:0:0", "2001:db8:0:1::"),
                                  ("1:0:0:2:0:0:0:3", "1:0:0:2::3"), ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1")] {
            #expect(IPv6Address(text)?.description == canonical, "\(text)")
        }
        for bad in ["", "1::2::3", "12345::", "2001:db8::g", "1:2:3:4:5:6:7:8:9", "1:2:3", "::ffff:1.2.3.4", ":::"] {
            #expect(IPv6Address(bad) == nil, "\(bad)")
        }
        let net = IPv6Network("2001:db8:1::/64")!
        #expect(net.contains(IPv6Address("2001:db8:1::ffff")!))
        #expect(!net.contains(IPv6Address("2001:db8:2::1")!))
        #expect(net.overlaps(IPv6Network("2001:db8::/32")!))
        #expect(!net.overlaps(IPv6Network("2001:db8:2::/64")!))
        #expect(IPv6Network("2001:db8:1::1/64") == nil)
        #expect(AddressPlan6.mirror(IPv4Address("203.0.113.254")!, in: IPv4Network("203.0.113.0/24")!,
                                    onto: Topology.defaultInternetSubnet6)?.description == "2001:db8:ffff::254")
        #expect(AddressPlan6.automaticLAN(12)?.description == "2001:db8:12::/64")
    }
}

@Suite struct DualStackPlan {
    static let yaml = """
    name: ds
    ipv6: true
    routers:
      home: { nat: port-restricted-cone }
      isp:  { nat: cgnat }
      inner: { upstream: isp, nat: none }
      fw:   { nat: firewall, lan: 198.51.100.0/24, lan6: 2001:db8:100::/64, address6: 2001:db8:ffff::99 }
    hosts:
      alice: { attach: home }
      carol: { attach: inner, address6: 2001:db8:3::abc }
      stun:  { attach: internet, run: stun-server }
    """

    @Test func addressesMirrorTheIPv4Plan() throws {
        let plan = Planner.plan(try load(Self.yaml))
        func six(_ node: String, _ link: String) -> [String] {
            plan.node(named: node)?.interfaces.first { $0.name == link }?.addresses6 ?? []
        }
        #expect(six("internet", "ix") == ["2001:db8:ffff::254/64"])
        #expect(six("home", "wan") == ["2001:db8:ffff::1/64"])
        #expect(six("home", "lan") == ["2001:db8:1::1/64"])
        #expect(six("alice", "eth0") == ["2001:db8:1::2/64"])
        #expect(six("isp", "lan") == ["2001:db8:2::1/64"])
        #expect(six("inner", "wan") == ["2001:db8:2::2/64"])
        #expect(six("carol", "eth0") == ["2001:db8:3::abc/64"])
        #expect(six("fw", "wan") == ["2001:db8:ffff::99/64"])
        #expect(six("fw", "lan") == ["2001:db8:100::1/64"])
        #expect(six("stun", "eth0") == ["2001:db8:ffff::4/64", "2001:db8:ffff::5/64"])
        #expect(plan.node(named: "alice")?.gateway6 == "2001:db8:1::1")
        #expect(plan.node(named: "home")?.gateway6 == "2001:db8:ffff::254")
        #expect(plan.node(named: "home")?.subnet6 == "2001:db8:1::/64")
        #expect(plan.node(named: "alice")?.upstreamAddresses6 == ["2001:db8:1::2"])
        // IPv4 unchanged: the IPv4 list holds IPv4 only.
        #expect(plan.node(named: "stun")?.upstreamAddresses == ["203.0.113.4", "203.0.113.5"])
    }

    @Test func everyLANIsRoutedInIPv6AndForwardingIsOn() throws {
        let plan = Planner.plan(try load(Self.yaml))
        func routes(_ node: String) -> [String] {
            plan.steps.compactMap {
                if case .addRoute(node, let d, let g) = $0, BuildStep.isIPv6(g) { "\(d ?? "default") via \(g)" } else { nil }
            }
        }
        // NAT'd LANs too (no NAT66), and a LAN two levels down through both routers.
        #expect(routes("internet") == ["2001:db8:1::/64 via 2001:db8:ffff::1", "2001:db8:2::/64 via 2001:db8:ffff::2",
                                       "2001:db8:3::/64 via 2001:db8:ffff::2", "2001:db8:100::/64 via 2001:db8:ffff::99"])
        #expect(routes("isp") == ["default via 2001:db8:ffff::254", "2001:db8:3::/64 via 2001:db8:2::2"])
        #expect(routes("alice") == ["default via 2001:db8:1::1"])
        for node in ["internet", "home", "isp", "inner", "fw"] {
            #expect(plan.steps.contains(.sysctl(node: node, key: "net.ipv6.conf.all.forwarding", value: "1")), "\(node)")
        }
        #expect(!plan.steps.contains { if case .sysctl("alice", let k, _) = $0 { k.contains("ipv6") } else { false } })
    }

    @Test func natRoutersFilterIPv6AndFirewallsCoverBothFamilies() throws {
        let plan = Planner.plan(try load(Self.yaml))
        func ruleset(_ node: String) -> String? {
            plan.steps.lazy.compactMap { if case .applyNFTables(node, let r) = $0 { r } else { nil } }.first
        }
        let home = try #require(ruleset("home"))
        #expect(home.contains("table ip natlab {"))
        #expect(home.contains("table ip6 natlab {"))
        #expect(home.contains("lan lan 2001:db8:1::/64"))
        let isp = try #require(ruleset("isp"))
        #expect(isp.contains("lan lan 2001:db8:2::/64, 2001:db8:3::/64"), "the routed IPv6 LAN behind the CGNAT is covered")
        let fw = try #require(ruleset("fw"))
        #expect(fw.contains("table inet natlab {"))
        #expect(!fw.contains("table ip6"))
        #expect(ruleset("inner") == nil)
    }

    @Test func shellUsesIP6AndNodad() throws {
        let script = ShellScript.render(Planner.plan(try load(Self.yaml))) { "natlab-ds.\($0)" }
        #expect(script.contains("  ip -6 -n natlab-ds.alice addr add 2001:db8:1::2/64 dev eth0 nodad\n"))
        #expect(script.contains("  ip -6 -n natlab-ds.alice route add default via 2001:db8:1::1\n"))
        #expect(script.contains("  ip -6 -n natlab-ds.internet route add 2001:db8:1::/64 via 2001:db8:ffff::1\n"))
        #expect(script.contains("sysctl -qw net.ipv6.conf.all.forwarding=1"))
        #expect(script.contains("table ip6 natlab {"))
    }

    @Test func ipv4OnlyFilesAreUnchanged() throws {
        for file in try FileManager.default.contentsOfDirectory(atPath: topologiesDirectory).filter({ $0.hasSuffix(".yaml") }) {
            let t = try TopologyLoader.load(path: topologiesDirectory + "/" + file)
            guard !t.isDualStack else { continue }
            let plan = Planner.plan(t)
            let json = String(decoding: try JSONEncoderShim.encode(plan), as: UTF8.self)
            #expect(!json.contains("addresses6") && !json.contains("gateway6") && !json.contains("subnet6"), "\(file)")
            for step in plan.steps {
                switch step {
                case .addAddress(_, _, let c): #expect(!BuildStep.isIPv6(c), "\(file)")
                case .addRoute(_, _, let g): #expect(!BuildStep.isIPv6(g), "\(file)")
                case .sysctl(_, let k, _): #expect(!k.contains("ipv6"), "\(file)")
                case .applyNFTables(_, let r): #expect(!r.contains("table ip6"), "\(file)")
                default: break
                }
            }
            #expect(!ShellScript.render(plan) { $0 }.contains("ip -6"), "\(file)")
        }
    }

    @Test func dualStackIsOptIn() throws {
        #expect(try load("hosts: { a: { attach: internet } }").isDualStack == false)
        #expect(try load("ipv6: true\nhosts: { a: { attach: internet } }").internetSubnet6 == Topology.defaultInternetSubnet6)
        // Any IPv6 key turns it on.
        let t = try load("internet: { subnet6: 2001:db8:aaaa::/64 }\nhosts: { a: { attach: internet } }")
        #expect(t.internetSubnet6?.description == "2001:db8:aaaa::/64")
        #expect(try load("hosts: { a: { attach: internet, address6: 2001:db8:ffff::a } }").isDualStack)
    }
}

@Suite struct DualStackValidation {
    @Test func badValuesHavePositions() {
        #expect(problems("ipv6: yes please\nhosts: { a: { attach: internet } }")
                == ["1:7: `ipv6` takes true (a dual-stack lab: IPv6 on every segment) or false, found the string 'yes please'"])
        #expect(problems("internet: { subnet6: 2001:db8::1/64 }\nhosts: { a: { attach: internet } }")
                == ["1:22: IPv6 subnet '2001:db8::1/64' has host bits set; did you mean '2001:db8::/64'?"])
        #expect(problems("internet: { subnet6: 10.0.0.0/8 }\nhosts: { a: { attach: internet } }")
                == ["1:22: invalid IPv6 subnet '10.0.0.0/8': expected an IPv6 CIDR like 2001:db8:1::/64"])
        #expect(problems("internet: { subnet6: 2001:db8::/124 }\nhosts: { a: { attach: internet } }")
                == ["1:22: IPv6 subnet '2001:db8::/124' is too small: use a /64 (at most /120)"])
        #expect(problems("hosts: { a: { attach: internet, address6: 2001:db8:ffff::1/64 } }")
                == ["1:43: invalid IPv6 address '2001:db8:ffff::1/64': give the address without a prefix length"])
        #expect(problems("routers: { r: { lan6: 2001:db8:1::/64, adress6: x } }").first?.contains("did you mean 'address6'") == true)
    }

    @Test func ipv6FalseWithIPv6Keys() {
        #expect(problems("""
        ipv6: false
        routers: { r: { lan6: 2001:db8:1::/64 } }
        """) == ["2:17: `lan6` is an IPv6 setting, but the lab says `ipv6: false`: remove one of them"])
    }

    @Test func overlapsAndAddresses() {
        let yaml = """
        ipv6: true
        routers:
          a: { lan6: 2001:db8:ffff::/48 }
          b: { lan6: 2001:db8:5::/64 }
          c: { lan6: 2001:db8:5::/64 }
        hosts:
          h1: { attach: b, address6: 2001:db8:6::1 }
          h2: { attach: b, address6: 2001:db8:5::1 }
          h3: { attach: c, address6: "2001:db8:5::" }
          h4: { attach: internet, address6: 2001:db8:ffff::5 }
          h5: { attach: internet }
        """
        #expect(problems(yaml) == [
            "3:14: IPv6 LAN 2001:db8:ffff::/48 of 'a' overlaps the internet subnet6 2001:db8:ffff::/64",
            "5:14: IPv6 LAN 2001:db8:5::/64 of 'c' overlaps 2001:db8:5::/64, the IPv6 LAN of 'b' (IPv6 is routed without translation: every IPv6 subnet of a lab must be distinct)",
            "7:30: IPv6 address 2001:db8:6::1 of 'h1' is outside 2001:db8:5::/64, the IPv6 subnet of router 'b'",
            "8:30: IPv6 address 2001:db8:5::1 of 'h2' is already used by router 'b'",
            "9:30: IPv6 address 2001:db8:5:: of 'h3' is the subnet-router anycast address of 2001:db8:5::/64",
            "11:3: IPv6 address 2001:db8:ffff::5 of 'h5' is already used by 'h4'",
        ])
    }

    @Test func subnetTooSmallToMirror() {
        // 203.0.113.254 mirrors to ::254, beyond a /120's 8 bits.
        #expect(problems("internet: { subnet6: 2001:db8::/120 }\nhosts: { a: { attach: internet } }")
                == ["1:22: IPv6 subnet 2001:db8::/120 is too small to mirror the IPv4 plan of the internet (interface IDs are IPv4 host numbers): use a /64"])
    }
}
