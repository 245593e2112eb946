// The relay's outgoing UDP datagrams, gathered per socket and sent with one sendmmsg(2) per socket
// when the event loop has handled what one epoll wait reported (or when a batch is full).
//
// Why not swift-nio's writes: NIO still reads every socket, but a write through a NIO channel takes
// the pipeline, an AddressedEnvelope with a SocketAddress and a ByteBuffer per datagram. Under
// `Scripts/bench turn`'s relay load that was about 8 % of the relay's CPU for datagrams that are
// copied into the kernel straight away. Here a datagram is one copy into a preallocated arena.
// UDP semantics are kept: when a socket's send buffer is full (EAGAIN/ENOBUFS) the rest of its
// batch is dropped and counted, as the kernel would drop them further on.
#if canImport(Glibc)
import Glibc
#endif
import CLinuxSupport
import CNIOLinux
import STUNWire

final class DatagramBatches {
    /// Datagrams per sendmmsg and bytes of payload per socket before a batch is sent early.
    static let maxMessages = 64
    static let arenaBytes = 128 * 1024

    final class Batch {
        let fd: Int32
        var count = 0
        var used = 0
        /// In `dirty` (flushed at the end of the loop iteration).
        var isDirty = false
        let arena = UnsafeMutableRawPointer.allocate(byteCount: DatagramBatches.arenaBytes, alignment: 16)
        let addresses = UnsafeMutablePointer<sockaddr_in>.allocate(capacity: DatagramBatches.maxMessages)
        let iovecs = UnsafeMutablePointer<iovec>.allocate(capacity: DatagramBatches.maxMessages)
        let headers = UnsafeMutablePointer<CNIOLinux_mmsghdr>.allocate(capacity: DatagramBatches.maxMessages)

        init(fd: Int32) { self.fd = fd }

        deinit {
            arena.deallocate()
            addresses.deallocate()
            iovecs.deallocate()
            headers.deallocate()
        }
    }

    private var batches: [Int32: Batch] = [:]
    private var dirty: [Batch] = []
    /// Datagrams dropped because a socket's send buffer was full, and failed sends by errno.
    private(set) var dropped = 0
    private(set) var failures: [Int32: Int] = [:]

    /// Queues a datagram of `parts` (concatenated) from `fd` to `destination`.
    func append(fd: Int32, to destination: STUNAddress, _ parts: UnsafeRawBufferPointer...) {
        guard let sa = destination.sockaddrIPv4 else { return }
        var length = 0
        for p in parts { length += p.count }
        // A UDP datagram is at most 65,535 bytes (the arena holds two); larger cannot be sent.
        guard length <= 65_535 else { failures[EMSGSIZE, default: 0] += 1; return }
        let batch = batches[fd] ?? { let b = Batch(fd: fd); batches[fd] = b; return b }()
        if batch.count == Self.maxMessages || batch.used + length > Self.arenaBytes { send(batch) }
        if !batch.isDirty {
            batch.isDirty = true
            dirty.append(batch)
        }
        let start = batch.arena + batch.used
        var offset = 0
        for p in parts where p.count > 0 {
            (start + offset).copyMemory(from: p.baseAddress!, byteCount: p.count)
            offset += p.count
        }
        let i = batch.count
        batch.addresses[i] = sa
        batch.iovecs[i] = iovec(iov_base: start, iov_len: length)
        var h = msghdr()
        h.msg_name = UnsafeMutableRawPointer(batch.addresses + i)
        h.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
        h.msg_iov = batch.iovecs + i
        h.msg_iovlen = 1
        batch.headers[i] = CNIOLinux_mmsghdr(msg_hdr: h, msg_len: 0)
        batch.count += 1
        // Keep the next datagram 8-byte aligned in the arena.
        batch.used += (length + 7) & ~7
    }

    func append(fd: Int32, to destination: STUNAddress, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append(fd: fd, to: destination, $0) }
    }

    /// Sends every queued datagram.
    func flush() {
        for b in dirty {
            b.isDirty = false
            if b.count > 0 { send(b) }
        }
        dirty.removeAll(keepingCapacity: true)
    }

    /// Sends what is queued on `fd` and forgets the socket: call before closing it (its number may
    /// be reused by the next socket).
    func forget(fd: Int32) {
        guard let b = batches.removeValue(forKey: fd) else { return }
        send(b)
        if b.isDirty { dirty.removeAll { $0 === b } }
    }

    private func send(_ b: Batch) {
        var sent = 0
        while sent < b.count {
            let r = CNIOLinux_sendmmsg(b.fd, b.headers + sent, UInt32(b.count - sent), CLS_MSG_DONTWAIT)
            if r > 0 { sent += Int(r); continue }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS {
                dropped += b.count - sent
                break
            }
            // This datagram cannot go (an unreachable destination, say): skip it, send the rest.
            failures[e, default: 0] += 1
            sent += 1
        }
        b.count = 0
        b.used = 0
    }

}
