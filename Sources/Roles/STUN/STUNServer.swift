// The STUN server on swift-nio: sockets and event loops around `STUNServerCore`.
//
// UDP: every event loop (one per core by default) binds its own socket on each local endpoint with
// SO_REUSEPORT, so the kernel spreads clients over the loops and no datagram crosses threads. A loop
// reads with recvmmsg (`datagramVectorReadMessageCount`), answers each datagram, and flushes once per
// read burst (NIO sends pending datagrams with sendmmsg). A CHANGE-REQUEST answer leaves through the
// same loop's socket on the other endpoint. TCP (RFC 8489 framing): one listener per endpoint.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import NIOPosix
import STUNWire

public struct STUNServerConfiguration: Sendable {
    /// One or two IP addresses (two: RFC 5780, ports p and p+1 on each).
    public var addresses: [STUNIPAddress]
    public var port: UInt16 = 3478
    public var tcp: Bool = true
    public var software: String? = "natlab"
    /// Event loops (threads); each has its own UDP socket per endpoint.
    public var threads: Int = System.coreCount
    /// Datagrams per recvmmsg call.
    public var vectorReadCount: Int = 64

    public init(addresses: [STUNIPAddress], port: UInt16 = 3478, tcp: Bool = true, software: String? = "natlab") {
        self.addresses = addresses
        self.port = port
        self.tcp = tcp
        self.software = software
    }
}

/// A running STUN server.
public final class STUNServer: Sendable {
    public let core: STUNServerCore
    public let configuration: STUNServerConfiguration
    private let group: MultiThreadedEventLoopGroup
    private let channels: [any Channel]
    private let stopping = StopState()

    /// Binds every socket; throws (having closed what it opened) when one cannot be bound.
    public init(_ configuration: STUNServerConfiguration) throws {
        precondition(!configuration.addresses.isEmpty && configuration.addresses.count <= 2)
        let core = try STUNServerCore(primary: configuration.addresses[0],
                                      alternate: configuration.addresses.count > 1 ? configuration.addresses[1] : nil,
                                      port: configuration.port, software: configuration.software)
        let threads = max(1, configuration.threads)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        var opened: [any Channel] = []
        do {
            for loop in group.makeIterator() {
                let sockets = LoopSockets(count: core.endpoints.count)
                var mine: [any Channel] = []
                for (index, endpoint) in core.endpoints.enumerated() {
                    let channel = try Self.bindUDP(endpoint, index: index, core: core, sockets: sockets, loop: loop,
                                                   reusePort: threads > 1, vectorReads: configuration.vectorReadCount)
                    mine.append(channel)
                    opened.append(channel)
                }
                let bound = mine
                try loop.submit { sockets.channels = bound }.wait()
            }
            if configuration.tcp {
                for (index, endpoint) in core.endpoints.enumerated() {
                    opened.append(try Self.bindTCP(endpoint, index: index, core: core, group: group))
                }
            }
        } catch {
            for c in opened { try? c.close().wait() }
            try? group.syncShutdownGracefully()
            throw error
        }
        self.core = core
        self.configuration = configuration
        self.group = group
        self.channels = opened
    }

    /// "udp 192.0.2.1:3478", … one line per socket kind and endpoint.
    public var listening: [String] {
        core.endpoints.map { "udp \($0)" } + (configuration.tcp ? core.endpoints.map { "tcp \($0)" } : [])
    }

    /// Closes every socket and stops the event loops. Safe to call more than once.
    public func shutdown() {
        stopping.once {
            for c in channels { try? c.close().wait() }
            try? group.syncShutdownGracefully()
        }
    }

    /// Blocks until every socket is closed.
    public func wait() {
        for c in channels { try? c.closeFuture.wait() }
    }

    private static func bindUDP(_ endpoint: STUNAddress, index: Int, core: STUNServerCore, sockets: LoopSockets,
                                loop: any EventLoop, reusePort: Bool, vectorReads: Int) throws -> any Channel {
        let slot = 2048
        let count = max(1, vectorReads)
        var bootstrap = DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: slot * count))
            .channelOption(.maxMessagesPerRead, value: 4)
        if count > 1 {
            bootstrap = bootstrap.channelOption(.datagramVectorReadMessageCount, value: count)
        }
        if reusePort {
            bootstrap = bootstrap.channelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
        }
        return try bootstrap.channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(STUNDatagramHandler(core: core, index: index, sockets: sockets))
            }
        }.bind(to: endpoint.socketAddress).wait()
    }

    private static func bindTCP(_ endpoint: STUNAddress, index: Int, core: STUNServerCore,
                                group: MultiThreadedEventLoopGroup) throws -> any Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(STUNStreamDecoder()),
                        STUNStreamHandler(core: core, index: index))
                }
            }
            .bind(to: endpoint.socketAddress).wait()
    }
}

/// Runs the shutdown once; later callers wait until it is done.
final class StopState: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    func once(_ body: () -> Void) {
        lock.lock()
        defer { lock.unlock() }
        guard !done else { return }
        body()
        done = true
    }
}

/// The UDP channels of one event loop, by endpoint index. Touched only on that loop.
final class LoopSockets: @unchecked Sendable {
    var channels: [any Channel] = []
    init(count: Int) { channels.reserveCapacity(count) }
}

/// Answers datagrams; writes are flushed once per read burst.
final class STUNDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    let core: STUNServerCore
    let index: Int
    let sockets: LoopSockets
    var unflushed = false

    init(core: STUNServerCore, index: Int, sockets: LoopSockets) {
        self.core = core
        self.index = index
        self.sockets = sockets
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let source = STUNAddress(envelope.remoteAddress) else { return }
        var out = context.channel.allocator.buffer(capacity: core.maxResponseSize)
        var reply: STUNServerCore.Reply? = nil
        _ = envelope.data.withUnsafeReadableBytes { request in
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: core.maxResponseSize) { output in
                reply = core.respond(to: request, from: source, on: index, transport: .udp, into: output)
                return reply?.length ?? 0
            }
        }
        guard let reply else { return }
        let destination = reply.toSource ? envelope.remoteAddress : reply.destination.socketAddress
        let response = AddressedEnvelope(remoteAddress: destination, data: out)
        if reply.socket == index {
            context.write(wrapOutboundOut(response), promise: nil)
            unflushed = true
        } else if reply.socket < sockets.channels.count {
            sockets.channels[reply.socket].writeAndFlush(response, promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if unflushed {
            unflushed = false
            context.flush()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP errors (ECONNREFUSED from an earlier send) and the like: a UDP server keeps serving.
    }
}

/// Splits a TCP stream into STUN messages (RFC 8489 §6.2.2: the length field frames them).
struct STUNStreamDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    struct NotSTUN: Error {}

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt16.self) else { return .needMoreData }
        guard first & 0xC000 == 0 else { throw NotSTUN() }
        guard let message = buffer.readSlice(length: stunHeaderSize + Int(length)) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(message))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

/// Answers framed messages on one TCP connection.
final class STUNStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let core: STUNServerCore
    let index: Int
    var source: STUNAddress?

    init(core: STUNServerCore, index: Int) {
        self.core = core
        self.index = index
    }

    func channelActive(context: ChannelHandlerContext) {
        source = context.channel.remoteAddress.flatMap(STUNAddress.init)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        guard let source else { return }
        var out = context.channel.allocator.buffer(capacity: core.maxResponseSize)
        var answered = false
        _ = message.withUnsafeReadableBytes { request in
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: core.maxResponseSize) { output in
                guard let reply = core.respond(to: request, from: source, on: index, transport: .tcp, into: output) else { return 0 }
                answered = true
                return reply.length
            }
        }
        if answered { context.write(wrapOutboundOut(out), promise: nil) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

