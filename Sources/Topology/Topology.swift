import NATModel

/// One problem in a topology file, printed like a compiler diagnostic: `file:line:col: error: message`.
/// Line and column are 1-based; columns count Unicode scalars (as libyaml does).
public struct Diagnostic: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String
    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file; self.line = line; self.column = column; self.message = message
    }
    public var description: String { "\(file):\(line):\(column): error: \(message)" }
}

/// Every problem found in a topology file, sorted by position. Nothing is built when this is thrown.
public struct TopologyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    public init(diagnostics: [Diagnostic]) {
        // Stable sort: problems found at one position keep the order they were found in.
        self.diagnostics = diagnostics.enumerated().sorted {
            ($0.element.line, $0.element.column, $0.offset) < ($1.element.line, $1.element.column, $1.offset)
        }.map(\.element)
    }
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// What a host runs once the lab is up (started by later work; the topology only records it).
public enum Role: Sendable, Equatable, Codable, CustomStringConvertible {
    /// RFC 5389/5780 STUN server; the host gets two addresses so RFC 5780 probes can change IP.
    case stunServer
    /// natlab's TURN relay (`run: turn-server` or `run: { turn-server: { users: {…} } }`).
    case turnServer(TURNRoleOptions)
    case rendezvous
    case agent
    /// The third-party coturn server (baseline), configured like `turnServer`.
    case coturn(TURNRoleOptions)
    /// An external program, argv as written (no shell).
    case exec([String])

    /// The role names accepted by `run:` (besides `{ exec: [...] }`).
    public static let names = ["stun-server", "turn-server", "rendezvous", "agent", "coturn"]

    public init?(name: String) {
        switch name {
        case "stun-server": self = .stunServer
        case "turn-server": self = .turnServer(TURNRoleOptions())
        case "rendezvous": self = .rendezvous
        case "agent": self = .agent
        case "coturn": self = .coturn(TURNRoleOptions())
        default: return nil
        }
    }

    /// The role's name as written in `run:`.
    public var name: String {
        switch self {
        case .stunServer: "stun-server"
        case .turnServer: "turn-server"
        case .rendezvous: "rendezvous"
        case .agent: "agent"
        case .coturn: "coturn"
        case .exec: "exec"
        }
    }

    public var description: String {
        switch self {
        case .turnServer(let o), .coturn(let o): o == TURNRoleOptions() ? name : "\(name) (\(o))"
        case .exec(let argv): "exec \(argv.joined(separator: " "))"
        default: name
        }
    }

    /// How many addresses the host needs on its segment.
    public var addressCount: Int { self == .stunServer ? 2 : 1 }
}

/// Options of `run: { turn-server: {…} }` and `run: { coturn: {…} }`: who may allocate.
public struct TURNRoleOptions: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The user when the file names none (the lab is an island: a well-known password is fine).
    public static let defaultUsers = ["natlab": "natlab"]
    public static let defaultRealm = "natlab"

    /// Long-term credentials, name → password. Empty with no `staticSecret`: `defaultUsers`.
    public var users: [String: String]
    /// coturn-style time-limited credentials (`use-auth-secret`) instead of users.
    public var staticSecret: String?
    public var realm: String
    /// Largest allocation lifetime granted, seconds (nil: 3600).
    public var maxLifetime: Int?
    /// Allocations one user may hold at once (nil: unlimited).
    public var userQuota: Int?

    public init(users: [String: String] = [:], staticSecret: String? = nil, realm: String = TURNRoleOptions.defaultRealm,
                maxLifetime: Int? = nil, userQuota: Int? = nil) {
        self.users = users; self.staticSecret = staticSecret; self.realm = realm
        self.maxLifetime = maxLifetime; self.userQuota = userQuota
    }

    /// The users the server accepts (the defaults when none were given and there is no secret).
    public var effectiveUsers: [(name: String, password: String)] {
        guard staticSecret == nil else { return [] }
        return (users.isEmpty ? Self.defaultUsers : users).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    public var description: String {
        var parts: [String] = []
        if staticSecret != nil { parts.append("static secret") } else { parts.append("users: " + effectiveUsers.map(\.name).joined(separator: ", ")) }
        if realm != Self.defaultRealm { parts.append("realm \(realm)") }
        if let m = maxLifetime { parts.append("max-lifetime \(m)s") }
        if let q = userQuota { parts.append("user-quota \(q)") }
        return parts.joined(separator: "; ")
    }
}

/// A validated lab description: what the YAML file says, with defaults filled in. Value type; the
/// address plan and build steps come from `Planner.plan(_:)`.
public struct Topology: Sendable, Equatable {
    /// The name of the public core every top-level router and public host attaches to.
    public static let internet = "internet"
    /// The default public core subnet (RFC 5737 TEST-NET-3).
    public static let defaultInternetSubnet = IPv4Network("203.0.113.0/24")!
    /// The default IPv6 core subnet of a dual-stack lab (RFC 3849 documentation prefix).
    public static let defaultInternetSubnet6 = IPv6Network("2001:db8:ffff::/64")!
    /// Automatic IPv6 LANs are /64s of this prefix (RFC 3849): `2001:db8:K::/64`.
    public static let documentationPrefix6 = IPv6Network("2001:db8::/32")!
    /// Names a node may not take: they name the core or interfaces inside namespaces
    /// (`all` and `default` collide with `/proc/sys/net/ipv4/conf/{all,default}`).
    public static let reservedNames: Set<String> = ["internet", "lan", "wan", "lo", "eth0", "ix", "all", "default"]

    public struct Router: Sendable, Equatable {
        public var name: String
        /// `internet` or another router's name.
        public var upstream: String
        /// The LAN subnet (explicit or automatic, see `Planner`).
        public var lan: IPv4Network
        /// False when the LAN was chosen automatically.
        public var lanIsExplicit: Bool
        public var nat: NATProfile
        /// Explicit (first) address on the upstream segment; nil: next free.
        public var address: IPv4Address?
        /// How many consecutive upstream addresses the router takes (YAML `addresses:`): more than one
        /// makes a pool of public addresses, used as `nat.pooling` says. Only for translating routers.
        public var addressCount: Int
        /// The IPv6 LAN of a dual-stack lab (explicit `lan6:` or automatic); nil in an IPv4-only lab.
        public var lan6: IPv6Network?
        /// Explicit IPv6 address on the upstream segment (`address6:`); nil: mirrored from the IPv4 plan.
        public var address6: IPv6Address?
        public init(name: String, upstream: String = Topology.internet, lan: IPv4Network, lanIsExplicit: Bool = true,
                    nat: NATProfile, address: IPv4Address? = nil, addressCount: Int = 1,
                    lan6: IPv6Network? = nil, address6: IPv6Address? = nil) {
            self.name = name; self.upstream = upstream; self.lan = lan; self.lanIsExplicit = lanIsExplicit
            self.nat = nat; self.address = address; self.addressCount = addressCount
            self.lan6 = lan6; self.address6 = address6
        }
        /// True when packets from the LAN keep their source address (`none`, `firewall`).
        public var translates: Bool { nat.kind == .nat }
    }

    public struct Host: Sendable, Equatable {
        public var name: String
        /// `internet` or a router's name.
        public var attach: String
        /// Explicit (first) address on the attached segment; nil: next free.
        public var address: IPv4Address?
        public var role: Role?
        /// Explicit IPv6 address (`address6:`) in a dual-stack lab; nil: mirrored from the IPv4 plan.
        public var address6: IPv6Address?
        public init(name: String, attach: String, address: IPv4Address? = nil, role: Role? = nil,
                    address6: IPv6Address? = nil) {
            self.name = name; self.attach = attach; self.address = address; self.role = role
            self.address6 = address6
        }
    }

    public var name: String
    public var description: String?
    public var internetSubnet: IPv4Network
    /// The IPv6 core subnet; non-nil exactly when the lab is dual-stack (`ipv6: true` or any v6 key).
    public var internetSubnet6: IPv6Network?
    public var isDualStack: Bool { internetSubnet6 != nil }
    /// In file order.
    public var routers: [Router]
    /// In file order.
    public var hosts: [Host]

    /// Connectivity checks (`checks:`), in file order; `natlab run` runs them.
    public var checks: [Check] = []

    public init(name: String, description: String? = nil, internetSubnet: IPv4Network = Topology.defaultInternetSubnet,
                routers: [Router], hosts: [Host], checks: [Check] = [], internetSubnet6: IPv6Network? = nil) {
        self.name = name; self.description = description; self.internetSubnet = internetSubnet
        self.internetSubnet6 = internetSubnet6
        self.routers = routers; self.hosts = hosts; self.checks = checks
    }

    /// Lab names: lower-case letters, digits and '-', starting with a letter or digit, at most 24
    /// bytes (they go into every namespace name). One rule for `name:` and for `--name`.
    public static func isValidLabName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, ("a"..."z").contains(first) || ("0"..."9").contains(first),
              s.utf8.count <= 24 else { return false }
        return s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
    }

    public func router(named name: String) -> Router? { routers.first { $0.name == name } }
    public func host(named name: String) -> Host? { hosts.first { $0.name == name } }
}

extension Role {
    // Encoded as the role name (`"stun-server"`) or `{"exec": [argv…]}`, like the YAML; decoded from
    // `{"turn-server": {options}}` too.
    private enum CodingKeys: String, CodingKey {
        case exec
        case turnServer = "turn-server"
        case coturn
    }

    public init(from decoder: Decoder) throws {
        if let c = try? decoder.singleValueContainer(), let name = try? c.decode(String.self) {
            guard let role = Role(name: name) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown role \(name)"))
            }
            self = role
            return
        }
        let keyed = try decoder.container(keyedBy: CodingKeys.self)
        if let o = try keyed.decodeIfPresent(TURNRoleOptions.self, forKey: .turnServer) {
            self = .turnServer(o)
        } else if let o = try keyed.decodeIfPresent(TURNRoleOptions.self, forKey: .coturn) {
            self = .coturn(o)
        } else {
            self = .exec(try keyed.decode([String].self, forKey: .exec))
        }
    }

    public func encode(to encoder: Encoder) throws {
        switch self {
        case .exec(let argv):
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(argv, forKey: .exec)
        default:
            // `turn-server`/`coturn` options are not recorded: lab records must stay readable by
            // natlab versions that know only role names (they collect labs whose record they cannot
            // read). The options live on in the role's command line (`LabRecord.roles`).
            var c = encoder.singleValueContainer()
            try c.encode(name)
        }
    }
}
