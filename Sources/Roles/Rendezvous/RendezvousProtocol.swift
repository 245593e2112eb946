// The rendezvous (signalling) protocol: JSON lines over TCP, one object per line, UTF-8, `\n`
// terminated. Small enough to speak with `nc` or ten lines of Python.
//
//   client → server  {"type":"register","id":"alice"}
//   server → client  {"type":"registered","id":"alice","peers":["bob"]}
//   client → server  {"type":"send","to":"bob","body":{…any JSON object…}}
//   server → bob     {"type":"message","from":"alice","body":{…}}
//   server → client  {"type":"error","reason":"…"}
//
// A message for a peer that has not registered yet is queued (at most 64 per peer) and delivered
// when it registers, so peers may start in any order. A second registration of an id replaces the
// first connection. Closing the connection unregisters.
//
// The body agents exchange (natlab's agent and Scripts/aioice-agent.py) — ICE parameters, sent once
// gathering is complete (no trickle):
//   {"kind":"offer","ufrag":"…","pwd":"…","candidates":["candidate:1 1 udp 2130706431 10.1.0.2 40000 typ host", …],
//    "bytes":16384}
// `bytes`: how much application data the sender will send (so the receiver knows when it has all).
//   {"kind":"done","received":16384}      the sender has sent and received everything
import Foundation

public enum RendezvousWire {
    /// One line (without the newline) → a JSON object, or nil.
    public static func decode(_ line: some StringProtocol) -> [String: Any]? {
        guard let data = line.data(using: .utf8),
              let obj = try? JSONSerialization.jsonObject(with: data), let dict = obj as? [String: Any] else { return nil }
        return dict
    }

    /// A JSON object → one line with its `\n`. Keys sorted, so the bytes are reproducible.
    public static func encode(_ object: [String: Any]) -> String {
        guard JSONSerialization.isValidJSONObject(object),
              let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return "{\"type\":\"error\",\"reason\":\"unencodable message\"}\n"
        }
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    public static func register(id: String) -> String { encode(["type": "register", "id": id]) }
    public static func send(to: String, body: [String: Any]) -> String { encode(["type": "send", "to": to, "body": body]) }
}

/// The server's routing logic, without sockets: connections are numbers, outputs are lines for them.
public struct RendezvousRouter: Sendable {
    public typealias Connection = Int
    public private(set) var ids: [String: Connection] = [:]
    private var queued: [String: [String]] = [:]
    public static let maxQueued = 64

    public init() {}

    /// A line from connection `c` → lines to deliver to connections.
    public mutating func receive(_ line: String, from c: Connection) -> [(Connection, String)] {
        guard let msg = RendezvousWire.decode(line), let type = msg["type"] as? String else {
            return [(c, RendezvousWire.encode(["type": "error", "reason": "not a JSON object with a \"type\""]))]
        }
        switch type {
        case "register":
            guard let id = msg["id"] as? String, !id.isEmpty, id.count <= 64 else {
                return [(c, RendezvousWire.encode(["type": "error", "reason": "register needs an \"id\" (1-64 characters)"]))]
            }
            for (k, v) in ids where v == c { ids[k] = nil }
            ids[id] = c
            var out = [(c, RendezvousWire.encode(["type": "registered", "id": id, "peers": ids.keys.filter { $0 != id }.sorted()]))]
            for line in queued.removeValue(forKey: id) ?? [] { out.append((c, line)) }
            return out
        case "send":
            guard let to = msg["to"] as? String, let body = msg["body"] as? [String: Any] else {
                return [(c, RendezvousWire.encode(["type": "error", "reason": "send needs \"to\" and an object \"body\""]))]
            }
            guard let from = ids.first(where: { $0.value == c })?.key else {
                return [(c, RendezvousWire.encode(["type": "error", "reason": "register first"]))]
            }
            let line = RendezvousWire.encode(["type": "message", "from": from, "body": body])
            if let dest = ids[to] { return [(dest, line)] }
            if queued[to, default: []].count >= Self.maxQueued {
                return [(c, RendezvousWire.encode(["type": "error", "reason": "queue for \(to) is full"]))]
            }
            queued[to, default: []].append(line)
            return []
        default:
            return [(c, RendezvousWire.encode(["type": "error", "reason": "unknown type \(type)"]))]
        }
    }

    public mutating func closed(_ c: Connection) {
        for (k, v) in ids where v == c { ids[k] = nil }
    }
}
