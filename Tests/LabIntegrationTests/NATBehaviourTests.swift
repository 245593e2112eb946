import Foundation
import Testing
import TestSupport
import LinuxNetworking
import Topology
import NATModel
@testable import Lab

/// NAT routers on the real kernel: conntrack flush after a ruleset load, `natlab nat explain` on every
/// shipped topology, and two NAT layers (home NAT behind a CGNAT). Needs root; under CI=true a missing
/// privilege fails every test here.
@Suite(.enabled(if: Privilege.shouldRun, "needs root and network namespaces"))
struct NATBehaviourTests {
    static let shipped: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: Harness.packageRoot + "/Topologies")) ?? [])
        .filter { $0.hasSuffix(".yaml") }.sorted()

    /// UDP entries of a node's conntrack table towards `port` (`conntrack -L`).
    static func udpEntries(lab: String, node: String, port: Int) throws -> [String] {
        let r = try Harness.natlab("exec", lab, node, "--", "conntrack", "-L", "-p", "udp")
        #expect(r.status == 0, "conntrack -L failed: \(r.stderr)")
        return r.stdout.split(separator: "\n").map(String.init).filter { $0.contains("dport=\(port) ") }
    }

    @Test("re-applying a router's ruleset flushes its conntrack table (P3); loading alone would not")
    func conntrackFlushedAfterApply() throws {
        try Privilege.require()
        let lab = Harness.uniqueLab("ct")
        let up = try Harness.natlab("up", Harness.topology("two-homes.yaml"), "--name", lab)
        #expect(up.status == 0, "up failed: \(up.stderr)")
        defer { _ = try? Harness.natlab("down", lab) }
        let info = try Harness.labJSON(lab)
        let stun = try #require(Harness.address(info, node: "stun", interface: "eth0"))
        let send = try Harness.natlab("exec", lab, "alice", "--", "python3", Harness.udpTool, "send", "40000", "\(stun):3478")
        #expect(send.status == 0, "\(send.stderr)")
        #expect(try Self.udpEntries(lab: lab, node: "home1", port: 3478).count == 1, "the datagram made no conntrack entry")

        let record = try LabEngine().record(of: lab)
        // The record keeps no build steps: plan the same file again (planning is pure).
        let plan = Planner.plan(try TopologyLoader.load(path: Harness.topology("two-homes.yaml")))
        let step = try #require(plan.steps.first {
            if case .applyNFTables("home1", _) = $0 { true } else { false }
        })
        guard case .applyNFTables(_, let ruleset) = step else { return }
        let worker = try NamespaceWorker()
        let file = try NetworkNamespace.open(name: record.namespace(of: "home1"))

        // Control: loading the ruleset by itself leaves the entry (and its old translation) in place.
        // (The plan's text is for a new namespace; here the table exists, so replace it.)
        try worker.run(in: file) { try NFTables.apply("table ip natlab\ndelete table ip natlab\n" + ruleset) }
        #expect(try Self.udpEntries(lab: lab, node: "home1", port: 3478).count == 1, "P3 control: a load alone keeps entries")

        // The build step: load, then flush (it flushes because the namespace has an entry).
        try LabBuilder(lab: lab, worker: worker, netfilter: NetfilterSockets()).build([step]) { _ in }
        #expect(try Self.udpEntries(lab: lab, node: "home1", port: 3478).isEmpty, "the entry survived the build step")
        // And the in-process flush works on its own.
        _ = try Harness.natlab("exec", lab, "alice", "--", "python3", Harness.udpTool, "send", "40001", "\(stun):3478")
        #expect(try Self.udpEntries(lab: lab, node: "home1", port: 3478).count == 1)
        try worker.run(in: file) { try Conntrack.flush() }
        #expect(try Self.udpEntries(lab: lab, node: "home1", port: 3478).isEmpty)
    }

    @Test("every shipped topology comes up; exec works in a host; nat explain works on every router", arguments: shipped)
    func shippedTopology(_ file: String) throws {
        try Privilege.require()
        let lab = Harness.uniqueLab("sh")
        let up = try Harness.natlab("up", Harness.topology(file), "--name", lab)
        #expect(up.status == 0, "\(file): up failed: \(up.stderr)")
        defer {
            let down = try? Harness.natlab("down", lab)
            #expect(down?.status == 0, "down failed: \(down?.stderr ?? "")")
            #expect(Harness.namespaces(ofLab: lab).isEmpty)
        }
        let plan = try LabEngine().record(of: lab).plan
        let host = try #require(plan.nodes.first { $0.kind == .host })
        let address = try #require(host.upstreamAddresses.first)
        let exec = try Harness.natlab("exec", lab, host.name, "--", "ip", "-o", "-4", "addr", "show", "dev", "eth0")
        #expect(exec.status == 0, "\(file): exec in \(host.name) failed: \(exec.stderr)")
        #expect(exec.stdout.contains(" \(address)/"), "\(file): \(host.name) lacks \(address): \(exec.stdout)")

        for router in plan.nodes where router.kind == .router {
            let r = try Harness.natlab("nat", "explain", lab, router.name)
            #expect(r.status == 0, "\(file): nat explain \(router.name) failed: \(r.stderr)")
            #expect(r.stdout.hasPrefix("# natlab nat explain: lab \(lab), router \(router.name)"))
            #expect(r.stdout.contains(router.nat!.summary))
            let json = try Harness.natlab("nat", "explain", lab, router.name, "--json")
            #expect(json.status == 0, "\(json.stderr)")
            let explanation = try JSONDecoder().decode(NATExplanation.self, from: Data(json.stdout.utf8))
            #expect(explanation.liveSysctls["net.netfilter.nf_conntrack_udp_timeout"] != nil || router.nat!.kind == .none)
            let ours = explanation.rules.filter { $0.table.hasSuffix(" natlab") }
            switch router.nat!.kind {
            case .none:
                #expect(ours.isEmpty)
                #expect(r.stdout.contains("no nftables ruleset"))
            case .nat, .firewall:
                #expect(!ours.isEmpty, "\(file): no natlab rules live in \(router.name)")
                // Every rule natlab installed says what it is for, and the text shows it above the rule.
                for rule in ours {
                    let meaning = try #require(rule.meaning, "\(file): \(router.name): rule without meaning: \(rule.rule)")
                    #expect(r.stdout.contains("# \(meaning)\n"))
                    #expect(!r.stdout.contains("comment \"\(meaning)\""))
                }
                #expect(r.stdout.contains("iifname \"wan\" ct state"), "unsolicited WAN packets must be dropped in input")
            }
            // Lifetimes declared in the topology are the live sysctls.
            for (key, value) in NATRuleset.sysctls(for: router.nat!) {
                #expect(explanation.liveSysctls[key] == value, "\(router.name): \(key)")
            }
        }
    }

    @Test("nat explain: unknown lab, unknown router, a host or the core as router: clear message, exit 2")
    func explainErrors() throws {
        try Privilege.require()
        let lab = Harness.uniqueLab("xe")
        #expect(try Harness.natlab("up", Harness.topology("two-homes.yaml"), "--name", lab).status == 0)
        defer { _ = try? Harness.natlab("down", lab) }
        let noLab = try Harness.natlab("nat", "explain", lab + "-nope", "home1")
        #expect(noLab.status == 2)
        #expect(noLab.stderr.contains("no lab named '\(lab)-nope'"))
        let noRouter = try Harness.natlab("nat", "explain", lab, "home9")
        #expect(noRouter.status == 2)
        #expect(noRouter.stderr.contains("has no node 'home9'"))
        let host = try Harness.natlab("nat", "explain", lab, "alice")
        #expect(host.status == 2)
        #expect(host.stderr.contains("'alice' in lab '\(lab)' is a host, not a router; its routers are: home1, home2"), "\(host.stderr)")
        let core = try Harness.natlab("nat", "explain", lab, "internet")
        #expect(core.status == 2)
        #expect(core.stderr.contains("the internet core, not a router"))
    }

    @Test("home NAT behind a CGNAT: the public host sees the CGNAT's address, the reply comes back through both layers")
    func twoLayers() throws {
        try Privilege.require()
        let lab = Harness.uniqueLab("cg")
        let up = try Harness.natlab("up", Harness.topology("cgnat.yaml"), "--name", lab)
        #expect(up.status == 0, "up failed: \(up.stderr)")
        defer {
            _ = try? Harness.natlab("down", lab)
            #expect(Harness.namespaces(ofLab: lab).isEmpty)
        }
        let info = try Harness.labJSON(lab)
        let cgnat = try #require(Harness.address(info, node: "isp", interface: "wan"))
        let home = try #require(Harness.address(info, node: "homec", interface: "wan"))
        let stun = try #require(Harness.address(info, node: "stun", interface: "eth0"))
        #expect(home.hasPrefix("100.64."), "the home NAT's WAN is in the CGNAT's shared space")

        let reflector = try LabLifecycleTests.startReflector(lab: lab, node: "stun", port: 3490)
        defer { reflector.process.terminate() }
        let carol = try LabLifecycleTests.probe(lab: lab, node: "carol", bind: 40000, to: "\(stun):3490")
        let seen = try #require(carol.first?["observed"] ?? nil, "no reply came back to carol: \(carol)")
        #expect(seen.hasPrefix(cgnat + ":"), "stun saw \(seen), expected the CGNAT's \(cgnat)")
        // dave has the same private ip:port behind another home NAT: same public address, another port
        // (strict EIM at the CGNAT, no port overloading).
        let dave = try LabLifecycleTests.probe(lab: lab, node: "dave", bind: 40000, to: "\(stun):3490")
        let daveSeen = try #require(dave.first?["observed"] ?? nil, "no reply came back to dave: \(dave)")
        #expect(daveSeen.hasPrefix(cgnat + ":"))
        #expect(daveSeen != seen, "two customers got the same public mapping")
    }
}
