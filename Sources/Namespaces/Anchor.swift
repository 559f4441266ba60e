#if canImport(Glibc)
import Glibc
#endif
import CSpawn
import POSIX

/// A process that only waits, so that systemd can make a scope around it (issue 19): a
/// transient scope is made with the processes it starts with (StartTransientUnit's PIDs), and
/// a group's scope is made before its holder is cloned into it. The anchor keeps nothing of
/// the supervisor but one pipe end; closing `release` (or the supervisor ending) ends it.
/// Its owner reaps it through `takePidfd()`.
public final class Anchor {
    public let pid: pid_t
    private var pidfd: Pidfd?
    private var release: FileDescriptor?

    /// Clones the anchor into the cgroup whose directory `cgroup` is open (CLONE_INTO_CGROUP).
    public init(cgroup directory: Int32) throws(SpawnError) {
        var pid: pid_t = 0
        var pidfdRaw: Int32 = -1
        var releaseRaw: Int32 = -1
        guard ns_spawn_anchor(directory, &pid, &pidfdRaw, &releaseRaw) == 0 else {
            throw SpawnError(step: .clone3, errno: .current)
        }
        self.pid = pid
        pidfd = Pidfd(pid: pid, adopting: pidfdRaw)
        release = FileDescriptor(adopting: releaseRaw)
    }

    /// Its pidfd, once: whoever takes it kills and reaps it (the anchor exits by itself
    /// once released, but is a child of the supervisor until reaped).
    public func takePidfd() -> Pidfd? {
        release = nil
        return pidfd.take()
    }
}
