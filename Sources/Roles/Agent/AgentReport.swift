// The agent self-report: JSON lines on stdout (contract in README.md, "Agent reports"). Every line
// is one object with "event", "t" (seconds since the agent started) and "agent" (its id). natlab
// ignores events and fields it does not know, so agents may add their own.
import Foundation
import STUNWire

public enum AgentReport {
    public static let version = 1

    /// The JSON object for a candidate: {"type","address","port"} (+ "related" "ip:port", "priority", "foundation").
    public static func candidate(_ c: ICECandidate, full: Bool = false) -> [String: Any] {
        var d: [String: Any] = ["type": c.type.rawValue, "address": "\(c.address.ip)", "port": Int(c.address.port)]
        if full {
            d["priority"] = Int(c.priority)
            d["foundation"] = c.foundation
            if let r = c.related { d["related"] = "\(r)" }
        }
        return d
    }

    /// What the agent can tell about the path from the selected pair alone:
    /// `relay` when either side is a relay candidate; `direct` detail `local` for host↔host in one
    /// subnet; `hairpin` when both sides' addresses are the same public IP (a NAT turned the packets
    /// around); `direct` otherwise. natlab's network observer has the final word.
    public static func classify(local: ICECandidate, remote: ICECandidate) -> (path: String, detail: String?) {
        if local.type == .relay || remote.type == .relay {
            let side = local.type == .relay && remote.type == .relay ? "both" : (local.type == .relay ? "local" : "remote")
            return ("relay", side)
        }
        if local.type == .host && remote.type == .host { return ("direct", "local") }
        if local.type != .host && remote.type != .host && local.address.ip == remote.address.ip { return ("hairpin", nil) }
        return ("direct", nil)
    }

    /// One line (with `\n`), keys sorted.
    public static func line(_ object: [String: Any]) -> String {
        guard JSONSerialization.isValidJSONObject(object),
              let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return "{\"event\":\"error\",\"message\":\"unencodable report\"}\n"
        }
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

/// Writes report lines to stdout, flushed one by one (natlab reads them through a pipe).
public final class AgentReporter: @unchecked Sendable {
    private let agent: String
    private let start: NIODeadlineLike
    private let write: (String) -> Void

    public init(agent: String, write: @escaping (String) -> Void = { s in
        FileHandle.standardOutput.write(Data(s.utf8))
    }) {
        self.agent = agent
        self.start = NIODeadlineLike()
        self.write = write
    }

    public func emit(_ event: String, _ fields: [String: Any] = [:]) {
        var d = fields
        d["event"] = event
        d["agent"] = agent
        d["t"] = (start.elapsed * 1000).rounded() / 1000
        write(AgentReport.line(d))
    }
}

/// Monotonic seconds since creation.
struct NIODeadlineLike: Sendable {
    private let t0 = DispatchTime.now().uptimeNanoseconds
    var elapsed: Double { Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
}
