// What the relay's shards share. The relay runs one `TURNServerCore` per event loop (a shard owns the
// allocations of the clients the kernel hands its SO_REUSEPORT sockets, and their relayed sockets),
// so everything that must hold across clients of different shards lives here, behind one lock:
// allocation serials, the per-user and total quotas, the relay ports in use (a port is unique across
// shards), the ports with a live allocation (relay-to-relay reachability) and RESERVATION-TOKENs (an
// RTCP allocation may come from a client port the kernel hands another shard). The lock is taken a
// few times per allocation and never per relayed packet (except relay-to-relay, see `isAllocated`).
import NIOConcurrencyHelpers

public final class TURNShared: Sendable {
    struct Reservation: Sendable {
        var port: UInt16
        var expires: Double
    }

    struct State: Sendable {
        var serial = 0
        var perUser: [String: Int] = [:]
        var total = 0
        /// Relay ports bound (allocated or reserved).
        var usedPorts: Set<UInt16> = []
        /// Relay ports of live allocations.
        var allocatedPorts: Set<UInt16> = []
        var reservations: [UInt64: Reservation] = [:]
    }

    let state = NIOLockedValueBox(State())

    public init() {}

    /// Allocations made so far (the last serial handed out).
    public var totalAllocations: Int { state.withLockedValue { $0.serial } }

    /// Counts a new allocation of `user` against the quotas (0: unlimited); the error when over one.
    func admit(_ user: String, userQuota: Int, totalQuota: Int) -> Refusal? {
        state.withLockedValue { s in
            if userQuota > 0, s.perUser[user, default: 0] >= userQuota { return .userQuota }
            if totalQuota > 0, s.total >= totalQuota { return .capacity }
            s.perUser[user, default: 0] += 1
            s.total += 1
            return nil
        }
    }

    /// Undoes `admit` (the allocation failed, or it ended: then its port is freed too).
    func release(user: String, port: UInt16? = nil) {
        state.withLockedValue { s in
            s.perUser[user, default: 1] -= 1
            if s.perUser[user] == 0 { s.perUser[user] = nil }
            s.total -= 1
            if let port {
                s.allocatedPorts.remove(port)
                s.usedPorts.remove(port)
            }
        }
    }

    /// The allocation admitted is live on `port`: its serial.
    func allocated(port: UInt16) -> Int {
        state.withLockedValue { s in
            s.allocatedPorts.insert(port)
            s.serial += 1
            return s.serial
        }
    }

    /// Marks `port` (and `port + 1` for a pair) used; false when one of them already is.
    func claim(_ port: UInt16, pair: Bool) -> Bool {
        state.withLockedValue { s in
            guard !s.usedPorts.contains(port), !pair || !s.usedPorts.contains(port + 1) else { return false }
            s.usedPorts.insert(port)
            if pair { s.usedPorts.insert(port + 1) }
            return true
        }
    }

    func unclaim(_ ports: UInt16...) {
        state.withLockedValue { s in for p in ports { s.usedPorts.remove(p) } }
    }

    func isAllocated(_ port: UInt16) -> Bool { state.withLockedValue { $0.allocatedPorts.contains(port) } }

    /// Holds `port` (already claimed and open) for a later Allocate with the token returned.
    func reserve(_ port: UInt16, until expires: Double) -> UInt64 {
        state.withLockedValue { s in
            var t: UInt64 = 0
            repeat { t = UInt64.random(in: 1...UInt64.max) } while s.reservations[t] != nil
            s.reservations[t] = Reservation(port: port, expires: expires)
            return t
        }
    }

    enum Redeemed { case unknown, expired(UInt16), held(UInt16) }

    /// The reserved port of `token`; the reservation ends either way (an expired one's port is freed
    /// here and closed by the caller).
    func redeem(_ token: UInt64, now: Double) -> Redeemed {
        state.withLockedValue { s in
            guard let r = s.reservations.removeValue(forKey: token) else { return .unknown }
            guard r.expires > now else {
                s.usedPorts.remove(r.port)
                return .expired(r.port)
            }
            return .held(r.port)
        }
    }

    /// Ends the reservations expired at `now`: their ports, which the caller closes.
    func expireReservations(now: Double) -> [UInt16] {
        state.withLockedValue { s in
            guard !s.reservations.isEmpty else { return [] }
            var ports: [UInt16] = []
            for (token, r) in s.reservations where r.expires <= now {
                s.reservations[token] = nil
                s.usedPorts.remove(r.port)
                ports.append(r.port)
            }
            return ports
        }
    }

    /// Which quota refused an allocation.
    enum Refusal { case userQuota, capacity }
}
