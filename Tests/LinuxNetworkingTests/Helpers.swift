import Foundation
import LinuxNetworking
import TestSupport

/// One worker for the whole test process, created on first use from a test thread (the test process
/// never switches namespace outside the worker, so every test thread is in the host namespace).
let sharedWorker: NamespaceWorker = {
    do { return try NamespaceWorker() } catch { fatalError("NamespaceWorker: \(error)") }
}()

/// "natlab-lntest-<tag>-<random>" so parallel runs and other worktrees never collide.
func uniqueName(_ tag: String) -> String {
    "natlab-lntest-\(tag)-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
}

struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a command from the test thread (host namespace) and waits.
@discardableResult
func sh(_ arguments: [String], timeout: TimeInterval = 20) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read before waiting so a chatty command cannot block on a full pipe.
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus,
                         stdout: String(decoding: stdout, as: UTF8.self),
                         stderr: String(decoding: stderr, as: UTF8.self))
}

/// The host state the tests promise not to touch.
struct HostSnapshot: Equatable {
    var ruleset: String
    var links: String
    var routes: String

    static func take() throws -> HostSnapshot {
        HostSnapshot(ruleset: try sh(["nft", "list", "ruleset"]).stdout,
                     // Only names/indexes/flags: counters and link state of unrelated NICs may move.
                     links: try sh(["ip", "-o", "link", "show"]).stdout
                        .split(separator: "\n").map { $0.split(separator: " ").prefix(3).joined(separator: " ") }
                        .joined(separator: "\n"),
                     routes: try sh(["ip", "route", "show"]).stdout)
    }
}

/// Creates `count` namespaces, runs `body`, and deletes them afterwards even when `body` throws.
func withNamespaces(_ tag: String, count: Int, _ body: ([String], [NamespaceFile]) throws -> Void) throws {
    let names = (0..<count).map { uniqueName("\(tag)\($0)") }
    defer { for name in names { try? NetworkNamespace.delete(name: name) } }
    try NetworkNamespace.create(names: names, worker: sharedWorker)
    let files = try names.map { try NetworkNamespace.open(name: $0) }
    try body(names, files)
}

func inodeOfCurrentThreadNamespace() -> UInt64 {
    var st = stat()
    return stat("/proc/thread-self/ns/net", &st) == 0 ? UInt64(st.st_ino) : 0
}
