#if canImport(Glibc)
import Glibc
#endif
import NATModel
import Yams

/// Reads topology files: YAML syntax, schema, and semantic validation. Every problem is reported at
/// once, each at its `file:line:column`, before anything is created.
public enum TopologyLoader {
    /// Reads and validates `path`; an unreadable file is reported as a diagnostic too.
    public static func load(path: String) throws(TopologyError) -> Topology {
        let text: String
        do {
            text = try readFile(path)
        } catch {
            throw TopologyError(diagnostics: [Diagnostic(file: path, line: 1, column: 1, message: error.message)])
        }
        return try parse(text, file: path)
    }

    /// Validates YAML text; `file` is used in diagnostics and, without `name:`, for the lab name
    /// (the file name without directory and extension).
    public static func parse(_ yaml: String, file: String) throws(TopologyError) -> Topology {
        var checker = Checker(file: file)
        let topology = checker.run(yaml)
        if let topology, checker.diagnostics.isEmpty { return topology }
        throw TopologyError(diagnostics: checker.diagnostics)
    }

    struct ReadError: Error { var message: String }

    /// The file's text, read with plain system calls: the loader runs at the start of every `up`
    /// (on its main thread, or on the spare core: `BuildPreparation`), where `FileManager.default`'s
    /// first use cost ~0.1 ms.
    static func readFile(_ path: String) throws(ReadError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ReadError(message: "cannot read topology file: \(reason(errno))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ReadError(message: "cannot read topology file: \(reason(errno))") }
        if info.st_mode & S_IFMT == S_IFDIR { throw ReadError(message: "cannot read topology file: it is a directory") }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: max(4096, Int(info.st_size) + 1))
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ReadError(message: "cannot read topology file: \(reason(errno))")
            }
            if n == 0 { break }
            bytes += chunk[..<n]
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ReadError(message: "cannot read topology file: not valid UTF-8")
        }
        return text
    }

    private static func reason(_ code: Int32) -> String {
        switch code {
        case ENOENT: "no such file"
        case EACCES, EPERM: "permission denied"
        default: String(cString: strerror(code)).lowercased()
        }
    }
}

/// A position in the file (1-based line and column).
struct Pos: Equatable, CustomStringConvertible {
    var line: Int
    var column: Int
    static let start = Pos(line: 1, column: 1)
    init(line: Int, column: Int) { self.line = line; self.column = column }
    init(_ node: Node) {
        let m = node.mark
        self.init(line: m?.line ?? 1, column: m?.column ?? 1)
    }
    var description: String { "\(line):\(column)" }
}

/// A scalar with where it was written.
struct Located<T> {
    var value: T
    var pos: Pos
}

// MARK: - Checker

struct Checker {
    let file: String
    var diagnostics: [Diagnostic] = []

    init(file: String) { self.file = file }

    mutating func error(_ pos: Pos, _ message: String) {
        diagnostics.append(Diagnostic(file: file, line: pos.line, column: pos.column, message: message))
    }
    mutating func error(_ node: Node, _ message: String) { error(Pos(node), message) }

    // Raw declarations, as read (stage 1).
    struct RawRouter {
        var name: String
        var namePos: Pos
        var upstream: Located<String>?
        var lan: Located<IPv4Network>?
        var lanInvalid = false
        var nat: NATProfile?
        var natInvalid = false
        var address: Located<IPv4Address>?
        var lan6: Located<IPv6Network>?
        var lan6Invalid = false
        var address6: Located<IPv6Address>?
        /// Where a v6 key was written (`lan6:`, `address6:`), for "needs dual stack" errors.
        var v6Keys: [(key: String, pos: Pos)] = []
        /// `addresses: N` (a pool of public addresses).
        var addressCount: Located<Int>?
        /// Where `pooling:` was written in a `nat:` mapping, if it was.
        var poolingPos: Pos?
    }
    struct RawHost {
        var name: String
        var namePos: Pos
        var attach: Located<String>?
        var address: Located<IPv4Address>?
        var address6: Located<IPv6Address>?
        var v6Keys: [(key: String, pos: Pos)] = []
        var role: Role?
    }

    // MARK: Stage 1: YAML -> raw declarations

    mutating func run(_ yaml: String) -> Topology? {
        let root: Node?
        do {
            // `.basic`: no implicit typing while composing. The loader reads every scalar as text
            // itself, and Yams' typing rules are ICU regular expressions whose first compilation
            // costs ~1.5 ms of every natlab command that reads a topology. The loader never asks Yams
            // to construct Swift values either, so it gets a constructor without Yams' default maps,
            // whose first use builds a dictionary of conversions (~0.1 ms); and the encoding is
            // given, where Yams' default reads it from ProcessInfo's whole environment (~0.15 ms).
            root = try Yams.compose(yaml: yaml, .basic, Constructor([:], [:], [:]), .utf8)
        } catch let error as YamlError {
            report(error, in: yaml)
            return nil
        } catch {
            self.error(.start, "cannot parse YAML: \(error)")
            return nil
        }
        guard let root, !isNull(root) else {
            error(.start, "the file is empty: expected a mapping with `routers:` and/or `hosts:`")
            return nil
        }
        guard let top = mapping(root, what: "the top level", example: "`routers:` and `hosts:`") else { return nil }
        checkKeys(top, allowed: ["name", "description", "ipv6", "internet", "routers", "hosts", "checks"], in: "the top level")

        var name = TopologyLoader.defaultName(file: file)
        var namePos: Pos? = nil
        if let n = top.value("name"), let s = string(n, what: "a lab name") {
            name = s; namePos = Pos(n)
        }
        if !Checker.isValidLabName(name) {
            if let namePos {
                error(namePos, "invalid lab name '\(name)': use lowercase letters, digits and '-', starting with a letter or digit, at most 24 characters")
            } else {
                error(.start, "the lab name '\(name)' taken from the file name is invalid (lowercase letters, digits and '-', at most 24 characters): add a `name:`")
            }
        }
        var description: String? = nil
        if let d = top.value("description"), !isNull(d) { description = string(d, what: "a description") }

        var ipv6: Located<Bool>? = nil
        if let v = top.value("ipv6") {
            if case .scalar(let sc) = v, ["true", "false"].contains(sc.string.lowercased()) {
                ipv6 = Located(value: sc.string.lowercased() == "true", pos: Pos(v))
            } else {
                error(v, "`ipv6` takes true (a dual-stack lab: IPv6 on every segment) or false, found \(Checker.describe(v))")
            }
        }

        var internetSubnet = Topology.defaultInternetSubnet
        var internetPos = Pos(root)
        var internetValid = true
        var subnet6: Located<IPv6Network>? = nil
        var subnet6Invalid = false
        var topV6Keys: [(key: String, pos: Pos)] = []
        if let inet = top.value("internet"), !isNull(inet) {
            internetPos = Pos(top.keyNode("internet")!)
            if let m = mapping(inet, what: "`internet`", example: "`{ subnet: 203.0.113.0/24 }`") {
                checkKeys(m, allowed: ["subnet", "subnet6"], in: "`internet`")
                if let s = m.value("subnet") {
                    if let net = subnet(s) { internetSubnet = net; internetPos = Pos(s) } else { internetValid = false }
                }
                if let s = m.value("subnet6") {
                    topV6Keys.append(("subnet6", Pos(m.keyNode("subnet6")!)))
                    if let net = ipv6Subnet(s) { subnet6 = Located(value: net, pos: Pos(s)) } else { subnet6Invalid = true }
                }
            }
        }

        var sectionBroken = false
        var routers: [RawRouter] = []
        if let section = top.value("routers"), !isNull(section) {
            if let m = mapping(section, what: "`routers`", example: "`home1: { nat: port-restricted-cone }`") {
                for entry in m.entries { routers.append(readRouter(entry)) }
            } else { sectionBroken = true }
        }
        var hosts: [RawHost] = []
        if let section = top.value("hosts"), !isNull(section) {
            if let m = mapping(section, what: "`hosts`", example: "`alice: { attach: home1 }`") {
                for entry in m.entries { hosts.append(readHost(entry)) }
            } else { sectionBroken = true }
        }
        if routers.isEmpty && hosts.isEmpty && !sectionBroken {
            error(Pos(root), "the lab has no nodes: add `routers:` and/or `hosts:`")
        }

        var checks: [RawCheck] = []
        if let section = top.value("checks"), !isNull(section) { checks = readChecks(section) }
        validateChecks(checks, hosts: Set(hosts.map(\.name)), routers: Set(routers.map(\.name)))

        // Dual stack: `ipv6: true`, or any IPv6 key without `ipv6: false`.
        let v6Keys = topV6Keys + routers.flatMap(\.v6Keys) + hosts.flatMap(\.v6Keys)
        var dualStack = ipv6?.value ?? !v6Keys.isEmpty
        if ipv6?.value == false {
            for k in v6Keys {
                error(k.pos, "`\(k.key)` is an IPv6 setting, but the lab says `ipv6: false`: remove one of them")
            }
            dualStack = false
        }
        let v6 = V6Settings(enabled: dualStack, subnet: subnet6, subnetInvalid: subnet6Invalid)
        var topology = validate(name: name, description: description, internetSubnet: internetSubnet,
                                internetPos: internetPos, internetValid: internetValid, rootPos: Pos(root),
                                routers: routers, hosts: hosts, v6: v6)
        topology?.checks = checks.map(\.check)
        return topology
    }

    mutating func readRouter(_ e: MappingView.Entry) -> RawRouter {
        var r = RawRouter(name: e.key, namePos: Pos(e.keyNode))
        checkName(e)
        guard !isNull(e.value), let m = mapping(e.value, what: "router '\(e.key)'",
                                                  example: "`{ upstream: internet, lan: 192.168.1.0/24, nat: port-restricted-cone }`")
        else {
            r.nat = Checker.defaultNAT
            return r
        }
        checkKeys(m, allowed: ["upstream", "lan", "lan6", "nat", "address", "address6", "addresses"], in: "router '\(e.key)'")
        if let u = m.value("upstream"), let s = string(u, what: "a router name or `internet`") {
            r.upstream = Located(value: s, pos: Pos(u))
        }
        if let l = m.value("lan") {
            if let net = subnet(l) { r.lan = Located(value: net, pos: Pos(l)) } else { r.lanInvalid = true }
        }
        if let n = m.value("nat"), !isNull(n) {
            if case .mapping(let fields) = n, let key = fields.keys.first(where: { $0.string == "pooling" }) {
                r.poolingPos = Pos(key)
            }
            r.nat = natProfile(n)
            r.natInvalid = r.nat == nil
        } else {
            r.nat = Checker.defaultNAT
        }
        if let a = m.value("address") { r.address = address(a) }
        if let l = m.value("lan6") {
            r.v6Keys.append(("lan6", Pos(m.keyNode("lan6")!)))
            if let net = ipv6Subnet(l) { r.lan6 = Located(value: net, pos: Pos(l)) } else { r.lan6Invalid = true }
        }
        if let a = m.value("address6") {
            r.v6Keys.append(("address6", Pos(m.keyNode("address6")!)))
            r.address6 = ipv6Address(a)
        }
        if let a = m.value("addresses") {
            if case .scalar(let s) = a, let n = Int(s.string), (1...Checker.maximumPoolSize).contains(n) {
                r.addressCount = Located(value: n, pos: Pos(a))
            } else {
                error(a, "`addresses` takes the number of public addresses of the router's NAT pool, "
                      + "1 to \(Checker.maximumPoolSize), found \(Checker.describe(a))")
            }
        }
        return r
    }

    /// Largest `addresses:` pool (a /24 worth of public addresses is already a big carrier).
    static let maximumPoolSize = 256

    mutating func readHost(_ e: MappingView.Entry) -> RawHost {
        var h = RawHost(name: e.key, namePos: Pos(e.keyNode))
        checkName(e)
        let example = "`{ attach: home1, run: agent }`"
        guard !isNull(e.value), let m = mapping(e.value, what: "host '\(e.key)'", example: example) else {
            if isNull(e.value) {
                error(e.keyNode, "host '\(e.key)' needs `attach:` (a router name or `internet`)")
            }
            return h
        }
        checkKeys(m, allowed: ["attach", "address", "address6", "run"], in: "host '\(e.key)'")
        if let a = m.value("attach") {
            if let s = string(a, what: "a router name or `internet`") { h.attach = Located(value: s, pos: Pos(a)) }
        } else {
            error(e.keyNode, "host '\(e.key)' needs `attach:` (a router name or `internet`)")
        }
        if let a = m.value("address") { h.address = address(a) }
        if let a = m.value("address6") {
            h.v6Keys.append(("address6", Pos(m.keyNode("address6")!)))
            h.address6 = ipv6Address(a)
        }
        if let r = m.value("run"), !isNull(r) { h.role = role(r) }
        return h
    }

    static let defaultNAT: NATProfile =
        (try? NATProfile.parse(preset: "port-restricted-cone")) ?? NATProfile(kind: .nat, preset: "port-restricted-cone")

    mutating func natProfile(_ node: Node) -> NATProfile? {
        switch node {
        case .scalar(let s):
            do {
                return try NATProfile.parse(preset: s.string)
            } catch {
                self.error(node, error.message)   // NATModel names the presets and suggests one
                return nil
            }
        case .mapping:
            guard let m = mapping(node, what: "`nat`", example: "") else { return nil }
            var fields: [(key: String, value: NATSpecValue)] = []
            var ok = true
            for e in m.entries {
                switch e.value {
                case .scalar(let s):
                    fields.append((e.key, .scalar(s.string)))
                case .sequence(let seq):
                    var items: [String] = []
                    for item in seq {
                        if case .scalar(let s) = item { items.append(s.string) } else {
                            error(item, "expected a value in the list of `\(e.key)`, found \(Checker.describe(item))")
                            ok = false
                        }
                    }
                    fields.append((e.key, .list(items)))
                case .mapping:
                    error(e.value, "expected a value or a list for `\(e.key)`, found a mapping")
                    ok = false
                }
            }
            guard ok else { return nil }
            do {
                return try NATProfile.parse(fields: fields)
            } catch {
                for problem in error.errors {
                    let pos = problem.key.flatMap { k in m.entries.first { $0.key == k }.map { Pos($0.keyNode) } } ?? Pos(node)
                    self.error(pos, problem.message)
                }
                return nil
            }
        case .sequence:
            error(node, "`nat` takes a preset name (\(NATProfile.presetNames.joined(separator: ", "))) or a mapping of RFC 4787 fields, found a list")
            return nil
        }
    }

    mutating func role(_ node: Node) -> Role? {
        switch node {
        case .scalar(let s):
            if let r = Role(name: s.string) { return r }
            error(node, "unknown role '\(s.string)' (one of \(Role.names.joined(separator: ", ")), or `{ exec: [program, args…] }`)"
                  + Checker.suggestion(s.string, among: Role.names))
            return nil
        case .mapping:
            guard let m = mapping(node, what: "`run`", example: "`{ exec: [program, args…] }`") else { return nil }
            checkKeys(m, allowed: ["exec", "turn-server", "coturn"], in: "`run`")
            let known = m.entries.filter { ["exec", "turn-server", "coturn"].contains($0.key) }
            if known.count > 1 {
                error(known[1].keyNode, "`run` takes one role, found `\(known[0].key)` and `\(known[1].key)`")
                return nil
            }
            for key in ["turn-server", "coturn"] {
                guard let v = m.value(key) else { continue }
                guard let o = turnOptions(v, role: key) else { return nil }
                return key == "coturn" ? .coturn(o) : .turnServer(o)
            }
            guard let x = m.value("exec") else {
                error(node, "`run` as a mapping needs `exec: [program, args…]`")
                return nil
            }
            guard case .sequence(let seq) = x else {
                error(x, "`exec` takes a list (program and arguments, no shell): `exec: [program, args…]`, found \(Checker.describe(x))")
                return nil
            }
            var argv: [String] = []
            for item in seq {
                if case .scalar(let s) = item { argv.append(s.string) } else {
                    error(item, "expected a program argument, found \(Checker.describe(item))")
                    return nil
                }
            }
            if argv.first?.isEmpty ?? true {
                error(x, "`exec` needs at least a program name")
                return nil
            }
            return .exec(argv)
        case .sequence:
            error(node, "`run` takes a role name (\(Role.names.joined(separator: ", "))) or `{ exec: [program, args…] }`, found a list")
            return nil
        }
    }

    /// `{ users: { alice: secret }, static-secret: S, realm: R, max-lifetime: 3600, user-quota: 4 }`.
    mutating func turnOptions(_ node: Node, role: String) -> TURNRoleOptions? {
        var o = TURNRoleOptions()
        if isNull(node) { return o }
        let what = "`\(role)`"
        guard let m = mapping(node, what: what, example: "`{ users: { alice: secret } }`") else { return nil }
        checkKeys(m, allowed: ["users", "static-secret", "realm", "max-lifetime", "user-quota"], in: what)
        var ok = true
        if let u = m.value("users") {
            if let um = mapping(u, what: "`users`", example: "`{ alice: secret }`") {
                if um.entries.isEmpty { error(u, "`users` is empty: name at least one user, like `{ alice: secret }`"); ok = false }
                for e in um.entries {
                    if e.key.isEmpty || e.key.contains(":") || e.key.contains(where: { $0.isWhitespace }) {
                        error(e.keyNode, "invalid user name '\(e.key)': no ':' or spaces"); ok = false; continue
                    }
                    if case .scalar = e.value, !isNull(e.value), let p = string(e.value, what: "a password") {
                        if p.isEmpty { error(e.value, "empty password for user '\(e.key)'"); ok = false } else { o.users[e.key] = p }
                    } else {
                        error(e.value, "expected a password for user '\(e.key)', found \(Checker.describe(e.value))"); ok = false
                    }
                }
            } else { ok = false }
        }
        if let v = m.value("static-secret") {
            if let s = string(v, what: "a shared secret"), !s.isEmpty { o.staticSecret = s } else { ok = false }
            if m.value("users") != nil, let k = m.keyNode("static-secret") {
                error(k, "`static-secret` and `users` exclude each other (time-limited credentials, or fixed users)"); ok = false
            }
        }
        if let v = m.value("realm") {
            if let s = string(v, what: "a realm"), !s.isEmpty, !s.contains(where: { $0.isWhitespace || $0 == "\"" }) { o.realm = s } else {
                if case .scalar = v, !isNull(v) { error(v, "invalid realm: non-empty, no spaces or quotes") }
                ok = false
            }
        }
        for (key, range) in [("max-lifetime", 1...86_400), ("user-quota", 1...65_535)] {
            guard let v = m.value(key) else { continue }
            if case .scalar(let s) = v, let n = Int(s.string), range.contains(n) {
                if key == "max-lifetime" { o.maxLifetime = n } else { o.userQuota = n }
            } else {
                error(v, "`\(key)` takes a number from \(range.lowerBound) to \(range.upperBound), found \(Checker.describe(v))"); ok = false
            }
        }
        return ok ? o : nil
    }

    // MARK: Scalars

    mutating func subnet(_ node: Node) -> IPv4Network? {
        guard let s = string(node, what: "a subnet like 192.168.1.0/24") else { return nil }
        switch IPv4Network.parse(s) {
        case .ok(let n):
            return n
        case .malformed:
            error(node, "invalid subnet '\(s)': expected an IPv4 CIDR like 192.168.1.0/24")
        case .hostBitsSet(let suggestion):
            error(node, "subnet '\(s)' has host bits set; did you mean '\(suggestion)'?")
        }
        return nil
    }

    mutating func address(_ node: Node) -> Located<IPv4Address>? {
        guard let s = string(node, what: "an IPv4 address") else { return nil }
        if let a = IPv4Address(s) { return Located(value: a, pos: Pos(node)) }
        error(node, "invalid IPv4 address '\(s)'" + (s.contains("/") ? ": give the address without a prefix length" : ""))
        return nil
    }

    mutating func ipv6Subnet(_ node: Node) -> IPv6Network? {
        guard let s = string(node, what: "an IPv6 subnet like 2001:db8:1::/64") else { return nil }
        switch IPv6Network.parse(s) {
        case .ok(let n):
            if n.prefixLength > 120 {
                error(node, "IPv6 subnet '\(s)' is too small: use a /64 (at most /120)")
                return nil
            }
            return n
        case .malformed:
            error(node, "invalid IPv6 subnet '\(s)': expected an IPv6 CIDR like 2001:db8:1::/64")
        case .hostBitsSet(let suggestion):
            error(node, "IPv6 subnet '\(s)' has host bits set; did you mean '\(suggestion)'?")
        }
        return nil
    }

    mutating func ipv6Address(_ node: Node) -> Located<IPv6Address>? {
        guard let s = string(node, what: "an IPv6 address") else { return nil }
        if let a = IPv6Address(s) { return Located(value: a, pos: Pos(node)) }
        error(node, "invalid IPv6 address '\(s)'" + (s.contains("/") ? ": give the address without a prefix length" : ""))
        return nil
    }

    /// A scalar's text; reports lists, mappings and null.
    mutating func string(_ node: Node, what: String) -> String? {
        if case .scalar(let s) = node, !isNull(node) { return s.string }
        error(node, "expected \(what), found \(Checker.describe(node))")
        return nil
    }

    /// YAML's null (`~`, `null`, `Null`, `NULL` or nothing), written plain. By hand rather than with
    /// `Resolver.default` (see `run`); `describe` still uses it, for error messages only.
    func isNull(_ node: Node) -> Bool {
        if case .scalar(let s) = node, s.style == .plain || s.style == .any {
            return ["", "~", "null", "Null", "NULL"].contains(s.string)
        }
        return false
    }

    static func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let s):
            guard s.style == .plain || s.style == .any else { return "the string '\(s.string)'" }
            switch Resolver.default.resolveTag(of: node) {
            case .null: return "nothing"
            case .int, .float: return "the number \(s.string)"
            case .bool: return "the boolean \(s.string)"
            default: return "the string '\(s.string)'"
            }
        }
    }

    // MARK: Mappings

    /// A YAML mapping with string keys, duplicates reported and dropped (first one wins).
    struct MappingView {
        struct Entry { var key: String; var keyNode: Node; var value: Node }
        var entries: [Entry]
        func value(_ key: String) -> Node? { entries.first { $0.key == key }?.value }
        func keyNode(_ key: String) -> Node? { entries.first { $0.key == key }?.keyNode }
    }

    mutating func mapping(_ node: Node, what: String, example: String) -> MappingView? {
        guard case .mapping(let m) = node else {
            error(node, "expected a mapping for \(what)\(example.isEmpty ? "" : " like \(example)"), found \(Checker.describe(node))")
            return nil
        }
        var entries: [MappingView.Entry] = []
        for (k, v) in m {
            guard case .scalar(let ks) = k else {
                error(k, "expected a name as key in \(what), found \(Checker.describe(k))")
                continue
            }
            if let first = entries.first(where: { $0.key == ks.string }) {
                error(k, "duplicate key '\(ks.string)' in \(what) (first at \(Pos(first.keyNode)))")
                continue
            }
            entries.append(.init(key: ks.string, keyNode: k, value: v))
        }
        return MappingView(entries: entries)
    }

    mutating func checkKeys(_ m: MappingView, allowed: [String], in what: String) {
        for e in m.entries where !allowed.contains(e.key) {
            let hint = Checker.suggestion(e.key, among: allowed)
            error(e.keyNode, "unknown key '\(e.key)' in \(what)"
                  + (hint.isEmpty ? " (expected one of: \(allowed.joined(separator: ", ")))" : hint))
        }
    }

    // MARK: Names

    mutating func checkName(_ e: MappingView.Entry) {
        let name = e.key
        if Topology.reservedNames.contains(name) {
            error(e.keyNode, "'\(name)' is a reserved name (reserved: \(Topology.reservedNames.sorted().joined(separator: ", ")))")
        } else if !Checker.isValidNodeName(name) {
            error(e.keyNode, "invalid name '\(name)': node names are lowercase letters, digits, '-' and '_', starting with a letter")
        } else if name.utf8.count > 15 {
            error(e.keyNode, "name '\(name)' is \(name.utf8.count) bytes long; at most 15 (it becomes an interface name)")
        }
    }

    static func isValidNodeName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, ("a"..."z").contains(first) else { return false }
        return s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" }
    }

    static func isValidLabName(_ s: String) -> Bool { Topology.isValidLabName(s) }

    /// "; did you mean 'x'?" for the closest candidate (edit distance with transpositions, or a prefix), else "".
    static func suggestion(_ word: String, among candidates: [String]) -> String {
        let w = word.lowercased()
        let scored = candidates.map { c -> (String, Int) in
            let d = editDistance(w, c.lowercased())
            let prefix = w.count >= 3 && (c.lowercased().hasPrefix(w) || w.hasPrefix(c.lowercased()))
            return (c, prefix ? min(d, 1) : d)
        }.filter { $0.1 > 0 && $0.1 <= max(1, min(3, $0.0.count / 3)) }
        guard let best = scored.min(by: { $0.1 < $1.1 }) else { return "" }
        return "; did you mean '\(best.0)'?"
    }

    /// Optimal string alignment distance (insertions, deletions, substitutions, adjacent transpositions).
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var d = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
            }
        }
        return d[a.count][b.count]
    }

    // MARK: YAML errors

    mutating func report(_ e: YamlError, in yaml: String) {
        func text(_ problem: String, _ context: YamlError.Context?) -> String {
            guard let context else { return "invalid YAML: \(problem)" }
            return "invalid YAML: \(problem) (\(context.text) at \(context.mark.line):\(context.mark.column))"
        }
        switch e {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            error(Pos(line: mark.line, column: mark.column), text(problem, context))
        case let .reader(problem, offset, _, _):
            var pos = Pos.start
            if let offset {
                for ch in yaml.prefix(offset) {
                    if ch == "\n" || ch == "\r\n" { pos.line += 1; pos.column = 1 } else { pos.column += ch.unicodeScalars.count }
                }
            }
            error(pos, "invalid YAML: \(problem)")
        default:
            error(.start, "invalid YAML: \(e)")
        }
    }
}

extension TopologyLoader {
    /// The file name without directory and extension (`Topologies/two-homes.yaml` → `two-homes`).
    static func defaultName(file: String) -> String {
        let base = file.split(separator: "/").last.map(String.init) ?? file
        if let dot = base.lastIndex(of: "."), dot != base.startIndex { return String(base[..<dot]) }
        return base
    }
}
