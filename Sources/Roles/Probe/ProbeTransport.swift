// The probe's view of the network: UDP sockets that send STUN messages and wait for answers by
// transaction ID. `NIOProbeTransport` is the real one; tests script a NAT and a server behind the same
// protocol, so the whole discovery runs without sockets.

import STUNWire
import Synchronization

/// A STUN message that arrived, with the datagram's source.
public struct ProbeReceived: Sendable, Equatable {
    public var message: STUNMessage
    public var source: STUNAddress
    public init(message: STUNMessage, source: STUNAddress) { self.message = message; self.source = source }
}

public protocol ProbeSocket: AnyObject, Sendable {
    /// The address the socket is bound to (a concrete IP, never 0.0.0.0).
    var local: STUNAddress { get }
    func send(_ message: STUNMessage, to destination: STUNAddress) async throws
    /// The first message with `transactionID` that arrived (earlier or within `timeout`), or nil.
    func receive(transactionID: STUNTransactionID, timeout: Duration) async -> ProbeReceived?
    func close() async
}

public protocol ProbeTransport: Sendable {
    /// A new UDP socket on a fresh local port, on the interface that leads to `server`.
    func open(towards server: STUNAddress, port: UInt16?) async throws -> any ProbeSocket
}

extension ProbeTransport {
    public func open(towards server: STUNAddress) async throws -> any ProbeSocket {
        try await open(towards: server, port: nil)
    }
}

/// RFC 8489 §6.2.1 retransmission: Rc sends, the interval doubling from RTO, then Rm × RTO of waiting
/// after the last. The RFC's RTO of 500 ms (39.5 s to give up) suits the internet; a lab answers within
/// a millisecond, so the probe starts at 100 ms and gives up after 1.1 s (configurable).
public struct RetransmissionPolicy: Sendable, Equatable, Codable {
    public var rto: Duration
    public var maxTransmissions: Int
    public var finalWaitMultiplier: Int

    public init(rto: Duration = .milliseconds(100), maxTransmissions: Int = 4, finalWaitMultiplier: Int = 4) {
        self.rto = rto; self.maxTransmissions = max(1, maxTransmissions); self.finalWaitMultiplier = max(1, finalWaitMultiplier)
    }

    /// How long to wait after each transmission (the last one: Rm × RTO).
    public var waits: [Duration] {
        var out: [Duration] = []
        var interval = rto
        for i in 0..<maxTransmissions {
            if i == maxTransmissions - 1 {
                out.append(rto * finalWaitMultiplier)
            } else {
                out.append(interval)
                interval = interval * 2
            }
        }
        return out
    }

    public var giveUpAfter: Duration { waits.reduce(.zero, +) }
}

extension ProbeSocket {
    /// One request/response transaction with retransmission; nil when no answer came.
    public func transact(_ request: STUNMessage, to destination: STUNAddress, policy: RetransmissionPolicy) async throws -> ProbeReceived? {
        for wait in policy.waits {
            try await send(request, to: destination)
            if let answer = await receive(transactionID: request.transactionID, timeout: wait) { return answer }
        }
        return nil
    }
}

/// Received messages keyed by transaction ID, and at most one waiter per ID. Shared by every transport.
public final class ProbeMailbox: Sendable {
    private struct Waiter {
        var token: UInt64
        var continuation: CheckedContinuation<ProbeReceived?, Never>
    }
    private struct State {
        var buffered: [STUNTransactionID: ProbeReceived] = [:]
        var waiters: [STUNTransactionID: Waiter] = [:]
        var nextToken: UInt64 = 0
        var closed = false
    }
    private let state = Mutex(State())

    public init() {}

    /// A datagram arrived. The first message per transaction ID is kept; later copies (answers to
    /// retransmissions) are dropped.
    public func deliver(_ received: ProbeReceived) {
        let waiter: Waiter? = state.withLock { s in
            if let w = s.waiters.removeValue(forKey: received.message.transactionID) { return w }
            if s.buffered[received.message.transactionID] == nil, !s.closed {
                s.buffered[received.message.transactionID] = received
            }
            return nil
        }
        waiter?.continuation.resume(returning: received)
    }

    /// Takes a buffered message without waiting.
    public func take(_ id: STUNTransactionID) -> ProbeReceived? {
        state.withLock { $0.buffered.removeValue(forKey: id) }
    }

    public func receive(_ id: STUNTransactionID, timeout: Duration) async -> ProbeReceived? {
        if let ready = take(id) { return ready }
        return await withCheckedContinuation { (continuation: CheckedContinuation<ProbeReceived?, Never>) in
            let outcome: (ProbeReceived?, UInt64?) = state.withLock { s in
                if let ready = s.buffered.removeValue(forKey: id) { return (ready, nil) }
                if s.closed { return (nil, nil) }
                s.nextToken += 1
                let token = s.nextToken
                // A second waiter for one ID replaces the first, which gets nil.
                if let old = s.waiters[id] { old.continuation.resume(returning: nil) }
                s.waiters[id] = Waiter(token: token, continuation: continuation)
                return (nil, token)
            }
            guard let token = outcome.1 else {
                continuation.resume(returning: outcome.0)
                return
            }
            Task {
                try? await Task.sleep(for: timeout)
                self.expire(id, token: token)
            }
        }
    }

    private func expire(_ id: STUNTransactionID, token: UInt64) {
        let waiter: Waiter? = state.withLock { s in
            guard let w = s.waiters[id], w.token == token else { return nil }
            return s.waiters.removeValue(forKey: id)
        }
        waiter?.continuation.resume(returning: nil)
    }

    /// Wakes every waiter with nil and drops what was buffered.
    public func close() {
        let waiters: [Waiter] = state.withLock { s in
            s.closed = true
            s.buffered.removeAll()
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for w in waiters { w.continuation.resume(returning: nil) }
    }
}
