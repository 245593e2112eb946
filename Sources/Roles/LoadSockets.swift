// The sockets of natlab's load generators (`natlab bench-client stun|turn-alloc`).
#if canImport(Glibc)
import Glibc
#endif
// swift-nio's C shim: epoll (Glibc's module map hides it).
import CNIOLinux
import CLinuxSupport
import STUNWire

/// Non-blocking UDP sockets connected to one IPv4 server (distinct source ports, so SO_REUSEPORT
/// servers spread them), each registered in one epoll set with its index as the event data.
final class LoadSockets {
    struct SetupError: Error, CustomStringConvertible {
        var description: String
    }

    let epoll: Int32
    private(set) var fds: [Int32] = []

    private let address: sockaddr_in
    private let receiveBuffer: Int32?
    /// Source ports taken in turn (instead of the kernel's ephemeral choice), so a port comes back
    /// only after the whole range: servers may remember a client's 5-tuple for a while after it left
    /// (coturn 4.6.1 answers a new Allocate on it with 437 for 1–2 s).
    private let sourcePorts: ClosedRange<UInt16>?
    private var nextPort: UInt16 = 0

    init(server: STUNAddress, count: Int, receiveBuffer: Int32? = nil,
         sourcePorts: ClosedRange<UInt16>? = nil) throws(SetupError) {
        guard let address = server.sockaddrIPv4 else { throw SetupError(description: "bench-client: IPv4 servers only") }
        self.address = address
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw SetupError(description: "epoll_create1: \(String(cString: strerror(errno)))") }
        self.receiveBuffer = receiveBuffer
        self.sourcePorts = sourcePorts
        nextPort = sourcePorts?.lowerBound ?? 0
        for index in 0..<count { fds.append(try open(index)) }
    }

    private func open(_ index: Int) throws(SetupError) -> Int32 {
        let fd = socket(AF_INET, CLS_SOCK_DGRAM | CLS_SOCK_NONBLOCK | CLS_SOCK_CLOEXEC, 0)
        guard fd >= 0 else { throw SetupError(description: "socket: \(String(cString: strerror(errno)))") }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        if let range = sourcePorts { try bindNext(fd, range) }
        guard withSockaddr(address, { connect(fd, $0, $1) }) == 0 else {
            let e = errno
            close(fd)
            throw SetupError(description: "connect: \(String(cString: strerror(e)))")
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u32 = UInt32(index)
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
        return fd
    }

    /// Binds `fd` to the next free port of `range` (wrapping around).
    private func bindNext(_ fd: Int32, _ range: ClosedRange<UInt16>) throws(SetupError) {
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        for _ in 0..<range.count {
            local.sin_port = nextPort.bigEndian
            nextPort = nextPort == range.upperBound ? range.lowerBound : nextPort + 1
            if withSockaddr(local, { bind(fd, $0, $1) }) == 0 { return }
            guard errno == EADDRINUSE else { break }
        }
        let e = errno
        close(fd)
        throw SetupError(description: "bind (source port \(range)): \(String(cString: strerror(e)))")
    }

    /// Replaces socket `index` with a new one (a new source port: a new client to the server).
    /// Closing the old one also takes it out of the epoll set.
    @discardableResult
    func reopen(_ index: Int) throws(SetupError) -> Int32 {
        close(fds[index])
        fds[index] = -1
        fds[index] = try open(index)
        return fds[index]
    }

    deinit {
        for fd in fds where fd >= 0 { close(fd) }
        if epoll >= 0 { close(epoll) }
    }
}
