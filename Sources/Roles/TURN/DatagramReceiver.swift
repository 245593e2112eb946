// The relay's incoming UDP datagrams: one recvmmsg(2) fills a preallocated arena of fixed-size slots,
// and each datagram is read in place (bytes and source address), with no allocation per datagram.
// The counterpart of `DatagramBatches`, for the shard's own loop (`ShardLoop`, which says why).
#if canImport(Glibc)
import Glibc
#endif
import CLinuxSupport
import CNIOLinux
import STUNWire

final class DatagramReceiver {
    /// Datagrams per recvmmsg and bytes per datagram. The lab's links have an MTU of 1500; a larger
    /// datagram is cut by the kernel (MSG_TRUNC) and reported as such, never relayed cut.
    static let maxMessages = 32
    static let slotBytes = 2048

    private let arena = UnsafeMutableRawPointer.allocate(byteCount: maxMessages * slotBytes, alignment: 16)
    private let addresses = UnsafeMutablePointer<sockaddr_in>.allocate(capacity: maxMessages)
    private let iovecs = UnsafeMutablePointer<iovec>.allocate(capacity: maxMessages)
    private let headers = UnsafeMutablePointer<CNIOLinux_mmsghdr>.allocate(capacity: maxMessages)
    /// Datagrams in the arena from the last `receive`.
    private(set) var count = 0

    init() {
        for i in 0..<Self.maxMessages {
            iovecs[i] = iovec(iov_base: arena + i * Self.slotBytes, iov_len: Self.slotBytes)
            var h = msghdr()
            h.msg_name = UnsafeMutableRawPointer(addresses + i)
            h.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
            h.msg_iov = iovecs + i
            h.msg_iovlen = 1
            headers[i] = CNIOLinux_mmsghdr(msg_hdr: h, msg_len: 0)
        }
    }

    deinit {
        arena.deallocate()
        addresses.deallocate()
        iovecs.deallocate()
        headers.deallocate()
    }

    /// Reads up to `max` datagrams waiting on `fd` without blocking; how many (0 when none or on an
    /// error: a socket closed meanwhile, say). They stay readable until the next call.
    func receive(_ fd: Int32, max: Int = DatagramReceiver.maxMessages) -> Int {
        let n = Swift.min(max, Self.maxMessages)
        // The headers are built once (`init`); the kernel rewrites only the address length of the
        // slots it filled, so those get theirs back. A relayed socket usually has one datagram
        // waiting: resetting all 32 on every call was work on the hot path for nothing.
        for i in 0..<count { headers[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size) }
        var r: Int32
        repeat { r = CNIOLinux_recvmmsg(fd, headers, UInt32(n), CLS_MSG_DONTWAIT, nil) } while r < 0 && errno == EINTR
        count = r > 0 ? Int(r) : 0
        return count
    }

    /// Datagram `i` of the last `receive`: its bytes (valid until the next `receive`), its source
    /// (nil if not IPv4), and whether the kernel cut it to fit the slot.
    func datagram(_ i: Int) -> (bytes: UnsafeRawBufferPointer, from: STUNAddress?, truncated: Bool) {
        precondition(i < count)
        let h = headers[i]
        let bytes = UnsafeRawBufferPointer(start: arena + i * Self.slotBytes, count: Int(h.msg_len))
        let truncated = h.msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0
        guard h.msg_hdr.msg_namelen == socklen_t(MemoryLayout<sockaddr_in>.size),
              addresses[i].sin_family == sa_family_t(AF_INET) else { return (bytes, nil, truncated) }
        let a = addresses[i]
        let from = STUNAddress(ip: .ipv4(UInt32(bigEndian: a.sin_addr.s_addr)), port: UInt16(bigEndian: a.sin_port))
        return (bytes, from, truncated)
    }
}
