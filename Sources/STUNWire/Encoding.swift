// Encoder: STUNMessage -> wire bytes, with optional MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT.

extension STUNMessage {
    /// Encodes the message.
    ///
    /// - Parameters:
    ///   - paddingByte: the byte that pads attribute values to a multiple of 4. RFC 8489 says padding
    ///     content is arbitrary and is never checked; 0 is the usual choice, RFC 5769 §2.1–2.3 use 0x20.
    ///   - integrity: when given, MESSAGE-INTEGRITY and/or MESSAGE-INTEGRITY-SHA256 (per `integrityMode`)
    ///     are computed with this key and appended after `attributes`.
    ///   - fingerprint: append FINGERPRINT last.
    ///
    /// Attributes are written in order and literally, except that a `.fingerprint` attribute in the
    /// list gets its CRC computed (its stored value is ignored).
    public func encode(paddingByte: UInt8 = 0, integrity: STUNIntegrityKey? = nil,
                       integrityMode: STUNIntegrityMode = .sha1, fingerprint: Bool = false) -> [UInt8] {
        var out = [UInt8]()
        encode(into: &out, paddingByte: paddingByte, integrity: integrity, integrityMode: integrityMode,
               fingerprint: fingerprint)
        return out
    }

    /// Appends the encoded message to `out` (reserving the needed capacity once).
    public func encode(into out: inout [UInt8], paddingByte: UInt8 = 0, integrity: STUNIntegrityKey? = nil,
                       integrityMode: STUNIntegrityMode = .sha1, fingerprint: Bool = false) {
        var size = stunHeaderSize
        for a in attributes { size += 4 + ((a.encodedValueLength + 3) & ~3) }
        if integrity != nil {
            switch integrityMode {
            case .sha1: size += 24
            case .sha256(let l): size += 4 + l
            case .both(let l): size += 28 + l
            }
        }
        if fingerprint { size += 8 }
        out.reserveCapacity(out.count + size)

        let start = out.count
        out.appendBigEndian(type.rawValue)
        out.appendBigEndian(UInt16(0))
        out.appendBigEndian(stunMagicCookie)
        out.appendBigEndian(transactionID.high)
        out.appendBigEndian(transactionID.low)
        for a in attributes {
            if case .fingerprint = a {
                appendFingerprint(&out, start: start)
            } else {
                a.write(into: &out, transactionID: transactionID, paddingByte: paddingByte)
            }
        }
        if let key = integrity {
            switch integrityMode {
            case .sha1:
                appendIntegrity(&out, start: start, key: key, sha256: false, length: 20)
            case .sha256(let l):
                appendIntegrity(&out, start: start, key: key, sha256: true, length: l)
            case .both(let l):
                appendIntegrity(&out, start: start, key: key, sha256: false, length: 20)
                appendIntegrity(&out, start: start, key: key, sha256: true, length: l)
            }
        }
        if fingerprint { appendFingerprint(&out, start: start) }
        setLength(&out, start: start, length: out.count - start - stunHeaderSize)
    }

    private func setLength(_ out: inout [UInt8], start: Int, length: Int) {
        out.storeBigEndian(UInt16(truncatingIfNeeded: length), at: start + 2)
    }

    private func appendIntegrity(_ out: inout [UInt8], start: Int, key: STUNIntegrityKey, sha256: Bool, length: Int) {
        let l = sha256 ? max(16, min(32, length & ~3)) : 20
        let o = out.count - start
        let mac = out.withUnsafeBytes { b in
            integrityHMAC(UnsafeRawBufferPointer(rebasing: b[start...]), attributeOffset: o, sha256: sha256, macLength: l, key: key)
        }
        out.appendBigEndian(sha256 ? STUNAttributeType.messageIntegritySHA256.rawValue : STUNAttributeType.messageIntegrity.rawValue)
        out.appendBigEndian(UInt16(l))
        out.append(contentsOf: mac)
    }

    private func appendFingerprint(_ out: inout [UInt8], start: Int) {
        setLength(&out, start: start, length: out.count - start - stunHeaderSize + 8)
        let crc = out.withUnsafeBytes { stunFingerprint(UnsafeRawBufferPointer(rebasing: $0[start...])) }
        out.appendBigEndian(STUNAttributeType.fingerprint.rawValue)
        out.appendBigEndian(UInt16(4))
        out.appendBigEndian(crc)
    }
}

extension STUNAttribute {
    /// Length of the value as written (without padding).
    public var encodedValueLength: Int {
        switch self {
        case .mappedAddress(let a), .xorMappedAddress(let a), .alternateServer(let a), .responseOrigin(let a),
             .otherAddress(let a), .sourceAddress(let a), .changedAddress(let a), .xorPeerAddress(let a),
             .xorRelayedAddress(let a):
            return a.ip.family == .ipv4 ? 8 : 20
        case .username(let s), .realm(let s), .nonce(let s), .software(let s), .alternateDomain(let s):
            return s.utf8.count
        case .userhash(let b), .messageIntegrity(let b), .messageIntegritySHA256(let b), .padding(let b), .data(let b):
            return b.count
        case .unknown(_, let b):
            return b.count
        case .fingerprint, .changeRequest, .responsePort, .channelNumber, .lifetime, .requestedAddressFamily,
             .requestedTransport, .additionalAddressFamily, .connectionID, .priority:
            return 4
        case .errorCode(let e):
            return 4 + e.reason.utf8.count
        case .addressErrorCode(_, let e):
            return 4 + e.reason.utf8.count
        case .passwordAlgorithms(let list):
            return list.reduce(0) { $0 + 4 + (($1.parameters.count + 3) & ~3) }
        case .passwordAlgorithm(let a):
            return 4 + ((a.parameters.count + 3) & ~3)
        case .unknownAttributes(let list):
            return 2 * list.count
        case .evenPort:
            return 1
        case .dontFragment, .useCandidate:
            return 0
        case .reservationToken, .icmp, .iceControlled, .iceControlling:
            return 8
        }
    }

    /// Appends type, length, value and padding.
    func write(into out: inout [UInt8], transactionID tid: STUNTransactionID, paddingByte: UInt8) {
        out.appendBigEndian(type.rawValue)
        let lengthAt = out.count
        out.appendBigEndian(UInt16(0))
        let valueStart = out.count

        func address(_ a: STUNAddress, xor: Bool) {
            out.append(0)
            out.append(a.ip.family.rawValue)
            out.appendBigEndian(xor ? a.port ^ UInt16(stunMagicCookie >> 16) : a.port)
            switch a.ip {
            case .ipv4(let v):
                out.appendBigEndian(xor ? v ^ stunMagicCookie : v)
            case .ipv6(let h, let l):
                let k = xor ? xorKey(tid) : (0, 0)
                out.appendBigEndian(h ^ k.0)
                out.appendBigEndian(l ^ k.1)
            }
        }
        func errorCode(_ e: STUNErrorCode, family: STUNAddressFamily?) {
            out.append(family?.rawValue ?? 0)
            out.append(0)
            out.append(UInt8(truncatingIfNeeded: e.errorClass) & 0x07)
            out.append(UInt8(truncatingIfNeeded: e.number))
            out.append(contentsOf: e.reason.utf8)
        }
        func algorithm(_ a: STUNPasswordAlgorithm) {
            out.appendBigEndian(a.number)
            out.appendBigEndian(UInt16(truncatingIfNeeded: a.parameters.count))
            out.append(contentsOf: a.parameters)
            // Inner padding of PASSWORD-ALGORITHM(S) parameters is part of the value: always zero.
            for _ in 0..<((4 - a.parameters.count & 3) & 3) { out.append(0) }
        }

        switch self {
        case .mappedAddress(let a), .alternateServer(let a), .responseOrigin(let a), .otherAddress(let a),
             .sourceAddress(let a), .changedAddress(let a):
            address(a, xor: false)
        case .xorMappedAddress(let a), .xorPeerAddress(let a), .xorRelayedAddress(let a):
            address(a, xor: true)
        case .username(let s), .realm(let s), .nonce(let s), .software(let s), .alternateDomain(let s):
            out.append(contentsOf: s.utf8)
        case .userhash(let b), .messageIntegrity(let b), .messageIntegritySHA256(let b), .padding(let b), .data(let b):
            out.append(contentsOf: b)
        case .unknown(_, let b):
            out.append(contentsOf: b)
        case .fingerprint(let v):
            out.appendBigEndian(v)
        case .errorCode(let e):
            errorCode(e, family: nil)
        case .addressErrorCode(let f, let e):
            errorCode(e, family: f)
        case .passwordAlgorithms(let list):
            for a in list { algorithm(a) }
        case .passwordAlgorithm(let a):
            algorithm(a)
        case .unknownAttributes(let list):
            for t in list { out.appendBigEndian(t) }
        case .changeRequest(let f):
            out.appendBigEndian(f.rawValue)
        case .responsePort(let p):
            out.appendBigEndian(p)
            out.appendBigEndian(UInt16(0))
        case .channelNumber(let c):
            out.appendBigEndian(c)
            out.appendBigEndian(UInt16(0))
        case .lifetime(let v), .connectionID(let v), .priority(let v):
            out.appendBigEndian(v)
        case .requestedAddressFamily(let f), .additionalAddressFamily(let f):
            out.append(f.rawValue)
            out.append(contentsOf: [0, 0, 0])
        case .evenPort(let r):
            out.append(r ? 0x80 : 0)
        case .requestedTransport(let p):
            out.append(p)
            out.append(contentsOf: [0, 0, 0])
        case .dontFragment, .useCandidate:
            break
        case .reservationToken(let v), .iceControlled(let v), .iceControlling(let v):
            out.appendBigEndian(v)
        case .icmp(let t, let c, let d):
            out.appendBigEndian(UInt16(0))
            out.appendBigEndian(UInt16(t & 0x7F) << 9 | (c & 0x1FF))
            out.appendBigEndian(d)
        }
        let length = out.count - valueStart
        out.storeBigEndian(UInt16(truncatingIfNeeded: length), at: lengthAt)
        for _ in 0..<((4 - length & 3) & 3) { out.append(paddingByte) }
    }
}
