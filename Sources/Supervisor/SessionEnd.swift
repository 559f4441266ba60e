#if canImport(Glibc)
import Glibc
#endif
import POSIX
import RPC

/// What ended a session, as its session-ended record says it (NSGROUP_ENDED_BY, and the
/// MESSAGE in words): so that an administrator can tell a program that failed from one
/// someone stopped, and who.
enum SessionEnd: Equatable {
    /// It exited by itself, with this code.
    case exit(code: Int32)
    /// Killed by a signal nsgroupd cannot say who sent: a catchable one may have been
    /// survived when a `signal` request sent it, and sent again from outside. The last
    /// request sent to the session, if any, goes with it as what it is.
    case signal(Int32, request: Request? = nil)
    /// Killed by SIGKILL after a `signal` request sent SIGKILL (which cannot be survived, so
    /// that request ended it, or would have), and who sent it.
    case signalRequest(signal: Int32, uid: uid_t)
    /// Its group was destroyed at someone's request (nil: who is not known).
    case destroy(uid: uid_t?, signal: Int32?)
    /// Its group was destroyed because its lifetime was over or it was idle too long
    /// (the group's destroyReason: "lifetime" or "idle").
    case expired(reason: String, signal: Int32?)
    /// Its group's holder died, and the group with it.
    case holderDied(signal: Int32?)
    /// It ended while no supervisor was running: how is not known.
    case supervisorDown
    /// A session an earlier supervisor started (not this one's child, so its exit
    /// status is not known) that ended by itself or by something nsgroupd did not do.
    case unknown

    /// A `signal` request sent to a session that a signal then killed, told apart from what
    /// killed it: who sent which signal, how many microseconds before the end.
    struct Request: Equatable {
        let uid: uid_t
        let signal: Int32
        let microseconds: UInt64
    }

    /// Works out what ended `session` of `group` from its exit status (nil: not known, for
    /// a session taken back after a restart) at `now` (seconds on CLOCK_BOOTTIME). A program
    /// that exited did so by itself; one killed by a signal while its group was being
    /// destroyed, or after its holder died, went with the group; one killed by SIGKILL after
    /// a `signal` request sent SIGKILL was killed by that request. Any other signal may have
    /// come from anyone: a request for it may have been caught and survived.
    static func of(_ session: Session, in group: Group, status: ExitStatus?,
                   now: Double = boottimeSeconds()) -> SessionEnd {
        if let code = status?.code, status?.signal == nil { return .exit(code: code) }
        let signal = status?.signal
        if group.destroying {
            return group.destroyReason == "request"
                ? .destroy(uid: group.destroyedBy, signal: signal)
                : .expired(reason: group.destroyReason, signal: signal)
        }
        if !group.holder.isAlive { return .holderDied(signal: signal) }
        guard let signal else { return .unknown }
        guard let request = session.signalRequest else { return .signal(signal) }
        if signal == SIGKILL, request.signal == SIGKILL {
            return .signalRequest(signal: signal, uid: request.uid)
        }
        return .signal(signal, request: Request(uid: request.uid, signal: request.signal,
                                                microseconds: request.microseconds(before: now)))
    }

    /// NSGROUP_ENDED_BY.
    var name: String {
        switch self {
        case .exit: "exit"
        case .signal: "signal"
        case .signalRequest: "signal-request"
        case .destroy: "destroy"
        case .expired: "expired"
        case .holderDied: "holder-died"
        case .supervisorDown: "supervisor-down"
        case .unknown: "unknown"
        }
    }

    /// The `exited` notification's endedBy: set only when the session went down with its
    /// group, so that the client can say so rather than report a signal it never expected.
    var groupEnded: ExitedNotification.EndedBy? {
        switch self {
        case .destroy: .destroy
        case .expired: .expired
        case .holderDied: .holderDied
        default: nil
        }
    }

    /// NSGROUP_ENDED_BY and what goes with it: who (NSGROUP_ENDED_BY_UID), the signal a
    /// request sent (NSGROUP_SIGNAL_SENT), why a group expired (NSGROUP_REASON); for a signal,
    /// the last request sent to the session apart (NSGROUP_SIGNAL_REQUEST_UID, _SIGNAL, _USEC).
    var fields: [String: String] {
        var fields = [AuditField.endedBy: name]
        switch self {
        case .signal(_, let request?):
            fields[AuditField.signalRequestUID] = String(request.uid)
            fields[AuditField.signalRequestSignal] = String(request.signal)
            fields[AuditField.signalRequestMicroseconds] = String(request.microseconds)
        case .signalRequest(let signal, let uid):
            fields[AuditField.endedByUID] = String(uid)
            fields[AuditField.signalSent] = String(signal)
        case .destroy(let uid, _):
            if let uid { fields[AuditField.endedByUID] = String(uid) }
        case .expired(let reason, _):
            fields[AuditField.reason] = reason
        default:
            break
        }
        return fields
    }

    /// How it ended, in words that follow "Session 12 (pid 4711) in group lab ": "ended:
    /// exited with code 3", "ended: killed by signal 9 sent by uid 1001", "ended: killed by
    /// signal 15 (uid 1001 had sent signal 15 through nsgroupd 2.1 s before)".
    /// `uid` says a uid ("uid 1001 (nsg-alice)" where the name is known: Audit.uid).
    func words(_ uid: (uid_t) -> AuditText = { AuditText.uid($0, name: nil) }) -> AuditText {
        func killed(_ signal: Int32?) -> AuditText { signal.map { "ended: killed by signal \($0)" } ?? "ended" }
        switch self {
        case .exit(let code): return "ended: exited with code \(code)"
        case .signal(let signal, nil): return "ended: killed by signal \(signal)"
        case .signal(let signal, let request?):
            return "ended: killed by signal \(signal) (" + uid(request.uid) + " had sent signal \(request.signal) through nsgroupd "
                + Self.duration(request.microseconds) + " before)"
        case .signalRequest(let signal, let sender): return "ended: killed by signal \(signal) sent by " + uid(sender)
        case .destroy(let destroyer, let signal):
            return killed(signal) + (destroyer.map { " when " + uid($0) + " destroyed the group" } ?? " when the group was destroyed")
        case .expired(let reason, let signal):
            let why: AuditText = switch reason {
            case "lifetime": " when the group's lifetime ran out"
            case "idle": " when the group had been idle too long"
            default: " when the group expired (\(reason))"
            }
            return killed(signal) + why
        case .holderDied(let signal): return killed(signal) + " when the group's holder died"
        case .supervisorDown: return "ended while the supervisor was down; how is not known"
        case .unknown: return "ended; its exit status is unknown (it was started before the supervisor restarted)"
        }
    }

    /// How many Unicode scalars of a session's argv its session-started MESSAGE keeps.
    static let messageArgvLimit = 1024

    /// A session-ended record's MESSAGE: "Session 12 (pid 4711) in group lab ended: killed by
    /// signal 9 sent by uid 1001, after 3.2 s".
    static func message(session id: UInt64, pid: pid_t, group: String, _ end: SessionEnd,
                        microseconds: UInt64?, uid: (uid_t) -> AuditText = { AuditText.uid($0, name: nil) }) -> AuditText {
        let after: AuditText = microseconds.map { ", after " + duration($0) } ?? ""
        return "Session \(id) (pid \(pid)) in group \(group) " + end.words(uid) + after
    }

    /// A duration for people: "14 ms", "3.2 s", "59.9 s", "2 min 5 s", "3 h 12 min".
    static func duration(_ microseconds: UInt64) -> AuditText {
        if microseconds < 999_500 { return "\((microseconds + 500) / 1000) ms" }
        let tenths = (microseconds + 50_000) / 100_000
        if tenths < 600 { return "\(tenths / 10).\(tenths % 10) s" }
        let seconds = (microseconds + 500_000) / 1_000_000
        if seconds < 3600 { return "\(seconds / 60) min \(seconds % 60) s" }
        return "\(seconds / 3600) h \(seconds % 3600 / 60) min"
    }

    /// The fields every session-ended record has: which session it was (number and id),
    /// when it started, what it ran on, and what ended it.
    static func fields(_ record: SessionRecord, _ end: SessionEnd, microseconds: UInt64?) -> [String: String] {
        var fields = end.fields
        fields[AuditField.session] = String(record.id)
        if let id = record.sessionID { fields[AuditField.sessionID] = id }
        fields[AuditField.sessionStarted] = Timestamp.format(secondsSinceEpoch: record.started)
        fields[AuditField.tty] = record.tty ? "pty" : "stdio"
        if let microseconds { fields[AuditField.durationMicroseconds] = String(microseconds) }
        return fields
    }
}
