// FINGERPRINT: CRC-32 (ISO 3309 / zlib, reflected polynomial 0xEDB88320) XOR 0x5354554E (RFC 8489 §14.7).

let crc32Table: [UInt32] = (0..<256).map { n -> UInt32 in
    var c = UInt32(n)
    for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
}

/// The zlib CRC-32 of `bytes`.
public func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    crc32Table.withUnsafeBufferPointer { table in
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
    }
    return c ^ 0xFFFF_FFFF
}

/// The zlib CRC-32 of `bytes`.
public func crc32(_ bytes: [UInt8]) -> UInt32 {
    bytes.withUnsafeBytes { crc32($0) }
}

/// The value XORed into the CRC-32 to form FINGERPRINT.
public let stunFingerprintXOR: UInt32 = 0x5354_554E

/// FINGERPRINT value for a message prefix that ends just before the FINGERPRINT attribute
/// (whose header length field already counts the FINGERPRINT attribute).
public func stunFingerprint(_ prefix: UnsafeRawBufferPointer) -> UInt32 {
    crc32(prefix) ^ stunFingerprintXOR
}
