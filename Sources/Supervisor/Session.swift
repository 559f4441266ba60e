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
    /// The last `signal` request sent to it that could end it (EnterHandler.signal, through
    /// noteSignalRequest): its end record names the request's sender as what ended it only
    /// for a SIGKILL, and otherwise tells it apart, as a fact beside the signal that did.
    private(set) var signalRequest: SignalRequest?
    /// When its process started, in seconds on CLOCK_BOOTTIME (which counts on through
    /// suspend and across supervisor restarts), for how long it ran; nil when unknown.
    let startedBoottime: Double?

    /// A `signal` request: who sent which signal, and when, in seconds on CLOCK_BOOTTIME.
    struct SignalRequest {
        let uid: uid_t
        let signal: Int32
        let boottime: Double

        init(uid: uid_t, signal: Int32, boottime: Double = boottimeSeconds()) {
            self.uid = uid
            self.signal = signal
            self.boottime = boottime
        }

        /// Whether a signal can end a process at all: not 0 (no signal), not one that stops or
        /// continues it, not one whose default is to be ignored. (A program may catch any
        /// but SIGKILL and exit on it; it then ends by exiting, not by the signal.)
        static func canEnd(_ signal: Int32) -> Bool {
            ![0, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGCONT, SIGCHLD, SIGURG, SIGWINCH].contains(signal)
        }

        /// How long before `now` (seconds on CLOCK_BOOTTIME) it was sent, in microseconds.
        func microseconds(before now: Double) -> UInt64 {
            UInt64(max(0, (now - boottime) * 1_000_000).rounded())
        }
    }

    /// Keeps a `signal` request the session was sent, as the one its end record tells of. One
    /// for a signal that cannot end a process is not kept; and once a SIGKILL was sent,
    /// nothing sent after it replaces it: the session is dying of that one.
    func noteSignalRequest(_ request: SignalRequest) {
        guard SignalRequest.canEnd(request.signal), signalRequest?.signal != SIGKILL else { return }
        signalRequest = request
    }

    /// A session whose record has no id (one an earlier version of the supervisor wrote)
    /// gets one here; the group's next save keeps it.
    init(record: SessionRecord, pidfd: consuming Pidfd, adopted: Bool, connection: Connection?) {
        var record = record
        if record.sessionID == nil { record.sessionID = RandomID.make() }
        self.record = record
        self.pidfd = pidfd
        self.adopted = adopted
        // One started here began just now; one taken back, when its process did (/proc's
        // start time is in clock ticks since boot, on the same clock).
        if !adopted {
            startedBoottime = boottimeSeconds()
        } else if record.startTime > 0 {
            startedBoottime = Double(record.startTime) / Double(sysconf(Int32(_SC_CLK_TCK)))
        } else {
            startedBoottime = nil
        }
        if let connection { listeners.append(WeakConnection(connection)) }
    }

    /// NSGROUP_SESSION_ID (always set once the session is built).
    var uniqueID: String { record.sessionID ?? "" }

    /// How long it has run, in microseconds, if its start is known.
    func runMicroseconds(now: Double = boottimeSeconds()) -> UInt64? {
        startedBoottime.map { UInt64(max(0, (now - $0) * 1_000_000).rounded()) }
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

    /// Its stdio carried on the connection that entered it (`"stdio": "stream"`), if it is.
    weak var stream: SessionStream?

    /// Sends `exited` to every listener still connected. The connection that streams the
    /// session's stdio gets it after the session's last output (SessionStream).
    func notifyExited(_ exited: ExitedNotification) {
        let message = Response.notification(method: NotificationName.exited.rawValue, params: exited.json)
        for listener in listeners {
            guard let connection = listener.connection else { continue }
            if let stream, !stream.isClosed, connection.streams[id] === stream {
                stream.sessionEnded(exited: message.line)
            } else {
                connection.send(message)
            }
        }
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

/// Seconds on CLOCK_BOOTTIME: since boot, suspend included.
func boottimeSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_BOOTTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

struct WeakConnection {
    weak var connection: Connection?
    init(_ connection: Connection) { self.connection = connection }
}
