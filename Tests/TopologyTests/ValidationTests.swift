import Testing
@testable import Topology

@Suite struct SyntaxAndShape {
    @Test func yamlSyntaxErrorHasOneBasedPosition() {
        let yaml = """
        routers:
          home1:
            nat: port-restricted-cone
           lan: 10.0.0.0/24
        """
        #expect(problems(yaml) == ["4:4: invalid YAML: did not find expected key (while parsing a block mapping at 2:3)"])
    }

    @Test func unclosedFlowMapping() {
        let yaml = """
        routers:
          home1: { nat: port-restricted-cone
        hosts:
          a: { attach: home1 }
        """
        #expect(problems(yaml) == ["3:6: invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping at 2:10)"])
    }

    @Test func diagnosticPrintsLikeACompiler() {
        do {
            _ = try TopologyLoader.parse("routers: [a]\n", file: "x/lab.yaml")
            Issue.record("should fail")
        } catch {
            #expect(error.diagnostics.map(\.description)
                    == ["x/lab.yaml:1:10: error: expected a mapping for `routers` like `home1: { nat: port-restricted-cone }`, found a list"])
        }
    }

    @Test func emptyFileAndCommentsOnly() {
        #expect(problems("") == ["1:1: the file is empty: expected a mapping with `routers:` and/or `hosts:`"])
        #expect(problems("# nothing\n") == ["1:1: the file is empty: expected a mapping with `routers:` and/or `hosts:`"])
    }

    @Test func noNodes() {
        #expect(problems("name: x\n") == ["1:1: the lab has no nodes: add `routers:` and/or `hosts:`"])
        #expect(problems("routers: {}\nhosts:\n") == ["1:1: the lab has no nodes: add `routers:` and/or `hosts:`"])
    }

    @Test func topLevelMustBeAMapping() {
        #expect(problems("- a\n- b\n") == ["1:1: expected a mapping for the top level like `routers:` and `hosts:`, found a list"])
    }

    @Test func wrongTypes() {
        let yaml = """
        routers:
          r1: [nat, none]
          r2: { upstream: [internet] }
        hosts:
          h: { attach: internet, address: { a: 1 } }
        """
        #expect(problems(yaml) == [
            "2:7: expected a mapping for router 'r1' like `{ upstream: internet, lan: 192.168.1.0/24, nat: port-restricted-cone }`, found a list",
            "3:19: expected a router name or `internet`, found a list",
            "5:35: expected an IPv4 address, found a mapping",
        ])
    }

    @Test func unknownKeysWithSuggestions() {
        let yaml = """
        nmae: x
        routers:
          r1: { nta: none, colour: red }
        hosts:
          h: { atach: r1 }
        internet: { subnett: 203.0.113.0/24 }
        """
        #expect(problems(yaml) == [
            "1:1: unknown key 'nmae' in the top level; did you mean 'name'?",
            "3:9: unknown key 'nta' in router 'r1'; did you mean 'nat'?",
            "3:20: unknown key 'colour' in router 'r1' (expected one of: upstream, lan, lan6, nat, address, address6, addresses)",
            "5:3: host 'h' needs `attach:` (a router name or `internet`)",
            "5:8: unknown key 'atach' in host 'h'; did you mean 'attach'?",
            "6:13: unknown key 'subnett' in `internet`; did you mean 'subnet'?",
        ])
    }

    @Test func duplicateKeys() {
        let yaml = """
        routers:
          home1: {}
          home1: { lan: 10.9.0.0/24 }
        hosts:
          a: { attach: home1, attach: internet }
        """
        #expect(problems(yaml) == [
            "3:3: duplicate key 'home1' in `routers` (first at 2:3)",
            "5:23: duplicate key 'attach' in host 'a' (first at 5:8)",
        ])
    }
}

@Suite struct Names {
    @Test func invalidTooLongReservedAndDuplicate() {
        let yaml = """
        routers:
          Home: {}
          averyveryverylongname: {}
          lan: {}
          9lives: {}
          r: {}
        hosts:
          r: { attach: internet }
          123: { attach: internet }
        """
        #expect(problems(yaml) == [
            "2:3: invalid name 'Home': node names are lowercase letters, digits, '-' and '_', starting with a letter",
            "3:3: name 'averyveryverylongname' is 21 bytes long; at most 15 (it becomes an interface name)",
            "4:3: 'lan' is a reserved name (reserved: all, default, eth0, internet, ix, lan, lo, wan)",
            "5:3: invalid name '9lives': node names are lowercase letters, digits, '-' and '_', starting with a letter",
            "8:3: duplicate name 'r': already used by the router at 6:3",
            "9:3: invalid name '123': node names are lowercase letters, digits, '-' and '_', starting with a letter",
        ])
    }

    @Test func fifteenBytesIsFine() throws {
        let t = try load("hosts:\n  abcdefghijklmno: { attach: internet }\n")
        #expect(t.hosts.map(\.name) == ["abcdefghijklmno"])
    }

    @Test func labName() {
        #expect(problems("name: Bad_Name\nhosts: { h: { attach: internet } }\n")
                == ["1:7: invalid lab name 'Bad_Name': use lowercase letters, digits and '-', starting with a letter or digit, at most 24 characters"])
        #expect(problems("hosts: { h: { attach: internet } }\n", file: "dir/My Lab.yaml")
                == ["1:1: the lab name 'My Lab' taken from the file name is invalid (lowercase letters, digits and '-', at most 24 characters): add a `name:`"])
    }

    @Test func defaultNameFromFile() throws {
        #expect(try load("hosts: { h: { attach: internet } }\n", file: "Topologies/two-homes.yaml").name == "two-homes")
    }
}

@Suite struct References {
    @Test func attachTargets() {
        let yaml = """
        routers:
          home1: {}
        hosts:
          a: { attach: hom1 }
          b: { attach: a }
          c: { attach: nowhere }
          d: { address: 10.1.0.9 }
        """
        #expect(problems(yaml) == [
            "4:16: unknown attach target 'hom1' of host 'a'; did you mean 'home1'? (routers: home1, internet)",
            "5:16: host 'b' is attached to 'a', which is a host; hosts attach to a router or `internet`",
            "6:16: unknown attach target 'nowhere' of host 'c' (routers: home1, internet)",
            "7:3: host 'd' needs `attach:` (a router name or `internet`)",
        ])
    }

    @Test func upstreamTargets() {
        let yaml = """
        routers:
          r1: { upstream: internt }
          r2: { upstream: h }
          r3: { upstream: r3 }
        hosts:
          h: { attach: internet }
        """
        #expect(problems(yaml) == [
            "2:19: unknown upstream 'internt' of router 'r1'; did you mean 'internet'? (routers: r1, r2, r3, internet)",
            "3:19: upstream 'h' of router 'r2' is a host; a router's upstream is `internet` or another router",
            "4:19: upstream cycle: r3 → r3 (a router cannot be its own upstream)",
        ])
    }

    @Test func upstreamCycleIsNamed() {
        let yaml = """
        routers:
          top: {}
          a: { upstream: c }
          b: { upstream: a }
          c: { upstream: b }
          d: { upstream: c }
        """
        #expect(problems(yaml) == ["3:18: upstream cycle: a → c → b → a"])
    }

    @Test func unknownRoleAndBadExec() {
        let yaml = """
        hosts:
          a: { attach: internet, run: stun }
          b: { attach: internet, run: { exec: my-app } }
          c: { attach: internet, run: { exe: [x] } }
          d: { attach: internet, run: { exec: [my-app, --peer, "1.2.3.4"] } }
        """
        #expect(problems(yaml) == [
            "2:31: unknown role 'stun' (one of stun-server, turn-server, rendezvous, agent, coturn, or `{ exec: [program, args…] }`); did you mean 'stun-server'?",
            "3:39: `exec` takes a list (program and arguments, no shell): `exec: [program, args…]`, found the string 'my-app'",
            "4:31: `run` as a mapping needs `exec: [program, args…]`",
            "4:33: unknown key 'exe' in `run`; did you mean 'exec'?",
        ])
    }

    @Test func rolesAreStored() throws {
        let t = try load("""
        hosts:
          a: { attach: internet, run: agent }
          d: { attach: internet, run: { exec: [my-app, --peer, "1.2.3.4"] } }
        """)
        #expect(t.hosts.map(\.role) == [.agent, .exec(["my-app", "--peer", "1.2.3.4"])])
    }
}

@Suite struct NATSpecs {
    @Test func natErrorsComeFromNATModelWithPositions() {
        let yaml = """
        routers:
          a: { nat: no-such-preset }
          b:
            nat:
              mapping: sideways
          c: { nat: [full-cone] }
          d: { nat: { mapping: { x: 1 } } }
        """
        let p = problems(yaml)
        #expect(p.count == 4)
        #expect(p[0].hasPrefix("2:13: "))
        // Whatever NATModel says about a field mapping lands on the offending key (or the mapping itself).
        #expect(p[1].hasPrefix("5:7: "))
        #expect(p[2].hasPrefix("6:13: `nat` takes a preset name"))
        #expect(p[3] == "7:24: expected a value or a list for `mapping`, found a mapping")
    }

    @Test func presetsPassThrough() throws {
        let t = try load("routers:\n  a: { nat: none }\n  b: {}\n")
        #expect(t.routers[0].nat.kind == .none)
        #expect(t.routers[1].nat.preset == "port-restricted-cone")
    }
}

@Suite struct Addresses {
    @Test func invalidSubnetsAndAddresses() {
        let yaml = """
        internet: { subnet: 203.0.113.0/33 }
        routers:
          a: { lan: 192.168.1.1/24 }
          b: { lan: 192.168.2.0, address: 203.0.113.300 }
          c: { lan: banana }
        hosts:
          h: { attach: internet, address: 203.0.113.5/24 }
        """
        #expect(problems(yaml) == [
            "1:21: invalid subnet '203.0.113.0/33': expected an IPv4 CIDR like 192.168.1.0/24",
            "3:13: subnet '192.168.1.1/24' has host bits set; did you mean '192.168.1.0/24'?",
            "4:13: invalid subnet '192.168.2.0': expected an IPv4 CIDR like 192.168.1.0/24",
            "4:35: invalid IPv4 address '203.0.113.300'",
            "5:13: invalid subnet 'banana': expected an IPv4 CIDR like 192.168.1.0/24",
            "7:35: invalid IPv4 address '203.0.113.5/24': give the address without a prefix length",
        ])
    }

    @Test func explicitAddressesOutsideReservedOrDuplicated() {
        let yaml = """
        routers:
          home: { lan: 192.168.1.0/24, address: 198.51.100.1 }
        hosts:
          a: { attach: home, address: 192.168.1.0 }
          b: { attach: home, address: 192.168.1.255 }
          c: { attach: home, address: 192.168.1.1 }
          d: { attach: home, address: 192.168.1.7 }
          e: { attach: home, address: 192.168.1.7 }
          f: { attach: internet, address: 203.0.113.254 }
        """
        #expect(problems(yaml) == [
            "2:41: address 198.51.100.1 of 'home' is outside 203.0.113.0/24, the subnet of the internet",
            "4:31: address 192.168.1.0 of 'a' is the network address of 192.168.1.0/24",
            "5:31: address 192.168.1.255 of 'b' is the broadcast address of 192.168.1.0/24",
            "6:31: address 192.168.1.1 of 'c' is the LAN address of router 'home' (the first usable one)",
            "8:31: address 192.168.1.7 of 'e' is already used by 'd'",
            "9:35: address 203.0.113.254 of 'f' is the internet core's own address (the last usable one)",
        ])
    }

    @Test func subnetTooSmallCountsTheSecondSTUNAddress() {
        let yaml = """
        internet: { subnet: 198.18.0.0/30 }
        routers:
          tiny: { lan: 10.0.0.0/30 }
        hosts:
          a: { attach: tiny }
          b: { attach: tiny }
          stun: { attach: internet, run: stun-server }
        """
        #expect(problems(yaml) == [
            "1:21: subnet 198.18.0.0/30 of the internet is too small: 2 usable addresses, needs 4 (its own address and tiny, stun (2 addresses))",
            "3:16: subnet 10.0.0.0/30 of router 'tiny' is too small: 2 usable addresses, needs 3 (its own address and a, b)",
        ])
    }

    @Test func overlapsOnThePathToTheInternet() {
        let yaml = """
        routers:
          isp: { lan: 100.64.0.0/16 }
          home: { upstream: isp, lan: 100.64.1.0/24 }
          bad: { lan: 203.0.113.128/25 }
        """
        #expect(problems(yaml) == [
            "3:31: LAN 100.64.1.0/24 of 'home' overlaps 100.64.0.0/16, the LAN of 'isp' on its path to the internet",
            "4:15: LAN 203.0.113.128/25 of 'bad' overlaps the internet subnet 203.0.113.0/24",
        ])
    }

    @Test func routedLANsMustNotOverlapInOneRealm() {
        let yaml = """
        routers:
          campus1: { nat: none, lan: 198.51.100.0/24 }
          campus2: { nat: none, lan: 198.51.100.128/25 }
          isp: { lan: 100.64.0.0/24 }
          flat1: { upstream: isp, nat: none, lan: 10.50.0.0/24 }
          flat2: { upstream: isp, nat: none, lan: 10.50.0.0/24 }
        """
        #expect(problems(yaml) == [
            "3:30: LAN 198.51.100.128/25 of 'campus2' overlaps 198.51.100.0/24, the LAN of 'campus1': both are routed without translation on the internet",
            "6:43: LAN 10.50.0.0/24 of 'flat2' overlaps 10.50.0.0/24, the LAN of 'flat1': both are routed without translation behind NAT 'isp'",
        ])
    }

    @Test func translatedLANsMayRepeat() throws {
        let t = try load("""
        routers:
          home1: { lan: 192.168.1.0/24 }
          home2: { lan: 192.168.1.0/24 }
          isp: { lan: 100.64.0.0/24 }
          homec: { upstream: isp, lan: 192.168.1.0/24 }
        """)
        #expect(t.routers.map(\.lan.description) == ["192.168.1.0/24", "192.168.1.0/24", "100.64.0.0/24", "192.168.1.0/24"])
    }

    @Test func automaticLANsSkipExplicitSubnets() throws {
        let t = try load("""
        routers:
          a: {}
          b: { lan: 10.2.0.0/16 }
          c: {}
          d: { lan: 10.0.0.0/15 }
        """)
        // a: K=1 overlaps 10.0.0.0/15 -> K=2 overlaps 10.2/16 -> K=3; c: K=3 taken -> K=4.
        #expect(t.routers.map(\.lan.description) == ["10.3.0.0/24", "10.2.0.0/16", "10.4.0.0/24", "10.0.0.0/15"])
        #expect(t.routers.map(\.lanIsExplicit) == [false, true, false, true])
    }
}

@Suite struct AllAtOnce {
    @Test func everyProblemIsReportedSortedByPosition() {
        let yaml = """
        routers:
          home1: { nat: none, lan: 10.0.0.0/33 }
          home2: { upstream: nowhere }
        hosts:
          alice: { attach: home1, run: dancer }
          bob: { attach: bob }
          Carol: { attach: internet }
        extra: 1
        """
        let p = problems(yaml)
        #expect(p.map { String($0.prefix { $0 != " " }) } == ["2:28:", "3:22:", "5:32:", "6:18:", "7:3:", "8:1:"])
    }
}
