import Testing
@testable import NATModel

private func fields(_ pairs: KeyValuePairs<String, String>) -> [(key: String, value: NATSpecValue)] {
    pairs.map { (key: $0.key, value: NATSpecValue.scalar($0.value)) }
}

private func parseErrors(_ pairs: KeyValuePairs<String, String>) -> [NATSpecError] {
    do {
        let p = try NATProfile.parse(fields: fields(pairs))
        Issue.record("expected errors, got \(p)")
        return []
    } catch { return error.errors }
}

@Suite struct PresetTests {
    @Test(arguments: [
        ("full-cone", NATProfile.Kind.nat, NATProfile.Mapping.endpointIndependent, NATProfile.Filtering.endpointIndependent, false),
        ("restricted-cone", .nat, .endpointIndependent, .addressDependent, false),
        ("port-restricted-cone", .nat, .endpointIndependent, .addressAndPortDependent, false),
        ("symmetric", .nat, .addressAndPortDependent, .addressAndPortDependent, false),
        ("cgnat", .nat, .endpointIndependent, .addressAndPortDependent, true),
        ("firewall", .firewall, .endpointIndependent, .addressAndPortDependent, false),
    ])
    func preset(name: String, kind: NATProfile.Kind, mapping: NATProfile.Mapping,
                filtering: NATProfile.Filtering, hairpin: Bool) throws {
        let p = try NATProfile.parse(preset: name)
        #expect(p.kind == kind)
        #expect(p.filtering == filtering)
        #expect(p.hairpin == hairpin)
        #expect(p.preset == name)
        if kind == .nat { #expect(p.mapping == mapping) }
        // The same preset through a `nat:` mapping.
        #expect(try NATProfile.parse(fields: fields(["preset": name])) == p)
    }

    @Test func none() throws {
        let p = try NATProfile.parse(preset: "none")
        #expect(p.kind == .none)
        #expect(NATRuleset.render(p, context: .init(wanInterface: "wan", lanInterface: "br0",
                                                     wanAddresses: [], lanSubnets: [])) == nil)
        #expect(NATRuleset.sysctls(for: p).isEmpty)
    }

    @Test func presetDetails() throws {
        #expect(try NATProfile.parse(preset: "symmetric").effectivePorts == .random)
        #expect(try NATProfile.parse(preset: "port-restricted-cone").ports == .preserve)
        #expect(try NATProfile.parse(preset: "cgnat").pooling == .paired)
        #expect(Set(NATProfile.presetNames).count == 7)
        for name in NATProfile.presetNames { _ = try NATProfile.parse(preset: name) }
    }

    @Test func unknownPreset() {
        #expect(throws: NATSpecError.self) { try NATProfile.parse(preset: "fullcone") }
        do { _ = try NATProfile.parse(preset: "fullcone") } catch {
            #expect(error.key == nil)
            #expect(error.message.contains("did you mean 'full-cone'?"))
            #expect(error.message.contains("port-restricted-cone"))
        }
    }
}

@Suite struct FieldTests {
    @Test func defaultsToPortRestrictedCone() throws {
        let p = try NATProfile.parse(fields: [])
        #expect(p.kind == .nat && p.mapping == .endpointIndependent && p.filtering == .addressAndPortDependent)
        #expect(p.hairpin == false && p.ports == .preserve && p.pooling == .paired && p.preset == nil)
    }

    @Test func everyField() throws {
        let p = try NATProfile.parse(fields: fields([
            "mapping": "address-dependent", "filtering": "endpoint-independent", "hairpin": "true",
            "ports": "20000-20999", "pooling": "arbitrary", "udp-timeout": "30s",
            "udp-stream-timeout": "2m", "tcp-timeout": "3600",
        ]))
        #expect(p == NATProfile(kind: .nat, mapping: .addressDependent, filtering: .endpointIndependent, hairpin: true,
                                udpTimeout: 30, udpStreamTimeout: 120, tcpTimeout: 3600, preset: nil,
                                ports: .range(lower: 20000, upper: 20999), pooling: .arbitrary))
    }

    @Test(arguments: [
        ("mapping", "eim"), ("mapping", "endpoint-independent"), ("mapping", "adm"), ("mapping", "apdm"),
        ("mapping", "address-and-port-dependent"), ("filtering", "eif"), ("filtering", "adf"),
        ("filtering", "apdf"), ("filtering", "address-dependent"), ("hairpin", "false"), ("hairpin", "yes"),
        ("ports", "random"), ("ports", "1-65535"), ("pooling", "paired"), ("udp-timeout", "1h"),
        ("tcp-timeout", "5d"), ("udp-stream-timeout", "90"),
    ])
    func acceptedValue(key: String, value: String) throws {
        _ = try NATProfile.parse(fields: [(key: key, value: .scalar(value))])
    }

    @Test func durations() {
        #expect(DurationText.seconds("30") == 30)
        #expect(DurationText.seconds("30s") == 30)
        #expect(DurationText.seconds("2m") == 120)
        #expect(DurationText.seconds("1h") == 3600)
        #expect(DurationText.seconds(" 1d ") == 86400)
        for bad in ["", "s", "-5", "1.5s", "10x", "m2", "1e3"] { #expect(DurationText.seconds(bad) == nil, "\(bad)") }
    }

    @Test func overridesPreset() throws {
        let p = try NATProfile.parse(fields: fields(["preset": "symmetric", "hairpin": "true"]))
        #expect(p.mapping == .addressAndPortDependent && p.filtering == .addressAndPortDependent && p.hairpin)
        #expect(p.preset == "symmetric")
        let q = try NATProfile.parse(fields: fields(["preset": "full-cone", "filtering": "adf", "ports": "random"]))
        #expect(q.mapping == .endpointIndependent && q.filtering == .addressDependent && q.ports == .random)
        let f = try NATProfile.parse(fields: fields(["preset": "firewall", "filtering": "endpoint-independent",
                                                     "udp-timeout": "60"]))
        #expect(f.kind == .firewall && f.filtering == .endpointIndependent)
    }

    @Test func endpointDependentMappingTakesRandomPorts() throws {
        // From port-restricted-cone (ports preserve, implicit) to ADM: ports become random.
        let p = try NATProfile.parse(fields: fields(["mapping": "adm"]))
        #expect(p.ports == .random)
        let q = try NATProfile.parse(fields: fields(["mapping": "apdm", "ports": "20000-20099"]))
        #expect(q.ports == .range(lower: 20000, upper: 20099))
    }

    @Test func singleUDPTimeoutSetsBoth() throws {
        // P5: deterministic lifetime whatever the traffic pattern.
        let p = try NATProfile.parse(fields: fields(["udp-timeout": "45s"]))
        #expect(p.udpTimeout == 45 && p.udpStreamTimeout == 45)
        #expect(NATRuleset.sysctls(for: p).map { "\($0.key)=\($0.value)" } == [
            "net.netfilter.nf_conntrack_udp_timeout=45", "net.netfilter.nf_conntrack_udp_timeout_stream=45"])
        #expect(NATRuleset.mapTimeout(for: p) == 45)
        let q = try NATProfile.parse(fields: fields(["udp-stream-timeout": "1m", "tcp-timeout": "600"]))
        #expect(NATRuleset.sysctls(for: q).map { "\($0.key)=\($0.value)" } == [
            "net.netfilter.nf_conntrack_udp_timeout=60", "net.netfilter.nf_conntrack_udp_timeout_stream=60",
            "net.netfilter.nf_conntrack_tcp_timeout_established=600"])
        // Profiles built in code get the same rule.
        #expect(NATRuleset.sysctls(for: NATProfile(kind: .nat, udpTimeout: 20)).count == 2)
        #expect(NATRuleset.sysctls(for: NATProfile(kind: .nat)).isEmpty)
        #expect(NATRuleset.mapTimeout(for: NATProfile(kind: .nat)) == 120)
        let r = try NATProfile.parse(fields: fields(["udp-timeout": "10", "udp-stream-timeout": "300"]))
        #expect(NATRuleset.mapTimeout(for: r) == 300)
    }
}

@Suite struct ErrorTests {
    @Test func unknownKeySuggestsClosest() {
        let e = parseErrors(["maping": "eim"])
        #expect(e.count == 1)
        #expect(e.first?.key == "maping")
        #expect(e.first?.message.contains("did you mean 'mapping'?") == true)
        #expect(parseErrors(["udp_timeout": "30"]).first?.message.contains("'udp-timeout'") == true)
        #expect(parseErrors(["colour": "red"]).first?.message.contains("did you mean") == false)
    }

    @Test(arguments: [
        ("preset", "symetric", "did you mean 'symmetric'?"),
        ("mapping", "endpoint-independant", "did you mean 'endpoint-independent'?"),
        ("filtering", "full", "allowed: endpoint-independent (eif)"),
        ("hairpin", "maybe", "allowed: true, false"),
        ("ports", "20999-20000", "LOW <= HIGH"),
        ("ports", "0-100", "1-65535"),
        ("ports", "sequential", "allowed: preserve, random"),
        ("pooling", "pared", "did you mean 'paired'?"),
        ("udp-timeout", "30x", "from 1s to 5d"),
        ("udp-timeout", "0", "from 1s to 5d"),
        ("tcp-timeout", "6d", "from 1s to 5d"),
    ])
    func badValue(key: String, value: String, expected: String) {
        let e = parseErrors([key: value])
        #expect(e.count == 1)
        #expect(e.first?.key == key)
        #expect(e.first?.message.contains(expected) == true, "\(e.first?.message ?? "")")
    }

    @Test func listValueAndDuplicateKey() {
        do {
            _ = try NATProfile.parse(fields: [(key: "mapping", value: .list(["eim", "adm"])),
                                              (key: "hairpin", value: .scalar("true")),
                                              (key: "hairpin", value: .scalar("false"))])
            Issue.record("expected errors")
        } catch {
            #expect(error.errors.map(\.key) == ["mapping", "hairpin"])
            #expect(error.errors[0].message.contains("single value"))
            #expect(error.errors[1].message.contains("more than once"))
        }
    }

    @Test func contradictions() {
        let fw = parseErrors(["preset": "firewall", "mapping": "eim", "hairpin": "true", "ports": "random",
                              "pooling": "paired", "filtering": "adf"])
        #expect(fw.map(\.key) == ["mapping", "hairpin", "ports", "pooling"])
        #expect(fw.allSatisfy { $0.message.contains("without translating") })

        let none = parseErrors(["preset": "none", "filtering": "eif", "udp-timeout": "30"])
        #expect(none.map(\.key) == ["filtering", "udp-timeout"])
        #expect(none.allSatisfy { $0.message.contains("preset 'none'") })

        let preserve = parseErrors(["preset": "symmetric", "ports": "preserve"])
        #expect(preserve.map(\.key) == ["ports"])
        #expect(preserve.first?.message.contains("needs endpoint-independent mapping") == true)

        let adm = parseErrors(["mapping": "address-dependent", "ports": "preserve"])
        #expect(adm.map(\.key) == ["ports"])

        let timeouts = parseErrors(["udp-timeout": "5m", "udp-stream-timeout": "1m"])
        #expect(timeouts.map(\.key) == ["udp-timeout"])
    }

    @Test func everyProblemAtOnce() {
        let e = parseErrors(["preset": "cgnatt", "maping": "eim", "filtering": "eif2", "hairpin": "2",
                             "ports": "x", "pooling": "y", "udp-timeout": "z", "tcp-timeout": "0"])
        #expect(e.map(\.key) == ["maping", "preset", "filtering", "hairpin", "ports", "pooling",
                                 "udp-timeout", "tcp-timeout"])
        #expect(e[1].message.contains("did you mean 'cgnat'?"))
    }

    @Test func blockUDP() throws {
        let p = try NATProfile.parse(fields: [("preset", .scalar("firewall")), ("block-udp", .scalar("true"))])
        #expect(p.blockUDP == true)
        let context = NATRulesetContext(wanInterface: "wan", lanInterface: "lan", wanAddresses: ["203.0.113.1"],
                                        lanSubnets: ["10.1.0.0/24"])
        let text = try #require(NATRuleset.render(p, context: context))
        #expect(text.contains("meta l4proto udp drop"))
        #expect(NATRuleset.render(try NATProfile.parse(preset: "firewall"), context: context)?.contains("udp drop") == false)
        #expect(throws: NATSpecErrors.self) { try NATProfile.parse(fields: [("block-udp", .scalar("maybe"))]) }
        #expect(throws: NATSpecErrors.self) { try NATProfile.parse(fields: [("preset", .scalar("none")), ("block-udp", .scalar("true"))]) }
    }
}
