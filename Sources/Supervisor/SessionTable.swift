#if canImport(Glibc)
import Glibc
#endif
import Namespaces
import POSIX
import RPC
import Systemd

/// Sessions, the processes `enter` starts: their ids, the watch on each one's
/// pidfd and what happens when it ends, the per-person counts the limits use,
/// and how recently ended sessions ended (for `attach`).
///
/// A running session lives in its group (`Group.sessions`: a group's
/// description lists them, and destroy ends them), and this table is the one
/// writer of that: `start` and `adopt` put a session there, its end takes it out.
final class SessionTable {
    /// How many ended sessions `attach` still knows about.
    static let rememberedEndings = 1024

    /// How a session ended, kept with the instance of the group it ran in, so
    /// that a group re-created under the same name does not inherit the old one's sessions.
    struct Ended {
        let group: String
        let instance: UInt64
        let uid: uid_t
        let exited: ExitedNotification
    }

    private let loop: EventLoop
    private let registry: GroupRegistry
    private let bus: EventBus
    private let subordinates: SubordinateOwners
    private let audit: Audit
    /// Session numbers, never reused while the state directory lasts.
    let numbers: SessionNumbers
    /// Called once a session has ended and been reported (its cgroup goes then).
    var onEnded: ((Session, Group) -> Void)?
    /// Keyed by session; oldest first in endedOrder.
    private var recentlyEnded: [UInt64: Ended] = [:]
    private var endedOrder: [UInt64] = []

    init(loop: EventLoop, registry: GroupRegistry, bus: EventBus, subordinates: SubordinateOwners, audit: Audit,
         numbers: SessionNumbers) {
        self.loop = loop
        self.registry = registry
        self.bus = bus
        self.subordinates = subordinates
        self.audit = audit
        self.numbers = numbers
        numbers.onSaveFailure = { [audit] error in
            audit.logger.error("Failed to write the session counter \(StateStore.sessionCounterFile) in the state directory: \(error); session numbers given now may be given again after a crash")
        }
    }

    /// The number for a new session.
    func takeID() -> UInt64 {
        numbers.take()
    }

    /// Numbers given from now on are past `id` (a session an earlier supervisor started).
    func noteTaken(_ id: UInt64) {
        numbers.noteTaken(id)
    }

    /// Sessions charged to this person (their own uid and their subordinate uids) running in any group.
    func count(chargedTo uid: uid_t) -> Int {
        registry.all.reduce(0) { total, group in
            total + group.sessions.values.filter { subordinates.chargedUID($0.uid) == uid }.count
        }
    }

    /// The connections some running session reports to (exempt from idle timeouts).
    var listeningConnections: Set<ObjectIdentifier> {
        var listening = Set<ObjectIdentifier>()
        for group in registry.all {
            for session in group.sessions.values { listening.formUnion(session.listenerIDs) }
        }
        return listening
    }

    /// How session `id` ended, if it ran in this instance of the group named
    /// `name` (or, once no group of that name exists, in any).
    func ended(_ id: UInt64, inGroupNamed name: String, current: Group?) -> Ended? {
        recentlyEnded[id].flatMap { entry in
            entry.group == name && (current == nil || current!.instance == entry.instance) ? entry : nil
        }
    }

    /// A session `enter` started: watched, put in its group, written to the
    /// group's state file, and announced. If it cannot be watched, nothing
    /// is done and the error is thrown (the caller ends the process).
    func start(_ session: Session, in group: Group) throws {
        try watch(session, in: group)
        group.sessions[session.id] = session
        registry.saveSessions(of: group)
        bus.sessionEvent(.sessionStarted, session, in: group)
    }

    /// A session an earlier supervisor started, still running: watched and
    /// put in its group (Readoption saves the group's sessions once, after all).
    func adopt(_ session: Session, in group: Group) throws {
        try watch(session, in: group)
        group.sessions[session.id] = session
    }

    /// Kills every session of the group (destroy, and a holder's end: without
    /// a pid namespace the kernel does not take them down with the holder).
    /// Each is still reaped and reported by its own watch.
    /// Enters still under way are killed too (their launches then end as failed).
    func killAll(in group: Group) {
        for session in group.sessions.values { try? session.pidfd.signal(SIGKILL) }
        for launch in group.launching.values { launch.kill() }
    }

    /// Watches a session's pidfd; when the process ends it is reaped, the
    /// connection that started it is told, and the journal records it.
    private func watch(_ session: Session, in group: Group) throws {
        // The group is held strongly: a session must still be reaped and
        // reported after its group has left the registry. The cycle ends when
        // the watch is cancelled in sessionExited.
        session.watch = try loop.addIO(fd: session.pidfd.rawValue, events: .readable) { [weak self, weak session] _ in
            guard let self, let session else { return }
            self.sessionExited(session, in: group)
        }
    }

    private func sessionExited(_ session: Session, in group: Group) {
        // A session an earlier supervisor started is not our child: init
        // reaps it, and its exit status is not ours to know.
        let status = session.adopted ? nil : ((try? session.pidfd.reap()) ?? nil)
        session.watch?.cancel()
        session.watch = nil
        group.sessions[session.id] = nil
        registry.saveSessions(of: group)
        let now = boottimeSeconds()
        let end = SessionEnd.of(session, in: group, status: status, now: now)
        let exited = ExitedNotification(session: session.id, code: status?.code, signal: status?.signal,
                                        endedBy: end.groupEnded, group: group.name)
        session.notifyExited(exited)
        bus.sessionEvent(.sessionEnded, session, in: group, ended: exited)
        rememberEnded(exited, group: group, uid: session.uid)
        let microseconds = session.runMicroseconds(now: now)
        var fields = SessionEnd.fields(session.record, end, microseconds: microseconds)
        fields.merge([
            AuditField.name: group.name,
            AuditField.groupID: group.id,
            AuditField.operation: "enter",
            AuditField.result: status == nil ? "exit_status_unknown" : "ok",
            AuditField.ownerUID: String(group.owner),
            AuditField.sessionPID: String(session.pid),
        ]) { $1 }
        fields.merge(RequestFields.argvFields(session.argv, truncated: session.record.argvTruncated)) { $1 }
        if status != nil { fields[AuditField.exitCode] = String(exited.shellStatus) }
        if let signal = status?.signal { fields[AuditField.signal] = String(signal) }
        audit.record(.sessionEnded, SessionEnd.message(session: session.id, pid: session.pid, group: group.name, end,
                                                       microseconds: microseconds, uid: { self.audit.uid($0) }),
                     caller: session.caller, fields: fields)
        onEnded?(session, group)
    }

    /// Keeps how a session ended for a while, for clients that attach after
    /// the fact (a client whose supervisor restarted under it).
    func rememberEnded(_ exited: ExitedNotification, group: Group, uid: uid_t) {
        recentlyEnded[exited.session] = Ended(group: group.name, instance: group.instance, uid: uid, exited: exited)
        endedOrder.append(exited.session)
        if endedOrder.count > Self.rememberedEndings { recentlyEnded[endedOrder.removeFirst()] = nil }
    }
}
