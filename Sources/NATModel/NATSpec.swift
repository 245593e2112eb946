// Presets and parsing of a router's `nat:` value (a preset name, or a mapping of fields).

extension NATProfile {
    /// Every preset name, in the order they are documented.
    public static let presetNames = [
        "full-cone", "restricted-cone", "port-restricted-cone", "symmetric", "cgnat", "firewall", "none",
    ]

    /// Every key a `nat:` mapping accepts.
    public static let fieldNames = [
        "preset", "mapping", "filtering", "hairpin", "ports", "pooling", "block-udp",
        "udp-timeout", "udp-stream-timeout", "tcp-timeout",
    ]

    /// The preset a `nat:` mapping without `preset:` starts from.
    public static let defaultPreset = "port-restricted-cone"

    /// Longest accepted lifetime: 5 days (the kernel's TCP established default).
    public static let maximumTimeout = 432_000

    /// Parses a preset name (`nat: port-restricted-cone`).
    public static func parse(preset: String) throws(NATSpecError) -> NATProfile {
        switch preset {
        case "full-cone":
            return NATProfile(kind: .nat, mapping: .endpointIndependent, filtering: .endpointIndependent, preset: preset)
        case "restricted-cone":
            return NATProfile(kind: .nat, mapping: .endpointIndependent, filtering: .addressDependent, preset: preset)
        case "port-restricted-cone":
            return NATProfile(kind: .nat, mapping: .endpointIndependent, filtering: .addressAndPortDependent, preset: preset)
        case "symmetric":
            return NATProfile(kind: .nat, mapping: .addressAndPortDependent, filtering: .addressAndPortDependent,
                              preset: preset, ports: .random)
        case "cgnat":
            // RFC 6888: a CGN follows RFC 4787 (EIM, paired pooling) and must hairpin.
            return NATProfile(kind: .nat, mapping: .endpointIndependent, filtering: .addressAndPortDependent,
                              hairpin: true, preset: preset, pooling: .paired)
        case "firewall":
            return NATProfile(kind: .firewall, filtering: .addressAndPortDependent, preset: preset)
        case "none":
            return NATProfile(kind: .none, preset: preset)
        default:
            throw NATSpecError(key: nil, message: "unknown NAT preset '\(preset)'"
                               + Suggest.didYouMean(preset, among: presetNames)
                               + "; presets: " + presetNames.joined(separator: ", "))
        }
    }

    /// Parses a `nat:` mapping (`{ preset: …, mapping: …, filtering: … }`). Explicit fields override the
    /// preset's; without `preset:` the profile starts from `port-restricted-cone`.
    /// Throws every problem at once, each naming its key.
    public static func parse(fields: [(key: String, value: NATSpecValue)]) throws(NATSpecErrors) -> NATProfile {
        var errors: [NATSpecError] = []
        func fail(_ key: String?, _ message: String) { errors.append(NATSpecError(key: key, message: message)) }

        // 1. Keys: unknown, duplicated, not a scalar.
        var values: [String: String] = [:]
        var given: [String] = []   // known keys in spec order
        for (key, value) in fields {
            guard fieldNames.contains(key) else {
                fail(key, "unknown key '\(key)'" + Suggest.didYouMean(key, among: fieldNames)
                     + "; allowed: " + fieldNames.joined(separator: ", "))
                continue
            }
            if values[key] != nil || given.contains(key) {
                fail(key, "'\(key)' is given more than once")
                continue
            }
            given.append(key)
            switch value {
            case .scalar(let s): values[key] = s
            case .list: fail(key, "'\(key)' takes a single value, not a list")
            }
        }

        // 2. The base profile.
        var profile: NATProfile
        if let name = values["preset"] {
            do { profile = try parse(preset: name) } catch {
                fail("preset", error.message)
                profile = try! parse(preset: defaultPreset)
            }
        } else {
            profile = try! parse(preset: defaultPreset)
            profile.preset = nil
        }

        // 3. Values.
        var explicitPorts: PortAssignment?
        if let s = values["mapping"] {
            if let m = Mapping(spec: s) { profile.mapping = m } else {
                fail("mapping", "'\(s)' is not a mapping behaviour" + Suggest.didYouMean(s, among: Mapping.allCases.map(\.rawValue))
                     + "; allowed: endpoint-independent (eim), address-dependent (adm), address-and-port-dependent (apdm)")
            }
        }
        if let s = values["filtering"] {
            if let f = Filtering(spec: s) { profile.filtering = f } else {
                fail("filtering", "'\(s)' is not a filtering behaviour" + Suggest.didYouMean(s, among: Filtering.allCases.map(\.rawValue))
                     + "; allowed: endpoint-independent (eif), address-dependent (adf), address-and-port-dependent (apdf)")
            }
        }
        if let s = values["hairpin"] {
            switch s.lowercased() {
            case "true", "yes", "on": profile.hairpin = true
            case "false", "no", "off": profile.hairpin = false
            default: fail("hairpin", "'\(s)' is not a boolean; allowed: true, false")
            }
        }
        if let s = values["block-udp"] {
            switch s.lowercased() {
            case "true", "yes", "on": profile.blockUDP = true
            case "false", "no", "off": profile.blockUDP = nil
            default: fail("block-udp", "'\(s)' is not a boolean; allowed: true, false")
            }
        }
        if let s = values["ports"] {
            if let p = PortAssignment(spec: s) { explicitPorts = p; profile.ports = p } else {
                fail("ports", "'\(s)' is not a port assignment; allowed: preserve, random, or a range LOW-HIGH "
                     + "such as 20000-20999 (1-65535, LOW <= HIGH)")
            }
        }
        if let s = values["pooling"] {
            if let p = Pooling(rawValue: s) { profile.pooling = p } else {
                fail("pooling", "'\(s)' is not a pooling behaviour" + Suggest.didYouMean(s, among: Pooling.allCases.map(\.rawValue))
                     + "; allowed: paired, arbitrary")
            }
        }
        var udp: Int?, udpStream: Int?
        for key in ["udp-timeout", "udp-stream-timeout", "tcp-timeout"] {
            guard let s = values[key] else { continue }
            guard let seconds = DurationText.seconds(s), (1...maximumTimeout).contains(seconds) else {
                fail(key, "'\(s)' is not a lifetime; use seconds (30) or a number with s, m, h or d (30s, 2m, 1h), "
                     + "from 1s to 5d")
                continue
            }
            switch key {
            case "udp-timeout": udp = seconds; profile.udpTimeout = seconds
            case "udp-stream-timeout": udpStream = seconds; profile.udpStreamTimeout = seconds
            default: profile.tcpTimeout = seconds
            }
        }

        // 4. Combinations the recipes cannot build.
        let kindName = profile.preset ?? defaultPreset
        switch profile.kind {
        case .none:
            for key in given where key != "preset" {
                fail(key, "'\(key)' has no effect with preset 'none' (plain routing: no translation, "
                     + "no filtering, no conntrack rules)")
            }
        case .firewall:
            for key in given where ["mapping", "hairpin", "ports", "pooling"].contains(key) {
                fail(key, "'\(key)' needs address translation; preset '\(kindName)' forwards without translating "
                     + "(only filtering and the timeouts apply)")
            }
        case .nat:
            if profile.mapping != .endpointIndependent {
                if explicitPorts == .preserve {
                    fail("ports", "port preservation needs endpoint-independent mapping; with \(profile.mapping.rawValue) "
                         + "mapping every new mapping gets a fresh random port (use random or a range)")
                }
                if profile.ports == .preserve { profile.ports = .random }
            }
        }
        if let u = udp, let s = udpStream, u > s {
            fail("udp-timeout", "udp-timeout (\(u)s) is longer than udp-stream-timeout (\(s)s); the stream timeout "
                 + "applies to flows with replies and must not be shorter")
        }
        // P5: one UDP lifetime for both conntrack states, so the lab does not depend on traffic timing.
        if profile.kind != .none {
            if udp != nil, udpStream == nil { profile.udpStreamTimeout = udp }
            if udpStream != nil, udp == nil { profile.udpTimeout = udpStream }
        }

        if !errors.isEmpty { throw NATSpecErrors(errors: errors) }
        return profile
    }

    /// Short RFC 4787 description, e.g. "EIM + APDF, hairpin off, ports preserve".
    public var summary: String {
        switch kind {
        case .none: return "routing only (no translation, no filtering)"
        case .firewall: return "stateful firewall without translation, \(filtering.abbreviation)"
        case .nat:
            return "\(mapping.abbreviation) + \(filtering.abbreviation), hairpin \(hairpin ? "on" : "off"), "
                + "ports \(effectivePorts)"
        }
    }

    /// The port assignment the ruleset implements (`.preserve` is impossible with endpoint-dependent mapping).
    public var effectivePorts: PortAssignment {
        if mapping != .endpointIndependent, ports == .preserve { return .random }
        return ports
    }
}

extension NATProfile.Mapping {
    init?(spec: String) {
        switch spec.lowercased() {
        case "endpoint-independent", "eim": self = .endpointIndependent
        case "address-dependent", "adm": self = .addressDependent
        case "address-and-port-dependent", "apdm": self = .addressAndPortDependent
        default: return nil
        }
    }
    /// EIM, ADM, APDM.
    public var abbreviation: String {
        switch self {
        case .endpointIndependent: "EIM"
        case .addressDependent: "ADM"
        case .addressAndPortDependent: "APDM"
        }
    }
}

extension NATProfile.Filtering {
    init?(spec: String) {
        switch spec.lowercased() {
        case "endpoint-independent", "eif": self = .endpointIndependent
        case "address-dependent", "adf": self = .addressDependent
        case "address-and-port-dependent", "apdf": self = .addressAndPortDependent
        default: return nil
        }
    }
    /// EIF, ADF, APDF.
    public var abbreviation: String {
        switch self {
        case .endpointIndependent: "EIF"
        case .addressDependent: "ADF"
        case .addressAndPortDependent: "APDF"
        }
    }
}

extension NATProfile.PortAssignment {
    init?(spec: String) {
        switch spec.lowercased() {
        case "preserve": self = .preserve
        case "random": self = .random
        default:
            let parts = spec.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 2, let lo = Int(parts[0]), let hi = Int(parts[1]),
                  parts[0].allSatisfy(\.isASCII), parts[1].allSatisfy(\.isASCII),
                  1 <= lo, lo <= hi, hi <= 65535 else { return nil }
            self = .range(lower: lo, upper: hi)
        }
    }
}

/// Durations as written in topology files: `30`, `30s`, `2m`, `1h`, `1d`, and for `milliseconds`
/// also `250ms`. A bare number is seconds.
public enum DurationText {
    public static func seconds(_ text: String) -> Int? {
        milliseconds(text).flatMap { $0 % 1000 == 0 ? $0 / 1000 : nil }
    }

    public static func milliseconds(_ text: String) -> Int? {
        let t = text.trimmingWhitespace()
        let units: [(suffix: String, factor: Int)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        var digits = Substring(t)
        var factor = 1000
        for unit in units where t.hasSuffix(unit.suffix) {
            digits = digits.dropLast(unit.suffix.count)
            factor = unit.factor
            break
        }
        guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              let n = Int(digits) else { return nil }
        return n * factor
    }
}

extension String {
    func trimmingWhitespace() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}

/// "did you mean" for keys and values (Levenshtein distance, case-insensitive).
enum Suggest {
    static func didYouMean(_ word: String, among candidates: [String]) -> String {
        guard let best = closest(word, among: candidates) else { return "" }
        return " (did you mean '\(best)'?)"
    }

    static func closest(_ word: String, among candidates: [String]) -> String? {
        let w = Array(word.lowercased())
        var best: (String, Int)?
        for c in candidates {
            let d = distance(w, Array(c.lowercased()))
            if best == nil || d < best!.1 { best = (c, d) }
        }
        guard let (name, d) = best, d > 0, d <= max(2, name.count / 3) else { return nil }
        return name
    }

    static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}
