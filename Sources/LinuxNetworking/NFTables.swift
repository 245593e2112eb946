import CLinuxSupport
import CNFTables
import SystemPackage

/// nftables through libnftables, in process.
///
/// A libnftables context binds to the network namespace of the thread that creates it, and resolving
/// `iif`/`oif` indexes uses the *calling* thread's namespace plus a process-global cache. So every call
/// creates, runs and frees its own context, and must be made inside a `NamespaceWorker.run(in:)`
/// excursion for the namespace it targets (prefer `iifname`/`oifname` in rules anyway).
/// All libnftables use in the process goes through one lock (it has global state).
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

    /// Frees contexts kept open by `NetfilterSockets`.
    static func free(_ contexts: [OpaquePointer]) {
        lock.withLock { for context in contexts { nft_ctx_free(context) } }
    }

    private static func execute(_ text: String, dryRun: Bool, deferClose: NetfilterSockets? = nil) throws -> String {
        try lock.withLock {
            // nft_ctx_new calls exit() when it cannot open its netlink socket: find out first.
            let probe = cls_probe_netlink(CLS_NETLINK_NETFILTER)
            if probe < 0 {
                throw LinuxNetworkingError.fromNegative(probe, call: "socket(AF_NETLINK, NETLINK_NETFILTER)",
                                                        context: "for nftables (needs CAP_NET_ADMIN and nf_tables)")
            }
            guard let context = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else {
                throw LinuxNetworkingError.nftables(message: "nft_ctx_new failed")
            }
            defer {
                if let deferClose { deferClose.hold(context: context) } else { nft_ctx_free(context) }
            }
            // Capture output and errors instead of letting libnftables print to our stdout/stderr.
            _ = nft_ctx_buffer_output(context)
            _ = nft_ctx_buffer_error(context)
            if dryRun { nft_ctx_set_dry_run(context, true) }

            let rc = nft_run_cmd_from_buffer(context, text)
            let output = nft_ctx_get_output_buffer(context).map { String(cString: $0) } ?? ""
            let error = nft_ctx_get_error_buffer(context).map { String(cString: $0) } ?? ""
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
