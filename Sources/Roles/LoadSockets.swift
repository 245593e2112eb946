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

    init(server: STUNAddress, count: Int, receiveBuffer: Int32? = nil) throws(SetupError) {
        guard case .ipv4(let ip) = server.ip else { throw SetupError(description: "bench-client: IPv4 servers only") }
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw SetupError(description: "epoll_create1: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = server.port.bigEndian
        address.sin_addr.s_addr = ip.bigEndian
        for index in 0..<count {
            let fd = socket(AF_INET, CLS_SOCK_DGRAM | CLS_SOCK_NONBLOCK | CLS_SOCK_CLOEXEC, 0)
            guard fd >= 0 else { throw SetupError(description: "socket: \(String(cString: strerror(errno)))") }
            fds.append(fd)
            if var size = receiveBuffer {
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            }
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { throw SetupError(description: "connect: \(String(cString: strerror(errno)))") }
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.u32 = UInt32(index)
            epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
        }
    }

    deinit {
        for fd in fds { close(fd) }
        if epoll >= 0 { close(epoll) }
    }
}
