#if canImport(Glibc)
import Glibc
#endif
import Testing
import STUNWire
@testable import Roles

/// The relay's batched sender on real UDP sockets over 127.0.0.1 (no root needed): what is appended
/// arrives, whole, in order, and only once.
struct DatagramBatchesTests {
    /// A non-blocking UDP socket bound to 127.0.0.1 on an ephemeral port, and that port.
    static func socket() throws -> (fd: Int32, port: UInt16) {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        try #require(fd >= 0)
        var size: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
                guard bind(fd, p, length) == 0 else { return -1 }
                return getsockname(fd, p, &length)
            }
        }
        try #require(rc == 0)
        return (fd, UInt16(bigEndian: sa.sin_port))
    }

    static func receiveAll(_ fd: Int32) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 70_000)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard n >= 0 else { return out }
            out.append(Array(buffer[0..<n]))
        }
    }

    @Test("Datagrams from parts, more than one batch's worth, and a 60 kB one all arrive once, in order")
    func sendsEverything() throws {
        let (sender, _) = try Self.socket(), (receiver, port) = try Self.socket()
        defer { close(sender); close(receiver) }
        let to = STUNAddress(ip: .ipv4(0x7F00_0001), port: port)
        let batches = DatagramBatches()
        var expected: [[UInt8]] = []
        // More datagrams than one sendmmsg takes: the full batch goes early, the rest at flush.
        for i in 0..<(DatagramBatches.maxMessages + 10) {
            let header: [UInt8] = [0x40, 0x00, 0x00, UInt8(i)]
            let payload = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 1 + i % 7)
            header.withUnsafeBytes { h in payload.withUnsafeBytes { batches.append(fd: sender, to: to, h, $0) } }
            expected.append(header + payload)
        }
        let large = [UInt8](repeating: 0xAB, count: 60_000)
        batches.append(fd: sender, to: to, large)
        expected.append(large)
        batches.flush()
        batches.flush()  // nothing left: no datagram twice
        #expect(Self.receiveAll(receiver) == expected)
        #expect(batches.dropped == 0 && batches.failures.isEmpty)
        // Larger than any UDP datagram: refused and counted, not sent.
        batches.append(fd: sender, to: to, [UInt8](repeating: 0, count: 65_536))
        batches.flush()
        #expect(batches.failures[EMSGSIZE] == 1)
        #expect(Self.receiveAll(receiver).isEmpty)
    }

    @Test("forget(fd:) sends what is queued for that socket before the caller closes it")
    func forgetFlushes() throws {
        let (sender, _) = try Self.socket(), (receiver, port) = try Self.socket()
        defer { close(sender); close(receiver) }
        let batches = DatagramBatches()
        batches.append(fd: sender, to: STUNAddress(ip: .ipv4(0x7F00_0001), port: port), [1, 2, 3])
        batches.forget(fd: sender)
        #expect(Self.receiveAll(receiver) == [[1, 2, 3]])
        batches.flush()
        #expect(Self.receiveAll(receiver).isEmpty)
    }
}
