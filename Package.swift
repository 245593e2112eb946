// swift-tools-version:6.0
// natlab — real NAT labs on one Linux kernel. Linux only: the kernel-facing targets
// link libnl-3, libnl-route-3 and libnftables (Scripts/natlab and Scripts/test install them).
import PackageDescription

let package = Package(
    name: "natlab",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "natlab", targets: ["natlab"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // System libraries: libnl through pkg-config (Debian: libnl-route-3.0.pc); libnftables header-only.
        .systemLibrary(name: "CNetlink", pkgConfig: "libnl-route-3.0",
                       providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        // libnftables' header only: LinuxNetworking opens the library with dlopen on first use
        // (LibNFTables.swift), so it is not a link dependency; pkg-config would add -lnftables.
        .systemLibrary(name: "CNFTables", providers: [.apt(["libnftables-dev"])]),
        // setns/unshare/mount and libnl macros, compiled with _GNU_SOURCE (Glibc's module hides them).
        .target(name: "CLinuxSupport", cSettings: [.define("_GNU_SOURCE")]),
        // The only Swift code that touches the C targets.
        .target(name: "LinuxNetworking", dependencies: [
            "CNetlink", "CNFTables", "CLinuxSupport",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        // Pure: RFC 4787 behaviour profile -> nftables ruleset.
        .target(name: "NATModel"),
        // Pure: topology schema, validation, address plan, build steps, shell rendering.
        .target(name: "Topology", dependencies: [
            "NATModel",
            .product(name: "Yams", package: "Yams"),
        ]),
        // I/O: builds, records, tears down and collects labs.
        .target(name: "Lab", dependencies: [
            "Topology", "NATModel", "LinuxNetworking",
            .product(name: "Crypto", package: "swift-crypto"),   // TURN REST credentials for agents
        ]),
        .executableTarget(name: "natlab", dependencies: [
            "Lab", "Topology", "Roles",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Pure: STUN/TURN/ICE message codec (RFC 8489, 8656, 5780, 8445), credentials, RFC 5769 vectors.
        .target(name: "STUNWire", dependencies: [
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The protocol roles natlab runs inside lab nodes, on swift-nio: STUN server (Roles/STUN),
        // RFC 5780 behaviour probe (Roles/Probe), TURN relay (Roles/TURN). I/O at the edges; the
        // protocol logic in value types that tests drive without sockets.
        .target(name: "Roles", dependencies: [
            "STUNWire", "CLinuxSupport",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // libFuzzer target for STUNWire's decoder: Scripts/fuzz-stun builds it with -sanitize=fuzzer.
        .executableTarget(name: "STUNWireFuzz", dependencies: ["STUNWire"]),
        // Shared by the test targets only: the root/namespace gate that fails instead of skipping under CI.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "TopologyTests", dependencies: ["Topology"]),
        .testTarget(name: "STUNWireTests", dependencies: ["STUNWire", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "RolesTests", dependencies: ["Roles", "STUNWire", "TestSupport"]),
        .testTarget(name: "NATModelTests", dependencies: ["NATModel", "TestSupport"], exclude: ["Golden"]),
        .testTarget(name: "LinuxNetworkingTests", dependencies: ["LinuxNetworking", "TestSupport"]),
        // The command line's own logic, in process (the executable's module, `@testable`).
        .testTarget(name: "CLITests", dependencies: [
            "natlab", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "LabIntegrationTests", dependencies: ["Lab", "Topology", "NATModel", "LinuxNetworking", "TestSupport"],
                    exclude: ["udp.py", "turn_probe.py", "turn_aioice.py"]),
    ]
)
