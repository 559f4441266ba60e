#if canImport(Glibc)
import Glibc
#endif
import POSIX
import RPC
import Systemd

/// A process started inside a group by `enter`. The supervisor is its
/// parent, and the SessionTable watches it through its pidfd; when it ends,
/// the connection that started it (if still there) gets an `exited` notification.
final class Session {
    let record: SessionRecord
    let pidfd: Pidfd
    /// Started by an earlier supervisor: not our child, so its exit status
    /// cannot be known (init reaps it).
    let adopted: Bool
    /// Connections that get the `exited` notification: the one that started
    /// the session, and any that attached to it later.
    private var listeners: [WeakConnection] = []
    var watch: EventSource?

    init(record: SessionRecord, pidfd: consuming Pidfd, adopted: Bool, connection: Connection?) {
        self.record = record
        self.pidfd = pidfd
        self.adopted = adopted
        if let connection { listeners.append(WeakConnection(connection)) }
    }

    func addListener(_ connection: Connection) {
        listeners.removeAll { $0.connection == nil }
        // Once per connection: attaching again where it started changes nothing.
        if !listeners.contains(where: { $0.connection === connection }) {
            listeners.append(WeakConnection(connection))
        }
    }

    /// The connections this session reports to (exempt from idle timeouts).
    var listenerIDs: [ObjectIdentifier] {
        listeners.compactMap { $0.connection.map(ObjectIdentifier.init) }
    }

    /// Sends `exited` to every listener still connected.
    func notifyExited(_ exited: ExitedNotification) {
        let message = Response.notification(method: NotificationName.exited.rawValue, params: exited.json)
        for listener in listeners { listener.connection?.send(message) }
        listeners.removeAll()
    }

    var id: UInt64 { record.id }
    var pid: pid_t { pidfd.pid }
    var uid: uid_t { record.uid }
    var argv: [String] { record.argv }

    /// The caller as the journal names them.
    var caller: PeerCredentials {
        PeerCredentials(pid: record.callerPID, uid: record.uid, gid: record.callerGID, groups: [])
    }

    var info: SessionInfo {
        SessionInfo(session: id, pid: pid, uid: uid, argv: argv,
                    started: Timestamp.format(secondsSinceEpoch: record.started), tty: record.tty)
    }
}

struct WeakConnection {
    weak var connection: Connection?
    init(_ connection: Connection) { self.connection = connection }
}
