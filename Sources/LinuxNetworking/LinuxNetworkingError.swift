import CNetlink
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Every failure of the kernel-facing layer. The kernel's errno is kept typed (never flattened to text),
/// so callers can make create/delete idempotent with `isAlreadyExists` / `isNotFound` instead of
/// string matching.
public enum LinuxNetworkingError: Error, CustomStringConvertible, Sendable {
    /// A system call failed. `call` is what was attempted ("setns", "mount", "open sysctl"),
    /// `context` says on what ("namespace 'natlab-x-home1'").
    case system(call: String, errno: Errno, context: String)
    /// A netlink request failed. `object` is a display string naming what was acted on, names quoted,
    /// with its namespace ("'alice' (peer 'bob' in /run/netns/x) in natlab-x-home1"). libnl maps the kernel's errno into its own `NLE_*` space
    /// (`EEXIST` 17 → `NLE_EXIST` 6); both are kept, apart: `kernelErrno` comes straight from the
    /// kernel's `nlmsgerr`, `libnlCode` (positive `NLE_*`) from libnl's return value. `message` is the
    /// kernel's extended-ACK text when it sent one, else libnl's text for the code.
    case netlink(operation: String, object: String, kernelErrno: Errno?, libnlCode: Int32?, message: String)
    /// libnftables rejected a script or command; `message` is its error buffer.
    case nftables(message: String)
    /// A caller-supplied value is malformed (a namespace or interface name, a CIDR).
    case invalidArgument(String)

    /// The errno behind this error, when the kernel or libc gave one.
    public var errno: Errno? {
        switch self {
        case .system(_, let errno, _): return errno
        case .netlink(_, _, let kernelErrno, let libnlCode, _):
            if let kernelErrno { return kernelErrno }
            // Requests that failed before reaching the kernel carry only the libnl code.
            switch libnlCode {
            case Int32(NLE_EXIST): return .fileExists
            case Int32(NLE_NODEV): return .operationNotSupportedByDevice
            case Int32(NLE_OBJ_NOTFOUND): return .noSuchFileOrDirectory
            default: return nil
            }
        case .nftables, .invalidArgument: return nil
        }
    }

    /// The object already exists (EEXIST, libnl NLE_EXIST).
    public var isAlreadyExists: Bool { errno == .fileExists }

    /// The object (file, sysctl, link, namespace, route) does not exist (ENOENT, ENODEV — swift-system calls it `operationNotSupportedByDevice` —, ESRCH).
    public var isNotFound: Bool {
        switch errno {
        case .noSuchFileOrDirectory?, .operationNotSupportedByDevice?, .noSuchProcess?: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .system(let call, let errno, let context):
            return "\(call) \(context): \(Self.describe(errno))"
        case .netlink(let operation, let object, let kernelErrno, let libnlCode, let message):
            var text = "\(operation) \(object)"
            if let kernelErrno {
                text += ": \(Self.describe(kernelErrno))"
                if !message.isEmpty, message != kernelErrno.description { text += " — \(message)" }
            } else {
                text += ": \(message.isEmpty ? "netlink error" : message)"
                if let libnlCode { text += " (libnl \(Self.nleName(libnlCode)))" }
            }
            return text
        case .nftables(let message):
            return "nftables: \(message)"
        case .invalidArgument(let message):
            return message
        }
    }

    /// "File exists (EEXIST)": strerror text plus the symbolic name a user can search for.
    static func describe(_ errno: Errno) -> String {
        let text = String(cString: strerror(errno.rawValue))
        if let name = errnoNames[errno.rawValue] { return "\(text) (\(name))" }
        return "\(text) (errno \(errno.rawValue))"
    }

    /// Symbolic names of the errnos this layer meets in practice.
    static let errnoNames: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO", EBADF: "EBADF",
        EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EACCES: "EACCES", EBUSY: "EBUSY", EEXIST: "EEXIST",
        ENODEV: "ENODEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL", ENOSPC: "ENOSPC",
        EROFS: "EROFS", ERANGE: "ERANGE", ENAMETOOLONG: "ENAMETOOLONG", ENOSYS: "ENOSYS",
        EOPNOTSUPP: "EOPNOTSUPP", EAFNOSUPPORT: "EAFNOSUPPORT", EADDRINUSE: "EADDRINUSE",
        EADDRNOTAVAIL: "EADDRNOTAVAIL", ENETUNREACH: "ENETUNREACH", EHOSTUNREACH: "EHOSTUNREACH",
        EPROTONOSUPPORT: "EPROTONOSUPPORT", ENOBUFS: "ENOBUFS",
    ]

    /// "NLE_EXIST (Object exists)" for a positive libnl code.
    static func nleName(_ code: Int32) -> String {
        let names: [Int32: String] = [
            1: "NLE_FAILURE", 2: "NLE_INTR", 3: "NLE_BAD_SOCK", 4: "NLE_AGAIN", 5: "NLE_NOMEM",
            6: "NLE_EXIST", 7: "NLE_INVAL", 8: "NLE_RANGE", 9: "NLE_MSGSIZE", 10: "NLE_OPNOTSUPP",
            11: "NLE_AF_NOSUPPORT", 12: "NLE_OBJ_NOTFOUND", 13: "NLE_NOATTR", 14: "NLE_MISSING_ATTR",
            15: "NLE_AF_MISMATCH", 16: "NLE_SEQ_MISMATCH", 17: "NLE_MSG_OVERFLOW", 18: "NLE_MSG_TRUNC",
            19: "NLE_NOADDR", 20: "NLE_SRCRT_NOSUPPORT", 21: "NLE_MSG_TOOSHORT", 22: "NLE_MSGTYPE_NOSUPPORT",
            23: "NLE_OBJ_MISMATCH", 24: "NLE_NOCACHE", 25: "NLE_BUSY", 26: "NLE_PROTO_MISMATCH",
            27: "NLE_NOACCESS", 28: "NLE_PERM", 29: "NLE_PKTLOC_FILE", 30: "NLE_PARSE_ERR",
            31: "NLE_NODEV", 32: "NLE_IMMUTABLE", 33: "NLE_DUMP_INTR", 34: "NLE_ATTRSIZE",
        ]
        return names[code] ?? "NLE \(code)"
    }

    /// libnl's own text for a positive NLE code ("Object exists").
    static func libnlMessage(_ code: Int32) -> String {
        String(cString: nl_geterror(code))
    }
}

extension LinuxNetworkingError {
    /// Builds `.system` from a `-errno` returned by a CLinuxSupport wrapper.
    static func fromNegative(_ rc: Int32, call: String, context: String) -> LinuxNetworkingError {
        .system(call: call, errno: Errno(rawValue: -rc), context: context)
    }

    /// Builds `.system` from the thread's current errno; call it right after the failing libc call.
    static func lastErrno(call: String, context: String) -> LinuxNetworkingError {
        .system(call: call, errno: Errno(rawValue: Glibc.errno), context: context)
    }
}
