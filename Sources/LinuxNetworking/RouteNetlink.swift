import CLinuxSupport
import CNetlink
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// One interface as `ip -d addr show` would describe it.
public struct LinkInfo: Hashable, Sendable {
    public var name: String
    public var index: Int32
    /// rtnetlink kind ("veth", "bridge", …); nil for devices without one (lo, physical NICs).
    public var kind: String?
    /// Administratively up (IFF_UP).
    public var isUp: Bool
    /// Carrier/operational state up (IFF_LOWER_UP): the far end of a veth is up too.
    public var hasCarrier: Bool
    /// ifindex of the master (a bridge) in the same namespace, nil when not enslaved.
    public var masterIndex: Int32?
    public var mtu: UInt32
    /// Addresses as CIDR strings ("10.0.1.1/24", "fe80::1/64"), in kernel order.
    public var addresses: [String]
}

/// A libnl-3 NETLINK_ROUTE socket, the `ip link/addr/route` of one network namespace.
///
/// The socket belongs to the namespace of the thread that creates it, for life: create it inside a
/// `NamespaceWorker.run(in:)` excursion, then use it from any thread. Calls are serialised by an internal
/// lock (an `nl_sock` is not thread-safe). Every method mirrors one `ip` command.
///
/// Errors keep the kernel's errno (`LinuxNetworkingError.netlink(kernelErrno:)`) apart from libnl's
/// NLE code, and carry the kernel's extended-ACK text when it sends one.
public final class RouteNetlink: @unchecked Sendable {
    // @unchecked: `socket` and `capture` are only used with `lock` held.
    private let socket: OpaquePointer
    private let capture: ErrorCapture
    private let lock = PThreadLock()
    /// fd of the namespace this socket lives in (the creating thread's), to place veth ends back here.
    private let ownNamespace: Int32
    /// Shown in error messages ("in natlab-x-home1"); empty for unnamed namespaces.
    public let namespaceName: String

    /// Connects a NETLINK_ROUTE socket in the calling thread's network namespace.
    /// - Parameter namespaceName: a label for error messages, e.g. the namespace's name.
    public init(namespaceName: String = "") throws {
        self.namespaceName = namespaceName
        let own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard own >= 0 else {
            throw LinuxNetworkingError.lastErrno(call: "open", context: "/proc/thread-self/ns/net (RouteNetlink)")
        }
        guard let socket = nl_socket_alloc() else {
            close(own)
            throw LinuxNetworkingError.system(call: "nl_socket_alloc", errno: .noMemory, context: "NETLINK_ROUTE")
        }
        let rc = nl_connect(socket, NETLINK_ROUTE)
        guard rc >= 0 else {
            nl_socket_free(socket)
            close(own)
            throw LinuxNetworkingError.netlink(operation: "connect", object: "NETLINK_ROUTE socket", kernelErrno: nil,
                                               libnlCode: -rc, message: LinuxNetworkingError.libnlMessage(-rc))
        }
        // Ask the kernel to explain its refusals; harmless if unsupported.
        _ = cls_netlink_enable_ext_ack(nl_socket_get_fd(socket))
        let capture = ErrorCapture()
        // libnl maps the kernel errno into NLE_* before returning; the callback records the raw errno
        // and the ext-ack text first. It returns NL_STOP so libnl still fails the request
        // (NL_SKIP would make nl_wait_for_ack report success; returning an errno would be read as NLE).
        nl_socket_modify_err_cb(socket, NL_CB_CUSTOM, { _, error, arg in
            guard let error, let arg else { return Int32(NL_STOP.rawValue) }
            let capture = Unmanaged<ErrorCapture>.fromOpaque(arg).takeUnretainedValue()
            capture.kernelErrno = -cls_nlmsgerr_error(error)
            var buffer = [CChar](repeating: 0, count: 512)
            if cls_nlmsgerr_ext_ack_message(error, &buffer, buffer.count) > 0 {
                capture.extAck = decodeCString(buffer)
            }
            return Int32(NL_STOP.rawValue)
        }, Unmanaged.passUnretained(capture).toOpaque())
        self.socket = socket
        self.capture = capture
        self.ownNamespace = own
    }

    deinit {
        nl_socket_free(socket)   // closes the fd; `capture` outlives it as a stored property
        close(ownNamespace)
    }

    // MARK: - Links

    /// `ip link set LINK up` (also for "lo").
    public func setUp(_ link: String) throws {
        try checkInterfaceName(link)
        try modifyLink(link, operation: "set link up") { change in
            rtnl_link_set_flags(change, UInt32(IFF_UP))
        }
    }

    /// `ip link set LINK down`.
    public func setDown(_ link: String) throws {
        try checkInterfaceName(link)
        try modifyLink(link, operation: "set link down") { change in
            rtnl_link_unset_flags(change, UInt32(IFF_UP))
        }
    }

    /// `ip link set LINK master MASTER`.
    public func setMaster(_ link: String, master: String) throws {
        try checkInterfaceName(link)
        let masterIndex = try index(of: master)
        try modifyLink(link, operation: "set master '\(master)' of") { change in
            rtnl_link_set_master(change, masterIndex)
        }
    }

    /// `ip link add NAME [index INDEX] type bridge && ip link set NAME up` — one request (IFF_UP at
    /// creation). `index` 0 lets the kernel pick the ifindex; another one must be free in this
    /// namespace (the kernel refuses one in use: EEXIST).
    public func addBridge(_ name: String, index: Int32 = 0) throws {
        try checkInterfaceName(name)
        guard let link = rtnl_link_bridge_alloc() else { throw outOfMemory("create bridge", name) }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, name)
        if index > 0 { rtnl_link_set_ifindex(link, index) }
        rtnl_link_set_flags(link, UInt32(IFF_UP))
        try perform("create bridge", name) { rtnl_link_add(socket, link, NLM_F_CREATE | NLM_F_EXCL) }
    }

    /// `ip link add NAME [index INDEX] [master MASTER] up type veth peer name PEER [index PEERINDEX] netns PEERNS`
    /// + `ip -n PEERNS link set PEER up`.
    ///
    /// Creates the pair with PEER directly inside `peerNamespace` (nil: this namespace), both ends
    /// administratively up, NAME enslaved to `master` when given. No excursion: two requests on this socket.
    /// `index` and `peerIndex` choose the ifindexes of NAME and PEER, both or neither (the kernel honours
    /// a veth peer's index only when the main device has one); 0 lets the kernel pick. A `masterIndex`
    /// of 0 is looked up by `master`'s name.
    ///
    /// Why two and in this order: the kernel opens a veth's peer before attaching it to the new device,
    /// so a peer marked up at creation fails in `veth_open` with ENOTCONN (iproute2 cannot do it either).
    /// Only the main device can be created up. So the pair is created *reversed*: the main device is
    /// PEER, placed in `peerNamespace` by a top-level IFLA_NET_NS_FD and created up; its peer is NAME,
    /// placed back into this socket's namespace. A second RTM_NEWLINK on this socket then sets NAME up
    /// and enslaves it (a veth peer's IFLA_MASTER is ignored at creation).
    public func addVeth(name: String, index: Int32 = 0, master: String? = nil, masterIndex: Int32 = 0,
                        peerName: String, peerIndex: Int32 = 0, peerNamespace: NamespaceFile?) throws {
        try checkInterfaceName(name)
        try checkInterfaceName(peerName)
        let masterIndex = try master.map { masterIndex > 0 ? masterIndex : try self.index(of: $0) }
        guard let link = rtnl_link_veth_alloc() else { throw outOfMemory("create veth", name) }
        // Putting the veth also releases the peer it owns.
        defer { rtnl_link_put(link) }
        // libnl ≥ 3.5 returns a new reference here (3.7 is pinned by Debian 12): put it after use.
        guard let peer = rtnl_link_veth_get_peer(link) else { throw outOfMemory("create veth", name) }
        defer { rtnl_link_put(peer) }

        // One queue each way on both ends. The kernel's default is one per possible CPU, each with its
        // own sysfs directory to create (and remove); a lab veth uses no multi-queue feature (no XDP,
        // no GRO), and its packets are queued per CPU on the receiving side anyway.
        for end in [link, peer] {
            rtnl_link_set_num_tx_queues(end, 1)
            rtnl_link_set_num_rx_queues(end, 1)
        }
        rtnl_link_set_name(link, peerName)
        rtnl_link_set_flags(link, UInt32(IFF_UP))
        rtnl_link_set_name(peer, name)
        if let peerNamespace {
            rtnl_link_set_ns_fd(link, peerNamespace.fileDescriptor)
            rtnl_link_set_ns_fd(peer, ownNamespace)
        }
        // The kernel gives the peer its requested index only when the main device has one too.
        if peerIndex > 0 && index > 0 {
            rtnl_link_set_ifindex(link, peerIndex)
            rtnl_link_set_ifindex(peer, index)
        }
        let peerWhere = { peerNamespace.map { " (peer '\(peerName)' in \($0.path))" } ?? " (peer '\(peerName)')" }
        try perform("create veth", name, detail: peerWhere()) { rtnl_link_add(socket, link, NLM_F_CREATE | NLM_F_EXCL) }

        do {
            try modifyLink(name, operation: master == nil ? "set link up" : "set up and enslave to '\(master!)'") { change in
                rtnl_link_set_flags(change, UInt32(IFF_UP))
                if let masterIndex { rtnl_link_set_master(change, masterIndex) }
            }
        } catch {
            try? deleteLink(name)   // no half-configured pair left behind (takes the peer with it)
            throw error
        }
    }

    /// `ip link del NAME` (a veth takes its peer with it).
    public func deleteLink(_ name: String) throws {
        try checkInterfaceName(name)
        guard let link = rtnl_link_alloc() else { throw outOfMemory("delete link", name) }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, name)
        try perform("delete link", name) { rtnl_link_delete(socket, link) }
    }

    /// `ip link show NAME` → ifindex. Throws with `isNotFound` when there is no such link.
    public func index(of link: String) throws -> Int32 {
        try checkInterfaceName(link)
        var result: OpaquePointer?
        try perform("look up link", link) { rtnl_link_get_kernel(socket, 0, link, &result) }
        defer { rtnl_link_put(result) }
        return rtnl_link_get_ifindex(result)
    }

    /// `ip -d addr show`: every link with its kind, state, master and addresses.
    public func links() throws -> [LinkInfo] {
        var linkCache: OpaquePointer?
        try perform("list links", namespaceLabel) { rtnl_link_alloc_cache(socket, AF_UNSPEC, &linkCache) }
        defer { nl_cache_free(linkCache) }
        var addressCache: OpaquePointer?
        try perform("list addresses", namespaceLabel) { rtnl_addr_alloc_cache(socket, &addressCache) }
        defer { nl_cache_free(addressCache) }

        var addresses: [Int32: [String]] = [:]
        var object = nl_cache_get_first(addressCache)
        while let address = object {
            if let local = rtnl_addr_get_local(address), let text = Self.format(local, prefixLength: rtnl_addr_get_prefixlen(address)) {
                addresses[rtnl_addr_get_ifindex(address), default: []].append(text)
            }
            object = nl_cache_get_next(address)
        }

        var result: [LinkInfo] = []
        object = nl_cache_get_first(linkCache)
        while let link = object {
            let index = rtnl_link_get_ifindex(link)
            let flags = rtnl_link_get_flags(link)
            let master = rtnl_link_get_master(link)
            result.append(LinkInfo(
                name: rtnl_link_get_name(link).map { String(cString: $0) } ?? "",
                index: index,
                kind: rtnl_link_get_type(link).map { String(cString: $0) },
                isUp: flags & UInt32(IFF_UP) != 0,
                hasCarrier: flags & iffLowerUp != 0,
                masterIndex: master > 0 ? master : nil,
                mtu: rtnl_link_get_mtu(link),
                addresses: addresses[index] ?? []))
            object = nl_cache_get_next(link)
        }
        return result.sorted { $0.index < $1.index }
    }

    // MARK: - Addresses and routes

    /// `ip addr add CIDR dev LINK` ("10.0.1.1/24", "2001:db8::1/64"). `noDAD` adds `nodad` (IPv6:
    /// usable at once instead of tentative for ~1–2 s). An existing address fails with EEXIST.
    /// `index`: LINK's ifindex when the caller knows it (it created the link with that index), which
    /// spares a look-up: an RTM_GETLINK round trip under the kernel's rtnl lock. 0: looked up.
    public func addAddress(_ cidr: String, link: String, index: Int32 = 0, noDAD: Bool = false) throws {
        let prefix = try IPPrefix(parsing: cidr)
        let ifindex = index > 0 ? index : try self.index(of: link)
        guard let address = rtnl_addr_alloc() else { throw outOfMemory("add address", cidr) }
        defer { rtnl_addr_put(address) }
        let local = try Self.nlAddress(prefix)
        defer { nl_addr_put(local) }
        rtnl_addr_set_ifindex(address, ifindex)
        rtnl_addr_set_family(address, prefix.family)
        _ = rtnl_addr_set_local(address, local)      // takes its own reference
        rtnl_addr_set_prefixlen(address, Int32(prefix.prefixLength))
        if noDAD { rtnl_addr_set_flags(address, UInt32(IFA_F_NODAD)) }
        try perform("add address", cidr, detail: " to '\(link)'") { rtnl_addr_add(socket, address, NLM_F_EXCL) }
    }

    /// `ip route add DESTINATION via GATEWAY [dev DEVICE]`; `destination` nil = `default`.
    /// An existing route fails with EEXIST.
    public func addRoute(destination: String?, gateway: String, device: String? = nil) throws {
        let via = try IPPrefix(parsing: gateway, requirePrefix: false)
        let to = try destination.map { try IPPrefix(parsing: $0) } ?? IPPrefix.any(family: via.family)
        let object = destination ?? "default"
        guard to.family == via.family else {
            throw LinuxNetworkingError.invalidArgument("route \(object) via \(gateway): address families differ")
        }
        let ifindex = try device.map { try index(of: $0) }

        guard let route = rtnl_route_alloc() else { throw outOfMemory("add route", object) }
        defer { rtnl_route_put(route) }
        let dst = try Self.nlAddress(to)
        defer { nl_addr_put(dst) }
        let gw = try Self.nlAddress(IPPrefix(family: via.family, bytes: via.bytes, prefixLength: via.bytes.count * 8))
        defer { nl_addr_put(gw) }

        _ = rtnl_route_set_family(route, UInt8(via.family))
        let dstRC = rtnl_route_set_dst(route, dst)   // takes its own reference
        if dstRC < 0 {
            throw LinuxNetworkingError.netlink(operation: "add route", object: "'\(object)'", kernelErrno: nil,
                                               libnlCode: -dstRC, message: LinuxNetworkingError.libnlMessage(-dstRC))
        }
        rtnl_route_set_table(route, UInt32(RT_TABLE_MAIN.rawValue))
        rtnl_route_set_protocol(route, UInt8(RTPROT_BOOT))   // what `ip route add` uses
        rtnl_route_set_scope(route, UInt8(RT_SCOPE_UNIVERSE.rawValue))
        rtnl_route_set_type(route, UInt8(RTN_UNICAST))
        guard let hop = rtnl_route_nh_alloc() else { throw outOfMemory("add route", object) }
        rtnl_route_nh_set_gateway(hop, gw)
        if let ifindex { rtnl_route_nh_set_ifindex(hop, ifindex) }
        rtnl_route_add_nexthop(route, hop)            // the route owns the hop from here

        try perform("add route", object, detail: " via \(gateway)") { rtnl_route_add(socket, route, NLM_F_EXCL) }
    }

    // MARK: - Plumbing

    private var namespaceLabel: String { namespaceName.isEmpty ? "this namespace" : namespaceName }

    /// RTM_NEWLINK without NLM_F_CREATE addressed by name: the kernel modifies the existing link
    /// (ENODEV when there is none) — one round trip, no index lookup.
    private func modifyLink(_ name: String, operation: String, _ configure: (OpaquePointer) -> Void) throws {
        guard let change = rtnl_link_alloc() else { throw outOfMemory(operation, name) }
        defer { rtnl_link_put(change) }
        rtnl_link_set_name(change, name)
        configure(change)
        try perform(operation, name) { rtnl_link_add(socket, change, 0) }
    }

    /// Runs one libnl request under the lock and turns a negative NLE return into a typed error.
    /// `detail` is only built for an error message.
    private func perform(_ operation: String, _ object: String, detail: @autoclosure () -> String = "",
                         _ request: () -> Int32) throws {
        try lock.withLock {
            capture.kernelErrno = 0
            capture.extAck = nil
            let rc = request()
            guard rc < 0 else { return }
            let code = -rc
            let kernel = capture.kernelErrno > 0 ? Errno(rawValue: capture.kernelErrno) : nil
            let message = capture.extAck ?? (kernel == nil ? LinuxNetworkingError.libnlMessage(code) : "")
            var what = "'\(object)'" + detail()
            if !namespaceName.isEmpty { what += " in \(namespaceName)" }
            throw LinuxNetworkingError.netlink(operation: operation, object: what, kernelErrno: kernel,
                                               libnlCode: code, message: message)
        }
    }

    private func outOfMemory(_ operation: String, _ object: String) -> LinuxNetworkingError {
        .system(call: operation, errno: .noMemory, context: "'\(object)' (libnl allocation)")
    }

    private func checkInterfaceName(_ name: String) throws {
        // IFNAMSIZ-1 bytes, no '/', ':' or whitespace (the kernel's dev_valid_name, plus ':' for aliases).
        let bad = name.isEmpty || name.utf8.count > 15 || name == "." || name == ".."
            || name.contains { $0 == "/" || $0 == ":" || $0.isWhitespace }
        if bad { throw LinuxNetworkingError.invalidArgument("invalid interface name '\(name)' (1–15 bytes, no '/', ':' or spaces)") }
    }

    static func nlAddress(_ prefix: IPPrefix) throws -> OpaquePointer {
        let made = prefix.bytes.withUnsafeBytes { raw in
            nl_addr_build(prefix.family, raw.baseAddress, raw.count)
        }
        guard let made else {
            throw LinuxNetworkingError.system(call: "nl_addr_build", errno: .noMemory, context: prefix.description)
        }
        nl_addr_set_prefixlen(made, Int32(prefix.prefixLength))
        return made
    }

    static func format(_ address: OpaquePointer, prefixLength: Int32) -> String? {
        let family = nl_addr_get_family(address)
        let length = Int(nl_addr_get_len(address))
        guard family == AF_INET && length == 4 || family == AF_INET6 && length == 16,
              let raw = nl_addr_get_binary_addr(address) else { return nil }
        let bytes = Array(UnsafeRawBufferPointer(start: raw, count: length))
        return IPPrefix(family: family, bytes: bytes, prefixLength: Int(prefixLength)).description
    }
}

/// IFF_LOWER_UP from <linux/if.h> (glibc's <net/if.h>, which Swift sees, stops at IFF_DYNAMIC).
private let iffLowerUp: UInt32 = 0x1_0000

/// What the error callback saw for the request in flight (guarded by RouteNetlink's lock: the callback
/// runs synchronously inside the libnl call).
private final class ErrorCapture {
    var kernelErrno: Int32 = 0
    var extAck: String?
}
