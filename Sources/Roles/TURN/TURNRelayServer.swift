// The TURN relay on swift-nio: one UDP socket per listening address, one per allocation (its
// relayed address). Everything runs on one event loop, which owns the `TURNServerCore` value.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
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
    public init(listen: [STUNAddress], config: TURNConfig, statsPath: String? = nil, tcp: Bool = true) {
        self.listen = listen
        self.config = config
        self.statsPath = statsPath
        self.tcp = tcp
    }
}

/// A running relay. Create with `start`, stop with `stop`.
public final class TURNRelayServer: @unchecked Sendable {
    // Everything below is touched only on `loop` (the one event loop of `group`).
    let group: MultiThreadedEventLoopGroup
    let loop: EventLoop
    var core: TURNServerCore
    var servers: [STUNAddress: Channel] = [:]
    /// TCP connections of clients, by 5-tuple.
    var connections: [TURNFiveTuple: Channel] = [:]
    var dirtyConnections: [Channel] = []
    var listeners: [Channel] = []
    var relays: [UInt16: Channel] = [:]
    /// Relay sockets bound but not yet registered (their fds), and ports closed meanwhile.
    var closedWhilePending: Set<UInt16> = []
    /// Every relayed socket, bound (by port); those with a permission are also NIO channels (`relays`).
    var fds: [UInt16: Int32] = [:]
    var activating: Set<UInt16> = []
    var pendingLog: [String] = []
    var dirtyRelays: [Channel] = []
    var dirtyServers = false
    let options: TURNServerOptions
    let started: Double
    var lastStats: Data?
    let logger: Logger
    var timer: RepeatedTask?
    var logLines = 0

    init(options: TURNServerOptions, logger: Logger) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loop = group.next()
        core = TURNServerCore(config: options.config)
        self.options = options
        self.logger = logger
        started = Date().timeIntervalSince1970
    }

    /// Binds the listening sockets and starts relaying.
    public static func start(_ options: TURNServerOptions, logger: Logger = Logger(label: "natlab.turn")) throws -> TURNRelayServer {
        let s = TURNRelayServer(options: options, logger: logger)
        for address in options.listen {
            let sa = address.socketAddress
            let ch = try s.bootstrap { ServerHandler(relay: s, local: address) }.bind(to: sa).wait()
            try s.loop.submit { s.servers[address] = ch }.wait()
        }
        if options.tcp {
            for address in options.listen {
                let sa = address.socketAddress
                let listener = try ServerBootstrap(group: s.group)
                    .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                    .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                    .childChannelInitializer { ch in
                        ch.eventLoop.makeCompletedFuture {
                            try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(TURNStreamDecoder()))
                            try ch.pipeline.syncOperations.addHandler(StreamHandler(relay: s, local: address))
                        }
                    }
                    .bind(to: sa).wait()
                try s.loop.submit { s.listeners.append(listener) }.wait()
            }
        }
        s.timer = s.loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in s.tick() }
        try s.loop.submit { s.writeStats(force: true) }.wait()
        return s
    }

    func bootstrap(_ handler: @escaping @Sendable () -> ChannelHandler) -> DatagramBootstrap {
        DatagramBootstrap(group: group)
            .channelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .channelOption(ChannelOptions.datagramVectorReadMessageCount, value: 32)
            .channelOption(ChannelOptions.maxMessagesPerRead, value: 8)
            .channelOption(ChannelOptions.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 2048 * 32))
            .channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelOption(ChannelOptions.socketOption(.so_sndbuf), value: 4 << 20)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(handler()) } }
    }

    /// Relayed sockets: few options (each costs per allocation); the handler finds its port from the channel.
    lazy var relayBootstrap: DatagramBootstrap = DatagramBootstrap(group: group)
        .channelOption(ChannelOptions.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 2048 * 8))
        .channelOption(ChannelOptions.datagramVectorReadMessageCount, value: 8)
        .channelInitializer { [unowned self] ch in
            ch.eventLoop.makeCompletedFuture {
                let port = UInt16(ch.localAddress?.port ?? 0)
                try ch.pipeline.syncOperations.addHandler(RelayHandler(relay: self, port: port))
            }
        }

    /// Ends every allocation, writes the final statistics, closes the sockets.
    public func stop() {
        try? loop.submit {
            self.timer?.cancel()
            var io = IO(relay: self)
            self.core.shutdown(now: .now(), io: &io)
            self.writeStats(force: true)
            self.writeLog()
            for ch in self.servers.values { ch.close(promise: nil) }
            for ch in self.listeners + Array(self.connections.values) { ch.close(promise: nil) }
        }.wait()
        try? group.syncShutdownGracefully()
    }

    func tick() {
        var io = IO(relay: self)
        core.expire(now: .now(), io: &io)
        writeStats(force: false)
        writeLog()
    }

    func writeStats(force: Bool) {
        guard let path = options.statsPath else { return }
        let snap = core.snapshot(now: .now(), listen: options.listen.map(\.description), started: started)
        var cmp = snap
        cmp.updated = 0
        let key = cmp.encoded(pretty: false)
        guard force || key != lastStats else { return }
        lastStats = key
        let tmp = path + ".tmp"
        if FileManager.default.createFile(atPath: tmp, contents: snap.encoded()) {
            rename(tmp, path)
        }
    }

    /// Log lines go out once a second (the timer), not one write per allocation.
    func logLine(_ line: String) {
        guard logLines < 100_000 else { return }  // a flood of bad requests must not fill the disk
        logLines += 1
        pendingLog.append(line)
    }

    func writeLog() {
        guard !pendingLog.isEmpty else { return }
        FileHandle.standardError.write(Data(pendingLog.map { "natlab turn: \($0)\n" }.joined().utf8))
        pendingLog.removeAll()
    }

    func flush() {
        if dirtyServers {
            dirtyServers = false
            for ch in servers.values { ch.flush() }
        }
        if !dirtyConnections.isEmpty {
            for ch in dirtyConnections { ch.flush() }
            dirtyConnections.removeAll(keepingCapacity: true)
        }
        if !dirtyRelays.isEmpty {
            for ch in dirtyRelays { ch.flush() }
            dirtyRelays.removeAll(keepingCapacity: true)
        }
    }

    // MARK: I/O for the core

    struct IO: TURNIO {
        let relay: TURNRelayServer

        mutating func send(_ bytes: [UInt8], to client: TURNFiveTuple) {
            if client.transport == .tcp {
                guard let ch = relay.connections[client] else { return }
                var buf = ch.allocator.buffer(capacity: bytes.count)
                buf.writeBytes(bytes)
                ch.write(buf, promise: nil)
                if relay.dirtyConnections.last !== ch { relay.dirtyConnections.append(ch) }
                return
            }
            let sa = client.client.socketAddress
            guard let ch = relay.servers[client.server] else { return }
            var buf = ch.allocator.buffer(capacity: bytes.count)
            buf.writeBytes(bytes)
            ch.write(AddressedEnvelope(remoteAddress: sa, data: buf), promise: nil)
            relay.dirtyServers = true
        }

        mutating func relay(_ bytes: ArraySlice<UInt8>, fromPort port: UInt16, to peer: STUNAddress) {
            let sa = peer.socketAddress
            guard let ch = relay.relays[port] else {
                // Not registered with NIO yet (activation is asynchronous): send on the socket itself.
                if let fd = relay.fds[port] { TURNRelayServer.sendDirect(fd: fd, bytes, to: peer) }
                return
            }
            var buf = ch.allocator.buffer(capacity: bytes.count)
            buf.writeBytes(bytes)
            ch.write(AddressedEnvelope(remoteAddress: sa, data: buf), promise: nil)
            if relay.dirtyRelays.last !== ch { relay.dirtyRelays.append(ch) }
        }

        mutating func openRelay(port: UInt16) -> Bool { relay.openRelay(port: port) }

        mutating func log(_ line: String) { relay.logLine(line) }

        mutating func closeRelay(port: UInt16) {
            guard let fd = relay.fds.removeValue(forKey: port) else { return }
            if let ch = relay.relays.removeValue(forKey: port) {
                ch.close(promise: nil)
            } else if relay.activating.contains(port) {
                relay.closedWhilePending.insert(port)
            } else {
                close(fd)  // never handed to NIO
            }
        }

        mutating func activateRelay(port: UInt16) { relay.activate(port: port) }
    }

    /// Binds the relayed socket now (so the port is known to be ours before the Allocate is answered);
    /// NIO reads it from its first permission on (`activate`).
    func openRelay(port: UInt16) -> Bool {
        // Not `core.config`: this runs while the core is being mutated (exclusive access).
        guard case .ipv4(let ip) = options.config.relayAddress else { return false }
        let fd = socket(AF_INET, CLS_SOCK_DGRAM | CLS_SOCK_CLOEXEC, 0)
        guard fd >= 0 else { return false }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = ip.bigEndian
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { close(fd); return false }
        closedWhilePending.remove(port)
        fds[port] = fd
        return true
    }

    /// Hands the relayed socket to NIO once it has a permission. Datagrams that arrived before (from
    /// peers without a permission then) are discarded first.
    func activate(port: UInt16) {
        guard let fd = fds[port], relays[port] == nil, !activating.contains(port) else { return }
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

    static func sendDirect(fd: Int32, _ bytes: ArraySlice<UInt8>, to peer: STUNAddress) {
        guard case .ipv4(let ip) = peer.ip else { return }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = peer.port.bigEndian
        sa.sin_addr.s_addr = ip.bigEndian
        _ = bytes.withUnsafeBytes { b in
            withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, b.baseAddress, b.count, CLS_MSG_DONTWAIT, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    // MARK: Handlers

    final class ServerHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let relay: TURNRelayServer
        let local: STUNAddress
        init(relay: TURNRelayServer, local: STUNAddress) {
            self.relay = relay
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
                guard 4 + length <= n else { return relay.core.drop("malformed") }
                guard let (port, peer) = relay.core.channelDataTarget(tuple, channel: number, length: length, now: now) else { return }
                let sa = peer.socketAddress
                guard let ch = relay.relays[port], let payload = buf.getSlice(at: r + 4, length: length) else {
                    if let fd = relay.fds[port], let bytes = buf.getBytes(at: r + 4, length: length) {
                        TURNRelayServer.sendDirect(fd: fd, bytes[...], to: peer)
                    }
                    return
                }
                ch.write(AddressedEnvelope(remoteAddress: sa, data: payload), promise: nil)
                if relay.dirtyRelays.last !== ch { relay.dirtyRelays.append(ch) }
                return
            }
            var io = IO(relay: relay)
            relay.core.handleClient(Array(buf.readableBytesView), from: tuple, now: now, io: &io)
            // Answers go out at once (the data path waits for the end of the read batch): holding
            // them for a whole batch stalls clients that pipeline requests.
            if relay.dirtyServers {
                relay.dirtyServers = false
                context.channel.flush()
                for (address, ch) in relay.servers where address != local { ch.flush() }
            }
        }

        func channelReadComplete(context: ChannelHandlerContext) { relay.flush() }
    }

    final class RelayHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let relay: TURNRelayServer
        let port: UInt16
        init(relay: TURNRelayServer, port: UInt16) {
            self.relay = relay
            self.port = port
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var env = unwrapInboundIn(data)
            guard let peer = STUNAddress(env.remoteAddress) else { return }
            let n = env.data.readableBytes
            guard let (tuple, channel) = relay.core.peerTarget(relayPort: port, peer: peer, length: n, now: .now()) else { return }
            if tuple.transport == .tcp {
                var io = IO(relay: relay)
                let data = Array(env.data.readableBytesView)
                if let channel {
                    io.send(ChannelData(channelNumber: channel, data: data).encode(padded: true), to: tuple)
                } else {
                    io.send(TURNServerCore.dataIndication(peer: peer, data: data), to: tuple)
                }
                return
            }
            let sa = tuple.client.socketAddress
            guard let server = relay.servers[tuple.server] else { return }
            var out: ByteBuffer
            if let channel {
                out = server.allocator.buffer(capacity: 4 + n)
                out.writeInteger(channel)
                out.writeInteger(UInt16(n))
                out.writeBuffer(&env.data)
            } else {
                let bytes = TURNServerCore.dataIndication(peer: peer, data: Array(env.data.readableBytesView))
                out = server.allocator.buffer(capacity: bytes.count)
                out.writeBytes(bytes)
            }
            server.write(AddressedEnvelope(remoteAddress: sa, data: out), promise: nil)
            relay.dirtyServers = true
        }

        func channelReadComplete(context: ChannelHandlerContext) { relay.flush() }
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
        let relay: TURNRelayServer
        let local: STUNAddress
        var tuple: TURNFiveTuple?
        init(relay: TURNRelayServer, local: STUNAddress) {
            self.relay = relay
            self.local = local
        }

        func channelActive(context: ChannelHandlerContext) {
            guard let remote = context.remoteAddress, let client = STUNAddress(remote) else { return context.close(promise: nil) }
            let t = TURNFiveTuple(client: client, server: local, transport: .tcp)
            tuple = t
            relay.connections[t] = context.channel
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            if let t = tuple {
                relay.connections[t] = nil
                var io = IO(relay: relay)
                relay.core.connectionClosed(t, now: .now(), io: &io)
            }
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard let t = tuple else { return }
            let frame = unwrapInboundIn(data)
            var io = IO(relay: relay)
            relay.core.handleClient(Array(frame.readableBytesView), from: t, now: .now(), io: &io)
        }

        func channelReadComplete(context: ChannelHandlerContext) { relay.flush() }

        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }
}


public struct TURNServerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
