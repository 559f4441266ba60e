#if canImport(Glibc)
import Glibc
#endif
import Namespaces
import POSIX

/// Who may do what, and how much: read from nsgroupd.conf (see PolicyFile),
/// replaced as a whole on SIGHUP. Identity is always the caller's kernel
/// credentials (SO_PEERCRED and SO_PEERGROUPS), never a request field.
///
/// - root and members of the admin group may list, inspect, enter and
///   destroy every group, and are not bound by the create rules;
/// - a group's owner may do all of that with their own group, and share it;
/// - a group's members (users, or members of Unix groups, it was shared
///   with) see it in list, may inspect it and enter it;
/// - anyone else gets permission_denied.
struct Policy: Sendable, Equatable {
    /// Who may create groups: everyone, or these users and Unix groups.
    enum CreateRule: Sendable, Equatable {
        case everyone
        case only(users: Set<uid_t>, groups: Set<gid_t>, text: String)
    }

    var create: CreateRule = .everyone
    /// The admin group's name and gid; nil when there is none.
    var adminGroup: (name: String, gid: gid_t)?
    /// Kinds a create may ask for (root and admins are not limited).
    var namespaces: Set<NamespaceKind> = Set(NamespaceKind.allCases)
    /// Where a non-admin may mount a tmpfs in a group without a user namespace.
    var tmpfsPaths: [TmpfsPlace] = TmpfsPlace.defaults
    /// The largest tmpfs one mount may have, and all of one person's groups together. Bytes.
    var tmpfsSize: UInt64 = 1 << 30
    var tmpfsPerUser: UInt64 = 4 << 30
    var groupsPerUser = 16
    var sessionsPerUser = 64
    var maxGroups = 4096
    /// Memory (bytes), processes and CPUs (CPU time per wall-clock time) on cgroups; nil
    /// is no limit. The per-user values go on users/UID, where the kernel holds all of a
    /// person's groups and sessions to them together (`userLimits`); the per-group values
    /// are what a group gets when its create names none, and the most one may ask for
    /// (`resolve(_:)`). memoryPerUser is nil here and half the machine's memory in
    /// `defaults()`, which reads it.
    var memoryPerUser: UInt64?
    var memoryPerGroup: UInt64?
    var pidsPerUser: UInt64? = 4096
    var pidsPerGroup: UInt64?
    var cpusPerUser: Double?
    var cpusPerGroup: Double?
    /// Seconds a child being started (an enter's session, a create's holder)
    /// may take to report before it is killed and the request fails.
    var spawnTimeout = 30
    /// Connections at once, in all and per person (root included; a
    /// subordinate uid counts as its range's owner).
    var maxConnections = 4096
    var connectionsPerUser = 1024
    /// Of maxConnections, the last this many are only for root and admins;
    /// nil (not set): 1/256 of maxConnections (16 of the default 4096).
    var reservedForAdmins: Int?
    /// Bytes of unfinished requests one person may have buffered across all
    /// their connections; nil (not set): 4 MiB, or maxLine if that is more.
    var bufferPerUser: Int?

    /// Bytes of replies and notifications one person may leave unread across
    /// all their connections before those connections stop reading requests
    /// (until the person is back under three quarters of it).
    var outputPerUser = 4 << 20
    /// The connection places kept for root and admins.
    var reservedConnections: Int { reservedForAdmins ?? maxConnections / 256 }
    /// The budget of buffered request bytes per person.
    var bufferBudget: Int { bufferPerUser ?? max(4 << 20, maxLine) }
    /// The longest request line, newline excluded.
    var maxLine = 1 << 20
    /// A connection that completes no request and takes no reply for this
    /// long is closed, unless a session of its reports to it, it subscribed,
    /// or a reply of its is pending; one with part of a request line waiting
    /// this long is closed whatever it is. Seconds.
    var idleTimeout = 45
    /// A connection with more than 1 MiB of replies waiting, or with any
    /// waiting while its person is over outputPerUser, that takes none of
    /// them for this long is closed, sessions or not. Seconds.
    var writeTimeout = 45
    /// Unread events a subscriber may let pile up before it is dropped. Bytes.
    var subscriberBuffer = 256 << 10
    /// Accepted reads and requests that changed nothing: one record each, or summed up per
    /// person (the default; see ReadRecords).
    var recordEachRead = false
    /// How long a person's summed-up reads may wait for their record. Seconds.
    var readSummaryInterval = 60
    /// Refusals of one person written one by one in each refusalInterval (seconds); past that
    /// they are counted and summed up in one record when the interval ends (RefusalBudget).
    var refusalsPerInterval = 50
    var refusalInterval = 60

    static func == (a: Policy, b: Policy) -> Bool {
        a.create == b.create && a.adminGroup?.name == b.adminGroup?.name && a.adminGroup?.gid == b.adminGroup?.gid
            && a.namespaces == b.namespaces && a.groupsPerUser == b.groupsPerUser
            && a.sessionsPerUser == b.sessionsPerUser && a.maxGroups == b.maxGroups && a.spawnTimeout == b.spawnTimeout
            && a.maxConnections == b.maxConnections && a.connectionsPerUser == b.connectionsPerUser
            && a.reservedConnections == b.reservedConnections && a.bufferBudget == b.bufferBudget
            && a.outputPerUser == b.outputPerUser
            && a.maxLine == b.maxLine && a.idleTimeout == b.idleTimeout && a.writeTimeout == b.writeTimeout
            && a.subscriberBuffer == b.subscriberBuffer && a.recordEachRead == b.recordEachRead
            && a.readSummaryInterval == b.readSummaryInterval
            && a.refusalsPerInterval == b.refusalsPerInterval && a.refusalInterval == b.refusalInterval
            && a.tmpfsPaths == b.tmpfsPaths && a.tmpfsSize == b.tmpfsSize && a.tmpfsPerUser == b.tmpfsPerUser
            && a.memoryPerUser == b.memoryPerUser && a.memoryPerGroup == b.memoryPerGroup
            && a.pidsPerUser == b.pidsPerUser && a.pidsPerGroup == b.pidsPerGroup
            && a.cpusPerUser == b.cpusPerUser && a.cpusPerGroup == b.cpusPerGroup
    }

    /// The defaults: everyone may create, `nsgroup-admin` (if it exists) administers, one
    /// person's groups and sessions share at most half the machine's memory (no limit when
    /// /proc/meminfo gives no MemTotal).
    static func defaults() -> Policy {
        var policy = Policy()
        policy.memoryPerUser = MachineMemory.total().map { MachineMemory.share(50, of: $0) }
        if let gid = UserDatabase.groupID(named: PolicyFile.defaultAdminGroup) {
            policy.adminGroup = (PolicyFile.defaultAdminGroup, gid)
        }
        return policy
    }

    /// root, or a member of the admin group.
    func isAdmin(_ caller: PeerCredentials) -> Bool {
        if caller.uid == 0 { return true }
        guard let admin = adminGroup else { return false }
        return caller.isMember(of: admin.gid)
    }

    /// Destroy and change sharing: the owner and admins.
    func mayManage(_ caller: PeerCredentials, _ group: Group) -> Bool {
        isAdmin(caller) || caller.uid == group.owner
    }

    /// See (list, inspect) and enter: the owner, members and admins.
    func mayUse(_ caller: PeerCredentials, _ group: Group) -> Bool {
        mayUse(caller, owner: group.owner, members: group.members)
    }

    /// The same rule for a group as it was: an owner and members kept apart from it (the
    /// events' ring outlives the groups its events are about).
    func mayUse(_ caller: PeerCredentials, owner: uid_t, members: [Member]) -> Bool {
        isAdmin(caller) || caller.uid == owner || members.contains { $0.admits(caller) }
    }

    /// Whether the caller may create at all (by the create rule).
    func mayCreate(_ caller: PeerCredentials) -> Bool {
        if isAdmin(caller) { return true }
        switch create {
        case .everyone: return true
        case .only(let users, let groups, _):
            return users.contains(caller.uid) || groups.contains { caller.isMember(of: $0) }
        }
    }

    /// Who administers, as refusals name them.
    var admins: [String] {
        ["root"] + (adminGroup.map { ["members of \($0.name)"] } ?? [])
    }

    /// "a, b and c": the people a refusal says may do the thing.
    static func listed(_ people: [String]) -> String {
        guard people.count > 1 else { return people.first ?? "" }
        return people.dropLast().joined(separator: ", ") + " and " + people.last!
    }
}

/// One entry of access.tmpfs-paths: a directory (a tmpfs may go on it or below it), or `~`,
/// the creating user's own home when it lies below /home.
enum TmpfsPlace: Sendable, Equatable, CustomStringConvertible {
    case directory(String)
    case home

    static let defaults: [TmpfsPlace] = [.directory("/tmp"), .directory("/var/tmp"), .directory("/mnt"),
                                         .directory("/srv"), .directory("/media"), .home]

    /// Where programs and configuration of the system and of other users live: no entry
    /// of tmpfs-paths may be one of them, lie below one or contain one. /home is here
    /// because it holds everyone's home; `~` admits one's own.
    static let systemDirectories = [
        "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/proc",
        "/root", "/run", "/sbin", "/snap", "/sys", "/usr", "/var/cache", "/var/lib", "/var/log", "/var/mail",
        "/var/run", "/var/spool",
    ]

    var description: String {
        switch self {
        case .directory(let path): path
        case .home: "~"
        }
    }

    /// Whether a tmpfs on `path` (absolute and normalised) is at or below this place.
    func admits(_ path: String, home: String?) -> Bool {
        switch self {
        case .directory(let directory):
            return Self.isWithin(path, directory)
        case .home:
            // Trailing slashes off first: a home of "/home/" is /home itself, everyone's.
            guard var home else { return false }
            while home.hasSuffix("/") { home.removeLast() }
            guard home.hasPrefix("/home/"), !home.split(separator: "/").contains(where: { $0 == ".." || $0 == "." })
            else { return false }
            return Self.isWithin(path, home)
        }
    }

    /// `path` is `directory` or below it.
    static func isWithin(_ path: String, _ directory: String) -> Bool {
        path == directory || path.hasPrefix(directory + "/")
    }

    /// Why `path` may not be an entry, or nil when it may.
    static func refusal(_ path: String) -> String? {
        if let system = systemDirectories.first(where: { isWithin(path, $0) || isWithin($0, path) }) {
            return "\(path) is or holds \(system), where programs or configuration of the system or of other users live"
        }
        return nil
    }
}
