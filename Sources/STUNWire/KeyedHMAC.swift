// HMAC (RFC 2104) built from swift-crypto's hash functions, with the key absorbed once.
//
// Why not swift-crypto's `HMAC<H>`: it is generic and not inlinable, so every call from another
// module runs the unspecialised generic code, which looks up type metadata at run time on each
// `update` (through `DataProtocol.regions`) and `finalize`. Under `Scripts/bench turn`'s allocation
// load that overhead was 10.8 % of the relay's CPU against 2 % for SHA-1 itself (perf, 2026-11-29).
// Here the construction is inlinable, so each use is specialised for a concrete hash and calls that
// hash's own `update(bufferPointer:)` and `finalize()`. The hashing is still swift-crypto's
// (BoringSSL); only the two-line HMAC construction is ours, and the tests hold it to swift-crypto's
// `HMAC` and to the RFC 2202 / RFC 4231 vectors.
import Crypto
import Foundation  // ContiguousBytes and DataProtocol, which swift-crypto's digests and `update(data:)` use

public struct KeyedHMAC<H: HashFunction>: @unchecked Sendable {
    // Unchecked: swift-crypto 3.x does not declare its hash functions Sendable; these two are never
    // mutated (each message works on copies).
    @usableFromInline let inner: H
    @usableFromInline let outer: H

    /// Absorbs `key` XOR ipad / opad (keys longer than a block are hashed first, as RFC 2104 says).
    @inlinable
    public init(key: [UInt8]) {
        var k = key.count > H.blockByteCount ? Array(H.hash(data: key)) : key
        k += [UInt8](repeating: 0, count: H.blockByteCount - k.count)
        var i = H(), o = H()
        i.update(data: k.map { $0 ^ 0x36 })
        o.update(data: k.map { $0 ^ 0x5c })
        inner = i
        outer = o
    }

    /// The HMAC of the concatenation of `parts`, as bytes.
    @inlinable
    public func authenticationCode(_ parts: UnsafeRawBufferPointer...) -> [UInt8] {
        var i = inner
        for p in parts { i.update(bufferPointer: p) }
        var o = outer
        i.finalize().withUnsafeBytes { o.update(bufferPointer: $0) }
        return o.finalize().withUnsafeBytes { Array($0) }
    }

    /// The HMAC of `bytes`.
    @inlinable
    public func authenticationCode(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { authenticationCode($0) }
    }
}
