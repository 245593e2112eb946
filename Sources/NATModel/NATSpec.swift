// Placeholder until the NATModel helper lands: presets and field parsing.
extension NATProfile {
    public static let presetNames = ["port-restricted-cone", "none"]

    /// Parses a preset name (`nat: port-restricted-cone`).
    public static func parse(preset: String) throws(NATSpecError) -> NATProfile {
        switch preset {
        case "port-restricted-cone": return NATProfile(kind: .nat, preset: preset)
        case "none": return NATProfile(kind: .none, preset: preset)
        default: throw NATSpecError(key: nil, message: "unknown NAT preset '\(preset)'")
        }
    }

    /// Parses a `nat:` mapping (`{ preset: …, mapping: …, filtering: … }`); every error is reported.
    /// Throws every problem at once.
    public static func parse(fields: [(key: String, value: NATSpecValue)]) throws(NATSpecErrors) -> NATProfile {
        throw NATSpecErrors(errors: [NATSpecError(key: nil, message: "explicit NAT fields are not supported yet")])
    }
}

public enum NATRuleset {
    /// nftables script for `profile` (nil when the profile needs no rules).
    public static func render(_ profile: NATProfile, context: NATRulesetContext) -> String? {
        nil
    }
    /// Per-namespace sysctls the profile needs (mapping lifetimes), as (dotted key, value).
    public static func sysctls(for profile: NATProfile) -> [(key: String, value: String)] { [] }
}
