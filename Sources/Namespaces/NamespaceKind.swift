#if canImport(Glibc)
import Glibc
#endif
import POSIX

/// One kind of Linux namespace, named as the kernel names it in /proc/PID/ns.
public enum NamespaceKind: String, CaseIterable, Sendable, Hashable, Comparable {
    case mnt, uts, ipc, pid, net, user, cgroup, time

    /// What `create` makes when the request names no kinds.
    public static let defaultSet: [NamespaceKind] = [.mnt, .uts, .ipc, .pid, .net, .cgroup]

    /// The order in which a process enters a group's namespaces: util-linux
    /// nsenter's order. The user namespace comes first: the supervisor enters
    /// as root, and every other namespace of a group with a user namespace is
    /// owned by it, so the capabilities gained there are what the rest need.
    /// The pid namespace only takes effect for the process forked afterwards.
    public static let enterOrder: [NamespaceKind] = [.user, .cgroup, .ipc, .uts, .net, .pid, .mnt, .time]

    /// The CLONE_NEW* flag for clone3, unshare and setns.
    public var cloneFlag: Int32 {
        switch self {
        case .mnt: return 0x0002_0000     // CLONE_NEWNS
        case .uts: return 0x0400_0000     // CLONE_NEWUTS
        case .ipc: return 0x0800_0000     // CLONE_NEWIPC
        case .pid: return 0x2000_0000     // CLONE_NEWPID
        case .net: return 0x4000_0000     // CLONE_NEWNET
        case .user: return 0x1000_0000    // CLONE_NEWUSER
        case .cgroup: return 0x0200_0000  // CLONE_NEWCGROUP
        case .time: return 0x0000_0080    // CLONE_NEWTIME
        }
    }

    /// Whether this kernel makes namespaces of this kind: it shows one of ours in
    /// /proc/self/ns, and /proc/sys/user/max_KIND_namespaces (where there is one) is not 0.
    /// Reads only procfs.
    public var isAvailable: Bool {
        guard access("/proc/self/ns/\(rawValue)", F_OK) == 0 else { return false }
        guard let text = try? ProcFS.readText("/proc/sys/user/max_\(rawValue)_namespaces", limit: 64) else { return true }
        return Int(text.trimmed) != 0
    }

    /// The entry under /proc/PID/ns/ that names the group's namespace of this
    /// kind in its holder. The holder joins its time namespace only for its
    /// children (the offsets must be written before any process is inside), so
    /// for time it is time_for_children.
    public var holderEntry: String {
        self == .time ? "time_for_children" : rawValue
    }

    public static func < (lhs: NamespaceKind, rhs: NamespaceKind) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// A namespace's identity: its kind and inode, written as the kernel writes
/// the link target of /proc/PID/ns/KIND, e.g. `mnt:[4026532211]`.
public struct NamespaceID: Hashable, Sendable, CustomStringConvertible {
    public let kind: NamespaceKind
    public let inode: UInt64

    public init(kind: NamespaceKind, inode: UInt64) {
        self.kind = kind
        self.inode = inode
    }

    /// Parses `mnt:[4026532211]` (what readlink returns; time_for_children reads `time:[…]`).
    public init?(_ text: String) {
        guard let colon = text.firstIndex(of: ":"),
              let kind = NamespaceKind(rawValue: String(text[..<colon])),
              text.hasSuffix("]"),
              text[text.index(after: colon)...].hasPrefix("[")
        else { return nil }
        let digits = text[text.index(colon, offsetBy: 2)..<text.index(before: text.endIndex)]
        // Only the kernel's own spelling: decimal digits, no sign, no leading zero.
        guard let inode = UInt64(digits), digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
              digits == String(inode)
        else { return nil }
        self.init(kind: kind, inode: inode)
    }

    public var description: String { "\(kind.rawValue):[\(inode)]" }

    /// Reads /proc/PID/ns/ENTRY (entry defaults to the kind's own name).
    public static func read(pid: pid_t, kind: NamespaceKind, entry: String? = nil) throws(Errno) -> NamespaceID {
        let path = "/proc/\(pid)/ns/\(entry ?? kind.rawValue)"
        let target = try ProcFS.readLink(path)
        guard let id = NamespaceID(target) else { throw Errno(rawValue: EINVAL) }
        return id
    }
}
