import Foundation
import Testing
import SystemPackage
import LinuxNetworking
import TestSupport

/// Root-only: real namespaces under /run/netns (prefix natlab-lntest-), removed by each test.
/// Serialized: they share the worker and /run/netns, and the timings should not overlap.
@Suite(.serialized) struct PrivilegedTests {

    @Test(.enabled(if: Privilege.shouldRun))
    func workerReturnsToHostAfterEveryJob() throws {
        try Privilege.require()
        let worker = sharedWorker
        let before = inodeOfCurrentThreadNamespace()
        #expect(before == worker.hostNamespaceInode)
        try withNamespaces("worker", count: 1) { _, files in
            let ns = files[0]
            let hostInJob = try worker.run(in: nil) { inodeOfCurrentThreadNamespace() }
            #expect(hostInJob == worker.hostNamespaceInode)
            let inJob = try worker.run(in: ns) { inodeOfCurrentThreadNamespace() }
            #expect(inJob == ns.inode)
            #expect(inJob != worker.hostNamespaceInode)
            // The very next job, with no namespace, runs in the host again.
            let after = try worker.run(in: nil) { inodeOfCurrentThreadNamespace() }
            #expect(after == worker.hostNamespaceInode)
            // Nested: nil inside a namespace job means the host; the outer job's namespace is restored.
            let nested = try worker.run(in: ns) { () throws -> [UInt64] in
                let inner = try worker.run(in: nil) { inodeOfCurrentThreadNamespace() }
                return [inner, inodeOfCurrentThreadNamespace()]
            }
            #expect(nested == [worker.hostNamespaceInode, ns.inode])
            // Errors thrown by the body come back, and the worker is back home afterwards.
            #expect(throws: LinuxNetworkingError.self) {
                try worker.run(in: ns) { throw LinuxNetworkingError.invalidArgument("from body") }
            }
            #expect(try worker.run(in: nil) { inodeOfCurrentThreadNamespace() } == worker.hostNamespaceInode)
            // An anonymous namespace is a different one each time, and does not leak either.
            let fresh = try worker.runInNewNamespace { inodeOfCurrentThreadNamespace() }
            #expect(fresh != worker.hostNamespaceInode && fresh != ns.inode)
            #expect(try worker.run(in: nil) { inodeOfCurrentThreadNamespace() } == worker.hostNamespaceInode)
        }
        #expect(inodeOfCurrentThreadNamespace() == before)
    }

    @Test(.enabled(if: Privilege.shouldRun))
    func createListExecDelete() throws {
        try Privilege.require()
        let name = uniqueName("life")
        defer { try? NetworkNamespace.delete(name: name) }
        try NetworkNamespace.create(name: name, worker: sharedWorker)

        #expect(NetworkNamespace.exists(name: name))
        #expect(NetworkNamespace.list().contains(name))
        let listed = try sh(["ip", "netns", "list"])
        #expect(listed.stdout.contains(name))
        let links = try sh(["ip", "netns", "exec", name, "ip", "-o", "link"])
        #expect(links.status == 0, "\(links.stderr)")
        #expect(links.stdout.contains("lo:"))
        #expect(links.stdout.split(separator: "\n").count == 1)

        // Creating it again fails with EEXIST and leaves the existing namespace alone.
        let file = try NetworkNamespace.open(name: name)
        do {
            try NetworkNamespace.create(name: name, worker: sharedWorker)
            Issue.record("second create should fail")
        } catch let error as LinuxNetworkingError {
            #expect(error.isAlreadyExists)
            #expect(error.description.contains("already exists"))
        }
        #expect(try NetworkNamespace.open(name: name).inode == file.inode)
        #expect(try sh(["ip", "netns", "exec", name, "true"]).status == 0)

        try NetworkNamespace.delete(name: name)
        #expect(!NetworkNamespace.exists(name: name))
        let mountinfo = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(!mountinfo.contains(NetworkNamespace.path(of: name)))
        #expect(!(try sh(["ip", "netns", "list"]).stdout.contains(name)))
        try NetworkNamespace.delete(name: name)   // idempotent
        #expect(throws: LinuxNetworkingError.self) { try NetworkNamespace.open(name: name) }
    }

    @Test(.enabled(if: Privilege.shouldRun))
    func batchCreateRollsBackOnConflict() throws {
        try Privilege.require()
        let existing = uniqueName("keep")
        let fresh = uniqueName("roll")
        defer {
            try? NetworkNamespace.delete(name: existing)
            try? NetworkNamespace.delete(name: fresh)
        }
        try NetworkNamespace.create(name: existing, worker: sharedWorker)
        #expect(throws: LinuxNetworkingError.self) {
            try NetworkNamespace.create(names: [fresh, existing], worker: sharedWorker)
        }
        #expect(!NetworkNamespace.exists(name: fresh))   // rolled back
        #expect(NetworkNamespace.exists(name: existing)) // untouched
        #expect(try sh(["ip", "netns", "exec", existing, "true"]).status == 0)
    }

    /// Namespaces shared out over two workers (what a lab build does): each one exists, is its own
    /// namespace, and works with iproute2; a name clash leaves none of the others behind.
    @Test(.enabled(if: Privilege.shouldRun))
    func batchCreateOnTwoWorkers() throws {
        try Privilege.require()
        let second = try NamespaceWorker()
        let names = (0..<5).map { uniqueName("par\($0)") }
        defer { for name in names { try? NetworkNamespace.delete(name: name) } }
        try NetworkNamespace.create(names: names, workers: [sharedWorker, second])
        let inodes = try names.map { try NetworkNamespace.open(name: $0).inode }
        #expect(Set(inodes).count == names.count)
        for name in names { #expect(try sh(["ip", "netns", "exec", name, "true"]).status == 0) }

        let existing = names[3]
        let fresh = (0..<4).map { uniqueName("new\($0)") }
        defer { for name in fresh { try? NetworkNamespace.delete(name: name) } }
        #expect(throws: LinuxNetworkingError.self) {
            try NetworkNamespace.create(names: [fresh[0], fresh[1], existing, fresh[2], fresh[3]], workers: [sharedWorker, second])
        }
        for name in fresh { #expect(!NetworkNamespace.exists(name: name)) }
        #expect(try NetworkNamespace.open(name: existing).inode == inodes[3])   // untouched
    }

    @Test(.enabled(if: Privilege.shouldRun))
    func vethBridgeAddressRouteCarryUDP() throws {
        try Privilege.require()
        let host = try HostSnapshot.take()
        try withNamespaces("wire", count: 2) { names, files in
            let (a, b) = (files[0], files[1])
            let worker = sharedWorker
            let start = ContinuousClock.now
            let nlA = try worker.run(in: a) { try RouteNetlink(namespaceName: names[0]) }
            let nlB = try worker.run(in: b) { try RouteNetlink(namespaceName: names[1]) }
            // A: bridge br0 (10.99.0.1/24) with vA enslaved; B: vB (10.99.0.2/24) + 10.98.0.1/32 on lo.
            try nlA.setUp("lo")
            try nlB.setUp("lo")
            try nlA.addBridge("br0")
            try nlA.addVeth(name: "vA", master: "br0", peerName: "vB", peerNamespace: b)
            try nlA.addAddress("10.99.0.1/24", link: "br0")
            try nlA.addAddress("fd00:99::1/64", link: "br0", noDAD: true)
            try nlB.addAddress("10.99.0.2/24", link: "vB")
            try nlB.addAddress("10.98.0.1/32", link: "lo")
            try nlB.addRoute(destination: nil, gateway: "10.99.0.1")
            try nlA.addRoute(destination: "10.98.0.0/24", gateway: "10.99.0.2")
            let elapsed = ContinuousClock.now - start
            print("[timing] 2 sockets + lo up ×2 + bridge + veth + 4 addresses + 2 routes: \(elapsed)")

            let linksA = try nlA.links()
            let br0 = try #require(linksA.first { $0.name == "br0" })
            let vA = try #require(linksA.first { $0.name == "vA" })
            #expect(br0.kind == "bridge" && br0.isUp)
            #expect(br0.addresses.contains("10.99.0.1/24"))
            #expect(br0.addresses.contains("fd00:99::1/64"))
            #expect(vA.kind == "veth" && vA.isUp && vA.masterIndex == br0.index)
            #expect(linksA.first { $0.name == "lo" }?.isUp == true)
            let linksB = try nlB.links()
            let vB = try #require(linksB.first { $0.name == "vB" })
            #expect(vB.kind == "veth" && vB.isUp && vB.masterIndex == nil && vB.hasCarrier)
            #expect(vB.addresses == ["10.99.0.2/24"] || vB.addresses.first == "10.99.0.2/24")
            #expect(linksB.first { $0.name == "lo" }?.addresses.contains("10.98.0.1/32") == true)
            #expect(try nlB.index(of: "vB") == vB.index)

            // iproute2 agrees.
            #expect(try sh(["ip", "-n", names[1], "route"]).stdout.contains("default via 10.99.0.1 dev vB"))
            #expect(try sh(["ip", "-n", names[0], "route"]).stdout.contains("10.98.0.0/24 via 10.99.0.2 dev br0"))
            #expect(try sh(["ip", "-n", names[0], "-o", "link", "show", "vA"]).stdout.contains("master br0"))
            // One queue each way on both ends (fewer sysfs objects to create), whatever the CPU count.
            #expect(try sh(["ip", "-n", names[0], "-d", "-o", "link", "show", "vA"]).stdout.contains("numtxqueues 1 numrxqueues 1"))
            #expect(try sh(["ip", "-n", names[1], "-d", "-o", "link", "show", "vB"]).stdout.contains("numtxqueues 1 numrxqueues 1"))

            // A real datagram: A → 10.98.0.1 (routed via B's vB), received in B. The receiver drops a
            // marker file when done so the sender stops resending.
            let marker = "/tmp/\(uniqueName("udp")).done"
            defer { unlink(marker) }
            let receiver = Process()
            receiver.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            receiver.arguments = ["ip", "netns", "exec", names[1], "python3", "-c", """
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("10.98.0.1", 40000))
                s.settimeout(10)
                data, peer = s.recvfrom(100)
                print(data.decode(), peer[0])
                open("\(marker)", "w").close()
                """]
            let out = Pipe()
            receiver.standardOutput = out
            try receiver.run()
            defer { if receiver.isRunning { receiver.terminate() } }
            let sender = try sh(["ip", "netns", "exec", names[0], "python3", "-c", """
                import os, socket, time
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                for _ in range(200):
                    s.sendto(b"hello-natlab", ("10.98.0.1", 40000))
                    time.sleep(0.02)
                    if os.path.exists("\(marker)"):
                        break
                """])
            #expect(sender.status == 0, "\(sender.stderr)")
            receiver.waitUntilExit()
            let received = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(receiver.terminationStatus == 0)
            #expect(received.trimmingCharacters(in: .whitespacesAndNewlines) == "hello-natlab 10.99.0.1")

            // Typed errors from the kernel.
            do {
                try nlA.addVeth(name: "vA", peerName: "vB2", peerNamespace: b)
                Issue.record("duplicate veth should fail")
            } catch let error as LinuxNetworkingError {
                #expect(error.isAlreadyExists)
                #expect(error.description.hasPrefix("create veth 'vA' (peer 'vB2' in /run/netns/\(names[1])) in \(names[0]): File exists (EEXIST)"), "\(error)")
                #expect(error.description.contains("File exists (EEXIST)"))
                #expect(error.description.contains(names[0]))
            }
            do {
                try nlA.setUp("nosuchlink")
                Issue.record("missing link should fail")
            } catch let error as LinuxNetworkingError {
                #expect(error.isNotFound, "\(error)")
            }
            #expect(throws: LinuxNetworkingError.self) { try nlA.addAddress("10.99.0.1/24", link: "br0") }
            do {
                try nlB.addRoute(destination: "10.97.0.0/24", gateway: "10.55.0.1")   // unreachable gateway
                Issue.record("route via an unreachable gateway should fail")
            } catch let error as LinuxNetworkingError {
                print("[error text] \(error)")
                #expect(error.errno != nil)
            }

            // Deleting the veth end in A removes its peer in B too.
            try nlA.deleteLink("vA")
            #expect(try nlB.links().contains { $0.name == "vB" } == false)
        }
        #expect(try HostSnapshot.take() == host)
    }

    @Test(.enabled(if: Privilege.shouldRun))
    func linksWithChosenIndexes() throws {
        try Privilege.require()
        let host = try HostSnapshot.take()
        try withNamespaces("index", count: 2) { names, files in
            let (a, b) = (files[0], files[1])
            let nlA = try sharedWorker.run(in: a) { try RouteNetlink(namespaceName: names[0]) }
            let nlB = try sharedWorker.run(in: b) { try RouteNetlink(namespaceName: names[1]) }
            // What `natlab up` does: every index chosen, so no step looks one up by name.
            try nlA.addBridge("br0", index: 40)
            try nlA.addVeth(name: "vA", index: 41, master: "br0", masterIndex: 40, peerName: "vB", peerIndex: 42, peerNamespace: b)
            try nlA.addAddress("10.99.0.1/24", link: "br0", index: 40)
            try nlB.addAddress("10.99.0.2/24", link: "vB", index: 42)
            let linksA = try nlA.links(), linksB = try nlB.links()
            #expect(linksA.first { $0.name == "br0" }?.index == 40)
            let vA = try #require(linksA.first { $0.name == "vA" })
            #expect(vA.index == 41 && vA.masterIndex == 40 && vA.isUp)
            let vB = try #require(linksB.first { $0.name == "vB" })
            #expect(vB.index == 42 && vB.isUp && vB.addresses.first == "10.99.0.2/24")
            #expect(linksA.first { $0.name == "br0" }?.addresses.contains("10.99.0.1/24") == true)
            #expect(try sh(["ip", "-n", names[1], "-o", "link", "show", "vB"]).stdout.contains("vB@if41"))
            // A taken index is the kernel's error, and the pair is not made.
            do {
                try nlA.addVeth(name: "vC", index: 41, peerName: "vD", peerIndex: 43, peerNamespace: b)
                Issue.record("an index in use should fail")
            } catch let error as LinuxNetworkingError {
                #expect(error.errno != nil, "\(error)")
            }
            #expect(try nlB.links().contains { $0.name == "vD" } == false)
        }
        #expect(try HostSnapshot.take() == host)
    }

    @Test(.enabled(if: Privilege.shouldRun))
    func nftablesInsideNamespaceOnly() throws {
        try Privilege.require()
        let host = try HostSnapshot.take()
        try withNamespaces("nft", count: 1) { _, files in
            let ns = files[0]
            let table = "natlab_lntest"
            try sharedWorker.run(in: ns) {
                try NFTables.apply("""
                    table inet \(table) {
                        chain postrouting {
                            type nat hook postrouting priority srcnat; policy accept;
                            oifname "wan0" masquerade
                        }
                    }
                    """)
            }
            let listed = try sharedWorker.run(in: ns) { try NFTables.run("list ruleset") }
            #expect(listed.contains("table inet \(table)"))
            #expect(listed.contains("oifname \"wan0\" masquerade"))

            // Errors come back as text, nothing is half-applied.
            do {
                try sharedWorker.run(in: ns) { try NFTables.apply("add rule inet nosuchtable c accept") }
                Issue.record("rule for a missing table should fail")
            } catch let error as LinuxNetworkingError {
                guard case .nftables(let message) = error else { Issue.record("wrong case \(error)"); return }
                #expect(message.contains("No such file or directory"))
            }
            try sharedWorker.run(in: ns) { try NFTables.check("add table ip natlab_lntest_dry") }
            #expect(!(try sharedWorker.run(in: ns) { try NFTables.run("list tables") }).contains("natlab_lntest_dry"))
        }
        #expect(try HostSnapshot.take() == host)
        #expect(!(try sh(["nft", "list", "ruleset"]).stdout.contains("natlab_lntest")))
    }

    @Test(.enabled(if: Privilege.shouldRun))
    func sysctlFollowsTheThreadsNamespace() throws {
        try Privilege.require()
        let hostForward = try Sysctl.read("net.ipv4.ip_forward")
        try withNamespaces("sysctl", count: 1) { _, files in
            let values = try sharedWorker.run(in: files[0]) { () throws -> [String] in
                let before = try Sysctl.read("net.ipv4.ip_forward")
                try Sysctl.write("net.ipv4.ip_forward", "1")
                try Sysctl.write("net.ipv6.conf.all.forwarding", "1")
                return [before, try Sysctl.read("net.ipv4.ip_forward")]
            }
            #expect(values == ["0", "1"])
            do {
                try sharedWorker.run(in: files[0]) { try Sysctl.write("net.natlab.nope", "1") }
                Issue.record("missing sysctl should fail")
            } catch let error as LinuxNetworkingError {
                #expect(error.isNotFound)
            }
        }
        #expect(try Sysctl.read("net.ipv4.ip_forward") == hostForward)
    }

    @Test(.enabled(if: Privilege.shouldRun))
    func processesInNamespaceFindsSleep() throws {
        try Privilege.require()
        try withNamespaces("pids", count: 1) { names, _ in
            let sleeper = Process()
            sleeper.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            sleeper.arguments = ["ip", "netns", "exec", names[0], "sleep", "30"]
            try sleeper.run()
            defer {
                // SIGKILL: children spawned from test-pool threads may inherit a mask blocking SIGTERM.
                kill(sleeper.processIdentifier, SIGKILL)
                sleeper.waitUntilExit()
            }
            // `ip netns exec` execs sleep in place, so the pid stays the same.
            var found: [pid_t] = []
            for _ in 0..<100 {
                found = NetworkNamespace.processes(inNamespace: names[0])
                if found.contains(sleeper.processIdentifier) { break }
                usleep(20_000)
            }
            #expect(found == [sleeper.processIdentifier])
            #expect(!NetworkNamespace.processes(inNamespace: names[0]).contains(getpid()))
            let ipPids = try sh(["ip", "netns", "pids", names[0]]).stdout
            #expect(ipPids.contains(String(sleeper.processIdentifier)))
        }
    }

    @Test(.enabled(if: Privilege.shouldRun))
    func timings() throws {
        try Privilege.require()
        let clock = ContinuousClock()
        for round in 0..<3 {
            let names = (0..<10).map { uniqueName("time\($0)") }
            defer { for name in names { try? NetworkNamespace.delete(name: name) } }
            let batch = try clock.measure { try NetworkNamespace.create(names: names, worker: sharedWorker) }
            let deleteBatch = try clock.measure { for name in names { try NetworkNamespace.delete(name: name) } }
            let single = try clock.measure { for name in names { try NetworkNamespace.create(name: name, worker: sharedWorker) } }
            let deleteSingle = try clock.measure { for name in names { try NetworkNamespace.delete(name: name) } }
            print("[timing] round \(round): 10 namespaces batch create \(batch), delete \(deleteBatch); one-by-one create \(single), delete \(deleteSingle)")
        }
        // Excursion overhead alone.
        try withNamespaces("hop", count: 1) { _, files in
            let n = 1000
            let hops = try clock.measure { for _ in 0..<n { _ = try sharedWorker.run(in: files[0]) { 0 } } }
            print("[timing] \(n) empty excursions: \(hops) (\(hops / n) each)")
        }
    }
}
