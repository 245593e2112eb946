import ArgumentParser
import Foundation
import Roles
import STUNWire
#if canImport(Glibc)
import Glibc
#endif

struct ServeTURN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "turn",
        abstract: "TURN relay (RFC 8656: clients over UDP or TCP, UDP relaying, long-term credentials).",
        discussion: """
        Relays UDP for clients that authenticate with long-term credentials: fixed users \
        (--user NAME:PASSWORD, repeatable) or coturn-style time-limited credentials from a shared \
        secret (--static-secret S: username = expiry-timestamp[:user], password = \
        base64(HMAC-SHA1(S, username))). Per-allocation statistics go to --stats as JSON \
        (what `natlab relay-stats` prints). Stops on SIGTERM/SIGINT.

          natlab serve turn --listen 203.0.113.5:3478 --realm lab --user alice:secret
          natlab serve turn --listen 0.0.0.0:3478 --relay-address 203.0.113.5 --static-secret s3cret
        """
    )

    @Option(help: "Address to listen on, IP:PORT (repeatable; default 0.0.0.0:3478).")
    var listen: [String] = []
    @Option(help: "IPv4 address of relayed sockets (default: the first --listen address).")
    var relayAddress: String?
    @Option(help: "Realm.") var realm: String = "natlab"
    @Option(help: "A user, NAME:PASSWORD (repeatable).") var user: [String] = []
    @Option(help: "Shared secret for time-limited credentials (instead of --user).") var staticSecret: String?
    @Option(help: "Default allocation lifetime, seconds.") var defaultLifetime: UInt32 = 600
    @Option(help: "Maximum allocation lifetime, seconds.") var maxLifetime: UInt32 = 3600
    @Option(help: "Permission lifetime, seconds.") var permissionLifetime: Double = 300
    @Option(help: "Channel binding lifetime, seconds.") var channelLifetime: Double = 600
    @Option(help: "Nonce lifetime, seconds (then 438 Stale Nonce).") var nonceLifetime: Double = 600
    @Option(help: "Allocations per username at once (486 beyond); 0: unlimited.") var userQuota: Int = 0
    @Option(help: "Allocations in total (508 beyond); 0: unlimited.") var totalQuota: Int = 0
    @Option(help: "Lowest relay port.") var minPort: UInt16 = 49152
    @Option(help: "Highest relay port.") var maxPort: UInt16 = 65535
    @Option(help: "Peer range the relay refuses, CIDR (repeatable; replaces the defaults 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/3).")
    var deny: [String] = []
    @Flag(help: "Refuse no peer range (own addresses stay refused).") var allowAllPeers = false
    @Option(help: "Write per-allocation statistics (JSON) to this file.") var stats: String?
    @Flag(help: "Serve UDP clients only (by default clients may also connect over TCP; relaying is UDP).") var noTcp = false
    @Option(help: "Relay threads (shards), each serving the clients the kernel hands its SO_REUSEPORT sockets (default: one per core; TCP connections and statistics run on one more thread).")
    var threads: Int?

    func run() throws {
        StopSignals.block()
        let listen = try (self.listen.isEmpty ? ["0.0.0.0:3478"] : self.listen).map { s -> STUNAddress in
            guard let a = STUNAddress(s) else { throw ValidationError("--listen \(s): expected IP:PORT") }
            return a
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        let relayText = relayAddress ?? listen[0].ip.description
        guard let relayIP = STUNIPAddress(relayText), relayIP.family == .ipv4, relayIP != .ipv4(0) else {
            throw ValidationError("--relay-address: need an IPv4 address (listening on 0.0.0.0 needs --relay-address)")
        }
        var config = TURNConfig(relayAddress: relayIP)
        config.realm = realm
        if let s = staticSecret {
            guard user.isEmpty else { throw ValidationError("--static-secret and --user exclude each other") }
            config.credentials = .staticSecret(s)
        } else {
            var users: [String: String] = [:]
            for u in user {
                guard let i = u.firstIndex(of: ":"), i != u.startIndex else { throw ValidationError("--user \(u): expected NAME:PASSWORD") }
                users[String(u[..<i])] = String(u[u.index(after: i)...])
            }
            guard !users.isEmpty else { throw ValidationError("give at least one --user NAME:PASSWORD, or --static-secret") }
            config.credentials = .users(users)
        }
        guard minPort <= maxPort else { throw ValidationError("--min-port is above --max-port") }
        config.relayPorts = minPort...maxPort
        config.defaultLifetime = defaultLifetime
        config.maxLifetime = max(maxLifetime, 1)
        config.permissionLifetime = permissionLifetime
        config.channelLifetime = channelLifetime
        config.nonceLifetime = nonceLifetime
        config.userQuota = userQuota
        config.totalQuota = totalQuota
        if allowAllPeers { config.deniedPeers = [] }
        if !deny.isEmpty {
            config.deniedPeers = try deny.map { d in
                guard let r = TURNAddressRange(d) else { throw ValidationError("--deny \(d): expected an IPv4 CIDR") }
                return r
            }
        }
        config.ownAddresses = Set(listen.map(\.ip)).union([relayIP])
        let server: TURNRelayServer
        do {
            var options = TURNServerOptions(listen: listen, config: config, statsPath: stats, tcp: !noTcp)
            if let threads { options.threads = threads }
            server = try TURNRelayServer.start(options)
        } catch {
            throw ValidationError("cannot start the relay: \(error)")
        }
        FileHandle.standardOutput.write(Data("natlab turn: listening on \(listen.map(\.description).joined(separator: ", ")) (\(noTcp ? "udp" : "udp, tcp")), relaying from \(relayIP), realm \(realm), \(server.threads) threads\n".utf8))
        // One relay thread per core: with a DispatchSource, a signal the kernel hands a relay thread
        // is lost (see StopSignals); blocked before the threads start, it reaches this sigwait.
        StopSignals.wait()
        server.stop()
        FileHandle.standardOutput.write(Data("natlab turn: stopped\n".utf8))
    }
}
