#if canImport(Glibc)
import Glibc
#endif

/// A plain pthread mutex. Used instead of Dispatch/NSLock-free alternatives so nothing here can ever
/// create a thread, and instead of `Synchronization.Mutex` to keep the package's macOS 14 floor.
final class PThreadLock: @unchecked Sendable {
    // @unchecked: the mutex is the synchronisation.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init() { pthread_mutex_init(mutex, nil) }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// The names in directory `path` (not "." and ".."), in the directory's order; nil when it cannot be
/// opened. Plain `opendir`/`readdir`: callers run on `up`'s path, where `FileManager.default`'s first
/// use costs ~0.1 ms.
public func directoryEntries(_ path: String) -> [String]? {
    guard let dir = opendir(path) else { return nil }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// An IPv4 or IPv6 address with a prefix length, parsed from "10.0.1.1/24" or "2001:db8::1/64".
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    /// AF_INET or AF_INET6.
    public let family: Int32
    /// Network-order address bytes (4 or 16).
    public let bytes: [UInt8]
    /// Prefix length in bits.
    public let prefixLength: Int

    /// Parses "ADDR/LEN", or a bare "ADDR" (a host prefix: /32 or /128) when `requirePrefix` is false.
    public init(parsing text: String, requirePrefix: Bool = true) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, !parts[0].isEmpty else {
            throw LinuxNetworkingError.invalidArgument("invalid address '\(text)' (expected ADDRESS/PREFIX)")
        }
        let address = String(parts[0])
        var family: Int32
        var raw: [UInt8]
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, address, &v4) == 1 {
            family = AF_INET
            raw = withUnsafeBytes(of: &v4) { Array($0) }
        } else if inet_pton(AF_INET6, address, &v6) == 1 {
            family = AF_INET6
            raw = withUnsafeBytes(of: &v6) { Array($0) }
        } else {
            throw LinuxNetworkingError.invalidArgument("invalid IP address '\(address)' in '\(text)'")
        }
        let maxLength = raw.count * 8
        var length = maxLength
        if parts.count == 2 {
            guard let value = Int(parts[1]), value >= 0, value <= maxLength else {
                throw LinuxNetworkingError.invalidArgument("invalid prefix length in '\(text)' (0…\(maxLength))")
            }
            length = value
        } else if requirePrefix {
            throw LinuxNetworkingError.invalidArgument("missing prefix length in '\(text)' (expected ADDRESS/PREFIX)")
        }
        self.init(family: family, bytes: raw, prefixLength: length)
    }

    init(family: Int32, bytes: [UInt8], prefixLength: Int) {
        self.family = family
        self.bytes = bytes
        self.prefixLength = prefixLength
    }

    /// The default route's destination for a family: 0.0.0.0/0 or ::/0.
    static func any(family: Int32) -> IPPrefix {
        IPPrefix(family: family, bytes: Array(repeating: 0, count: family == AF_INET ? 4 : 16), prefixLength: 0)
    }

    /// The address without the prefix ("10.0.1.1").
    public var address: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        bytes.withUnsafeBytes { raw in _ = inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) }
        return decodeCString(buffer)
    }

    /// "10.0.1.1/24".
    public var description: String { "\(address)/\(prefixLength)" }
}

/// A NUL-terminated C buffer as a String (invalid UTF-8 repaired).
func decodeCString(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}
