#if canImport(Glibc)
import Glibc
#endif
import Namespaces
import POSIX
import RPC
import Systemd

/// The live groups by name, and their state files: the one owner of both.
/// Each group put here is a new instance of its name (records that outlive a
/// group, like ended sessions, name the instance, not just the name). Who may
/// see a group is decided here too, so that a group the caller may not see
/// is refused word for word as one that does not exist.
final class GroupRegistry {
    /// The state directory; records are written through `save` and `saveSessions`.
    let state: StateStore
    private let policies: PolicyHolder
    private let subordinates: SubordinateOwners
    private let audit: Audit
    /// For the service manager's STATUS= line.
    private let socketPath: String
    private var groups: [String: Group] = [:]
    /// Numbers each Group object registered: a name re-created is a new instance.
    private var nextInstance: UInt64 = 1

    init(state: StateStore, policies: PolicyHolder, subordinates: SubordinateOwners, audit: Audit, socketPath: String) {
        self.state = state
        self.policies = policies
        self.subordinates = subordinates
        self.audit = audit
        self.socketPath = socketPath
    }

    private var policy: Policy { policies.current }

    /// How many groups are alive.
    var count: Int { groups.count }

    /// Every live group, in no order.
    var all: Dictionary<String, Group>.Values { groups.values }

    /// The group of this name, whoever asks: for deciding who may see it,
    /// use `group(_:caller:action:manage:)` or `visible(to:)`.
    subscript(name: String) -> Group? { groups[name] }

    /// Puts a group in the registry as a new instance of its name.
    func register(_ group: Group) {
        group.instance = nextInstance
        nextInstance += 1
        groups[group.name] = group
    }

    // MARK: Groups being created

    /// Names taken by creates whose holder is setting up, with whom they are
    /// charged to and their tmpfs mounts: they count as groups for names and limits.
    private var reserved: [String: (charged: uid_t, tmpfs: [TmpfsMount])] = [:]

    func reserve(_ name: String, chargedTo charged: uid_t, tmpfs: [TmpfsMount]) {
        reserved[name] = (charged, tmpfs)
    }

    func release(_ name: String) {
        reserved[name] = nil
    }

    func isReserved(_ name: String) -> Bool { reserved[name] != nil }
    var reservedCount: Int { reserved.count }
    func reservedCount(chargedTo charged: uid_t) -> Int { reserved.values.filter { $0.charged == charged }.count }
    func reservedTmpfs(chargedTo charged: uid_t) -> [TmpfsMount] {
        reserved.values.filter { $0.charged == charged }.flatMap(\.tmpfs)
    }

    /// Takes a group out, if it is still the instance registered under its
    /// name, and tells the service manager. Whether it was.
    @discardableResult
    func unregister(_ group: Group) -> Bool {
        guard groups[group.name] === group else { return false }
        groups[group.name] = nil
        groupsChanged()
        return true
    }

    /// Tells the service manager how many groups there are (STATUS=).
    func groupsChanged() {
        ServiceManager.status("Serving \(counted(groups.count, "group")) on \(socketPath)")
    }

    // MARK: Who sees what

    /// The group named by a request, if the caller may do `action` with it:
    /// manage (destroy, share) needs owner or admin; use (inspect, enter)
    /// also admits members. A group the caller may not see (not owner, member or admin)
    /// is not_found, word for word as one that does not exist: names are not an oracle.
    func group(_ name: String, caller: PeerCredentials, action: String, manage: Bool) throws(RPCError) -> Group {
        guard let group = groups[name], policy.mayUse(caller, group) else { throw .notFound(group: name) }
        guard !manage || policy.mayManage(caller, group) else {
            let who = ["its owner"] + policy.admins
            throw RPCError(.permissionDenied, "uid \(caller.uid) may not \(action) group \"\(name)\": only \(Policy.listed(who)) may")
        }
        return group
    }

    /// The groups the caller may see (list), by name.
    func visible(to caller: PeerCredentials) -> [Group] {
        groups.values.filter { policy.mayUse(caller, $0) }.sorted { $0.name < $1.name }
    }

    /// The groups charged to a person (see SubordinateOwners): those they own,
    /// and those owned by their subordinate uids.
    func groups(chargedTo charged: uid_t) -> [Group] {
        groups.values.filter { subordinates.chargedUID($0.owner) == charged }
    }

    // MARK: State files

    /// Writes a group's record (atomically; see StateStore).
    func save(_ record: GroupRecord) throws(Errno) {
        try state.save(record)
    }

    /// Removes a group's state file; a missing one is not an error.
    func removeRecord(name: String) throws(Errno) {
        try state.remove(name: name)
    }

    /// What an earlier supervisor left (Readoption): temporary files of a
    /// save it did not finish go; then the names of the records on disk.
    func storedNames() -> [String] {
        state.removeTemporaryFiles()
        return state.storedNames()
    }

    /// Reads a record left on disk, trusting nothing (see StateStore.load).
    func loadRecord(name: String) throws(SupervisorError) -> GroupRecord {
        try state.load(name: name)
    }

    /// Removes a record that is not trusted (a symlink itself, never its target).
    func discardRecord(name: String) {
        state.discard(name: name)
    }

    /// Writes the group's running sessions into its state file, so that a
    /// restarted supervisor can list them and notice them end. Not for a
    /// group on its way out: its file is about to go.
    func saveSessions(of group: Group) {
        guard groups[group.name] === group, !group.destroying else { return }
        group.record.sessions = group.sessions.values.map(\.record).sorted { $0.id < $1.id }
        do {
            try state.save(group.record)
        } catch {
            audit.logger.error("Failed to save the sessions of group \(group.name): \(error), ignoring")
        }
    }
}
