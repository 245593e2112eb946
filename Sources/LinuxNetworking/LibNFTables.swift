import CNFTables

#if canImport(Glibc)
import Glibc
#endif

/// libnftables, opened with `dlopen` the first time a ruleset is loaded or listed.
///
/// Why not linked: libnftables brings five more libraries (libnftnl, libmnl, libxtables, libjansson,
/// libgmp), and loading and relocating them cost every natlab process ~0.65 ms at start-up (a C
/// "hello" linked with `-lnftables`: 1.59 ms against 0.93 ms, medians of 100, 2026-11-29). Only the
/// process that builds a lab or reads a router's rules needs them; the role processes, `exec`,
/// `status` and `down` never do. CNFTables still provides the header, for the constants (the
/// signatures below are the header's, libnftables 1.0.6 of Debian 12), but neither `link` nor pkg-config.
struct LibNFTables: @unchecked Sendable {
    // @unchecked: immutable C function pointers into a library that is never closed.
    let ctxNew: @convention(c) (UInt32) -> OpaquePointer?
    let ctxFree: @convention(c) (OpaquePointer?) -> Void
    let setDryRun: @convention(c) (OpaquePointer?, Bool) -> Void
    let bufferOutput: @convention(c) (OpaquePointer?) -> Int32
    let bufferError: @convention(c) (OpaquePointer?) -> Int32
    let outputBuffer: @convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?
    let errorBuffer: @convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?
    let runFromBuffer: @convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> Int32

    /// The soname of the ABI natlab is compiled against.
    static let soname = "libnftables.so.1"

    /// Opened once per process, on first use (any thread; Swift runs this initialiser exactly once).
    static let shared: Result<LibNFTables, LinuxNetworkingError> = Result { () throws(LinuxNetworkingError) in
        try LibNFTables(soname: soname)
    }

    /// The process's libnftables, or the error that says why it cannot be loaded.
    static func get() throws(LinuxNetworkingError) -> LibNFTables { try shared.get() }

    /// Opens `soname` and resolves every function natlab uses (never closed: its contexts live on in
    /// `NetfilterSockets`). Throws a message naming the library, what failed and the package to install.
    init(soname: String) throws(LinuxNetworkingError) {
        guard let handle = dlopen(soname, RTLD_LAZY | RTLD_LOCAL) else {
            throw Self.failure("cannot load \(soname): \(Self.dlerrorText())")
        }
        func symbol<T>(_ name: String, as type: T.Type) throws(LinuxNetworkingError) -> T {
            guard let address = dlsym(handle, name) else {
                throw Self.failure("\(soname) has no \(name): \(Self.dlerrorText())")
            }
            return unsafeBitCast(address, to: type)
        }
        ctxNew = try symbol("nft_ctx_new", as: (@convention(c) (UInt32) -> OpaquePointer?).self)
        ctxFree = try symbol("nft_ctx_free", as: (@convention(c) (OpaquePointer?) -> Void).self)
        setDryRun = try symbol("nft_ctx_set_dry_run", as: (@convention(c) (OpaquePointer?, Bool) -> Void).self)
        bufferOutput = try symbol("nft_ctx_buffer_output", as: (@convention(c) (OpaquePointer?) -> Int32).self)
        bufferError = try symbol("nft_ctx_buffer_error", as: (@convention(c) (OpaquePointer?) -> Int32).self)
        outputBuffer = try symbol("nft_ctx_get_output_buffer",
                                  as: (@convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?).self)
        errorBuffer = try symbol("nft_ctx_get_error_buffer",
                                 as: (@convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?).self)
        runFromBuffer = try symbol("nft_run_cmd_from_buffer",
                                   as: (@convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> Int32).self)
    }

    /// NFT_CTX_DEFAULT, from the header.
    static let defaultFlags = UInt32(NFT_CTX_DEFAULT)

    private static func failure(_ what: String) -> LinuxNetworkingError {
        .nftables(message: "\(what) (Debian/Ubuntu: apt-get install libnftables1)")
    }

    private static func dlerrorText() -> String {
        dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
    }
}
