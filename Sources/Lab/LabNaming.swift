import Topology

/// How natlab names what it creates, so that several labs coexist and every leftover is recognisable.
///
/// A lab's namespaces are `natlab-<lab>.<node>`: lab names never contain a dot and node names never
/// contain one either, so the name splits back unambiguously, and the `natlab-` prefix is what `gc`
/// looks for. Interfaces need no prefix: they live inside the lab's own namespaces.
public enum LabNaming {
    public static let namespacePrefix = "natlab-"
    public static let maxLabNameLength = 24

    public static func namespace(lab: String, node: String) -> String {
        "\(namespacePrefix)\(lab).\(node)"
    }

    /// Namespaces of the script `natlab up --emit-shell` prints. A different prefix on purpose:
    /// natlab has no journal of that lab, and `gc` removes unclaimed `natlab-*` namespaces.
    public static func shellNamespace(lab: String, node: String) -> String {
        "nlsh-\(lab).\(node)"
    }

    /// The lab a namespace name belongs to, or nil when it is not natlab's.
    public static func lab(ofNamespace name: String) -> String? {
        guard name.hasPrefix(namespacePrefix), let dot = name.firstIndex(of: ".") else { return nil }
        let lab = name[name.index(name.startIndex, offsetBy: namespacePrefix.count)..<dot]
        return lab.isEmpty ? nil : String(lab)
    }

    /// nil when `name` is a valid lab name, else why not.
    public static func problem(withLabName name: String) -> String? {
        if Topology.isValidLabName(name) { return nil }
        if name.isEmpty { return "a lab name cannot be empty" }
        if name.utf8.count > maxLabNameLength {
            return "lab name '\(name)' is longer than \(maxLabNameLength) characters"
        }
        return "lab name '\(name)' must be lower-case letters, digits and '-', not starting with '-'"
    }
}
