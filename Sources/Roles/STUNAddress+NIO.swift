#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import STUNWire

// One conversion between STUNWire's pure addresses and NIO's, for every role.
extension STUNAddress {
    /// From a NIO socket address (IPv4 or IPv6); nil for a UNIX socket.
    public init?(_ address: SocketAddress) {
        switch address {
        case .v4(let a):
            self.init(ip: .ipv4(UInt32(bigEndian: a.address.sin_addr.s_addr)), port: UInt16(bigEndian: a.address.sin_port))
        case .v6(let a):
            var s = a.address.sin6_addr
            let bytes = withUnsafeBytes(of: &s) { Array($0) }
            guard let ip = STUNIPAddress(bytes: bytes) else { return nil }
            self.init(ip: ip, port: UInt16(bigEndian: a.address.sin6_port))
        case .unixDomainSocket:
            return nil
        }
    }

    /// As a `sockaddr_in` for the socket calls natlab makes itself; nil for IPv6.
    var sockaddrIPv4: sockaddr_in? {
        guard case .ipv4(let v) = ip else { return nil }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = v.bigEndian
        return sa
    }

    /// As a NIO socket address.
    public var socketAddress: SocketAddress {
        switch ip {
        case .ipv4:
            return SocketAddress(sockaddrIPv4!, host: "")
        case .ipv6:
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            let bytes = ip.bytes
            withUnsafeMutableBytes(of: &sa.sin6_addr) { dst in
                for i in 0..<16 { dst[i] = bytes[i] }
            }
            return SocketAddress(sa, host: "")
        }
    }
}

/// `call` (bind(2), connect(2)) with `address` as a `sockaddr` and its length.
func withSockaddr(_ address: sockaddr_in, _ call: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
    withUnsafePointer(to: address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}
