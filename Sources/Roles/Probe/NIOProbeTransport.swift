// UDP sockets for the probe on swift-nio (DatagramBootstrap). Each socket is bound to the concrete
// local address the kernel would use towards the server, so "mapped == local" detects a path
// without NAT.

#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import STUNWire
import CLinuxSupport
import Synchronization

public final class NIOProbeTransport: ProbeTransport {
    let group: MultiThreadedEventLoopGroup
    /// Open channels; after `shutdown` sockets no longer touch their (stopped) event loop.
    let open = Mutex<(shutDown: Bool, channels: [ObjectIdentifier: any Channel])>((false, [:]))

    public init(threads: Int = 1) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    }

    /// Closes every socket still open, then stops the event loops.
    public func shutdown() async {
        let channels = open.withLock { state -> [any Channel] in
            state.shutDown = true
            defer { state.channels.removeAll() }
            return Array(state.channels.values)
        }
        for c in channels { try? await c.close() }
        try? await group.shutdownGracefully()
    }

    func forget(_ channel: any Channel) -> Bool {
        open.withLock { state in
            state.channels.removeValue(forKey: ObjectIdentifier(channel)) != nil && !state.shutDown
        }
    }

    public func open(towards server: STUNAddress, port requested: UInt16?) async throws -> any ProbeSocket {
        let localIP = try Self.sourceAddress(towards: server)
        let mailbox = ProbeMailbox()
        let channel = try await DatagramBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ProbeInboundHandler(mailbox: mailbox))
                }
            }
            .bind(host: "\(localIP)", port: Int(requested ?? 0)).get()
        guard let port = channel.localAddress?.port else { throw ProbeSocketError.noLocalAddress }
        open.withLock { $0.channels[ObjectIdentifier(channel)] = channel }
        return NIOProbeSocket(transport: self, channel: channel, mailbox: mailbox, local: STUNAddress(ip: localIP, port: UInt16(port)))
    }

    /// The source address the kernel picks for `server` (a connected UDP socket's name; nothing is sent).
    public static func sourceAddress(towards server: STUNAddress) throws -> STUNIPAddress {
        guard let remote = server.sockaddrIPv4 else { throw ProbeSocketError.ipv6Unsupported }
        let fd = socket(AF_INET, CLS_SOCK_DGRAM, 0)
        guard fd >= 0 else { throw ProbeSocketError.system("socket", errno) }
        defer { close(fd) }
        guard withSockaddr(remote, { connect(fd, $0, $1) }) == 0 else { throw ProbeSocketError.system("connect to \(server) (no route?)", errno) }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc2 = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc2 == 0 else { throw ProbeSocketError.system("getsockname", errno) }
        return .ipv4(UInt32(bigEndian: local.sin_addr.s_addr))
    }
}

public enum ProbeSocketError: Error, CustomStringConvertible {
    case noLocalAddress
    case ipv6Unsupported
    case system(String, Int32)
    public var description: String {
        switch self {
        case .noLocalAddress: "the UDP socket has no local address"
        case .ipv6Unsupported: "the probe supports IPv4 servers only"
        case .system(let what, let e): "\(what): \(String(cString: strerror(e)))"
        }
    }
}

final class NIOProbeSocket: ProbeSocket {
    let transport: NIOProbeTransport
    let channel: any Channel
    let mailbox: ProbeMailbox
    let local: STUNAddress

    init(transport: NIOProbeTransport, channel: any Channel, mailbox: ProbeMailbox, local: STUNAddress) {
        self.transport = transport; self.channel = channel; self.mailbox = mailbox; self.local = local
    }

    func send(_ message: STUNMessage, to destination: STUNAddress) async throws {
        let bytes = message.encode(fingerprint: true)
        let address = try SocketAddress(ipAddress: "\(destination.ip)", port: Int(destination.port))
        let envelope = AddressedEnvelope(remoteAddress: address, data: channel.allocator.buffer(bytes: bytes))
        try await channel.writeAndFlush(envelope)
    }

    func receive(transactionID: STUNTransactionID, timeout: Duration) async -> ProbeReceived? {
        await mailbox.receive(transactionID, timeout: timeout)
    }

    func close() async {
        mailbox.close()
        if transport.forget(channel) { try? await channel.close() }
    }
}

final class ProbeInboundHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let mailbox: ProbeMailbox

    init(mailbox: ProbeMailbox) { self.mailbox = mailbox }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let bytes = Array(envelope.data.readableBytesView)
        guard let message = try? STUNMessage.decode(bytes),
              let ip = envelope.remoteAddress.ipAddress.flatMap(STUNIPAddress.init),
              let port = envelope.remoteAddress.port else { return }
        mailbox.deliver(ProbeReceived(message: message, source: STUNAddress(ip: ip, port: UInt16(port))))
    }

    // ICMP errors (port unreachable after a hairpin datagram hit the router itself) must not close the socket.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}
