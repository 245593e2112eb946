// The rendezvous server on swift-nio: one event loop, one TCP listener, `RendezvousRouter` for the
// logic. Each line in and out can be logged to stderr (`log`).
import NIOCore
import NIOPosix

/// Splits a TCP byte stream into `\n`-terminated lines (at most 64 KiB each) and hands them on.
final class JSONLineHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private var pending = ByteBuffer()
    private let onLine: (Channel, String) -> Void
    private let onClose: (Channel) -> Void

    init(onLine: @escaping (Channel, String) -> Void, onClose: @escaping (Channel) -> Void = { _ in }) {
        self.onLine = onLine
        self.onClose = onClose
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buf = unwrapInboundIn(data)
        pending.writeBuffer(&buf)
        while let nl = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            let len = nl - pending.readerIndex
            let line = pending.readString(length: len) ?? ""
            pending.moveReaderIndex(forwardBy: 1)
            let trimmed = line.hasSuffix("\r") ? String(line.dropLast()) : line
            if !trimmed.isEmpty { onLine(context.channel, trimmed) }
        }
        if pending.readableBytes > 65_536 { context.close(promise: nil) }
        pending.discardReadBytes()
    }

    func channelInactive(context: ChannelHandlerContext) {
        onClose(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

public final class RendezvousServer: @unchecked Sendable {
    private let group: MultiThreadedEventLoopGroup
    private var router = RendezvousRouter()
    private var channels: [ObjectIdentifier: (Int, Channel)] = [:]
    private var nextID = 1
    private let log: ((String) -> Void)?
    public private(set) var localAddress: SocketAddress?
    private var server: Channel?

    public init(log: ((String) -> Void)? = nil) {
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.log = log
    }

    /// Binds and starts serving; returns the bound address.
    @discardableResult
    public func start(host: String, port: Int) throws -> SocketAddress {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.pipeline.addHandler(JSONLineHandler(
                    onLine: { [self] ch, line in self.line(line, on: ch) },
                    onClose: { [self] ch in self.closed(ch) }))
            }
        let ch = try bootstrap.bind(host: host, port: port).wait()
        server = ch
        localAddress = ch.localAddress
        return ch.localAddress!
    }

    private func id(of ch: Channel) -> Int {
        let key = ObjectIdentifier(ch)
        if let (n, _) = channels[key] { return n }
        let n = nextID
        nextID += 1
        channels[key] = (n, ch)
        return n
    }

    private func line(_ line: String, on ch: Channel) {
        let c = id(of: ch)
        log?("[\(c)] > \(line)")
        for (dest, out) in router.receive(line, from: c) {
            guard let target = channels.values.first(where: { $0.0 == dest })?.1 else { continue }
            log?("[\(dest)] < \(out.dropLast())")
            var buf = target.allocator.buffer(capacity: out.utf8.count)
            buf.writeString(out)
            target.writeAndFlush(buf, promise: nil)
        }
    }

    private func closed(_ ch: Channel) {
        let key = ObjectIdentifier(ch)
        guard let (n, _) = channels.removeValue(forKey: key) else { return }
        log?("[\(n)] closed")
        router.closed(n)
    }

    /// Serves until the channel closes (or forever).
    public func wait() throws {
        try server?.closeFuture.wait()
    }

    public func stop() {
        try? server?.close().wait()
        try? group.syncShutdownGracefully()
    }
}
