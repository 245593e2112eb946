/// How the addresses of one segment (the internet core or a router's LAN) are handed out. Shared by
/// validation (which reports what cannot be placed) and the planner (which then cannot fail).
enum AddressAllocation {
    struct Request {
        var name: String
        /// The first address, when the file gives one.
        var explicit: IPv4Address?
        /// How many addresses the node takes.
        var count: Int
        /// True for a router's pool of public addresses (`addresses: N`): one block of consecutive
        /// addresses (nft `snat to A-B`), starting at `explicit` when given. False: the explicit address
        /// (if any), then the next free ones (a STUN server's second address).
        var consecutive: Bool
    }

    /// The addresses a request with an explicit start reserves before anything is allocated.
    static func reserved(_ r: Request) -> [IPv4Address] {
        guard let first = r.explicit else { return [] }
        guard r.consecutive else { return [first] }
        return (0..<r.count).compactMap { i in
            let (v, overflow) = first.value.addingReportingOverflow(UInt32(i))
            return overflow ? nil : IPv4Address(v)
        }
    }

    /// Addresses for every request, in order: explicit ones as written, the rest from the first usable
    /// address upward, skipping explicit addresses and `gateway`. Returns the requests that could not be
    /// placed (no room left below the last usable address) in `unplaced`.
    static func allocate(_ net: IPv4Network, gateway: IPv4Address, _ requests: [Request])
        -> (addresses: [String: [IPv4Address]], unplaced: [Request]) {
        var taken = Set(requests.flatMap(reserved))
        taken.insert(gateway)
        var out: [String: [IPv4Address]] = [:]
        var unplaced: [Request] = []
        var cursor = net.firstUsable.value
        let last = net.lastUsable.value
        for r in requests {
            if r.explicit != nil && r.consecutive {
                out[r.name] = reserved(r)
                continue
            }
            var mine: [IPv4Address] = r.explicit.map { [$0] } ?? []
            if r.consecutive {
                // The first run of `count` free addresses at or after the cursor.
                var start = cursor
                var run = 0
                while run < r.count && start + UInt32(run) <= last {
                    if taken.contains(IPv4Address(start + UInt32(run))) {
                        start += UInt32(run) + 1; run = 0
                    } else {
                        run += 1
                    }
                }
                guard run == r.count else { unplaced.append(r); continue }
                mine = (0..<r.count).map { IPv4Address(start + UInt32($0)) }
                for a in mine { taken.insert(a) }
                cursor = start + UInt32(r.count)
            } else {
                while mine.count < r.count {
                    while cursor <= last && taken.contains(IPv4Address(cursor)) { cursor += 1 }
                    guard cursor <= last else { break }
                    mine.append(IPv4Address(cursor)); taken.insert(IPv4Address(cursor)); cursor += 1
                }
                if mine.count < r.count { unplaced.append(r); continue }
            }
            out[r.name] = mine
        }
        return (out, unplaced)
    }
}

/// The IPv6 half of a dual-stack plan: every address mirrors the node's IPv4 address on the same
/// segment. The interface identifier is the IPv4 host number (address − network) written in decimal and
/// read as hexadecimal, so 10.1.0.2 ↔ 2001:db8:1::2 and 203.0.113.254 ↔ 2001:db8:ffff::254.
/// An explicit `address6:` replaces a node's (first) mirrored address.
enum AddressPlan6 {
    static func mirror(_ a: IPv4Address, in net: IPv4Network, onto net6: IPv6Network) -> IPv6Address? {
        let host = a.value &- net.network.value
        let id = UInt64(String(host), radix: 16)!
        guard net6.hostBits >= 64 || id < (UInt64(1) << UInt64(net6.hostBits)) else { return nil }
        return net6.address(id)
    }

    /// Automatic LAN K: `2001:db8:K::/64`, K's decimal digits read as hexadecimal (router 12 → 2001:db8:12::/64).
    static func automaticLAN(_ k: Int) -> IPv6Network? {
        guard let group = UInt64(String(k), radix: 16), group <= 0xffff else { return nil }
        return IPv6Network(network: IPv6Address(high: 0x2001_0db8_0000_0000 | group << 16, low: 0), prefixLength: 64)
    }
}
