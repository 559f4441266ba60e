#if canImport(Glibc)
import Glibc
#endif
import CBench
import POSIX

/// Runs short programs to completion (fork, optional drop to a user, exec,
/// wait), with stdio on /dev/null. For measuring, not for sessions.
public enum ProgramRunner {
    /// Runs `path` with `arguments` (argv[0] included); `user` drops to that
    /// uid and gid with no supplementary groups first. Returns the exit
    /// status as a shell would report it.
    public static func run(_ path: String, _ arguments: [String], environment: [String] = ["PATH=/usr/local/bin:/usr/bin:/bin"],
                           as user: (uid: uid_t, gid: gid_t)? = nil) throws(Errno) -> Int32 {
        var status: Int32 = 0
        let result = withCStringArray(arguments) { argv in
            withCStringArray(environment) { envp in
                ns_run_program(path, argv, envp, user?.uid ?? uid_t.max, user?.gid ?? gid_t.max, &status)
            }
        }
        if result < 0 { throw Errno.current }
        let low = status & 0x7f
        return low == 0 ? (status >> 8) & 0xff : 128 + low
    }
}
