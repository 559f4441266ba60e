#if canImport(Glibc)
import Glibc
#endif
import Namespaces
import RPC
import Systemd

/// A process started inside a group by `enter`. The supervisor is its
/// parent and watches it through its pidfd; when it ends, the connection
/// that started it (if still there) gets an `exited` notification.
final class Session {
    let id: UInt64
    let pidfd: Pidfd
    let uid: uid_t
    let argv: [String]
    let started: Int64
    let tty: Bool
    let caller: PeerCredentials
    weak var connection: Connection?
    var watch: EventSource?

    init(id: UInt64, pidfd: consuming Pidfd, uid: uid_t, argv: [String], started: Int64, tty: Bool,
         caller: PeerCredentials, connection: Connection?) {
        self.id = id
        self.pidfd = pidfd
        self.uid = uid
        self.argv = argv
        self.started = started
        self.tty = tty
        self.caller = caller
        self.connection = connection
    }

    var pid: pid_t { pidfd.pid }

    var info: SessionInfo {
        SessionInfo(session: id, pid: pid, uid: uid, argv: argv,
                    started: Timestamp.format(secondsSinceEpoch: started), tty: tty)
    }
}
