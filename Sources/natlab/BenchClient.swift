import ArgumentParser
import Foundation
import Roles
import STUNWire

/// Load generators for `Scripts/bench` (hidden: a benchmark tool, not a user command).
struct BenchClient: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-client",
        abstract: "Load generators used by Scripts/bench.",
        shouldDisplay: false,
        subcommands: [BenchClientSTUN.self, BenchClientTURNAlloc.self]
    )
}

struct BenchClientSTUN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stun",
        abstract: "Floods a STUN server with Binding requests (closed loop) and prints responses per second.",
        discussion: """
        Each thread keeps --window requests outstanding on each of its --sockets UDP sockets (distinct \
        source ports, so SO_REUSEPORT servers spread them), sends and receives in batches (sendmmsg, \
        recvmmsg), and counts valid Binding success responses during --duration seconds after \
        --warmup. A socket silent for 100 ms has its window refilled (counted as a stall).
        Output: one JSON object {"sent","received","seconds","stalls","rate"}.
        """
    )

    @Option(help: ArgumentHelp("Server transport address (IPv4).", valueName: "IP:PORT"))
    var server: String

    @Option(help: "Measured seconds.") var duration: Double = 5
    @Option(help: "Seconds before measuring.") var warmup: Double = 0.5
    @Option(help: "Threads.") var threads: Int = 1
    @Option(help: "UDP sockets per thread.") var sockets: Int = 8
    @Option(help: "Outstanding requests per socket.") var window: Int = 32

    func run() throws {
        guard let address = STUNAddress(server) else { throw ValidationError("--server: expected IP:PORT") }
        var o = STUNLoadGenerator.Options(server: address)
        o.duration = duration
        o.warmup = warmup
        o.threads = max(1, threads)
        o.sockets = max(1, sockets)
        o.window = max(1, window)
        let r = try STUNLoadGenerator.run(o)
        print(String(format: #"{"sent":%d,"received":%d,"seconds":%.3f,"stalls":%d,"rate":%.0f}"#,
                     r.sent, r.received, r.seconds, r.stalls, r.rate))
    }
}

struct BenchClientTURNAlloc: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "turn-alloc",
        abstract: "Churns TURN allocations the way real clients make them and prints allocations per second.",
        discussion: """
        --sockets clients run at once, one request outstanding each, for --duration seconds. Each \
        cycle is one new client on a new source port (a new 5-tuple): Allocate without credentials \
        (401 with realm and nonce), Allocate with long-term credentials (success with a relayed \
        address), Refresh LIFETIME=0. Only such a cycle counts; any other error answer fails the run. \
        Source ports are taken in turn from 1024-32767 (below the ephemeral range other clients \
        use), because a server may remember a 5-tuple for a while after its client left (coturn \
        4.6.1 answers a new Allocate on it with 437 for 1-2 s); a new client whose Allocate still \
        gets 437 moves to the next port and is counted as busy, not as an allocation. An unanswered \
        request is sent again (same transaction) after 0.5 s and counted as a timeout. At the end, \
        allocations still held are deleted (for at most a second). One thread, epoll.
        Output: one JSON object {"allocations","seconds","per_second","timeouts","busy"}.
        """
    )

    @Option(help: ArgumentHelp("Relay transport address (IPv4, UDP).", valueName: "IP:PORT"))
    var server: String
    @Option(help: "User name.") var user: String
    @Option(help: "Password.") var password: String
    @Option(help: "Seconds.") var duration: Double = 5
    @Option(help: "UDP sockets (clients).") var sockets: Int = 32

    func run() throws {
        guard let address = STUNAddress(server) else { throw ValidationError("--server: expected IP:PORT") }
        var o = TURNAllocLoadGenerator.Options(server: address, username: user, password: password)
        o.duration = duration
        o.sockets = max(1, sockets)
        let r: TURNAllocLoadGenerator.Result
        do { r = try TURNAllocLoadGenerator.run(o) } catch { printError(error.description); throw ExitCode(1) }
        print(String(format: #"{"allocations":%d,"seconds":%.3f,"per_second":%.1f,"timeouts":%d,"busy":%d}"#,
                     r.allocations, r.seconds, r.rate, r.timeouts, r.busy))
    }
}
