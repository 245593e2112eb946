import CLinuxSupport
import SystemPackage

/// The conntrack table of one network namespace, over ctnetlink (in process: no `conntrack` binary).
///
/// Like `NFTables` and `Sysctl`, this acts on the *calling thread's* namespace: call it inside a
/// `NamespaceWorker.run(in:)` excursion.
public enum Conntrack {
    /// `conntrack -F`: deletes every entry (IPv4 and IPv6). Needed after loading a NAT ruleset, because
    /// existing entries keep the translation they were created with (reference/nat-recipes.md, P3).
    /// With `deferClose`, the ctnetlink socket stays open until `deferClose.close()` (`NetfilterSockets`).
    public static func flush(deferClose: NetfilterSockets? = nil) throws {
        var fd: Int32 = -1
        let rc = deferClose == nil ? cls_conntrack_flush(nil) : cls_conntrack_flush(&fd)
        if fd >= 0 { deferClose?.hold(descriptor: fd) }
        if rc < 0 {
            throw LinuxNetworkingError.fromNegative(rc, call: "conntrack flush",
                                                    context: "(ctnetlink IPCTNL_MSG_CT_DELETE; needs CAP_NET_ADMIN and nf_conntrack_netlink)")
        }
    }

    /// Number of entries in this namespace's table (`net.netfilter.nf_conntrack_count`), or nil when
    /// conntrack is not loaded here.
    public static func count() -> Int? {
        (try? Sysctl.read("net.netfilter.nf_conntrack_count")).flatMap { Int($0) }
    }
}
