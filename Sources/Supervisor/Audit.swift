import Logging
import POSIX

/// Journal fields the supervisor writes (documented in the README's audit section).
enum AuditField {
    static let name = "NSGROUP_NAME"
    static let operation = "NSGROUP_OPERATION"
    static let result = "NSGROUP_RESULT"
    static let callerUID = "NSGROUP_CALLER_UID"
    static let callerGID = "NSGROUP_CALLER_GID"
    static let callerPID = "NSGROUP_CALLER_PID"
    /// When the caller's uid lies in someone's /etc/subuid range: that person's uid and name.
    static let callerSubuidOwner = "NSGROUP_CALLER_SUBUID_OWNER"
    static let callerSubuidOwnerName = "NSGROUP_CALLER_SUBUID_OWNER_NAME"
    static let ownerUID = "NSGROUP_OWNER_UID"
    static let holderPID = "NSGROUP_HOLDER_PID"
    static let sessionPID = "NSGROUP_SESSION_PID"
    static let session = "NSGROUP_SESSION"
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
    static let limits = "NSGROUP_LIMITS"
    /// The OOM killer's kills in a group so far.
    static let oomKills = "NSGROUP_OOM_KILLS"
    static let reads = "NSGROUP_READS"
    static let names = "NSGROUP_NAMES"
    static let messageID = "MESSAGE_ID"
}

/// Writes the supervisor's decisions and lifecycle events as structured
/// journal records through swift-log (the JournalLogHandler maps metadata to
/// fields). One place, so every record carries its MESSAGE_ID and the caller,
/// and, when the caller is a subordinate uid, the person it is charged to.
struct Audit {
    var logger: Logger
    /// Who owns subordinate uids (nil: nobody is looked up).
    var subordinates: SubordinateOwners?

    init(logger: Logger, subordinates: SubordinateOwners? = nil) {
        self.logger = logger
        self.subordinates = subordinates
    }

    func record(_ event: AuditEvent, level: Logger.Level = .info, _ message: String,
                caller: PeerCredentials? = nil, fields: [String: String] = [:]) {
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
        logger.log(level: level, "\(message)", metadata: metadata)
    }
}
