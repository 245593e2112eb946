import Testing
import NATModel
@testable import Topology

/// `addresses: N`: a router's pool of consecutive public addresses (RFC 4787 §4.1 pooling).
@Suite struct AddressPools {
    @Test func poolIsConsecutiveAndSkipsTakenAddresses() throws {
        let plan = Planner.plan(try load("""
        routers:
          home: {}
          isp: { nat: cgnat, addresses: 4 }
        hosts:
          srv: { attach: internet, address: 203.0.113.4 }
          phone: { attach: isp }
        """))
        // .1 home; .2 .3 free but .4 is taken, so the first run of four free addresses is .5–.8.
        #expect(addresses(plan, "home")["wan"] == ["203.0.113.1/24"])
        #expect(addresses(plan, "isp")["wan"] == ["203.0.113.5/24", "203.0.113.6/24", "203.0.113.7/24", "203.0.113.8/24"])
        #expect(plan.node(named: "isp")!.upstreamAddresses == ["203.0.113.5", "203.0.113.6", "203.0.113.7", "203.0.113.8"])
        #expect(plan.node(named: "phone")!.publicAddresses == ["203.0.113.5", "203.0.113.6", "203.0.113.7", "203.0.113.8"])
        // Hosts after the pool continue after it; addresses left before it stay free.
        let ruleset = plan.steps.compactMap { step -> String? in
            if case .applyNFTables("isp", let text) = step { return text } else { return nil }
        }.first
        #expect(ruleset?.contains("203.0.113.5-203.0.113.8") == true, "the pool reaches the NAT ruleset")
        #expect(ruleset?.contains("persistent") == true, "cgnat pools are paired")
    }

    @Test func explicitStartAndArbitraryPooling() throws {
        let t = try load("""
        routers:
          carrier: { nat: { preset: symmetric, pooling: arbitrary }, address: 203.0.113.20, addresses: 3 }
        hosts:
          x: { attach: internet }
        """)
        #expect(t.routers[0].addressCount == 3)
        let plan = Planner.plan(t)
        #expect(addresses(plan, "carrier")["wan"] == ["203.0.113.20/24", "203.0.113.21/24", "203.0.113.22/24"])
        #expect(addresses(plan, "x")["eth0"] == ["203.0.113.1/24"])
        let text = plan.steps.compactMap { if case .applyNFTables(_, let r) = $0 { r } else { nil } }.joined()
        #expect(text.contains("203.0.113.20-203.0.113.22"))
        #expect(!text.contains("persistent"), "arbitrary pooling is not persistent")
    }

    @Test func oneAddressStaysTheDefault() throws {
        let t = try load("routers:\n  r: { addresses: 1 }\n")
        #expect(t.routers[0].addressCount == 1)
        #expect(addresses(Planner.plan(t), "r")["wan"] == ["203.0.113.1/24"])
    }

    @Test func rejected() {
        #expect(problems("""
        routers:
          a: { addresses: 0 }
          b: { addresses: many }
          c: { addresses: [1, 2] }
          fw: { nat: firewall, addresses: 2 }
          flat: { nat: none, addresses: 2 }
          one: { nat: { pooling: arbitrary } }
        """) == [
            "2:19: `addresses` takes the number of public addresses of the router's NAT pool, 1 to 256, found the number 0",
            "3:19: `addresses` takes the number of public addresses of the router's NAT pool, 1 to 256, found the string 'many'",
            "4:19: `addresses` takes the number of public addresses of the router's NAT pool, 1 to 256, found a list",
            "5:35: `addresses: 2` makes a pool of public addresses for a NAT; router 'fw' is a firewall without translation and takes exactly one upstream address",
            "6:33: `addresses: 2` makes a pool of public addresses for a NAT; router 'flat' is plain routing (nat: none) and takes exactly one upstream address",
            "7:17: `pooling` chooses among several public addresses, but router 'one' has one; give it a pool with `addresses: N` (N > 1) or leave `pooling` out",
        ])
    }

    @Test func poolMustFitTheUpstreamSubnet() {
        // Explicit start too close to the end of the subnet.
        #expect(problems("""
        routers:
          isp: { nat: cgnat, address: 203.0.113.252, addresses: 4 }
        """) == [
            "2:31: address 203.0.113.254 of 'isp' (in its pool 203.0.113.252-203.0.113.255) is the internet core's own address (the last usable one)",
            "2:31: the 4 consecutive addresses of 'isp' from 203.0.113.252 do not fit in 203.0.113.0/24, the subnet of the internet (the last usable address is 203.0.113.254)",
        ])
        // Overlapping another node's explicit address.
        #expect(problems("""
        routers:
          isp: { nat: cgnat, address: 203.0.113.10, addresses: 4 }
        hosts:
          srv: { attach: internet, address: 203.0.113.12 }
        """) == [
            "4:37: address 203.0.113.12 of 'srv' is already used by 'isp'",
        ])
        // Enough addresses in total, but no unbroken block of four.
        #expect(problems("""
        internet: { subnet: 198.18.0.0/28 }
        routers:
          isp: { nat: cgnat, addresses: 4 }
        hosts:
          h1: { attach: internet, address: 198.18.0.3 }
          h2: { attach: internet, address: 198.18.0.6 }
          h3: { attach: internet, address: 198.18.0.10 }
          h4: { attach: internet, address: 198.18.0.13 }
        """) == [
            "3:3: no room for the 4 consecutive addresses of 'isp' on 198.18.0.0/28, the subnet of the internet: a NAT pool is one unbroken block (nft `snat to A-B`); free some addresses or use a larger subnet",
        ])
        // Too small in total: counted like a STUN server's second address.
        #expect(problems("""
        internet: { subnet: 198.18.0.0/29 }
        routers:
          isp: { nat: cgnat, addresses: 6 }
        """) == [
            "1:21: subnet 198.18.0.0/29 of the internet is too small: 6 usable addresses, needs 7 (its own address and isp (6 addresses))",
        ])
    }

    @Test func everyPooledPlanRendersAndPassesTheNATContextCheck() throws {
        for preset in ["full-cone", "restricted-cone", "port-restricted-cone", "symmetric", "cgnat"] {
            for pooling in ["paired", "arbitrary"] {
                let t = try load("routers:\n  r: { nat: { preset: \(preset), pooling: \(pooling) }, addresses: 3 }\n")
                let node = Planner.plan(t).node(named: "r")!
                let context = NATRulesetContext(wanInterface: "wan", lanInterface: "lan",
                                                wanAddresses: node.upstreamAddresses, lanSubnets: [node.subnet!])
                #expect(NATRuleset.problems(in: context, for: node.nat!).isEmpty)
            }
        }
    }
}

@Suite struct ShellConntrackFlush {
    @Test func everyRulesetLoadIsFollowedByAConntrackFlush() throws {
        let plan = Planner.plan(try load("routers:\n  home: {}\n  flat: { nat: none }\n"))
        let script = ShellScript.render(plan) { "natlab-x.\($0)" }
        let lines = script.split(separator: "\n").map(String.init)
        let end = try #require(lines.firstIndex(of: "NFT"))
        #expect(lines[end + 1] == "  ip netns exec natlab-x.home conntrack -F 2>/dev/null || true")
        #expect(lines.filter { $0.contains("conntrack -F") }.count == 1, "only routers with a ruleset")
    }
}
