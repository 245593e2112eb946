import LinuxNetworking
import Topology

/// What a lab command can fail with; the CLI maps `isBadInput` to exit status 2.
public enum LabError: Error, CustomStringConvertible {
    case invalidTopology(TopologyError)
    case invalidName(String)
    case notRoot(command: String)
    case labExists(String)
    case labBusy(String, detail: String)
    case noSuchLab(String)
    case noSuchNode(lab: String, node: String, known: [String])
    /// A router was asked for (`natlab nat explain LAB ROUTER`) and `node` is a host or the internet core.
    case notARouter(lab: String, node: String, kind: String, routers: [String])
    case interrupted(signal: Int32)
    case step(BuildStep, namespace: String, cause: Error)
    case kernel(Error)
    case state(String)
    case invalidRole(node: String, String)
    case roleFailed(node: String, detail: String)

    public var isBadInput: Bool {
        switch self {
        case .invalidTopology, .invalidName, .noSuchNode, .notARouter: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .invalidTopology(let e):
            return e.diagnostics.map(\.description).joined(separator: "\n")
        case .invalidName(let why): return why
        case .notRoot(let command):
            return "natlab \(command) needs root: it creates network namespaces (CAP_SYS_ADMIN) and configures them (CAP_NET_ADMIN)"
        case .labExists(let name):
            return "a lab named '\(name)' is already up; take it down with `natlab down \(name)` or pick another name with --name"
        case .labBusy(let name, let detail): return "lab '\(name)' is busy: \(detail)"
        case .noSuchLab(let name): return "no lab named '\(name)' (see `natlab status`)"
        case .noSuchNode(let lab, let node, let known):
            return "lab '\(lab)' has no node '\(node)'; its nodes are: \(known.joined(separator: ", "))"
        case .notARouter(let lab, let node, let kind, let routers):
            let list = routers.isEmpty ? "it has no routers" : "its routers are: \(routers.joined(separator: ", "))"
            return "'\(node)' in lab '\(lab)' is \(kind == "internet" ? "the internet core" : "a \(kind)"), not a router; \(list)"
        case .interrupted(let sig):
            return "interrupted by \(Interrupts.name(sig)); everything built so far was removed"
        case .step(let step, let ns, let cause):
            return "\(StepDescription.text(step)) in \(ns) failed: \(cause)"
        case .kernel(let e): return "\(e)"
        case .state(let m): return m
        case .invalidRole(let node, let why): return "run: of \(node): \(why)"
        case .roleFailed(let node, let detail): return "role of \(node) failed to start: \(detail)"
        }
    }
}

enum StepDescription {
    /// The iproute2 command a step corresponds to, for error messages.
    static func text(_ step: BuildStep) -> String {
        switch step {
        case .createNamespace(let n): return "create namespace for \(n)"
        case .setUp(_, let l): return "ip link set \(l) up"
        case .sysctl(_, let k, let v): return "sysctl \(k)=\(v)"
        case .addBridge(_, let b): return "ip link add \(b) type bridge"
        case .addVeth(_, let n, _, let pn, let pp): return "ip link add \(n) type veth peer name \(pp) (in \(pn))"
        case .addAddress(_, let l, let c): return "ip addr add \(c) dev \(l)"
        case .addRoute(_, let d, let g): return "ip route add \(d ?? "default") via \(g)"
        case .applyNFTables: return "nft -f (NAT ruleset), then conntrack -F"
        }
    }
}
