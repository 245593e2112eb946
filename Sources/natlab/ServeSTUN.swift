import ArgumentParser
import Dispatch
import Foundation
import Roles
import STUNWire
#if canImport(Glibc)
import Glibc
#endif

struct ServeSTUN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stun",
        abstract: "STUN server (RFC 8489 Binding over UDP and TCP; RFC 5780 behaviour discovery with two addresses).",
        discussion: """
        Answers Binding requests with XOR-MAPPED-ADDRESS, MAPPED-ADDRESS (for RFC 3489-era clients), \
        RESPONSE-ORIGIN, SOFTWARE and FINGERPRINT. Stateless: nothing is remembered between requests.

        With one --listen address it serves ADDR:PORT only; a CHANGE-REQUEST that asks for another IP \
        or port gets 420 (Unknown Attribute), as it cannot be honoured.

        With two --listen addresses A and B (one family) it serves A:PORT, A:PORT+1, B:PORT and \
        B:PORT+1 and implements RFC 5780: OTHER-ADDRESS (the other IP and port), CHANGE-REQUEST (the \
        answer leaves from the other IP and/or port), RESPONSE-PORT (the answer goes to the client's IP \
        at that port), PADDING. This is what turnutils_natdiscovery, pion's stun-nat-behaviour and \
        `natlab probe` need to classify a NAT.

        Errors: 420 with UNKNOWN-ATTRIBUTES for unknown comprehension-required attributes; 400 for \
        other methods, malformed attributes, and CHANGE-REQUEST or RESPONSE-PORT over TCP. Requests \
        without the magic cookie (RFC 3489) get MAPPED-ADDRESS, SOURCE-ADDRESS and CHANGED-ADDRESS.

        Runs in the foreground until SIGINT or SIGTERM (or, with --exit-on-stdin-eof, until its \
        standard input ends). In a lab, `run: stun-server` starts it in the host's namespace on the \
        host's two addresses.

        Examples:
          natlab serve stun --listen 203.0.113.3 --listen 203.0.113.4
          natlab exec two-homes alice -- turnutils_natdiscovery -m -f 203.0.113.3
          natlab serve stun --listen 127.0.0.1 --port 3478 --no-tcp
        """
    )

    @Option(name: .customLong("listen"), help: ArgumentHelp("Local IP address to serve on (give one or two; IPv4 or IPv6).", valueName: "ADDR"))
    var listen: [String] = []

    @Option(help: "UDP/TCP port p (with two addresses p+1 as well).")
    var port: Int = 3478

    @Flag(inversion: .prefixedNo, help: "Also serve STUN over TCP on the same addresses and ports.")
    var tcp = true

    @Option(help: ArgumentHelp("SOFTWARE attribute text (fewer than 128 characters; empty: none).", valueName: "TEXT"))
    var software: String = "natlab \(NatLab.configuration.version)"

    @Option(help: "Event loops (threads), each with its own SO_REUSEPORT socket per endpoint (default: one per core).")
    var threads: Int?

    @Option(name: .customLong("vector-reads"), help: ArgumentHelp("Datagrams per recvmmsg call.", visibility: .hidden))
    var vectorReads: Int = 64

    @Flag(name: .customLong("exit-on-stdin-eof"), help: "Also stop when standard input reaches end of file (for a parent that holds a pipe).")
    var exitOnStdinEOF = false

    func validate() throws {
        guard (1...2).contains(listen.count) else { throw ValidationError("give one or two --listen addresses") }
        for a in listen where STUNIPAddress(a) == nil { throw ValidationError("--listen \(a): not an IPv4 or IPv6 address") }
        guard (1...65535).contains(port) else { throw ValidationError("--port must be 1–65535") }
        if listen.count == 2 && port == 65535 { throw ValidationError("--port 65535 leaves no room for the alternate port") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        StopSignals.block()
        var config = STUNServerConfiguration(addresses: listen.compactMap { STUNIPAddress($0) }, port: UInt16(port),
                                             tcp: tcp, software: software.isEmpty ? nil : software)
        if let threads { config.threads = threads }
        config.vectorReadCount = vectorReads
        let server: STUNServer
        do {
            server = try STUNServer(config)
        } catch let error as STUNServerCore.ConfigurationError {
            throw ValidationError(error.description)
        } catch {
            printError("serve stun: cannot listen: \(error)")
            throw ExitCode(1)
        }
        if exitOnStdinEOF {
            Thread.detachNewThread {
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = read(0, &buffer, buffer.count)
                    if n == 0 || (n < 0 && errno != EINTR) { break }
                }
                StopSignals.stop()
            }
        }
        let mode = server.core.supportsBehaviourDiscovery ? "RFC 5780 on" : "one address,"
        print("natlab serve stun: \(mode) \(server.listening.joined(separator: ", ")) (\(config.threads) threads)")
        fflush(nil)
        StopSignals.wait()
        server.shutdown()
        print("natlab serve stun: stopped")
        fflush(nil)
    }
}
