#if canImport(Glibc)
import Glibc
#endif
import CSpawn
import POSIX

/// What a session takes from the process that connected, beyond its ids: its audit loginuid,
/// its resource limits (pam_limits' nproc, nofile, …) and its umask. The kernel keeps none of
/// them with the socket, so they are read from /proc/PID and prlimit(PID) when a session is to start, while
/// the peer is pinned by SO_PEERPIDFD: if the pidfd still refers to a live process after the
/// reads, the pid was the peer's all along and not a reused one. (Raising a hard limit or
/// changing a set loginuid needs CAP_SYS_RESOURCE or CAP_AUDIT_CONTROL, so a peer can only
/// have lowered them since connect.)
public struct PeerProcess: Sendable, Hashable {
    /// The loginuid (`PeerCredentials.unsetLoginUID` when the peer has none), or nil when the
    /// kernel has no audit support (no /proc/self/loginuid).
    public let loginUID: UInt32?
    /// Every resource limit, indexed by resource number (RLIMIT_CPU … RLIMIT_RTTIME).
    public let limits: [ResourceLimit]
    /// The file mode creation mask (`Umask:` of /proc/PID/status), or nil on a kernel that
    /// does not show it (before 4.7).
    public let umask: mode_t?

    public init(loginUID: UInt32?, limits: [ResourceLimit], umask: mode_t? = nil) {
        self.loginUID = loginUID
        self.limits = limits
        self.umask = umask
    }

    /// Whether this kernel keeps audit loginuids at all.
    public static let kernelHasAudit = access("/proc/self/loginuid", F_OK) == 0

    /// Reads the peer of `socket`, process `pid` (its SO_PEERCRED pid); nil unless every read
    /// was the peer's own: SO_PEERPIDFD names the process that connected, and it must still
    /// be there after the reads, so a reused pid cannot lend its values. Read when a session
    /// is to be started, not at accept: only `enter` needs it, and a client waiting for its
    /// reply is alive then.
    public static func read(_ socket: Int32, pid: pid_t) -> PeerProcess? {
        guard pid > 0 else { return nil }
        guard let pinned = Pidfd.ofPeer(socket, pid: pid) else { return nil }
        // prlimit(2) of another user's process needs CAP_SYS_RESOURCE; where the supervisor
        // runs without it, the same numbers come from /proc/PID/limits.
        var raw = [ns_rlimit](repeating: ns_rlimit(), count: Int(NS_RLIMIT_COUNT))
        let limits: [ResourceLimit]
        if ns_read_rlimits(pid, &raw) == 0 {
            limits = raw.map { ResourceLimit(soft: $0.cur, hard: $0.max) }
        } else if errno == EPERM, let read = try? ProcFS.resourceLimits(pid: pid), read.count == Int(NS_RLIMIT_COUNT) {
            limits = read
        } else {
            return nil
        }
        var loginUID: UInt32?
        if kernelHasAudit {
            guard let text = try? ProcFS.readText("/proc/\(pid)/loginuid", limit: 32),
                  let value = UInt32(text.split(separator: "\n").first ?? "")
            else { return nil }
            loginUID = value
        }
        // Octal; absent before Linux 4.7.
        let umask = (try? ProcFS.statusField(pid: pid, "Umask")).flatMap { mode_t($0, radix: 8) }.flatMap { $0 <= 0o777 ? $0 : nil }
        guard pinned.isAlive else { return nil }
        return PeerProcess(loginUID: loginUID, limits: limits, umask: umask)
    }
}

