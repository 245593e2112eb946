// The STUN server's protocol logic (RFC 8489 Binding, RFC 5780 behaviour discovery) as a pure value:
// request bytes + where they arrived → response bytes + which local socket sends them, to whom.
// No sockets, no allocation on the hot path; `STUNServer` puts it behind swift-nio.
import STUNWire

/// How a request reached the server.
public enum STUNTransport: Sendable, Hashable {
    case udp
    case tcp
}

/// A STUN server's answers to Binding requests, stateless.
///
/// Local sockets are numbered 0…3: bit 1 chooses the IP (0 = primary A, 1 = alternate B), bit 0 the
/// port (0 = p, 1 = p + 1). With one address the server has socket 0 only (no RFC 5780 behaviour
/// discovery: no OTHER-ADDRESS; a CHANGE-REQUEST that asks for a change is answered 420, as the
/// attribute is comprehension-required and cannot be honoured).
///
/// What it answers (anything else is dropped silently, as RFC 8489 §6.3 asks for non-STUN input):
/// - Binding request → success from the socket CHANGE-REQUEST selects, to the source (or to the source
///   IP at RESPONSE-PORT) with XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, RESPONSE-ORIGIN, OTHER-ADDRESS (two
///   addresses only), SOFTWARE, FINGERPRINT. PADDING is accepted and ignored.
/// - unknown comprehension-required attributes → 420 with UNKNOWN-ATTRIBUTES;
/// - another method, malformed attributes (bad framing, a CHANGE-REQUEST or RESPONSE-PORT of the wrong
///   length, RESPONSE-PORT 0), or CHANGE-REQUEST/RESPONSE-PORT over TCP (a stream cannot answer from
///   another address or to another port) → 400;
/// - a request without the magic cookie (RFC 3489 client) → MAPPED-ADDRESS, SOURCE-ADDRESS,
///   CHANGED-ADDRESS (two addresses only), SOFTWARE; no FINGERPRINT (RFC 3489 has none);
/// - indications and responses → nothing; a wrong FINGERPRINT → nothing (RFC 8489 §7.3: not STUN).
/// Error responses go back from the arrival socket to the source.
public struct STUNServerCore: Sendable {
    /// The local sockets: 1 (one address) or 4 (A:p, A:p+1, B:p, B:p+1).
    public let endpoints: [STUNAddress]
    /// SOFTWARE value, UTF-8; empty: no SOFTWARE attribute.
    public let software: [UInt8]
    /// Upper bound of any response's size; the output buffer of `respond` must be at least this large.
    public let maxResponseSize: Int

    /// Whether the server has a second address (RFC 5780 behaviour discovery).
    public var supportsBehaviourDiscovery: Bool { endpoints.count == 4 }

    public enum ConfigurationError: Error, CustomStringConvertible, Equatable {
        case familyMismatch
        case portOutOfRange(UInt16)
        case sameAddressTwice
        case softwareTooLong(Int)

        public var description: String {
            switch self {
            case .familyMismatch: "the two addresses must be of one family (both IPv4 or both IPv6)"
            case .portOutOfRange(let p): "port \(p) leaves no room for the alternate port p+1"
            case .sameAddressTwice: "the two addresses must differ"
            case .softwareTooLong(let n): "SOFTWARE is \(n) bytes; at most 763 (fewer than 128 characters)"
            }
        }
    }

    /// - Parameters:
    ///   - primary: address A.
    ///   - alternate: address B (same family) for RFC 5780; nil for a plain STUN server.
    ///   - port: p; with `alternate` the server also uses p + 1.
    ///   - software: SOFTWARE text (fewer than 128 characters); nil or empty for none.
    public init(primary: STUNIPAddress, alternate: STUNIPAddress? = nil, port: UInt16 = 3478,
                software: String? = nil) throws(ConfigurationError) {
        let sw = Array((software ?? "").utf8)
        guard sw.count <= 763, (software ?? "").count < 128 else { throw .softwareTooLong(sw.count) }
        if let b = alternate {
            guard b.family == primary.family else { throw .familyMismatch }
            guard b != primary else { throw .sameAddressTwice }
            guard port < UInt16.max else { throw .portOutOfRange(port) }
            endpoints = [STUNAddress(ip: primary, port: port), STUNAddress(ip: primary, port: port + 1),
                         STUNAddress(ip: b, port: port), STUNAddress(ip: b, port: port + 1)]
        } else {
            endpoints = [STUNAddress(ip: primary, port: port)]
        }
        self.software = sw
        let softwareSize = sw.isEmpty ? 0 : 4 + ((sw.count + 3) & ~3)
        // Success: 4 address attributes of at most 24 bytes; error: ERROR-CODE with a reason of at
        // most 64 bytes, UNKNOWN-ATTRIBUTES of at most `maxUnknownListed` types.
        let success = stunHeaderSize + 4 * 24 + softwareSize + 8
        let error = stunHeaderSize + 8 + 64 + 4 + 2 * Self.maxUnknownListed + softwareSize + 8
        maxResponseSize = max(success, error)
    }

    /// UNKNOWN-ATTRIBUTES lists at most this many types (a request may carry hundreds).
    public static let maxUnknownListed = 32

    /// Where and how to send a response written by `respond`.
    public struct Reply: Sendable, Hashable {
        /// Bytes written to the output buffer.
        public var length: Int
        /// The local socket to send from (index into `endpoints`).
        public var socket: Int
        /// Where to send it.
        public var destination: STUNAddress
        /// True when `destination` is the request's source (lets the caller reuse its address value).
        public var toSource: Bool
    }

    /// Answers one request.
    ///
    /// - Parameters:
    ///   - request: exactly one message (a UDP datagram, or one framed TCP message).
    ///   - source: the client's transport address as the server sees it.
    ///   - socket: the index of the local socket it arrived on.
    ///   - output: at least `maxResponseSize` bytes; the response is written at its start.
    /// - Returns: nil when nothing is to be sent.
    public func respond(to request: UnsafeRawBufferPointer, from source: STUNAddress, on socket: Int,
                        transport: STUNTransport = .udp, into output: UnsafeMutableRawBufferPointer) -> Reply? {
        let n = request.count
        guard n >= stunHeaderSize, request[0] & 0xC0 == 0, socket >= 0, socket < endpoints.count,
              output.count >= maxResponseSize else { return nil }
        let type = request.be16(0)
        let length = Int(request.be16(2))
        guard stunHeaderSize + length == n, length & 3 == 0 else { return nil }
        let legacy = request.be32(4) != stunMagicCookie
        if !legacy {
            do {
                _ = try STUNPacket.validate(request)
            } catch {
                switch error {
                case .truncatedAttributeHeader, .attributeOverrunsMessage, .invalidAttributeLength,
                     .fingerprintNotLast, .tooManyAttributes:
                    // Framed as STUN but malformed inside: a request gets 400.
                    guard type & 0x0110 == 0 else { return nil }
                    return error400(request, type: type, source: source, socket: socket, output: output,
                                    reason: "Bad Request: malformed attributes")
                default:
                    return nil  // not STUN, wrong FINGERPRINT, …: silently discarded
                }
            }
        }
        // Class: requests only (indications and responses get no answer).
        guard type & 0x0110 == 0 else { return nil }
        guard type == 0x0001 else {
            if legacy { return nil }  // RFC 3489 had no other useful method; coturn ignores them too
            return error400(request, type: type, source: source, socket: socket, output: output,
                            reason: "Bad Request: only Binding is served")
        }

        // One pass over the attributes.
        var change: UInt32 = 0
        var responsePort: Int? = nil
        var unknown = 0
        var malformed: StaticString? = nil
        var o = stunHeaderSize
        while o + 4 <= n {
            let t = request.be16(o)
            let l = Int(request.be16(o + 2))
            let v = o + 4
            guard v + l <= n else { malformed = "attribute overruns the message"; break }
            switch t {
            case STUNAttributeType.changeRequest.rawValue:
                if l == 4 { change = request.be32(v) & 0x6 } else { malformed = "CHANGE-REQUEST must be 4 bytes" }
            case STUNAttributeType.responsePort.rawValue:
                if l == 4 { responsePort = Int(request.be16(v)) } else { malformed = "RESPONSE-PORT must be 4 bytes" }
            default:
                if t < 0x8000 && !STUNAttribute.isKnown(STUNAttributeType(t)) { unknown += 1 }
            }
            o = v + ((l + 3) & ~3)
        }
        if let malformed {
            return error400(request, type: type, source: source, socket: socket, output: output,
                            reason: "Bad Request: " + String(describing: malformed))
        }
        if unknown > 0 {
            return error420(request, source: source, socket: socket, output: output, onlyChangeRequest: false)
        }
        if change != 0 && !supportsBehaviourDiscovery {
            return error420(request, source: source, socket: socket, output: output, onlyChangeRequest: true)
        }
        if transport == .tcp && (change != 0 || responsePort != nil) {
            return error400(request, type: type, source: source, socket: socket, output: output,
                            reason: "Bad Request: CHANGE-REQUEST and RESPONSE-PORT need UDP")
        }
        if responsePort == 0 {
            return error400(request, type: type, source: source, socket: socket, output: output,
                            reason: "Bad Request: RESPONSE-PORT 0")
        }

        let from = socket ^ (change & 0x4 != 0 ? 2 : 0) ^ (change & 0x2 != 0 ? 1 : 0)
        var destination = source
        if let p = responsePort { destination.port = UInt16(p) }
        var w = Writer(output)
        w.header(type: 0x0101, request: request)
        if legacy {
            w.address(0x0001, source, xor: false, request: request)  // MAPPED-ADDRESS
            w.address(0x0004, endpoints[from], xor: false, request: request)  // SOURCE-ADDRESS
            if supportsBehaviourDiscovery {
                w.address(0x0005, endpoints[socket ^ 3], xor: false, request: request)  // CHANGED-ADDRESS
            }
            w.software(software)
            w.finish(fingerprint: false)
        } else {
            w.address(0x0020, source, xor: true, request: request)  // XOR-MAPPED-ADDRESS
            w.address(0x0001, source, xor: false, request: request)  // MAPPED-ADDRESS
            w.address(0x802B, endpoints[from], xor: false, request: request)  // RESPONSE-ORIGIN
            if supportsBehaviourDiscovery {
                w.address(0x802C, endpoints[socket ^ 3], xor: false, request: request)  // OTHER-ADDRESS
            }
            w.software(software)
            w.finish(fingerprint: true)
        }
        return Reply(length: w.offset, socket: from, destination: destination, toSource: responsePort == nil)
    }

    private func error400(_ request: UnsafeRawBufferPointer, type: UInt16, source: STUNAddress, socket: Int,
                          output: UnsafeMutableRawBufferPointer, reason: String) -> Reply {
        var w = Writer(output)
        w.header(type: (type & ~0x0110) | 0x0110, request: request)
        w.errorCode(400, reason: reason)
        w.software(software)
        w.finish(fingerprint: request.be32(4) == stunMagicCookie)
        return Reply(length: w.offset, socket: socket, destination: source, toSource: true)
    }

    private func error420(_ request: UnsafeRawBufferPointer, source: STUNAddress, socket: Int,
                          output: UnsafeMutableRawBufferPointer, onlyChangeRequest: Bool) -> Reply {
        var w = Writer(output)
        w.header(type: 0x0111, request: request)
        w.errorCode(420, reason: onlyChangeRequest ? "Unknown Attribute: CHANGE-REQUEST needs a second address"
                                                   : "Unknown Attribute")
        // UNKNOWN-ATTRIBUTES
        var types: [UInt16] = []
        if onlyChangeRequest {
            types = [STUNAttributeType.changeRequest.rawValue]
        } else {
            var o = stunHeaderSize
            while o + 4 <= request.count, types.count < Self.maxUnknownListed {
                let t = request.be16(o)
                let l = Int(request.be16(o + 2))
                if t < 0x8000 && !STUNAttribute.isKnown(STUNAttributeType(t)) && !types.contains(t) { types.append(t) }
                o += 4 + ((l + 3) & ~3)
            }
        }
        w.u16(0x000A)
        w.u16(UInt16(2 * types.count))
        for t in types { w.u16(t) }
        if types.count & 1 == 1 { w.u16(0) }
        w.software(software)
        w.finish(fingerprint: request.be32(4) == stunMagicCookie)
        return Reply(length: w.offset, socket: socket, destination: source, toSource: true)
    }

    // MARK: - convenience for callers with arrays (tests, tools)

    /// `respond(to:from:on:transport:into:)` over arrays: the response bytes, or nil.
    public func respond(to request: [UInt8], from source: STUNAddress, on socket: Int = 0,
                        transport: STUNTransport = .udp) -> (bytes: [UInt8], reply: Reply)? {
        var out = [UInt8](repeating: 0, count: maxResponseSize)
        let reply = request.withUnsafeBytes { req in
            out.withUnsafeMutableBytes { respond(to: req, from: source, on: socket, transport: transport, into: $0) }
        }
        guard let reply else { return nil }
        return (Array(out[..<reply.length]), reply)
    }
}

/// Writes a response into raw memory (bounds are guaranteed by `maxResponseSize`).
private struct Writer {
    let p: UnsafeMutableRawBufferPointer
    var offset = 0

    init(_ p: UnsafeMutableRawBufferPointer) { self.p = p }

    mutating func u8(_ v: UInt8) {
        p[offset] = v
        offset += 1
    }

    mutating func u16(_ v: UInt16) {
        p[offset] = UInt8(truncatingIfNeeded: v >> 8)
        p[offset + 1] = UInt8(truncatingIfNeeded: v)
        offset += 2
    }

    mutating func u32(_ v: UInt32) {
        u16(UInt16(truncatingIfNeeded: v >> 16))
        u16(UInt16(truncatingIfNeeded: v))
    }

    /// Type, zero length, and bytes 4…19 of the request (magic cookie and transaction ID, or the
    /// 16-byte transaction ID of an RFC 3489 request).
    mutating func header(type: UInt16, request: UnsafeRawBufferPointer) {
        u16(type)
        u16(0)
        for i in 4..<20 { p[i] = request[i] }
        offset = 20
    }

    /// An address attribute; XOR uses bytes 4…19 of the request (cookie ‖ transaction ID).
    mutating func address(_ type: UInt16, _ a: STUNAddress, xor: Bool, request: UnsafeRawBufferPointer) {
        u16(type)
        switch a.ip {
        case .ipv4(let v):
            u16(8)
            u8(0)
            u8(1)
            u16(xor ? a.port ^ 0x2112 : a.port)
            u32(xor ? v ^ stunMagicCookie : v)
        case .ipv6(let h, let l):
            u16(20)
            u8(0)
            u8(2)
            u16(xor ? a.port ^ 0x2112 : a.port)
            for i in 0..<16 {
                let b = UInt8(truncatingIfNeeded: i < 8 ? h >> (56 - 8 * UInt64(i)) : l >> (56 - 8 * UInt64(i - 8)))
                u8(xor ? b ^ request[4 + i] : b)
            }
        }
    }

    mutating func text(_ bytes: [UInt8]) {
        for b in bytes { u8(b) }
        while offset & 3 != 0 { u8(0) }
    }

    mutating func software(_ sw: [UInt8]) {
        guard !sw.isEmpty else { return }
        u16(0x8022)
        u16(UInt16(sw.count))
        text(sw)
    }

    mutating func errorCode(_ code: Int, reason: String) {
        let r = Array(reason.utf8.prefix(64))
        u16(0x0009)
        u16(UInt16(4 + r.count))
        u16(0)
        u8(UInt8(code / 100))
        u8(UInt8(code % 100))
        text(r)
    }

    /// Sets the length and appends FINGERPRINT when asked.
    mutating func finish(fingerprint: Bool) {
        let body = offset - 20 + (fingerprint ? 8 : 0)
        p[2] = UInt8(truncatingIfNeeded: body >> 8)
        p[3] = UInt8(truncatingIfNeeded: body)
        guard fingerprint else { return }
        let crc = stunFingerprint(UnsafeRawBufferPointer(rebasing: p[0..<offset]))
        u16(0x8028)
        u16(4)
        u32(crc)
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always) func be16(_ i: Int) -> UInt16 { UInt16(self[i]) << 8 | UInt16(self[i + 1]) }
    @inline(__always) func be32(_ i: Int) -> UInt32 {
        UInt32(self[i]) << 24 | UInt32(self[i + 1]) << 16 | UInt32(self[i + 2]) << 8 | UInt32(self[i + 3])
    }
}
