import CLinuxSupport
import SystemPackage

/// nftables through libnftables, in process.
///
/// A libnftables context binds to the network namespace of the thread that creates it, and resolving
/// `iif`/`oif` indexes uses the *calling* thread's namespace plus a process-global cache. So every call
/// creates, runs and frees its own context, and must be made inside a `NamespaceWorker.run(in:)`
/// excursion for the namespace it targets (prefer `iifname`/`oifname` in rules anyway).
/// All libnftables use in the process goes through one lock (it has global state). The library itself
/// is opened on first use (`LibNFTables`): most natlab processes never need it.
public enum NFTables {
    private static let lock = PThreadLock()

    /// `nft -f -` with `script` (one atomic transaction). Throws `.nftables(message:)` with libnftables'
    /// error text when it is rejected. With `deferClose`, the context (and its netlink socket) stays
    /// open until `deferClose.close()`: see `NetfilterSockets` for why a build wants that.
    public static func apply(_ script: String, deferClose: NetfilterSockets? = nil) throws {
        _ = try execute(script, dryRun: false, deferClose: deferClose)
    }

    /// `nft --check -f -`: parses and validates against the kernel without committing.
    public static func check(_ script: String) throws {
        _ = try execute(script, dryRun: true)
    }

    /// `nft COMMAND`, returning its output (e.g. `run("list ruleset")`).
    public static func run(_ command: String) throws -> String {
        try execute(command, dryRun: false)
    }

    /// Opens libnftables now instead of at the first ruleset. `up` and `run` call this first thing on
    /// a spare thread, so that loading the library and its five dependencies (~0.65 ms) overlaps the
    /// reading of the command line instead of delaying the first ruleset. Errors are reported by that
    /// ruleset.
    public static func preload() {
        _ = LibNFTables.shared
    }

    /// Frees contexts kept open by `NetfilterSockets`.
    static func free(_ contexts: [OpaquePointer]) {
        // Contexts exist only if the library loaded.
        guard let nft = try? LibNFTables.get() else { return }
        lock.withLock { for context in contexts { nft.ctxFree(context) } }
    }

    private static func execute(_ text: String, dryRun: Bool, deferClose: NetfilterSockets? = nil) throws -> String {
        let nft = try LibNFTables.get()
        return try lock.withLock {
            // nft_ctx_new calls exit() when it cannot open its netlink socket: find out first.
            let probe = cls_probe_netlink(CLS_NETLINK_NETFILTER)
            if probe < 0 {
                throw LinuxNetworkingError.fromNegative(probe, call: "socket(AF_NETLINK, NETLINK_NETFILTER)",
                                                        context: "for nftables (needs CAP_NET_ADMIN and nf_tables)")
            }
            guard let context = nft.ctxNew(LibNFTables.defaultFlags) else {
                throw LinuxNetworkingError.nftables(message: "nft_ctx_new failed")
            }
            defer {
                if let deferClose { deferClose.hold(context: context) } else { nft.ctxFree(context) }
            }
            // Capture output and errors instead of letting libnftables print to our stdout/stderr.
            _ = nft.bufferOutput(context)
            _ = nft.bufferError(context)
            if dryRun { nft.setDryRun(context, true) }

            let rc = nft.runFromBuffer(context, text)
            let output = nft.outputBuffer(context).map { String(cString: $0) } ?? ""
            let error = nft.errorBuffer(context).map { String(cString: $0) } ?? ""
            if rc != 0 {
                let message = error.trimmingTrailingNewlines()
                throw LinuxNetworkingError.nftables(message: message.isEmpty ? "command failed (rc \(rc))" : message)
            }
            return output
        }
    }
}

extension String {
    fileprivate func trimmingTrailingNewlines() -> String {
        var text = self
        while text.last == "\n" { text.removeLast() }
        return text
    }
}
