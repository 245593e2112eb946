// RFC 5780 behaviour discovery: what was measured and how it is classified in RFC 4787 terms.
// Pure values; `ProbeRunner` fills them from the wire, tests fill them by hand.

import STUNWire

/// RFC 4787 §4.1 mapping behaviour, or no translation at all.
public enum MeasuredMapping: String, Sendable, Codable, Equatable {
    /// The server saw the client's own address: no NAT on the path.
    case none
    case endpointIndependent = "endpoint-independent"
    case addressDependent = "address-dependent"
    case addressAndPortDependent = "address-and-port-dependent"

    public var abbreviation: String {
        switch self {
        case .none: "none"
        case .endpointIndependent: "EIM"
        case .addressDependent: "ADM"
        case .addressAndPortDependent: "APDM"
        }
    }
}

/// RFC 4787 §5 filtering behaviour.
public enum MeasuredFiltering: String, Sendable, Codable, Equatable {
    case endpointIndependent = "endpoint-independent"
    case addressDependent = "address-dependent"
    case addressAndPortDependent = "address-and-port-dependent"

    public var abbreviation: String {
        switch self {
        case .endpointIndependent: "EIF"
        case .addressDependent: "ADF"
        case .addressAndPortDependent: "APDF"
        }
    }
}

/// One Binding transaction of the discovery, as it happened.
public struct ProbeTest: Sendable, Codable, Equatable {
    /// "mapping I", "filtering II", …
    public var name: String
    public var local: String
    public var to: String
    /// CHANGE-REQUEST flags sent ("ip+port", "port") or nil.
    public var changeRequest: String?
    /// XOR-MAPPED-ADDRESS of the answer; nil when no answer arrived.
    public var mapped: String?
    /// Where the answer came from (the datagram's source); nil when none arrived.
    public var from: String?

    public init(name: String, local: String, to: String, changeRequest: String? = nil, mapped: String? = nil, from: String? = nil) {
        self.name = name; self.local = local; self.to = to; self.changeRequest = changeRequest
        self.mapped = mapped; self.from = from
    }
}

/// Hairpin measurement: two sockets of the probing host send to each other's public mapping.
public struct HairpinResult: Sendable, Codable, Equatable {
    /// A datagram sent to a public mapping of this NAT came back to the LAN socket owning it.
    public var works: Bool
    /// How the receiving socket saw the sender: its public mapping (RFC 4787 REQ-9) or its private address.
    public var sourceSeen: String?
    /// True when `sourceSeen` is the sender's public (translated) address, as REQ-9 asks.
    public var sourceIsPublic: Bool?

    public init(works: Bool, sourceSeen: String? = nil, sourceIsPublic: Bool? = nil) {
        self.works = works; self.sourceSeen = sourceSeen; self.sourceIsPublic = sourceIsPublic
    }
}

/// One lifetime trial: a mapping made by exactly one request, tested once after `idle` seconds.
public struct LifetimeTrial: Sendable, Codable, Equatable {
    public var idle: Double
    /// nil: the trial was cancelled before it ran (the answer was already known).
    public var delivered: Bool?
    public init(idle: Double, delivered: Bool?) { self.idle = idle; self.delivered = delivered }
}

/// The binding lifetime, bracketed by the trials: a packet arrived after `lower` seconds of idle
/// time and not after `upper`.
public struct LifetimeResult: Sendable, Codable, Equatable {
    /// The estimate: the middle of the bracket (nil when unbounded).
    public var seconds: Double?
    public var lower: Double
    public var upper: Double?
    public var trials: [LifetimeTrial]

    public init(seconds: Double?, lower: Double, upper: Double?, trials: [LifetimeTrial]) {
        self.seconds = seconds; self.lower = lower; self.upper = upper; self.trials = trials
    }

    /// Brackets the lifetime from trial outcomes (any order). The lower bound is the longest idle time
    /// that still delivered below the first loss; the upper bound is that first loss.
    public static func estimate(_ trials: [LifetimeTrial]) -> LifetimeResult {
        let done = trials.filter { $0.delivered != nil }.sorted { $0.idle < $1.idle }
        let firstLoss = done.first { $0.delivered == false }?.idle
        let lower = done.filter { $0.delivered == true && (firstLoss == nil || $0.idle < firstLoss!) }.last?.idle ?? 0
        let seconds = firstLoss.map { (lower + $0) / 2 }
        return LifetimeResult(seconds: seconds, lower: lower, upper: firstLoss, trials: trials.sorted { $0.idle < $1.idle })
    }
}

/// The classification of one NAT (or of the whole path to the server, when several NATs are on it).
public struct ProbeReport: Sendable, Codable, Equatable {
    public var server: String
    /// OTHER-ADDRESS of the server (its alternate IP and port), when it has one.
    public var otherAddress: String?
    /// The probing socket's own address (mapping test I).
    public var local: String
    /// What the server saw for it (mapping test I).
    public var mapped: String
    public var mapping: MeasuredMapping?
    public var filtering: MeasuredFiltering?
    /// Mapping test I kept the local port.
    public var portPreserved: Bool
    public var hairpin: HairpinResult?
    public var lifetime: LifetimeResult?
    /// RFC 3489 name ("full cone", "symmetric", …).
    public var classic: String?
    public var tests: [ProbeTest]
    /// Things that limited the measurement (server without OTHER-ADDRESS, …).
    public var notes: [String]

    public init(server: String, otherAddress: String?, local: String, mapped: String, mapping: MeasuredMapping?,
                filtering: MeasuredFiltering?, portPreserved: Bool, hairpin: HairpinResult?, lifetime: LifetimeResult?,
                tests: [ProbeTest], notes: [String] = []) {
        self.server = server; self.otherAddress = otherAddress; self.local = local; self.mapped = mapped
        self.mapping = mapping; self.filtering = filtering; self.portPreserved = portPreserved
        self.hairpin = hairpin; self.lifetime = lifetime; self.tests = tests; self.notes = notes
        self.classic = ProbeClassifier.classicName(mapping: mapping, filtering: filtering)
    }

    /// "EIM + APDF (port-restricted cone)".
    public var summary: String {
        let m = mapping?.abbreviation ?? "?"
        let f = filtering?.abbreviation ?? "?"
        return "\(m) + \(f)" + (classic.map { " (\($0))" } ?? "")
    }
}

/// RFC 5780 §4.3/§4.4 decision logic, separate from the sockets.
public enum ProbeClassifier {
    /// Mapping from tests I, II, III: I to the primary address, II to the alternate IP with the primary
    /// port, III to the alternate IP and port. nil answers mean the test could not be run.
    public static func mapping(local: STUNAddress, testI: STUNAddress, testII: STUNAddress?, testIII: STUNAddress?) -> MeasuredMapping? {
        if testI == local { return MeasuredMapping.none }
        guard let testII else { return nil }
        if testII == testI { return .endpointIndependent }
        guard let testIII else { return nil }
        return testIII == testII ? .addressDependent : .addressAndPortDependent
    }

    /// Filtering from test II (CHANGE-REQUEST ip+port answered?) and test III (CHANGE-REQUEST port answered?).
    public static func filtering(changedIPAndPortAnswered: Bool, changedPortAnswered: Bool) -> MeasuredFiltering {
        if changedIPAndPortAnswered { return .endpointIndependent }
        return changedPortAnswered ? .addressDependent : .addressAndPortDependent
    }

    /// RFC 3489 names. Any endpoint-dependent mapping was "symmetric" there.
    public static func classicName(mapping: MeasuredMapping?, filtering: MeasuredFiltering?) -> String? {
        guard let mapping else { return nil }
        switch mapping {
        case .none:
            guard let filtering else { return nil }
            return filtering == .endpointIndependent ? "open internet" : "symmetric UDP firewall"
        case .addressDependent, .addressAndPortDependent:
            return "symmetric"
        case .endpointIndependent:
            switch filtering {
            case .endpointIndependent?: return "full cone"
            case .addressDependent?: return "restricted cone"
            case .addressAndPortDependent?: return "port-restricted cone"
            case nil: return nil
            }
        }
    }
}
