#if canImport(Glibc)
import Glibc
#endif
import Logging
import POSIX
import RPC
import Systemd

/// Journal fields the supervisor writes (documented in the README's audit section).
enum AuditField {
    static let name = "NSGROUP_NAME"
    static let operation = "NSGROUP_OPERATION"
    static let result = "NSGROUP_RESULT"
    static let callerUID = "NSGROUP_CALLER_UID"
    static let callerGID = "NSGROUP_CALLER_GID"
    static let callerPID = "NSGROUP_CALLER_PID"
    /// The caller's user name, on request records, when the user database had answered by then.
    static let callerName = "NSGROUP_CALLER_NAME"
    /// When the caller's uid lies in someone's /etc/subuid range: that person's uid and name.
    static let callerSubuidOwner = "NSGROUP_CALLER_SUBUID_OWNER"
    static let callerSubuidOwnerName = "NSGROUP_CALLER_SUBUID_OWNER_NAME"
    static let ownerUID = "NSGROUP_OWNER_UID"
    static let holderPID = "NSGROUP_HOLDER_PID"
    static let sessionPID = "NSGROUP_SESSION_PID"
    static let session = "NSGROUP_SESSION"
    /// A session's random 128-bit id (32 lowercase hex digits), never reused, unlike its number
    /// once the state directory is gone: every record about one session carries it.
    static let sessionID = "NSGROUP_SESSION_ID"
    /// A group's random 128-bit id, one per instance: a group re-created under the same
    /// name gets a new one. Every record about the group carries it.
    static let groupID = "NSGROUP_GROUP_ID"
    /// When a session started (RFC 3339, UTC), how long it ran in microseconds (when known),
    /// and what it ran on: `pty` or `stdio`.
    static let sessionStarted = "NSGROUP_SESSION_STARTED"
    static let durationMicroseconds = "NSGROUP_DURATION_USEC"
    static let tty = "NSGROUP_TTY"
    /// How an enter's session got its stdio: descriptors, or stream (carried on the connection).
    static let stdio = "NSGROUP_STDIO"
    /// What ended a session (SessionEnd): exit, signal, signal-request (SIGKILL, after a
    /// request sent SIGKILL), destroy, expired, holder-died, supervisor-down or unknown; for
    /// signal-request and destroy, who (NSGROUP_ENDED_BY_UID), and for signal-request the
    /// signal sent.
    static let endedBy = "NSGROUP_ENDED_BY"
    static let endedByUID = "NSGROUP_ENDED_BY_UID"
    static let signalSent = "NSGROUP_SIGNAL_SENT"
    /// On a session-ended record with NSGROUP_ENDED_BY=signal: the last `signal` request sent
    /// to the session (one for a signal that cannot end a process is not counted), told apart
    /// from what killed it, since nsgroupd cannot know who sent a signal a program may catch
    /// and survive: who sent it, which signal, and how many microseconds before the end.
    static let signalRequestUID = "NSGROUP_SIGNAL_REQUEST_UID"
    static let signalRequestSignal = "NSGROUP_SIGNAL_REQUEST_SIGNAL"
    static let signalRequestMicroseconds = "NSGROUP_SIGNAL_REQUEST_USEC"
    static let argv = "NSGROUP_ARGV"
    /// How a session entered its group: `namespace-root` (through the group's user namespace,
    /// as its root: the owner's rights), `caller` (as the caller, from the host's user
    /// namespace) or `trusting-owner` (a member who sent trustOwner).
    static let enteredAs = "NSGROUP_ENTERED_AS"
    static let exitCode = "NSGROUP_EXIT_CODE"
    static let signal = "NSGROUP_SIGNAL"
    static let namespaces = "NSGROUP_NAMESPACES"
    static let reason = "NSGROUP_REASON"
    /// A group's cgroup (path in the unified hierarchy) and its limits ("memory=64m pids=50").
    static let cgroup = "NSGROUP_CGROUP"
    /// Whether groups are units of systemd's ("yes", "no"): the start-up record (GroupUnits).
    static let units = "NSGROUP_UNITS"
    /// The unit of the group a record is about (systemd's field for records about another
    /// unit: `journalctl -u UNIT` shows records with it that root wrote).
    static let systemdUnit = "OBJECT_SYSTEMD_UNIT"
    static let limits = "NSGROUP_LIMITS"
    /// The OOM killer's kills in a group so far.
    static let oomKills = "NSGROUP_OOM_KILLS"
    static let reads = "NSGROUP_READS"
    static let names = "NSGROUP_NAMES"
    /// What kind of refusal a request-refused record is (RefusalKind): invalid, conflict, policy, failure, internal.
    static let refusal = "NSGROUP_REFUSAL"
    /// What a request asked (RequestFields), each in a field of its own.
    /// create: the namespace kinds as asked ("default" when not given), the hostname, each
    /// tmpfs and bind as asked (repeated), each member as asked (repeated), the clock offsets,
    /// the net namespace's published name, the network (`none`, `pasta`) and each published
    /// port (`8080:80/tcp`, repeated), the limits as asked, the lifetime and idle time,
    /// privateTmp and privateHome ("1" when asked for), the home directory to bind, the root
    /// (`overlay` when asked for) and the persist directory.
    static let namespacesRequested = "NSGROUP_NAMESPACES_REQUESTED"
    static let hostname = "NSGROUP_HOSTNAME"
    static let tmpfs = "NSGROUP_TMPFS"
    static let bind = "NSGROUP_BIND"
    static let memberRequested = "NSGROUP_MEMBER_REQUESTED"
    static let monotonicOffset = "NSGROUP_MONOTONIC_OFFSET"
    static let boottimeOffset = "NSGROUP_BOOTTIME_OFFSET"
    static let netnsName = "NSGROUP_NETNS_NAME"
    static let network = "NSGROUP_NETWORK"
    static let publish = "NSGROUP_PUBLISH"
    /// group created: the pasta process of a group with `network` "pasta".
    static let pastaPID = "NSGROUP_PASTA_PID"
    static let limitsRequested = "NSGROUP_LIMITS_REQUESTED"
    static let lifetime = "NSGROUP_LIFETIME"
    static let idle = "NSGROUP_IDLE"
    static let privateTmp = "NSGROUP_PRIVATE_TMP"
    static let privateHome = "NSGROUP_PRIVATE_HOME"
    static let home = "NSGROUP_HOME"
    static let root = "NSGROUP_ROOT"
    /// subscribe: the event types and groups asked for (repeated) and `since`; subscribe's
    /// result and unsubscribe: the subscription.
    static let eventType = "NSGROUP_EVENT_TYPE"
    static let eventGroup = "NSGROUP_EVENT_GROUP"
    static let since = "NSGROUP_SINCE"
    static let subscription = "NSGROUP_SUBSCRIPTION"
    static let persist = "NSGROUP_PERSIST"
    /// enter: the number of arguments, whether NSGROUP_ARGV was cut, the directory asked for,
    /// the names (never the values) of the environment variables asked for (repeated), `pty`
    /// or `stdio`, and trustOwner when sent.
    static let argc = "NSGROUP_ARGC"
    static let argvTruncated = "NSGROUP_ARGV_TRUNCATED"
    static let cwd = "NSGROUP_CWD"
    static let envNames = "NSGROUP_ENV_NAMES"
    static let trustOwner = "NSGROUP_TRUST_OWNER"
    /// Everyone a group is shared with after a create, share or unshare (repeated).
    static let members = "NSGROUP_MEMBERS"
    /// The user who owns a session a request was about (signal, attach).
    static let sessionUID = "NSGROUP_SESSION_UID"
    /// A refusals-summarized record: how many refusals were not written one by one, by kind
    /// ("enter/permission_denied=3 other/method_not_found=9990"), in how many seconds, and
    /// from which uids when not only the person's own (RefusalBudget).
    static let heldBack = "NSGROUP_HELD_BACK"
    static let refusals = "NSGROUP_REFUSALS"
    static let interval = "NSGROUP_INTERVAL"
    static let uids = "NSGROUP_UIDS"
    static let messageID = "MESSAGE_ID"
}

/// A journal MESSAGE. Literal text is the supervisor's own; every value interpolated into it
/// is escaped (MessageText.escaped), so that nothing a user chose can start a line, hide the
/// record as a blob or reach an administrator's terminal as a control sequence. Integers go in
/// as they are. There is no way to put a string in unescaped.
struct AuditText: ExpressibleByStringInterpolation, CustomStringConvertible {
    private(set) var description: String

    init(stringLiteral value: String) { description = value }

    init(stringInterpolation: StringInterpolation) { description = stringInterpolation.text }

    struct StringInterpolation: StringInterpolationProtocol {
        fileprivate var text = ""

        init(literalCapacity: Int, interpolationCount: Int) {
            text.reserveCapacity(literalCapacity + 16 * interpolationCount)
        }

        mutating func appendLiteral(_ literal: String) { text += literal }

        mutating func appendInterpolation(_ value: some BinaryInteger) { text += String(value) }

        mutating func appendInterpolation(_ value: some CustomStringConvertible) {
            text += MessageText.escaped(value.description)
        }

        /// Another message's text, already escaped.
        mutating func appendInterpolation(_ value: AuditText) { text += value.description }

        /// At most `limit` Unicode scalars of `value`, escaped, then `…` when some were left out.
        /// Scalars, not Characters: one Character (a letter and any number of combining marks)
        /// can be as long as the request line.
        mutating func appendInterpolation(_ value: String, limit: Int) {
            text += MessageText.escaped(value.scalarPrefix(limit)) + (value.unicodeScalars.count > limit ? "…" : "")
        }
    }

    /// "uid 1001 (nsg-alice)", or "uid 1001" without a name.
    static func uid(_ uid: uid_t, name: String?) -> AuditText {
        name.map { "uid \(uid) (\($0))" } ?? "uid \(uid)"
    }

    static func + (lhs: AuditText, rhs: AuditText) -> AuditText {
        var joined = lhs
        joined.description += rhs.description
        return joined
    }
}

/// What a refusal was, for its priority and NSGROUP_REFUSAL: a request that made no sense
/// (`invalid`, info), one about a group that is not there or not in that state (`conflict`,
/// info), one the policy forbids (`policy`, notice), or one the kernel or the supervisor failed
/// (`failure`, warning; `internal`, error). `journalctl -p notice` then shows what policy
/// refused and what failed, not typos.
enum RefusalKind: String {
    case invalid, conflict, policy, failure, `internal`

    /// `hidden`: a not_found that hides a group the caller may not see (it exists): policy.
    init(_ reason: ErrorReason, hidden: Bool = false) {
        switch reason {
        case .parseError, .invalidRequest, .lineTooLong, .methodNotFound, .invalidParams, .invalidName:
            self = .invalid
        case .notFound:
            self = hidden ? .policy : .conflict
        case .alreadyExists, .frozen:
            self = .conflict
        case .permissionDenied, .limitExceeded:
            self = .policy
        case .operationFailed:
            self = .failure
        case .internalError:
            self = .internal
        }
    }

    var level: Logger.Level {
        switch self {
        case .invalid, .conflict: .info
        case .policy: .notice
        case .failure: .warning
        case .internal: .error
        }
    }
}

/// The fields of one request's record (request-accepted or request-refused): what the request
/// asked, filled in by dispatch from its parameters (RequestFields), and what its handler found
/// or changed (the members a share really added, the session an enter started), added by the
/// handler while it works. Shared by the request's context and its completion, so a record
/// written later still has everything.
final class RequestDetails {
    var fields: [String: String] = [:]
    var lists: [String: [String]] = [:]
    /// What an accepted request did, in words, after the MESSAGE's "Accepted share of group
    /// lab from uid 1001": "added nsg-dave (uid 1004)".
    var summary: AuditText?
    /// The request was accepted but found everything as asked already (a share of a member,
    /// a freeze of a frozen group): summed up with the reads (ReadRecords), not one record each.
    var changedNothing = false
}

/// How Audit learns a group's unit: set once groups are known to be units (Supervisor).
final class UnitOfGroup {
    var lookup: ((String) -> String?)?
}

/// Writes the supervisor's decisions and lifecycle events as structured
/// journal records through swift-log (the JournalLogHandler maps metadata to
/// fields). One place, so every record carries its MESSAGE_ID and the caller,
/// and, when the caller is a subordinate uid, the person it is charged to.
struct Audit {
    var logger: Logger
    /// Who owns subordinate uids (nil: nobody is looked up).
    var subordinates: SubordinateOwners?
    /// The systemd unit of a group, by name (GroupUnits): a record naming a group names its
    /// unit too, so that `journalctl -u nsgroup-NAME.scope` shows nsgroupd's decisions about
    /// the group beside its sessions' own lines. Shared by every copy of this Audit.
    let units = UnitOfGroup()

    init(logger: Logger, subordinates: SubordinateOwners? = nil) {
        self.logger = logger
        self.subordinates = subordinates
    }

    /// A uid as a MESSAGE says it: "uid 1001 (nsg-alice)" when the user database has
    /// answered for it already (NameService's cache: the loop never waits on NSS), else
    /// "uid 1001". `known`: a name found already (the caller's, looked up at accept).
    func uid(_ uid: uid_t, known: String? = nil) -> AuditText {
        AuditText.uid(uid, name: known ?? subordinates?.names?.cachedUserName(uid))
    }

    /// One record. `fields` are single fields; each entry of `lists` is a field repeated once
    /// per value (journald keeps them all; `journalctl NAME=value` matches any one).
    func record(_ event: AuditEvent, level: Logger.Level = .info, _ message: AuditText,
                caller: PeerCredentials? = nil, fields: [String: String] = [:], lists: [String: [String]] = [:]) {
        var metadata: Logger.Metadata = [AuditField.messageID: .string(event.messageID)]
        if let caller {
            metadata[AuditField.callerUID] = .string(String(caller.uid))
            metadata[AuditField.callerGID] = .string(String(caller.gid))
            metadata[AuditField.callerPID] = .string(String(caller.pid))
            if let owner = subordinates?.owner(of: caller.uid) {
                metadata[AuditField.callerSubuidOwner] = .string(String(owner.uid))
                metadata[AuditField.callerSubuidOwnerName] = .string(owner.name)
            }
        }
        for (key, value) in fields { metadata[key] = .string(value) }
        if let name = fields[AuditField.name], let unit = units.lookup?(name) { metadata[AuditField.systemdUnit] = .string(unit) }
        for (key, values) in lists where !values.isEmpty { metadata[key] = .array(values.map { .string($0) }) }
        logger.log(level: level, "\(message.description)", metadata: metadata)
    }
}

extension String {
    /// The first `count` Unicode scalars. (`prefix` counts Characters, extended grapheme
    /// clusters, and a single one of those has no bound on its length.)
    func scalarPrefix(_ count: Int) -> String {
        String(String.UnicodeScalarView(unicodeScalars.prefix(count)))
    }
}
