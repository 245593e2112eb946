// The subset of SASLprep (RFC 4013) and PRECIS OpaqueString (RFC 8265) that STUN keys need.
import Foundation

/// String preparation for credentials.
///
/// Covered: SASLprep mapping (RFC 3454 B.1 "commonly mapped to nothing" removed, C.1.2 non-ASCII
/// spaces mapped to U+0020), NFKC normalisation, and the prohibited-output tables C.2.1–C.9.
/// Not covered: the bidirectional-text rule (RFC 3454 §6) and the unassigned-code-point check of
/// stored strings (A.1); SASLprep is applied as for "queries". OpaqueString: non-ASCII spaces mapped
/// to U+0020, NFC, control and unassigned-looking characters (C.2/C.3/C.4/C.9 tables) rejected; the
/// full PRECIS FreeformClass derived-property computation is not implemented.
public enum STUNStringPrep {
    /// SASLprep, or nil when the result contains a prohibited character.
    public static func saslPrep(_ s: String) -> String? {
        if s.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return s }  // printable ASCII: identity
        var mapped = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            if isNonASCIISpace(u.value) { mapped.append(" ") } else if !isMappedToNothing(u.value) { mapped.append(u) }
        }
        let normalized = String(mapped).precomposedStringWithCompatibilityMapping
        for u in normalized.unicodeScalars where isProhibited(u.value) { return nil }
        return normalized
    }

    /// OpaqueString subset, or nil when the result contains a disallowed character.
    public static func opaqueString(_ s: String) -> String? {
        if s.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return s.isEmpty ? nil : s }
        var mapped = String.UnicodeScalarView()
        for u in s.unicodeScalars { mapped.append(isNonASCIISpace(u.value) ? " " : u) }
        let normalized = String(mapped).precomposedStringWithCanonicalMapping
        for u in normalized.unicodeScalars where isProhibited(u.value) { return nil }
        return normalized.isEmpty ? nil : normalized
    }

    /// RFC 3454 C.1.2.
    static func isNonASCIISpace(_ v: UInt32) -> Bool {
        switch v {
        case 0x00A0, 0x1680, 0x2000...0x200B, 0x202F, 0x205F, 0x3000: true
        default: false
        }
    }

    /// RFC 3454 B.1.
    static func isMappedToNothing(_ v: UInt32) -> Bool {
        switch v {
        case 0x00AD, 0x034F, 0x1806, 0x180B...0x180D, 0x200B...0x200D, 0x2060, 0xFE00...0xFE0F, 0xFEFF: true
        default: false
        }
    }

    /// RFC 4013 §2.3 prohibited output: RFC 3454 C.1.2, C.2.1, C.2.2, C.3, C.4, C.5, C.6, C.7, C.8, C.9.
    static func isProhibited(_ v: UInt32) -> Bool {
        if isNonASCIISpace(v) { return true }
        switch v {
        case 0x0000...0x001F, 0x007F: return true  // C.2.1
        case 0x0080...0x009F, 0x06DD, 0x070F, 0x180E, 0x200C, 0x200D, 0x2028, 0x2029, 0x2060...0x2063,
             0x206A...0x206F, 0xFEFF, 0xFFF9...0xFFFC, 0x1D173...0x1D17A: return true  // C.2.2
        case 0xE000...0xF8FF, 0xF0000...0xFFFFD, 0x100000...0x10FFFD: return true  // C.3
        case 0xFDD0...0xFDEF: return true  // C.4
        case 0xD800...0xDFFF: return true  // C.5
        case 0xFFFD: return true  // C.6
        case 0x2FF0...0x2FFB: return true  // C.7
        case 0x0340, 0x0341, 0x200E, 0x200F, 0x202A...0x202E: return true  // C.8
        case 0xE0001, 0xE0020...0xE007F: return true  // C.9
        default: return v & 0xFFFE == 0xFFFE  // C.4: U+nFFFE, U+nFFFF
        }
    }
}
