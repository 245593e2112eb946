// The TURN relay, sharded by thread. There is one shard per core by default. Each shard runs its own
// loop (`ShardLoop`: epoll, recvmmsg, sendmmsg) and binds its own UDP socket on every listening
// address with SO_REUSEPORT, so the kernel spreads clients over the shards by 4-tuple and a client's
// datagrams always reach the same shard. The shard owns those clients' allocations (its own
// `TURNServerCore`) and their relayed sockets (in its epoll set), so no relayed datagram crosses
// threads in either direction and the data path takes no lock. What shards must agree on (quotas,
// serials, relay ports, reservations) is `TURNShared`, locked per allocation, not per packet; the
// relayed sockets' file descriptors are shared as well (`RelaySockets`), because the port of a
// RESERVATION-TOKEN may be taken up by a client of another shard.
// swift-nio runs the rest on one more thread: TCP clients (a connection's frames are handed to a
// shard, chosen in turn, and its answers written back through NIO) and the statistics timer, which
// gathers every shard's statistics once a second. Why the UDP sockets are not read through swift-nio:
// see `ShardLoop`.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import STUNWire
import CLinuxSupport


public struct TURNServerOptions: Sendable {
    public var listen: [STUNAddress]
    public var config: TURNConfig
    /// Statistics JSON written here (atomically, about once a second).
    public var statsPath: String?
    /// Also accept clients over TCP on the listening addresses (relaying stays UDP).
    public var tcp: Bool
    /// Shards (threads), each with its own SO_REUSEPORT socket per listening address.
    public var threads: Int
    public init(listen: [STUNAddress], config: TURNConfig, statsPath: String? = nil, tcp: Bool = true,
                threads: Int = System.coreCount) {
        self.listen = listen
        self.config = config
        self.statsPath = statsPath
        self.tcp = tcp
        self.threads = threads
    }
}

/// The relayed sockets bound and not yet closed, by port, for every shard: a port is bound by the
/// shard that allocates (or reserves) it and may be read by another (a redeemed reservation).
final class RelaySockets: Sendable {
    private let fds = NIOLockedValueBox([UInt16: Int32]())
    func add(_ port: UInt16, _ fd: Int32) { fds.withLockedValue { $0[port] = fd } }
    func fd(_ port: UInt16) -> Int32? { fds.withLockedValue { $0[port] } }
    func remove(_ port: UInt16) -> Int32? { fds.withLockedValue { $0.removeValue(forKey: port) } }
}

/// A running relay. Create with `start`, stop with `stop`.
public final class TURNRelayServer: @unchecked Sendable {
    /// TCP connections and the statistics timer.
    let control: MultiThreadedEventLoopGroup
    let controlLoop: EventLoop
    let shards: [Shard]
    let options: TURNServerOptions
    let started: Double
    let logger: Logger
    /// The shard the next TCP connection goes to.
    let nextShard = NIOLockedValueBox(0)
    // Set in `start` before it returns, read in `stop`.
    var listeners: [Channel] = []
    var statsTimer: RepeatedTask?
    /// The last statistics written (without their time stamp); only on `controlLoop`.
    var lastStats: TURNStatsSnapshot?

    init(options: TURNServerOptions, logger: Logger) throws {
        // One nonce secret for all shards: a nonce stays valid whichever shard checks it.
        var secret = [UInt8]()
        for _ in 0..<32 { secret.append(UInt8.random(in: 0...255)) }
        let shared = TURNShared()
        let sockets = RelaySockets()
        var shards: [Shard] = []
        for _ in 0..<max(1, options.threads) {
            let loop: ShardLoop
            do { loop = try ShardLoop() } catch { throw TURNServerError(error.description) }
            shards.append(Shard(loop: loop, core: TURNServerCore(config: options.config, nonceSecret: secret, shared: shared),
                                sockets: sockets, relayAddress: options.config.relayAddress, logger: logger))
        }
        control = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        controlLoop = control.next()
        self.shards = shards
        self.options = options
        self.logger = logger
        started = Date().timeIntervalSince1970
    }

    /// Binds the listening sockets and starts relaying.
    public static func start(_ options: TURNServerOptions, logger: Logger = Logger(label: "natlab.turn")) throws -> TURNRelayServer {
        let s = try TURNRelayServer(options: options, logger: logger)
        do {
            for shard in s.shards {
                for address in options.listen {
                    // Before the shards' threads start: nothing else touches them yet.
                    shard.addServer(try boundSocket(address, reusePort: s.shards.count > 1), address)
                }
            }
        } catch {
            for shard in s.shards { shard.closeServers() }
            try? s.control.syncShutdownGracefully()
            throw error
        }
        for (i, shard) in s.shards.enumerated() { shard.start(name: "natlab turn \(i)") }
        if options.tcp {
            do {
                for address in options.listen {
                    let listener = try ServerBootstrap(group: s.control)
                        .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                        .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                        .childChannelInitializer { ch in
                            ch.eventLoop.makeCompletedFuture {
                                let shard = s.takeShard()
                                try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(TURNStreamDecoder()))
                                try ch.pipeline.syncOperations.addHandler(StreamHandler(shard: shard, local: address))
                            }
                        }
                        .bind(to: address.socketAddress).wait()
                    s.listeners.append(listener)
                }
            } catch {
                s.stop()
                throw error
            }
        }
        s.statsTimer = s.controlLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            s.writeStats(force: false)
        }
        try s.controlLoop.flatSubmit { s.writeStats(force: true) }.wait()
        return s
    }

    /// Shards (threads) relaying.
    public var threads: Int { shards.count }

    /// The shard that serves the next TCP connection (in turn).
    func takeShard() -> Shard {
        shards[nextShard.withLockedValue { i in
            defer { i = (i + 1) % shards.count }
            return i
        }]
    }

    /// A UDP socket bound to `address` (IPv4), with SO_REUSEADDR and, for several shards, SO_REUSEPORT
    /// (set before bind, where it counts), and 4 MiB buffers: the listening socket carries every
    /// client's traffic of its shard.
    static func boundSocket(_ address: STUNAddress, reusePort: Bool) throws -> Int32 {
        guard let sa = address.sockaddrIPv4 else { throw TURNServerError("listen \(address): IPv4 only") }
        let fd = socket(AF_INET, CLS_SOCK_DGRAM | CLS_SOCK_CLOEXEC, 0)
        guard fd >= 0 else { throw TURNServerError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1, size: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        guard withSockaddr(sa, { bind(fd, $0, $1) }) == 0 else {
            let e = errno
            close(fd)
            throw TURNServerError("bind \(address): \(String(cString: strerror(e)))")
        }
        return fd
    }

    /// Ends every allocation, writes the final statistics, closes the sockets.
    public func stop() {
        if let statsTimer {
            let cancelled = controlLoop.makePromise(of: Void.self)
            statsTimer.cancel(promise: cancelled)
            try? cancelled.futureResult.wait()
        }
        for ch in listeners { try? ch.close().wait() }
        for shard in shards { shard.loop.submitAndWait { shard.shutdown() } }
        // The shards' loops still run: the final statistics gather from them.
        try? controlLoop.flatSubmit { self.writeStats(force: true) }.wait()
        for shard in shards { shard.loop.stop() }
        try? control.syncShutdownGracefully()
    }

    /// Gathers every shard's statistics (each on its own thread) and writes them when they changed.
    /// Runs on `controlLoop`.
    @discardableResult
    func writeStats(force: Bool) -> EventLoopFuture<Void> {
        let loop = controlLoop
        guard let path = options.statsPath else { return loop.makeSucceededVoidFuture() }
        let now = TURNTime.now()
        let listen = options.listen.map(\.description), started = started, limit = options.config.historyLimit
        let parts = shards.map { shard in
            let part = loop.makePromise(of: TURNStatsSnapshot.self)
            shard.loop.execute { part.succeed(shard.core.snapshot(now: now, listen: listen, started: started)) }
            return part.futureResult
        }
        return EventLoopFuture.whenAllSucceed(parts, on: loop).map { parts in
            guard let snap = TURNStatsSnapshot.merging(parts, historyLimit: limit) else { return }
            // Compared as values, encoded once and compact: under load the statistics change every
            // second, and JSONEncoder cost the relay 7 % of its CPU when it encoded them twice.
            var cmp = snap
            cmp.updated = 0
            guard force || cmp != self.lastStats else { return }
            self.lastStats = cmp
            let tmp = path + ".tmp"
            if FileManager.default.createFile(atPath: tmp, contents: snap.encoded(pretty: false)) {
                rename(tmp, path)
            }
        }
    }
}

extension TURNRelayServer {
    /// One thread's share of the relay. Everything in it is touched only on `loop`'s thread (before
    /// `start`: only by the thread that creates the relay).
    final class Shard: @unchecked Sendable {
        enum Socket {
            /// A listening socket, on this local address.
            case server(STUNAddress)
            /// A relayed socket, on this port.
            case relay(UInt16)
        }

        let loop: ShardLoop
        var core: TURNServerCore
        let sockets: RelaySockets
        let relayAddress: STUNIPAddress
        let logger: Logger
        /// What each descriptor in `loop`'s epoll set is. A descriptor closed while the loop still has
        /// an event for it is no longer here, so the event is ignored.
        var watched: [Int32: Socket] = [:]
        /// This shard's socket on each listening address.
        var serverFds: [STUNAddress: Int32] = [:]
        /// Every UDP datagram the shard receives, one recvmmsg batch at a time.
        let input = DatagramReceiver()
        /// Every UDP datagram the shard sends, batched per socket.
        let out = DatagramBatches()
        /// Relayed sockets' descriptors this shard sends on (a copy of `sockets`' entries, read
        /// without its lock).
        var relayFds: [UInt16: Int32] = [:]
        /// TCP connections of clients, by 5-tuple.
        var connections: [TURNFiveTuple: Channel] = [:]
        var dirtyConnections: [Channel] = []
        var pendingLog: [String] = []
        /// `out`'s drop counts already reported to the core.
        var reportedDrops = 0
        var reportedFailures: [Int32: Int] = [:]
        var suppressedLog = 0

        init(loop: ShardLoop, core: TURNServerCore, sockets: RelaySockets, relayAddress: STUNIPAddress, logger: Logger) {
            self.loop = loop
            self.core = core
            self.sockets = sockets
            self.relayAddress = relayAddress
            self.logger = logger
        }

        func start(name: String) {
            loop.start(name: name, .init(readable: { self.read($0) }, afterEvents: { self.flush() }, tick: { self.tick() }))
        }

        func addServer(_ fd: Int32, _ address: STUNAddress) {
            serverFds[address] = fd
            watched[fd] = .server(address)
            loop.watch(fd)
        }

        func closeServers() {
            for fd in serverFds.values {
                watched[fd] = nil
                out.forget(fd: fd)
                close(fd)
            }
            serverFds.removeAll()
        }

        // MARK: Reading

        /// Up to this many recvmmsg batches from a listening socket per wake-up, one from a relayed
        /// socket. The listening socket carries every client's traffic while each relayed socket
        /// carries one allocation's: with one read per wake-up it fell behind the relayed sockets and
        /// its receive buffer overflowed under `Scripts/bench turn` (5–10 % of datagrams lost in
        /// some runs). epoll is level-triggered, so what is left is read on the next wake-up.
        static let serverBatchesPerWakeup = 4

        func read(_ fd: Int32) {
            switch watched[fd] {
            case .server(let local):
                for _ in 0..<Self.serverBatchesPerWakeup {
                    let n = input.receive(fd)
                    let now = TURNTime.now()
                    for i in 0..<n { fromClient(i, local: local, now: now) }
                    if n < DatagramReceiver.maxMessages { break }
                }
            case .relay(let port):
                let n = input.receive(fd)
                let now = TURNTime.now()
                for i in 0..<n { fromPeer(i, relayPort: port, now: now) }
            case nil:
                return
            }
        }

        /// Datagram `i` of `input`, from a client to listening address `local`.
        func fromClient(_ i: Int, local: STUNAddress, now: TURNTime) {
            let (bytes, from, truncated) = input.datagram(i)
            guard let client = from else { return }
            guard !truncated else { return core.drop("oversized") }
            guard bytes.count >= 4 else { return core.drop("malformed") }
            let tuple = TURNFiveTuple(client: client, server: local)
            if bytes[0] & 0xC0 == 0x40 {
                // ChannelData fast path: the payload is copied once, into the outgoing batch.
                let number = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
                let length = Int(bytes[2]) << 8 | Int(bytes[3])
                guard 4 + length <= bytes.count else { return core.drop("malformed") }
                guard let (port, peer) = core.channelDataTarget(tuple, channel: number, length: length, now: now),
                      let fd = relayFd(port) else { return }
                out.append(fd: fd, to: peer, UnsafeRawBufferPointer(rebasing: bytes[4..<(4 + length)]))
                return
            }
            var io = IO(shard: self)
            core.handleClient(Array(bytes), from: tuple, now: now, io: &io)
            // Answers leave with the relayed datagrams after this wake-up: one sendmmsg for many.
        }

        /// Datagram `i` of `input`, from a peer to relayed socket `relayPort`.
        func fromPeer(_ i: Int, relayPort port: UInt16, now: TURNTime) {
            let (bytes, from, truncated) = input.datagram(i)
            guard let peer = from else { return }
            guard !truncated else { return core.drop("oversized") }
            guard let (tuple, channel) = core.peerTarget(relayPort: port, peer: peer, length: bytes.count, now: now) else { return }
            if tuple.transport == .tcp {
                var io = IO(shard: self)
                let data = Array(bytes)
                if let channel {
                    io.send(ChannelData(channelNumber: channel, data: data).encode(padded: true), to: tuple)
                } else {
                    io.send(TURNServerCore.dataIndication(peer: peer, data: data), to: tuple)
                }
                return
            }
            guard let fd = serverFds[tuple.server] else { return }
            if let channel {
                let header = UInt32(channel) << 16 | UInt32(bytes.count)
                withUnsafeBytes(of: header.bigEndian) { out.append(fd: fd, to: tuple.client, $0, bytes) }
            } else {
                out.append(fd: fd, to: tuple.client, TURNServerCore.dataIndication(peer: peer, data: Array(bytes)))
            }
        }

        // MARK: Housekeeping

        func tick() {
            var io = IO(shard: self)
            core.expire(now: .now(), io: &io)
            if out.dropped > reportedDrops {
                core.drop("send buffer full", count: out.dropped - reportedDrops)
                reportedDrops = out.dropped
            }
            for (e, n) in out.failures where n > reportedFailures[e, default: 0] {
                core.drop("send failed: \(String(cString: strerror(e)))", count: n - reportedFailures[e, default: 0])
                reportedFailures[e] = n
            }
            writeLog()
        }

        func shutdown() {
            var io = IO(shard: self)
            core.shutdown(now: .now(), io: &io)
            flush()
            closeServers()
            writeLog()
            for ch in connections.values { ch.close(promise: nil) }
            connections.removeAll()
        }

        /// Log lines go out once a second (the tick), not one write per allocation, and at most
        /// `logLinesPerSecond` of them: a flood of allocations or bad requests must neither fill the
        /// disk nor cost the relay its CPU (lines over the limit are counted, not formatted).
        func logLine(_ line: () -> String) {
            guard pendingLog.count < Self.logLinesPerSecond else { suppressedLog += 1; return }
            pendingLog.append(line())
        }

        static let logLinesPerSecond = 200

        func writeLog() {
            if suppressedLog > 0 {
                pendingLog.append("\(suppressedLog) more lines not logged (over \(Self.logLinesPerSecond) a second)")
                suppressedLog = 0
            }
            guard !pendingLog.isEmpty else { return }
            FileHandle.standardError.write(Data(pendingLog.map { "natlab turn: \($0)\n" }.joined().utf8))
            pendingLog.removeAll(keepingCapacity: true)
        }

        /// After each wake-up of the loop: datagrams read from many relayed sockets leave each
        /// listening socket in one sendmmsg instead of one per relayed socket.
        func flush() {
            out.flush()
            if !dirtyConnections.isEmpty {
                for ch in dirtyConnections { ch.flush() }
                dirtyConnections.removeAll(keepingCapacity: true)
            }
        }

        // MARK: Relayed sockets

        /// The descriptor of relayed socket `port`, if it is open.
        func relayFd(_ port: UInt16) -> Int32? {
            if let fd = relayFds[port] { return fd }
            // Opened by another shard (a redeemed RESERVATION-TOKEN): remembered from now on.
            guard let fd = sockets.fd(port) else { return nil }
            relayFds[port] = fd
            return fd
        }

        /// Binds the relayed socket now (so the port is known to be ours before the Allocate is answered);
        /// it is read from its first permission on (`activate`).
        func openRelay(port: UInt16) -> Bool {
            guard let sa = STUNAddress(ip: relayAddress, port: port).sockaddrIPv4 else { return false }
            let fd = socket(AF_INET, CLS_SOCK_DGRAM | CLS_SOCK_CLOEXEC, 0)
            guard fd >= 0 else { return false }
            guard withSockaddr(sa, { bind(fd, $0, $1) }) == 0 else { close(fd); return false }
            sockets.add(port, fd)
            relayFds[port] = fd
            return true
        }

        func closeRelay(port: UInt16) {
            relayFds[port] = nil
            guard let fd = sockets.remove(port) else { return }
            // Queued datagrams go now: once closed, the descriptor's number may be the next socket's.
            out.forget(fd: fd)
            watched[fd] = nil
            close(fd)
        }

        /// Reads the relayed socket from its first permission on. Datagrams that arrived before (from
        /// peers without a permission then) are discarded first.
        func activate(port: UInt16) {
            guard let fd = sockets.fd(port), watched[fd] == nil else { return }
            var scratch = [UInt8](repeating: 0, count: 2048)
            while recv(fd, &scratch, scratch.count, CLS_MSG_DONTWAIT) >= 0 {}
            var size: Int32 = 1 << 20
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            guard loop.watch(fd) else {
                return logger.error("relay socket on port \(port): epoll_ctl: \(String(cString: strerror(errno)))")
            }
            watched[fd] = .relay(port)
        }
    }

    // MARK: I/O for the core

    struct IO: TURNIO {
        let shard: Shard

        mutating func send(_ bytes: [UInt8], to client: TURNFiveTuple) {
            if client.transport == .tcp {
                guard let ch = shard.connections[client] else { return }
                var buf = ch.allocator.buffer(capacity: bytes.count)
                buf.writeBytes(bytes)
                ch.write(buf, promise: nil)
                if shard.dirtyConnections.last !== ch { shard.dirtyConnections.append(ch) }
                return
            }
            guard let fd = shard.serverFds[client.server] else { return }
            shard.out.append(fd: fd, to: client.client, bytes)
        }

        mutating func relay(_ bytes: ArraySlice<UInt8>, fromPort port: UInt16, to peer: STUNAddress) {
            guard let fd = shard.relayFd(port) else { return }
            bytes.withUnsafeBytes { shard.out.append(fd: fd, to: peer, $0) }
        }

        mutating func openRelay(port: UInt16) -> Bool { shard.openRelay(port: port) }
        mutating func closeRelay(port: UInt16) { shard.closeRelay(port: port) }
        mutating func activateRelay(port: UInt16) { shard.activate(port: port) }
        mutating func log(_ line: @autoclosure () -> String) { shard.logLine(line) }
    }
}

/// Frames a TCP stream of STUN messages and (padded) ChannelData (RFC 8656 §12.5); an unframeable
/// stream closes the connection.
struct TURNStreamDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard buffer.readableBytes >= 4, let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt16.self) else { return .needMoreData }
        let size: Int
        switch first {
        case 0...3 where length & 3 == 0: size = 20 + Int(length)
        case 0x40...0x7F: size = 4 + ((Int(length) + 3) & ~3)
        default: throw TURNServerError("unframeable TCP stream (first byte 0x\(String(first, radix: 16)))")
        }
        guard let frame = buffer.readSlice(length: size) else { return .needMoreData }
        context.fireChannelRead(NIOAny(frame))
        return .continue
    }
}

extension TURNRelayServer {
    final class StreamHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let shard: Shard
        let local: STUNAddress
        var tuple: TURNFiveTuple?
        init(shard: Shard, local: STUNAddress) {
            self.shard = shard
            self.local = local
        }

        // On the control loop; the shard's state is touched only on the shard's thread, in order.
        func channelActive(context: ChannelHandlerContext) {
            guard let remote = context.remoteAddress, let client = STUNAddress(remote) else { return context.close(promise: nil) }
            let t = TURNFiveTuple(client: client, server: local, transport: .tcp)
            tuple = t
            let shard = shard, channel = context.channel
            shard.loop.execute { shard.connections[t] = channel }
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            if let t = tuple {
                let shard = shard
                shard.loop.execute {
                    shard.connections[t] = nil
                    var io = IO(shard: shard)
                    shard.core.connectionClosed(t, now: .now(), io: &io)
                }
            }
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard let t = tuple else { return }
            let frame = Array(unwrapInboundIn(data).readableBytesView)
            let shard = shard
            shard.loop.execute {
                var io = IO(shard: shard)
                shard.core.handleClient(frame, from: t, now: .now(), io: &io)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }
}


public struct TURNServerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
