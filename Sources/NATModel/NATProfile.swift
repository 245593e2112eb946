// CONTRACT FILE (shared by Topology, Lab and NATModel). Field names are the YAML keys of a router's `nat:`.
// The NATModel helper owns this module and may extend it; keep these public names stable.

/// A router's behaviour in RFC 4787 terms. Pure value: `NATRuleset.render` turns it into nftables text.
public struct NATProfile: Sendable, Equatable, Codable {
    public enum Mapping: String, Sendable, Codable, CaseIterable {
        case endpointIndependent = "endpoint-independent"
        case addressDependent = "address-dependent"
        case addressAndPortDependent = "address-and-port-dependent"
    }
    public enum Filtering: String, Sendable, Codable, CaseIterable {
        case endpointIndependent = "endpoint-independent"
        case addressDependent = "address-dependent"
        case addressAndPortDependent = "address-and-port-dependent"
    }
    /// What the router does to packets crossing from its LAN to its upstream.
    public enum Kind: String, Sendable, Codable {
        /// Address and port translation (NAT44).
        case nat
        /// Stateful filtering without translation: outbound allowed, unsolicited inbound dropped.
        case firewall
        /// Plain routing: no translation, no filtering.
        case none
    }

    public var kind: Kind
    public var mapping: Mapping
    public var filtering: Filtering
    public var hairpin: Bool
    /// Mapping lifetimes in seconds; nil keeps the kernel default.
    public var udpTimeout: Int?
    public var udpStreamTimeout: Int?
    public var tcpTimeout: Int?
    /// The preset this profile started from, for display ("port-restricted-cone").
    public var preset: String?
    /// How a new mapping's external port is chosen (YAML `ports:`). Endpoint-dependent mappings
    /// (address-dependent, address-and-port-dependent) always take fresh random ports: `.preserve`
    /// renders as `.random` for them, and the parser rejects an explicit `ports: preserve` there.
    public var ports: PortAssignment
    /// Which external address a host gets when the router has several (YAML `pooling:`).
    /// Only used when the ruleset context has more than one WAN address.
    public var pooling: Pooling
    /// `block-udp: true`: the router drops all UDP it would forward, both ways (a UDP-blocking
    /// corporate firewall). nil means false; optional so that records written before it decode.
    public var blockUDP: Bool?

    /// External port choice for new mappings.
    public enum PortAssignment: Sendable, Equatable, Codable, CustomStringConvertible {
        /// Keep the inside source port when it is free (kernel default).
        case preserve
        /// A random free port for each new mapping.
        case random
        /// Ports only from `lower...upper` (an inside port in the range is kept when free).
        case range(lower: Int, upper: Int)

        public var description: String {
            switch self {
            case .preserve: "preserve"
            case .random: "random"
            case .range(let lower, let upper): "\(lower)-\(upper)"
            }
        }
    }

    /// RFC 4787 §4.1 address pooling.
    public enum Pooling: String, Sendable, Codable, CaseIterable {
        /// Every mapping of one inside host uses the same external address (REQ-2; `persistent`).
        case paired
        /// Any external address for any mapping.
        case arbitrary
    }

    public init(kind: Kind, mapping: Mapping = .endpointIndependent,
                filtering: Filtering = .addressAndPortDependent, hairpin: Bool = false,
                udpTimeout: Int? = nil, udpStreamTimeout: Int? = nil, tcpTimeout: Int? = nil,
                preset: String? = nil, ports: PortAssignment = .preserve, pooling: Pooling = .paired) {
        self.kind = kind; self.mapping = mapping; self.filtering = filtering; self.hairpin = hairpin
        self.udpTimeout = udpTimeout; self.udpStreamTimeout = udpStreamTimeout; self.tcpTimeout = tcpTimeout
        self.preset = preset; self.ports = ports; self.pooling = pooling
    }
}

/// A value of a `nat:` key as written in the topology file.
public enum NATSpecValue: Sendable, Equatable {
    case scalar(String)
    case list([String])
}

/// One problem with a `nat:` specification; `key` names the offending key (nil: the whole spec).
public struct NATSpecError: Error, Sendable, Equatable {
    public var key: String?
    public var message: String
    public init(key: String?, message: String) { self.key = key; self.message = message }
}

/// Where the ruleset is installed: interface names and addresses inside the router's namespace.
public struct NATRulesetContext: Sendable, Equatable {
    public var wanInterface: String
    public var lanInterface: String
    /// The router's upstream (public-side) IPv4 addresses, dotted quad.
    public var wanAddresses: [String]
    /// The router's LAN subnets, CIDR.
    public var lanSubnets: [String]
    /// The IPv6 prefixes behind the router in a dual-stack lab (its LAN and the routed ones below), CIDR.
    /// Empty: IPv4 only. Non-empty makes a translating router also filter IPv6, without translating it.
    public var lanSubnets6: [String]
    public init(wanInterface: String, lanInterface: String, wanAddresses: [String], lanSubnets: [String],
                lanSubnets6: [String] = []) {
        self.wanInterface = wanInterface; self.lanInterface = lanInterface
        self.wanAddresses = wanAddresses; self.lanSubnets = lanSubnets; self.lanSubnets6 = lanSubnets6
    }
    /// True in a dual-stack lab.
    public var hasIPv6: Bool { !lanSubnets6.isEmpty }
}

/// Every problem found in one `nat:` specification.
public struct NATSpecErrors: Error, Sendable, Equatable {
    public var errors: [NATSpecError]
    public init(errors: [NATSpecError]) { self.errors = errors }
}
