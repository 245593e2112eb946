#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOConcurrencyHelpers
import Testing
import STUNWire
@testable import Roles

/// The relay shard's own loop and its recvmmsg reader, on real UDP sockets over 127.0.0.1 (no root).
struct ShardLoopTests {
    static func send(_ bytes: [UInt8], from fd: Int32, to port: UInt16) {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        sa.sin_port = port.bigEndian
        _ = bytes.withUnsafeBytes { b in
            withSockaddr(sa) { Int32(sendto(fd, b.baseAddress, b.count, 0, $0, $1)) }
        }
    }

    @Test("One receive returns every waiting datagram, whole, with its source; an oversized one is marked cut")
    func receivesBatches() throws {
        let (sender, senderPort) = try DatagramBatchesTests.socket(), (receiver, port) = try DatagramBatchesTests.socket()
        defer { close(sender); close(receiver) }
        let input = DatagramReceiver()
        #expect(input.receive(receiver) == 0)  // nothing waiting: no blocking, no datagram
        var expected: [[UInt8]] = []
        for i in 0..<5 {
            let d = [UInt8](repeating: UInt8(i), count: 1 + i * 100)
            expected.append(d)
            Self.send(d, from: sender, to: port)
        }
        Self.send([UInt8](repeating: 0xEE, count: DatagramReceiver.slotBytes + 1), from: sender, to: port)
        #expect(input.receive(receiver) == 6)
        for i in 0..<5 {
            let (bytes, from, truncated) = input.datagram(i)
            #expect(Array(bytes) == expected[i])
            #expect(from == STUNAddress(ip: .ipv4(0x7F00_0001), port: senderPort))
            #expect(!truncated)
        }
        #expect(input.datagram(5).truncated)
        #expect(input.receive(receiver, max: 4) == 0)
    }

    @Test("More datagrams than one batch take several receives, none lost or repeated")
    func receivesInBatches() throws {
        let (sender, _) = try DatagramBatchesTests.socket(), (receiver, port) = try DatagramBatchesTests.socket()
        defer { close(sender); close(receiver) }
        let total = DatagramReceiver.maxMessages * 2 + 3
        for i in 0..<total { Self.send([UInt8(i)], from: sender, to: port) }
        let input = DatagramReceiver()
        var seen: [UInt8] = []
        while case let n = input.receive(receiver), n > 0 {
            #expect(n <= DatagramReceiver.maxMessages)
            for i in 0..<n { seen.append(input.datagram(i).bytes[0]) }
        }
        #expect(seen == (0..<total).map { UInt8($0) })
    }

    @Test("Tasks from other threads run on the loop's thread, in order; readable sockets are reported there; stop waits")
    func loopRunsTasksAndSockets() throws {
        let loop = try ShardLoop()
        let (sender, _) = try DatagramBatchesTests.socket(), (receiver, port) = try DatagramBatchesTests.socket()
        defer { close(sender); close(receiver) }
        let log = NIOLockedValueBox<[String]>([])
        let received = DispatchSemaphore(value: 0)
        let input = DatagramReceiver()
        loop.start(name: "test loop", .init(
            readable: { fd in
                let n = input.receive(fd)
                for i in 0..<n { log.withLockedValue { $0.append("datagram \(input.datagram(i).bytes[0])") } }
                if n > 0 { received.signal() }
            },
            afterEvents: {},
            tick: {}))
        #expect(!loop.inLoop)
        for i in 0..<100 { loop.execute { log.withLockedValue { $0.append("task \(i)") } } }
        #expect(loop.submitAndWait { loop.inLoop })
        #expect(log.withLockedValue { $0 } == (0..<100).map { "task \($0)" })
        loop.submitAndWait { _ = loop.watch(receiver) }
        Self.send([7], from: sender, to: port)
        #expect(received.wait(timeout: .now() + 5) == .success)
        #expect(log.withLockedValue { $0.last } == "datagram 7")
        loop.execute { log.withLockedValue { $0.append("last task") } }
        loop.stop()
        #expect(log.withLockedValue { $0.last } == "last task")
    }

    @Test("The tick comes about once a second, on the loop's thread")
    func ticks() throws {
        let loop = try ShardLoop()
        let ticked = DispatchSemaphore(value: 0)
        let onLoop = NIOLockedValueBox(true)
        loop.start(name: "tick loop", .init(readable: { _ in }, afterEvents: {}, tick: {
            onLoop.withLockedValue { $0 = $0 && loop.inLoop }
            ticked.signal()
        }))
        #expect(ticked.wait(timeout: .now() + 3) == .success)
        #expect(ticked.wait(timeout: .now() + 3) == .success)
        loop.stop()
        #expect(onLoop.withLockedValue { $0 })
    }
}
