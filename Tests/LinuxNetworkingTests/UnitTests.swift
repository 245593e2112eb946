import Testing
import SystemPackage
import Synchronization
@testable import LinuxNetworking

#if canImport(Glibc)
import Glibc
#endif

/// Loading libnftables with dlopen: no root, no namespaces.
@Suite struct LibNFTablesLoadingTests {
    /// A machine without the library gets a sentence naming it, dlopen's reason and the package,
    /// not a crash at start-up (natlab is not linked against it).
    @Test func missingLibraryIsNamedWithThePackageToInstall() {
        #expect {
            _ = try LibNFTables(soname: "libnftables-natlab-missing.so.9")
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix("nftables: cannot load libnftables-natlab-missing.so.9: ")
                && text.hasSuffix("(Debian/Ubuntu: apt-get install libnftables1)")
        }
    }

    /// The installed library loads and resolves every function natlab calls (the loader checks each
    /// `dlsym`), and the process-wide copy is that one. Contexts are left to the privileged tests:
    /// `nft_ctx_new` opens a netfilter socket.
    @Test func installedLibraryResolvesEveryFunction() throws {
        _ = try LibNFTables(soname: LibNFTables.soname)
        #expect(throws: Never.self) { try LibNFTables.get() }
    }
}

/// Pure parts: no root, no namespaces.
@Suite struct ErrorTests {
    @Test func systemErrorReadsLikeASentence() {
        let error = LinuxNetworkingError.system(call: "create network namespace", errno: .fileExists,
                                                context: "'natlab-x-home1': namespace already exists (/run/netns/natlab-x-home1)")
        #expect(error.description == "create network namespace 'natlab-x-home1': namespace already exists (/run/netns/natlab-x-home1): File exists (EEXIST)")
        #expect(error.isAlreadyExists)
        #expect(!error.isNotFound)
    }

    @Test func netlinkErrorKeepsKernelErrnoAndLibnlCodeApart() {
        let error = LinuxNetworkingError.netlink(operation: "create veth", object: "'alice' in natlab-x-home1",
                                                 kernelErrno: .fileExists, libnlCode: 6, message: "")
        #expect(error.description == "create veth 'alice' in natlab-x-home1: File exists (EEXIST)")
        #expect(error.errno == .fileExists)
        #expect(error.isAlreadyExists)
    }

    @Test func netlinkErrorWithExtAckText() {
        let error = LinuxNetworkingError.netlink(operation: "add route", object: "'default'", kernelErrno: .invalidArgument,
                                                 libnlCode: 7, message: "Nexthop has invalid gateway")
        #expect(error.description == "add route 'default': Invalid argument (EINVAL) — Nexthop has invalid gateway")
    }

    @Test func libnlOnlyCodesMapToErrnoForTheHelpers() {
        // A request that failed inside libnl (no kernel answer) still classifies.
        let exists = LinuxNetworkingError.netlink(operation: "x", object: "'y'", kernelErrno: nil, libnlCode: 6,
                                                  message: LinuxNetworkingError.libnlMessage(6))
        #expect(exists.isAlreadyExists)
        #expect(exists.description == "x 'y': Object exists (libnl NLE_EXIST)")
        let noDevice = LinuxNetworkingError.netlink(operation: "x", object: "'y'", kernelErrno: nil, libnlCode: 31, message: "")
        #expect(noDevice.isNotFound)
        #expect(LinuxNetworkingError.nleName(12) == "NLE_OBJ_NOTFOUND")
    }

    @Test(arguments: [(ENOENT, true), (ENODEV, true), (ESRCH, true), (EEXIST, false), (EPERM, false)])
    func notFoundClassification(code: Int32, expected: Bool) {
        let error = LinuxNetworkingError.system(call: "open sysctl", errno: Errno(rawValue: code), context: "k")
        #expect(error.isNotFound == expected)
    }

    @Test func negativeReturnBecomesTypedErrno() {
        let error = LinuxNetworkingError.fromNegative(-EPERM, call: "setns", context: "into /run/netns/x")
        #expect(error.errno == .notPermitted)
        #expect(error.description == "setns into /run/netns/x: Operation not permitted (EPERM)")
    }

    @Test func nftablesAndInvalidArgumentText() {
        #expect(LinuxNetworkingError.nftables(message: "Error: syntax error").description == "nftables: Error: syntax error")
        #expect(LinuxNetworkingError.invalidArgument("bad").errno == nil)
    }
}

@Suite struct SysctlPathTests {
    @Test(arguments: [
        ("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward"),
        ("net.ipv6.conf.all.forwarding", "/proc/sys/net/ipv6/conf/all/forwarding"),
        ("net/ipv4/conf/eth0.10/forwarding", "/proc/sys/net/ipv4/conf/eth0.10/forwarding"),
        ("net.bridge.bridge-nf-call-iptables", "/proc/sys/net/bridge/bridge-nf-call-iptables"),
    ])
    func dottedKeyMapsToProcSys(key: String, path: String) {
        #expect(Sysctl.path(for: key) == path)
    }

    @Test func traversalIsRejected() {
        #expect(throws: LinuxNetworkingError.self) { try Sysctl.read("net/../../etc/passwd") }
    }

    @Test func missingKeyIsNotFound() throws {
        // Readable without root: /proc/sys exists everywhere, this key nowhere.
        do {
            _ = try Sysctl.read("net.natlab.does_not_exist")
            Issue.record("expected an error")
        } catch let error as LinuxNetworkingError {
            #expect(error.isNotFound)
            #expect(error.description.contains("No such file or directory (ENOENT)"))
        }
    }
}

@Suite struct PrefixAndNameTests {
    @Test func parsesIPv4AndIPv6() throws {
        let v4 = try IPPrefix(parsing: "10.0.1.1/24")
        #expect(v4.family == AF_INET && v4.bytes == [10, 0, 1, 1] && v4.prefixLength == 24)
        #expect(v4.description == "10.0.1.1/24")
        let v6 = try IPPrefix(parsing: "2001:db8::1/64")
        #expect(v6.family == AF_INET6 && v6.bytes.count == 16 && v6.prefixLength == 64)
        #expect(v6.description == "2001:db8::1/64")
        #expect(try IPPrefix(parsing: "192.0.2.7", requirePrefix: false).prefixLength == 32)
        #expect(IPPrefix.any(family: AF_INET6).description == "::/0")
    }

    @Test(arguments: ["10.0.1.1", "10.0.1.1/33", "10.0.1/24", "2001:db8::1/129", "x/8", "/24", "10.0.0.1/24/1", "10.0.0.1/-1"])
    func rejectsMalformed(text: String) {
        #expect(throws: LinuxNetworkingError.self) { try IPPrefix(parsing: text) }
    }

    @Test(arguments: ["", ".", "..", "a/b", String(repeating: "n", count: 256)])
    func rejectsBadNamespaceNames(name: String) {
        #expect(throws: LinuxNetworkingError.self) { try NetworkNamespace.validate(name: name) }
        #expect(!NetworkNamespace.exists(name: name))
    }

    @Test func pathUsesDirectory() {
        #expect(NetworkNamespace.path(of: "natlab-x-home1") == "/run/netns/natlab-x-home1")
    }

    /// How a batch of namespaces is shared out over workers: contiguous, in order, none empty.
    @Test func slicesAreContiguousAndNeverEmpty() {
        #expect(NetworkNamespace.slice([1, 2, 3, 4, 5, 6, 7], into: 2) == [[1, 2, 3], [4, 5, 6, 7]])
        #expect(NetworkNamespace.slice([1, 2, 3], into: 3) == [[1], [2], [3]])
        #expect(NetworkNamespace.slice([1], into: 2) == [[1]])
        #expect(NetworkNamespace.slice([1, 2], into: 1) == [[1, 2]])
        #expect(NetworkNamespace.slice([Int](), into: 2) == [[]])
    }
}

/// `ThreadPlacement`: no root needed. The new thread's first instruction already runs outside its
/// creator's CPU (when there is another), and it then gets every CPU back.
@Suite struct ThreadPlacementTests {
    static let before = Atomic<Int>(-1)
    static let after = Atomic<Int>(-1)

    @Test func startsOnAnotherCPUThenAllowsAll() throws {
        let total = ThreadPlacement.allowedCPUs()
        try #require(total > 0)
        #expect(ThreadPlacement.startDetachedElsewhere { _ in
            ThreadPlacementTests.before.store(ThreadPlacement.allowedCPUs(), ordering: .sequentiallyConsistent)
            ThreadPlacement.allowCreatorsCPUs()
            ThreadPlacementTests.after.store(ThreadPlacement.allowedCPUs(), ordering: .sequentiallyConsistent)
            return nil
        })
        for _ in 0..<5000 where Self.after.load(ordering: .sequentiallyConsistent) < 0 { usleep(1000) }
        #expect(Self.before.load(ordering: .sequentiallyConsistent) == (total > 1 ? total - 1 : total))
        #expect(Self.after.load(ordering: .sequentiallyConsistent) == total)
    }
}
