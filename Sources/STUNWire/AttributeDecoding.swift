// Attribute value decoding (validates lengths, families, UTF-8, limits).

func decodeAttributeValue(type t: UInt16, _ b: UnsafeRawBufferPointer, _ r: Range<Int>,
                          transactionID tid: STUNTransactionID,
                          options: STUNDecodeOptions) throws(STUNDecodeError) -> STUNAttribute {
    let l = r.count
    let o = r.lowerBound
    func need(_ n: Int) throws(STUNDecodeError) {
        guard l == n else { throw .invalidAttributeLength(type: t, length: l) }
    }
    func text(limit: Int) throws(STUNDecodeError) -> String {
        guard l <= limit else { throw .attributeTooLong(type: t, length: l, limit: limit) }
        guard let s = String(validating: UnsafeRawBufferPointer(rebasing: b[r]), as: UTF8.self) else { throw .invalidUTF8(type: t) }
        return s
    }
    func bytes() -> [UInt8] { Array(b[r]) }
    func address(xor: Bool) throws(STUNDecodeError) -> STUNAddress {
        guard l >= 4 else { throw .invalidAttributeLength(type: t, length: l) }
        let family = b[o + 1]
        var port = b.u16(o + 2)
        if xor { port ^= UInt16(stunMagicCookie >> 16) }
        switch family {
        case STUNAddressFamily.ipv4.rawValue:
            try need(8)
            var a = b.u32(o + 4)
            if xor { a ^= stunMagicCookie }
            return STUNAddress(ip: .ipv4(a), port: port)
        case STUNAddressFamily.ipv6.rawValue:
            try need(20)
            var h = b.u64(o + 4), lo = b.u64(o + 12)
            if xor {
                let k = xorKey(tid)
                h ^= k.0
                lo ^= k.1
            }
            return STUNAddress(ip: .ipv6(high: h, low: lo), port: port)
        default:
            throw .badAddressFamily(type: t, family: family)
        }
    }
    func family(at i: Int) throws(STUNDecodeError) -> STUNAddressFamily {
        guard let f = STUNAddressFamily(rawValue: b[i]) else { throw .badAddressFamily(type: t, family: b[i]) }
        return f
    }
    func errorCode(at i: Int) throws(STUNDecodeError) -> STUNErrorCode {
        // 21 reserved bits, 3-bit class, 8-bit number, reason phrase.
        guard r.upperBound - i >= 4 else { throw .invalidAttributeLength(type: t, length: l) }
        let cls = Int(b[i + 2] & 0x07), num = Int(b[i + 3])
        guard (3...6).contains(cls), num <= 99 else { throw .badErrorCode(errorClass: cls, number: num) }
        let rr = (i + 4)..<r.upperBound
        guard rr.count <= options.maxTextBytes else { throw .attributeTooLong(type: t, length: rr.count, limit: options.maxTextBytes) }
        guard let reason = String(validating: UnsafeRawBufferPointer(rebasing: b[rr]), as: UTF8.self) else { throw .invalidUTF8(type: t) }
        return STUNErrorCode(code: cls * 100 + num, reason: reason)
    }
    func algorithm(at i: Int, end: Int) throws(STUNDecodeError) -> (STUNPasswordAlgorithm, Int) {
        guard end - i >= 4 else { throw .invalidAttributeLength(type: t, length: l) }
        let num = b.u16(i), pl = Int(b.u16(i + 2))
        guard i + 4 + pl <= end else { throw .invalidAttributeLength(type: t, length: l) }
        let next = i + 4 + ((pl + 3) & ~3)
        return (STUNPasswordAlgorithm(number: num, parameters: Array(b[(i + 4)..<(i + 4 + pl)])), min(next, end))
    }

    switch STUNAttributeType(t) {
    case .mappedAddress: return .mappedAddress(try address(xor: false))
    case .xorMappedAddress: return .xorMappedAddress(try address(xor: true))
    case .alternateServer: return .alternateServer(try address(xor: false))
    case .responseOrigin: return .responseOrigin(try address(xor: false))
    case .otherAddress: return .otherAddress(try address(xor: false))
    case .sourceAddress: return .sourceAddress(try address(xor: false))
    case .changedAddress: return .changedAddress(try address(xor: false))
    case .xorPeerAddress: return .xorPeerAddress(try address(xor: true))
    case .xorRelayedAddress: return .xorRelayedAddress(try address(xor: true))
    case .username: return .username(try text(limit: options.maxUsernameBytes))
    case .realm: return .realm(try text(limit: options.maxTextBytes))
    case .nonce: return .nonce(try text(limit: options.maxTextBytes))
    case .software: return .software(try text(limit: options.maxTextBytes))
    case .alternateDomain: return .alternateDomain(try text(limit: options.maxTextBytes))
    case .userhash:
        try need(32)
        return .userhash(bytes())
    case .messageIntegrity:
        try need(20)
        return .messageIntegrity(bytes())
    case .messageIntegritySHA256:
        guard l >= 16, l <= 32, l & 3 == 0 else { throw .invalidAttributeLength(type: t, length: l) }
        return .messageIntegritySHA256(bytes())
    case .fingerprint:
        try need(4)
        return .fingerprint(b.u32(o))
    case .errorCode:
        return .errorCode(try errorCode(at: o))
    case .passwordAlgorithms:
        var list: [STUNPasswordAlgorithm] = []
        var i = o
        while i < r.upperBound {
            let (a, next) = try algorithm(at: i, end: r.upperBound)
            list.append(a)
            i = next
        }
        return .passwordAlgorithms(list)
    case .passwordAlgorithm:
        let (a, next) = try algorithm(at: o, end: r.upperBound)
        guard next == r.upperBound else { throw .invalidAttributeLength(type: t, length: l) }
        return .passwordAlgorithm(a)
    case .unknownAttributes:
        guard l & 1 == 0 else { throw .invalidAttributeLength(type: t, length: l) }
        var list: [UInt16] = []
        list.reserveCapacity(l / 2)
        var i = o
        while i < r.upperBound { list.append(b.u16(i)); i += 2 }
        return .unknownAttributes(list)
    case .changeRequest:
        try need(4)
        return .changeRequest(STUNChangeRequest(rawValue: b.u32(o) & 0x6))
    case .responsePort:
        try need(4)
        return .responsePort(b.u16(o))
    case .padding:
        return .padding(bytes())
    case .channelNumber:
        try need(4)
        return .channelNumber(b.u16(o))
    case .lifetime:
        try need(4)
        return .lifetime(b.u32(o))
    case .data:
        return .data(bytes())
    case .requestedAddressFamily:
        try need(4)
        return .requestedAddressFamily(try family(at: o))
    case .additionalAddressFamily:
        try need(4)
        return .additionalAddressFamily(try family(at: o))
    case .evenPort:
        try need(1)
        return .evenPort(reserveNext: b[o] & 0x80 != 0)
    case .requestedTransport:
        try need(4)
        return .requestedTransport(b[o])
    case .dontFragment:
        try need(0)
        return .dontFragment
    case .reservationToken:
        try need(8)
        return .reservationToken(b.u64(o))
    case .addressErrorCode:
        guard l >= 4 else { throw .invalidAttributeLength(type: t, length: l) }
        return .addressErrorCode(family: try family(at: o), error: try errorCode(at: o))
    case .icmp:
        try need(8)
        let w = b.u16(o + 2)
        return .icmp(type: UInt8(w >> 9), code: w & 0x1FF, errorData: b.u32(o + 4))
    case .connectionID:
        try need(4)
        return .connectionID(b.u32(o))
    case .priority:
        try need(4)
        return .priority(b.u32(o))
    case .useCandidate:
        try need(0)
        return .useCandidate
    case .iceControlled:
        try need(8)
        return .iceControlled(tieBreaker: b.u64(o))
    case .iceControlling:
        try need(8)
        return .iceControlling(tieBreaker: b.u64(o))
    default:
        return .unknown(type: t, value: bytes())
    }
}

/// The 128-bit XOR key for IPv6 XOR-*-ADDRESS: magic cookie ‖ transaction ID.
func xorKey(_ tid: STUNTransactionID) -> (UInt64, UInt64) {
    (UInt64(stunMagicCookie) << 32 | tid.high >> 32, (tid.high & 0xFFFF_FFFF) << 32 | UInt64(tid.low))
}
