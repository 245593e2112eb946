// The TURN relay on swift-nio, sharded by event loop. There is one event loop per core by default,
// and each is a *shard*: it binds its own UDP socket on every listening address with SO_REUSEPORT, so
// the kernel spreads clients over the shards by 4-tuple and a client's datagrams always reach the same
// shard. The shard owns those clients' allocations (its own `TURNServerCore`) and their relayed
// sockets (registered on its loop), so no relayed datagram crosses threads in either direction and
// the data path takes no lock. TCP clients: one listener per address; a connection is served by the
// shard whose loop NIO gives it. What shards must agree on (quotas, serials, relay ports,
// reservations) is `TURNShared`, locked per allocation, not per packet; the relayed sockets' file
// descriptors are shared as well (`RelaySockets`), because the port of a RESERVATION-TOKEN may be
// taken up by a client of another shard. Shard 0's timer gathers every shard's statistics once a second.
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
    /// Event loops (shards), each with its own SO_REUSEPORT socket per listening address.
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
    let group: MultiThreadedEventLoopGroup
    let shards: [Shard]
    let options: TURNServerOptions
    let started: Double
    let logger: Logger
    // Set in `start` before it returns, read in `stop`.
    var listeners: [Channel] = []
    var timers: [RepeatedTask] = []
    /// The last statistics written (without their time stamp); only on shard 0's loop.
    var lastStats: TURNStatsSnapshot?

    init(options: TURNServerOptions, logger: Logger) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, options.threads))
        // One nonce secret for all shards: a nonce stays valid whichever shard checks it.
        var secret = [UInt8]()
        for _ in 0..<32 { secret.append(UInt8.random(in: 0...255)) }
        let shared = TURNShared()
        let sockets = RelaySockets()
        var shards: [Shard] = []
        for loop in group.makeIterator() {
            shards.append(Shard(loop: loop, core: TURNServerCore(config: options.config, nonceSecret: secret, shared: shared),
                                sockets: sockets, relayAddress: options.config.relayAddress, logger: logger))
        }
        self.shards = shards
        self.options = options
        self.logger = logger
        started = Date().timeIntervalSince1970
    }

    /// Binds the listening sockets and starts relaying.
    public static func start(_ options: TURNServerOptions, logger: Logger = Logger(label: "natlab.turn")) throws -> TURNRelayServer {
        let s = TURNRelayServer(options: options, logger: logger)
        var opened: [Channel] = []
        do {
            for shard in s.shards {
                for address in options.listen {
                    // Bound here (not by NIO) so the shard knows the descriptor it sends on.
                    let fd = try boundSocket(address, reusePort: s.shards.count > 1)
                    let ch: Channel
                    do {
                        ch = try s.bootstrap(shard) { ServerHandler(shard: shard, local: address) }.withBoundSocket(fd).wait()
                    } catch {
                        close(fd)
                        throw error
                    }
                    opened.append(ch)
                    try shard.loop.submit {
                        shard.servers[address] = ch
                        shard.serverFds[address] = fd
                    }.wait()
                }
            }
            if options.tcp {
                for address in options.listen {
                    let listener = try ServerBootstrap(group: s.group)
                        .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                        .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                        .childChannelInitializer { ch in
                            ch.eventLoop.makeCompletedFuture {
                                let shard = s.shard(of: ch.eventLoop)
                                try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(TURNStreamDecoder()))
                                try ch.pipeline.syncOperations.addHandler(StreamHandler(shard: shard, local: address))
                            }
                        }
                        .bind(to: address.socketAddress).wait()
                    opened.append(listener)
                    s.listeners.append(listener)
                }
            }
        } catch {
            for ch in opened { try? ch.close().wait() }
            try? s.group.syncShutdownGracefully()
            throw error
        }
        for shard in s.shards {
            s.timers.append(shard.loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
                shard.tick()
                if shard === s.shards[0] { s.writeStats(force: false) }
            })
        }
        try s.shards[0].loop.flatSubmit { s.writeStats(force: true) }.wait()
        return s
    }

    /// Event loops (shards) relaying.
    public var threads: Int { shards.count }

    /// The shard of a channel's event loop (TCP connections: NIO picks the loop).
    func shard(of loop: EventLoop) -> Shard {
        shards.first { $0.loop === loop } ?? shards[0]
    }

    func bootstrap(_ shard: Shard, _ handler: @escaping @Sendable () -> ChannelHandler) -> DatagramBootstrap {
        DatagramBootstrap(group: shard.loop)
            .channelOption(ChannelOptions.datagramVectorReadMessageCount, value: 32)
            // Up to 4 recvmmsg (32 datagrams each) per readiness event, then the loop serves the other
            // sockets and flushes (level-triggered epoll brings the rest back next iteration). The
            // listening socket carries every client's traffic while each relayed socket carries one
            // allocation's: with one read per event it fell behind the relayed sockets and its receive
            // buffer overflowed under `Scripts/bench turn` (5–10 % of datagrams lost in some runs).
            .channelOption(ChannelOptions.maxMessagesPerRead, value: 4)
            .channelOption(ChannelOptions.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 2048 * 32))
            .channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelOption(ChannelOptions.socketOption(.so_sndbuf), value: 4 << 20)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(handler()) } }
    }

    /// A UDP socket bound to `address` (IPv4), with SO_REUSEADDR and, for several shards, SO_REUSEPORT
    /// (set before bind, where it counts).
    static func boundSocket(_ address: STUNAddress, reusePort: Bool) throws -> Int32 {
        guard let sa = address.sockaddrIPv4 else { throw TURNServerError("listen \(address): IPv4 only") }
        let fd = socket(AF_INET, CLS_SOCK_DGRAM | CLS_SOCK_CLOEXEC, 0)
        guard fd >= 0 else { throw TURNServerError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
        guard withSockaddr(sa, { bind(fd, $0, $1) }) == 0 else {
            let e = errno
            close(fd)
            throw TURNServerError("bind \(address): \(String(cString: strerror(e)))")
        }
        return fd
    }

    /// Ends every allocation, writes the final statistics, closes the sockets.
    public func stop() {
        for t in timers { t.cancel() }
        for shard in shards { try? shard.loop.submit { shard.shutdown() }.wait() }
        try? shards[0].loop.flatSubmit { self.writeStats(force: true) }.wait()
        for ch in listeners { try? ch.close().wait() }
        try? group.syncShutdownGracefully()
    }

    /// Gathers every shard's statistics (each on its own loop) and writes them when they changed.
    /// Runs on shard 0's loop.
    @discardableResult
    func writeStats(force: Bool) -> EventLoopFuture<Void> {
        let loop = shards[0].loop
        guard let path = options.statsPath else { return loop.makeSucceededVoidFuture() }
        let now = TURNTime.now()
        let listen = options.listen.map(\.description), started = started, limit = options.config.historyLimit
        let parts = shards.map { shard in shard.loop.submit { shard.core.snapshot(now: now, listen: listen, started: started) } }
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
    /// One event loop's share of the relay. Everything in it is touched only on `loop`.
    final class Shard: @unchecked Sendable {
        let loop: EventLoop
        var core: TURNServerCore
        let sockets: RelaySockets
        let relayAddress: STUNIPAddress
        let logger: Logger
        /// This shard's socket on each listening address (read by NIO), and its descriptor (written
        /// through `out`).
        var servers: [STUNAddress: Channel] = [:]
        var serverFds: [STUNAddress: Int32] = [:]
        /// Every UDP datagram the shard sends, batched per socket.
        let out = DatagramBatches()
        /// Relayed sockets' descriptors this shard sends on (a copy of `sockets`' entries, read
        /// without its lock).
        var relayFds: [UInt16: Int32] = [:]
        /// TCP connections of clients, by 5-tuple.
        var connections: [TURNFiveTuple: Channel] = [:]
        var dirtyConnections: [Channel] = []
        /// Relayed sockets read by NIO (those with a permission).
        var relays: [UInt16: Channel] = [:]
        /// Relayed sockets being registered with NIO, and those closed meanwhile.
        var activating: Set<UInt16> = []
        var closedWhilePending: Set<UInt16> = []
        var pendingLog: [String] = []
        var flushScheduled = false
        /// `out`'s drop counts already reported to the core.
        var reportedDrops = 0
        var reportedFailures: [Int32: Int] = [:]
        var suppressedLog = 0

        init(loop: EventLoop, core: TURNServerCore, sockets: RelaySockets, relayAddress: STUNIPAddress, logger: Logger) {
            self.loop = loop
            self.core = core
            self.sockets = sockets
            self.relayAddress = relayAddress
            self.logger = logger
        }

        /// Relayed sockets: few options (each costs per allocation); the handler finds its port from the channel.
        lazy var relayBootstrap: DatagramBootstrap = DatagramBootstrap(group: loop)
            .channelOption(ChannelOptions.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 2048 * 8))
            .channelOption(ChannelOptions.datagramVectorReadMessageCount, value: 8)
            // One recvmmsg per readiness event: NIO otherwise reads again until EAGAIN, a second
            // system call per event on a socket that carries one allocation's traffic; epoll is
            // level-triggered, so what is left is read on the next iteration.
            .channelOption(ChannelOptions.maxMessagesPerRead, value: 1)
            .channelInitializer { [unowned self] ch in
                ch.eventLoop.makeCompletedFuture {
                    let port = UInt16(ch.localAddress?.port ?? 0)
                    try ch.pipeline.syncOperations.addHandler(RelayHandler(shard: self, port: port))
                }
            }

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
            out.flush()
            writeLog()
            for ch in servers.values { ch.close(promise: nil) }
            for ch in connections.values { ch.close(promise: nil) }
        }

        /// Log lines go out once a second (the timer), not one write per allocation, and at most
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

        /// Relayed datagrams go out once per event-loop iteration: the loop runs its tasks after all
        /// the sockets one epoll wait reported, so datagrams read from many relayed sockets leave each
        /// listening socket in one sendmmsg instead of one per relayed socket.
        func scheduleFlush() {
            guard !flushScheduled else { return }
            flushScheduled = true
            loop.execute {
                self.flushScheduled = false
                self.flush()
            }
        }

        func flush() {
            out.flush()
            if !dirtyConnections.isEmpty {
                for ch in dirtyConnections { ch.flush() }
                dirtyConnections.removeAll(keepingCapacity: true)
            }
        }

        /// The descriptor of relayed socket `port`, if it is open.
        func relayFd(_ port: UInt16) -> Int32? {
            if let fd = relayFds[port] { return fd }
            // Opened by another shard (a redeemed RESERVATION-TOKEN): remembered from now on.
            guard let fd = sockets.fd(port) else { return nil }
            relayFds[port] = fd
            return fd
        }

        /// Binds the relayed socket now (so the port is known to be ours before the Allocate is answered);
        /// NIO reads it from its first permission on (`activate`).
        func openRelay(port: UInt16) -> Bool {
            guard let sa = STUNAddress(ip: relayAddress, port: port).sockaddrIPv4 else { return false }
            let fd = socket(AF_INET, CLS_SOCK_DGRAM | CLS_SOCK_CLOEXEC, 0)
            guard fd >= 0 else { return false }
            guard withSockaddr(sa, { bind(fd, $0, $1) }) == 0 else { close(fd); return false }
            closedWhilePending.remove(port)
            sockets.add(port, fd)
            relayFds[port] = fd
            return true
        }

        func closeRelay(port: UInt16) {
            relayFds[port] = nil
            guard let fd = sockets.remove(port) else { return }
            // Queued datagrams go now: once closed, the descriptor's number may be the next socket's.
            out.forget(fd: fd)
            if let ch = relays.removeValue(forKey: port) {
                ch.close(promise: nil)
            } else if activating.contains(port) {
                closedWhilePending.insert(port)
            } else {
                close(fd)  // never handed to NIO
            }
        }

        /// Hands the relayed socket to NIO, on this shard's loop, once it has a permission. Datagrams
        /// that arrived before (from peers without a permission then) are discarded first.
        func activate(port: UInt16) {
            guard relays[port] == nil, !activating.contains(port), let fd = sockets.fd(port) else { return }
            var scratch = [UInt8](repeating: 0, count: 2048)
            while recv(fd, &scratch, scratch.count, CLS_MSG_DONTWAIT) >= 0 {}
            activating.insert(port)
            // Socket buffers set here, on the fd: every channel option NIO applies costs a dynamic cast,
            // and allocation rate is measured (Scripts/bench turn).
            var size: Int32 = 1 << 20
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            relayBootstrap.withBoundSocket(fd).whenComplete { result in
                switch result {
                case .success(let ch):
                    self.activating.remove(port)
                    if self.closedWhilePending.remove(port) != nil { ch.close(promise: nil) } else { self.relays[port] = ch }
                case .failure(let e):
                    self.activating.remove(port)
                    self.logger.error("relay socket on port \(port): \(e)")
                }
            }
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

    // MARK: Handlers

    final class ServerHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let shard: Shard
        let local: STUNAddress
        init(shard: Shard, local: STUNAddress) {
            self.shard = shard
            self.local = local
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let env = unwrapInboundIn(data)
            guard let client = STUNAddress(env.remoteAddress) else { return }
            let tuple = TURNFiveTuple(client: client, server: local)
            let buf = env.data
            let r = buf.readerIndex
            let n = buf.readableBytes
            guard n >= 4, let first = buf.getInteger(at: r, as: UInt8.self) else { return }
            let now = TURNTime.now()
            if first & 0xC0 == 0x40 {
                // ChannelData fast path: no copy of the payload.
                let number = buf.getInteger(at: r, as: UInt16.self)!
                let length = Int(buf.getInteger(at: r + 2, as: UInt16.self)!)
                guard 4 + length <= n else { return shard.core.drop("malformed") }
                guard let (port, peer) = shard.core.channelDataTarget(tuple, channel: number, length: length, now: now) else { return }
                guard let fd = shard.relayFd(port) else { return }
                buf.withUnsafeReadableBytes { shard.out.append(fd: fd, to: peer, UnsafeRawBufferPointer(rebasing: $0[4..<(4 + length)])) }
                return
            }
            var io = IO(shard: shard)
            shard.core.handleClient(Array(buf.readableBytesView), from: tuple, now: now, io: &io)
            // Answers leave with the relayed datagrams at the end of this loop iteration, after at
            // most one recvmmsg batch (maxMessagesPerRead 1): one sendmmsg for the batch's answers,
            // not one sendmsg each.
        }

        func channelReadComplete(context: ChannelHandlerContext) { shard.scheduleFlush() }
    }

    final class RelayHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let shard: Shard
        let port: UInt16
        init(shard: Shard, port: UInt16) {
            self.shard = shard
            self.port = port
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let env = unwrapInboundIn(data)
            guard let peer = STUNAddress(env.remoteAddress) else { return }
            let n = env.data.readableBytes
            guard let (tuple, channel) = shard.core.peerTarget(relayPort: port, peer: peer, length: n, now: .now()) else { return }
            if tuple.transport == .tcp {
                var io = IO(shard: shard)
                let data = Array(env.data.readableBytesView)
                if let channel {
                    io.send(ChannelData(channelNumber: channel, data: data).encode(padded: true), to: tuple)
                } else {
                    io.send(TURNServerCore.dataIndication(peer: peer, data: data), to: tuple)
                }
                return
            }
            guard let fd = shard.serverFds[tuple.server] else { return }
            if let channel {
                let header = UInt32(channel) << 16 | UInt32(n)
                withUnsafeBytes(of: header.bigEndian) { h in
                    env.data.withUnsafeReadableBytes { shard.out.append(fd: fd, to: tuple.client, h, $0) }
                }
            } else {
                shard.out.append(fd: fd, to: tuple.client, TURNServerCore.dataIndication(peer: peer, data: Array(env.data.readableBytesView)))
            }
        }

        func channelReadComplete(context: ChannelHandlerContext) { shard.scheduleFlush() }
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

        func channelActive(context: ChannelHandlerContext) {
            guard let remote = context.remoteAddress, let client = STUNAddress(remote) else { return context.close(promise: nil) }
            let t = TURNFiveTuple(client: client, server: local, transport: .tcp)
            tuple = t
            shard.connections[t] = context.channel
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            if let t = tuple {
                shard.connections[t] = nil
                var io = IO(shard: shard)
                shard.core.connectionClosed(t, now: .now(), io: &io)
            }
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard let t = tuple else { return }
            let frame = unwrapInboundIn(data)
            var io = IO(shard: shard)
            shard.core.handleClient(Array(frame.readableBytesView), from: t, now: .now(), io: &io)
        }

        func channelReadComplete(context: ChannelHandlerContext) { shard.scheduleFlush() }

        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }
}


public struct TURNServerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
