import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// `sysctl -w KEY=VALUE` / `sysctl -n KEY` through `/proc/sys`.
///
/// `/proc/sys/net/*` resolves against the *calling thread's* network namespace: call these inside a
/// `NamespaceWorker.run(in:)` excursion to change a lab namespace (from the main thread they change the
/// host). A missing key throws an error with `isNotFound` (e.g. `net.bridge.*` without br_netfilter).
public enum Sysctl {
    /// "net.ipv4.ip_forward" → "/proc/sys/net/ipv4/ip_forward". Like sysctl(8), a key written with '/'
    /// separators is taken as is, so names containing dots (VLAN "eth0.10") stay expressible:
    /// "net/ipv4/conf/eth0.10/forwarding".
    public static func path(for key: String) -> String {
        let relative = key.contains("/") ? key : key.replacingOccurrences(".", with: "/")
        // String + String: `String + Substring` is the standard library's generic append, unspecialized,
        // whose first use resolves the Substring's element type and scans all conformance records
        // (~45 µs), on both namespace workers of a build (uprobes on the scan, 2026-11-30).
        return "/proc/sys/" + String(relative.drop { $0 == "/" })
    }

    /// Writes `value` to `key` (`sysctl -w`).
    public static func write(_ key: String, _ value: String) throws {
        try checkKey(key)
        let path = path(for: key)
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw LinuxNetworkingError.lastErrno(call: "open sysctl", context: "\(key) (\(path))") }
        defer { close(fd) }
        let text = value + "\n"
        let written = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        guard written >= 0 else { throw LinuxNetworkingError.lastErrno(call: "write sysctl", context: "\(key) = \(value)") }
    }

    /// Reads `key` (`sysctl -n`), without the trailing newline.
    public static func read(_ key: String) throws -> String {
        try checkKey(key)
        let path = path(for: key)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw LinuxNetworkingError.lastErrno(call: "open sysctl", context: "\(key) (\(path))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if Glibc.errno == EINTR { continue }
                throw LinuxNetworkingError.lastErrno(call: "read sysctl", context: key)
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        var text = String(decoding: bytes, as: UTF8.self)
        while text.last == "\n" { text.removeLast() }
        return text
    }

    private static func checkKey(_ key: String) throws {
        if key.isEmpty || key.split(separator: key.contains("/") ? "/" : ".").contains("..") {
            throw LinuxNetworkingError.invalidArgument("invalid sysctl key '\(key)'")
        }
    }
}

extension String {
    fileprivate func replacingOccurrences(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self { if character == target { result += replacement } else { result.append(character) } }
        return result
    }
}
