#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import Namespaces
import POSIX
import RPC
import Systemd

/// The cgroups of groups and sessions (issue 14): nsgroupd's subtree, one
/// cgroup per user with the per-user limits, one per group below it with the
/// group's limits, and in each group a leaf for the holder and one per
/// session. The one owner of that tree; touched only on the loop's thread.
///
/// Nothing here waits on a user: cgroupfs files are the kernel's, and a write
/// to them (mkdir, a limit, cgroup.kill, cgroup.freeze) returns at once.
/// Reading what a process runs (`/proc/PID/cmdline`) may wait on its memory,
/// which its owner controls, so `processes` leaves that to a worker.
final class Containment {
    let tree: CgroupTree
    private let policies: PolicyHolder
    private let audit: Audit
    /// Cgroups of groups and sessions that ended while something still ran in
    /// them (dying processes, or what a session left behind): removed by the
    /// sweep once they are empty. By path relative to the tree.
    private var leftovers: [String: CgroupNode] = [:]
    /// Groups as systemd units, where the host allows it (set at start-up); nil: every group
    /// below nsgroupd's own cgroup.
    var units: GroupUnits?
    /// Reaps the anchors guest scopes are started around (set at start-up).
    var reaper: Reaper?
    /// Guest scopes being started, by unit: the enters that wait for each.
    private var guestStarts: [String: [(RPCError?) -> Void]] = [:]

    /// What the supervisor keeps for itself of a limit on its whole subtree
    /// (a TasksMax or MemoryMax on nsgroupd.service): `users` gets the rest,
    /// so no group can take the supervisor's last process or page.
    static let pidsReserve: UInt64 = 64
    static let memoryReserve: UInt64 = 128 << 20

    /// Where scopes are, whether or not this nsgroupd makes them (a group an earlier run made a
    /// unit is taken back as one either way).
    let unitCgroups: UnitCgroups

    init(tree: CgroupTree, instance: String, policies: PolicyHolder, audit: Audit) {
        self.tree = tree
        self.unitCgroups = UnitCgroups(layout: tree.layout, instance: instance)
        self.policies = policies
        self.audit = audit
    }

    private var policy: Policy { policies.current }

    /// At start-up: makes the subtree, moves the supervisor into its own leaf
    /// and gives `users` what a limit above leaves after the reserve.
    func start(joiningSupervisorLeaf: Bool) throws(SupervisorError) {
        do throws(CgroupError) {
            // Out of the base first: cgroup v2 enables controllers for the
            // children of a cgroup only while it holds no process itself.
            if joiningSupervisorLeaf { try tree.moveSelfToSupervisorLeaf() }
            try tree.prepare()
        } catch {
            throw SupervisorError(.startup, "cannot set up nsgroupd's cgroups below \(tree.basePath): \(error)")
        }
        var share = CgroupLimits()
        if let pids = tree.inheritedLimit(.pids), pids > 2 * Self.pidsReserve { share.pids = pids - Self.pidsReserve }
        if let memory = tree.inheritedLimit(.memory), memory > 2 * Self.memoryReserve {
            share.memory = memory - Self.memoryReserve
        }
        do throws(CgroupError) {
            try tree.node(["users"]).apply(share)
        } catch {
            audit.logger.warning("Failed to leave the supervisor its reserve below \(tree.basePath): \(error), ignoring")
        }
    }

    // MARK: Users

    /// The cgroup of a user (all their groups), made with the per-user limits when it is new.
    private func userNode(_ uid: uid_t) throws(CgroupError) -> CgroupNode {
        let node = tree.user(uid)
        if !node.exists() {
            try node.create()
            try node.apply(limits(ofUser: uid))
            try node.delegateControllersToChildren()
        }
        return node
    }

    /// The per-user limits of nsgroupd.conf; none for root, whom per-user limits do not bind.
    /// A limit of a controller this host lacks is left out: the defaults must not make every
    /// create fail there (a limit a create asks for is still refused).
    private func limits(ofUser uid: uid_t) -> CgroupLimits {
        guard uid != 0 else { return CgroupLimits() }
        var limits = CgroupLimits(policy.userLimits)
        let layout = tree.layout
        if layout.place(of: .memory) == .absent { limits.memory = nil }
        if layout.place(of: .pids) == .absent { limits.pids = nil }
        if layout.place(of: .cpu) == .absent { limits.cpus = nil; limits.cpuWeight = nil }
        return limits
    }

    /// After a reload or a restart: the per-user limits as nsgroupd.conf says now, on every
    /// user's cgroup (users whose groups outlived a supervisor included).
    /// Also warns, in the journal, of each per-user limit nsgroupd.conf sets that this host
    /// cannot hold (its controller is absent, or in a v1 hierarchy mounted read-only): the
    /// administrator who set it must not believe it binds anyone.
    func applyUserLimits() {
        for (setting, controller) in unenforcedUserLimits() {
            audit.logger.warning("limits.\(setting) is not enforced: nsgroupd has no \(controller) controller it may use here (\(tree.layout.summary))",
                                 metadata: [AuditField.reason: .string("limit_not_enforced")])
        }
        if let units {
            let users = Set(unitCgroups.ownScopes().map(\.user))
            for uid in users { units.setSliceLimits(uid, limits(ofUser: uid)) }
        }
        for name in tree.node(["users"]).childNames() {
            guard let uid = uid_t(name) else { continue }
            do throws(CgroupError) {
                try tree.user(uid).apply(limits(ofUser: uid))
            } catch {
                audit.logger.error("Failed to apply the per-user limits to uid \(uid): \(error), ignoring")
            }
        }
    }

    /// The per-user settings of nsgroupd.conf whose controller this host does not give
    /// nsgroupd, with that controller's name.
    func unenforcedUserLimits() -> [(setting: String, controller: String)] {
        let layout = tree.layout
        var unenforced: [(setting: String, controller: String)] = []
        if policy.memoryPerUser != nil, layout.place(of: .memory) == .absent { unenforced.append(("memory-per-user", "memory")) }
        if policy.pidsPerUser != nil, layout.place(of: .pids) == .absent { unenforced.append(("pids-per-user", "pids")) }
        if policy.cpusPerUser != nil, layout.place(of: .cpu) == .absent { unenforced.append(("cpus-per-user", "cpu")) }
        return unenforced
    }

    // MARK: Groups

    func node(of group: Group) -> CgroupNode { group.scope ?? tree.group(owner: group.record.cgroupUser, name: group.name) }

    /// The cgroup of a new group, with its limits and its holder's leaf, and
    /// the descriptors its holder is cloned with (`makeGroupNode`).
    func prepareGroup(user: uid_t, name: String, limits: GroupLimits) throws(CgroupError) -> (node: CgroupNode, files: CgroupFiles) {
        let node = try makeGroupNode(user: user, name: name, limits: limits)
        do throws(CgroupError) {
            let leaf = node.child("holder")
            try leaf.create()
            let files = CgroupFiles(directory: try node.openForClone(), join: try node.openLegacyProcs(),
                                    leaf: try leaf.openAllProcs())
            return (node, files)
        } catch {
            try? node.remove()
            throw error
        }
    }

    /// users/UID/group-NAME of nsgroupd's own tree with the group's limits (below the user's
    /// cgroup, made with the per-user limits when it is new): the group's cgroup, or, when
    /// the group is to be a unit (GroupUnits), where the anchor its scope is started around
    /// is cloned into (`openForClone`). A cgroup of that name left by an earlier group of the
    /// same owner (its holder died while the supervisor was down) is emptied and made anew.
    func makeGroupNode(user: uid_t, name: String, limits: GroupLimits) throws(CgroupError) -> CgroupNode {
        _ = try userNode(user)
        let node = tree.group(owner: user, name: name)
        if node.exists() {
            try node.killAll()
            try node.remove()
            leftovers[node.relative] = nil
        }
        do throws(CgroupError) {
            try node.create()
            try node.apply(CgroupLimits(limits))
            return node
        } catch {
            try? node.remove()
            throw error
        }
    }

    /// Starts the scope `unit` (a group's, or a guest's in a group) in `user`'s slice around
    /// `anchor` (GroupUnits.startScope), after giving the slice the per-user limits
    /// nsgroupd.conf sets now; a slice whose limits cannot be set fails the start. systemd
    /// takes the two calls in order: the slice has its limits before the scope is in it.
    func startScope(_ units: GroupUnits, _ unit: String, user: uid_t, description: String, anchor: pid_t, limits: GroupLimits,
                    completion: @escaping (Result<CgroupNode, UnitError>) -> Void) {
        units.setSliceLimits(user, self.limits(ofUser: user)) { error in
            if let error { return completion(.failure(UnitError(name: error.name, "the per-user limits of \(GroupUnits.sliceName(user)): \(error)"))) }
            units.startScope(unit, user: user, description: description, anchor: anchor, limits: CgroupLimits(limits),
                             completion: completion)
        }
    }

    /// The group's scope has started around its anchor: its holder's leaf, and the descriptors
    /// the holder is cloned with (into the scope, whose root is then its cgroup namespace's).
    func prepareScope(_ scope: CgroupNode) throws(CgroupError) -> CgroupFiles {
        let leaf = scope.child("holder")
        try leaf.create()
        return CgroupFiles(directory: try scope.openForClone(), join: try scope.openLegacyProcs(), leaf: try leaf.openAllProcs())
    }

    /// The holder is in its leaf: the group's controllers can now be handed
    /// down to its sessions' cgroups (cgroup v2 allows that only to a cgroup
    /// without processes of its own).
    func groupReady(_ node: CgroupNode) {
        do throws(CgroupError) {
            try node.delegateControllersToChildren()
        } catch {
            audit.logger.warning("Failed to enable controllers for the sessions of \(node.unifiedPath): \(error), ignoring")
        }
    }

    /// Where session `id` runs: in the group's cgroup, or (`guestOf`) in the
    /// cgroup of the person it is charged to.
    func sessionNode(_ id: UInt64, guestOf: uid_t?, of group: Group) -> CgroupNode {
        (guestOf.map { guestNode($0, of: group) } ?? node(of: group)).child("session-\(id)")
    }

    /// The cgroup of `uid`'s sessions in `group`, someone else's: below nsgroupd's own
    /// cgroup (users/UID/guest-NAME), or, when the group is a unit, the guest's scope
    /// `nsgroup-NAME:UID.scope` in the guest's own slice.
    /// (A group taken back as a unit by an nsgroupd that makes none has its guests' existing
    /// scopes, and new guest cgroups in the tree.)
    func guestNode(_ uid: uid_t, of group: Group) -> CgroupNode {
        if group.scope != nil {
            let scope = unitCgroups.guestScopeNode(user: uid, group: group.name)
            if units != nil || scope.exists() { return scope }
        }
        return tree.guest(uid, inGroup: group.name)
    }

    /// Whether a session of `guestOf` in `group` needs a scope started first: the group is a
    /// unit and the guest has no scope in it now (none ran), or one with nothing left in it,
    /// which systemd is about to stop (its last session ended): a new one is started, which
    /// waits until the old one has gone (GroupUnits, UnitExists).
    func needsGuestScope(_ guestOf: uid_t?, of group: Group) -> Bool {
        guard let guestOf, group.scope != nil, units != nil else { return false }
        let guest = guestNode(guestOf, of: group)
        return !guest.exists() || !guest.isPopulated
    }

    /// Starts the scope of `uid`'s sessions in `group` (a unit), as a group's is started:
    /// around an anchor cloned into users/UID/guest-NAME of nsgroupd's own tree with the
    /// group's limits, in the guest's slice with the group's limits as properties (what a
    /// member spends is charged to the member, bounded by the group's limits too). Once
    /// systemd has it, the anchor moves to a leaf of its own (the scope's controllers can
    /// then go down to session leaves), `completion` runs (the enters waiting start their
    /// sessions there), and the anchor ends: the sessions keep the scope. Enters that come
    /// while it starts wait for the same start.
    func startGuestScope(_ uid: uid_t, of group: Group, guestName: String, completion: @escaping (RPCError?) -> Void) {
        guard let units else { return completion(nil) }
        let unit = GroupUnits.guestScopeName(group.name, uid)
        if guestStarts[unit] != nil {
            guestStarts[unit]?.append(completion)
            return
        }
        guestStarts[unit] = [completion]
        let finish = { [weak self] (error: RPCError?) in
            for waiting in self?.guestStarts.removeValue(forKey: unit) ?? [] { waiting(error) }
        }
        let name = group.name
        let staging = tree.guest(uid, inGroup: name)
        let anchor: Anchor
        do {
            _ = try userNode(uid)
            try staging.create()
            try staging.apply(CgroupLimits(group.record.limits))
            let directory = try staging.openForClone()
            anchor = try Anchor(cgroup: directory.rawValue)
        } catch {
            discard(staging)
            return finish(RPCError(.operationFailed, "cannot enter group \"\(name)\": the cgroup \(unit) is started from: \(error)"))
        }
        startScope(units, unit, user: uid, description: "nsgroup group \(name): sessions of \(guestName)", anchor: anchor.pid,
                   limits: group.record.limits) { [weak self] result in
            guard let self else { return }
            var leaf: CgroupNode?
            switch result {
            case .failure(let error):
                finish(RPCError.unitNotStarted("cannot enter group \"\(name)\"", unit: unit, error))
            case .success(let scope):
                do throws(CgroupError) {
                    let anchorLeaf = scope.child("anchor")
                    try anchorLeaf.create()
                    leaf = anchorLeaf
                    try anchorLeaf.move(anchor.pid)
                    try scope.delegateControllersToChildren()
                    if group.frozen { try scope.setFrozen(true) }
                    finish(nil)
                } catch {
                    finish(RPCError.operationFailed("cannot enter group \"\(name)\": its cgroup in \(unit)", error))
                }
            }
            if let pidfd = anchor.takePidfd() { self.reaper?.kill(pidfd) }
            if let leaf { self.discard(leaf) }
            self.discard(staging)
        }
    }

    /// Whether a cgroup for session `id` is still there with processes in it
    /// (what an earlier session of that number left): the number is not used again.
    func isTaken(_ id: UInt64, guestOf: uid_t?, of group: Group) -> Bool {
        let node = sessionNode(id, guestOf: guestOf, of: group)
        return node.exists() && node.isPopulated
    }

    /// Who a session of `charged` is a guest of the group as: nil when it is
    /// charged to the group's person, else `charged`.
    func guestOf(_ charged: uid_t, in group: Group) -> uid_t? {
        charged == group.record.cgroupUser ? nil : charged
    }

    /// The cgroups of a group's guests: users/UID/guest-NAME of everyone who ran a session
    /// there (Group.guests, kept as they are made and found again at start-up).
    /// A guest scope goes when its last session ends: only those there now.
    func guests(of group: Group) -> [CgroupNode] {
        let nodes = group.guests.sorted().map { guestNode($0, of: group) }
        return group.scope == nil ? nodes : nodes.filter { $0.exists() }
    }

    /// The group's cgroup and its guests'.
    func nodes(of group: Group) -> [CgroupNode] { [node(of: group)] + guests(of: group) }

    /// The cgroup of a new session and the descriptors its first child is
    /// cloned with. A session of the group's person runs in the group's
    /// cgroup; anyone else's (a member's, root's) in a cgroup of the group's
    /// below that person's own, users/UID/guest-NAME, which has the group's
    /// limits too: what a member spends in someone's group is charged to
    /// the member, and bounded by the group's limits as well as her own.
    func prepareSession(_ id: UInt64, guestOf: uid_t?, of group: Group) throws(CgroupError) -> (node: CgroupNode, files: CgroupFiles) {
        if let guestOf {
            let guest = guestNode(guestOf, of: group)
            if group.scope != nil {
                // Its scope was started before (startGuestScope), with the group's limits.
                guard guest.exists() else {
                    throw CgroupError(operation: "open", path: guest.unifiedDirectory, reason: "the guest's scope is not there")
                }
                group.guests.insert(guestOf)
            } else {
                _ = try userNode(guestOf)
                if !guest.exists() {
                    try guest.create()
                    group.guests.insert(guestOf)
                    try guest.apply(CgroupLimits(group.record.limits))
                    try guest.delegateControllersToChildren()
                }
            }
            if group.frozen { try guest.setFrozen(true) }
        }
        let node = sessionNode(id, guestOf: guestOf, of: group)
        if node.exists() {
            try node.remove()
            leftovers[node.relative] = nil
        }
        do throws(CgroupError) {
            try node.create()
            let files = CgroupFiles(directory: try node.openForClone(), join: try node.openLegacyProcs(), leaf: CgroupProcsDescriptors())
            return (node, files)
        } catch {
            try? node.remove()
            throw error
        }
    }

    /// Where a group's pasta runs: a leaf of the group's cgroup, under its limits.
    func pastaNode(of group: Group) -> CgroupNode { node(of: group).child("pasta") }

    /// The pasta leaf, made anew, and the descriptors pasta's first child is cloned with.
    func preparePasta(_ leaf: CgroupNode) throws(CgroupError) -> CgroupFiles {
        if leaf.exists() {
            try leaf.killAll()
            try leaf.remove()
        }
        do throws(CgroupError) {
            try leaf.create()
            return CgroupFiles(directory: try leaf.openForClone(), join: try leaf.openLegacyProcs(), leaf: CgroupProcsDescriptors())
        } catch {
            try? leaf.remove()
            throw error
        }
    }

    /// A session ended: its cgroup goes (once empty). Where the group's count
    /// of OOM kills would lose the session's with it (v1), the group keeps them.
    func sessionEnded(_ id: UInt64, guestOf: uid_t?, of group: Group) {
        let leaf = sessionNode(id, guestOf: guestOf, of: group)
        if leaf.isPopulated {
            leftovers[leaf.relative] = leaf
            return
        }
        if !leaf.countsKillsOfRemovedChildren { group.oomKillsOfRemovedSessions += leaf.oomKills() ?? 0 }
        discard(leaf)
    }

    /// OOM kills in the group so far, its guests' and sessions that ended included.
    /// A guest scope goes with its last session, and its count with it: the last count read
    /// (the Sweep reads once a second) is kept in the group then.
    func oomKills(_ group: Group) -> UInt64? {
        guard let own = node(of: group).oomKills() else { return nil }
        guard group.scope != nil else {
            return guests(of: group).reduce(own + group.oomKillsOfRemovedSessions) { $0 + ($1.oomKills() ?? 0) }
        }
        var total = own
        for uid in group.guests.sorted() {
            let guest = guestNode(uid, of: group)
            if guest.exists() {
                let kills = guest.oomKills() ?? 0
                group.guestOOMKills[uid] = kills
                total += kills
            } else {
                group.oomKillsOfRemovedSessions += group.guestOOMKills.removeValue(forKey: uid) ?? 0
                group.guests.remove(uid)
            }
        }
        return total + group.oomKillsOfRemovedSessions
    }

    /// Every process of the group, its guests' included (cgroup.kill).
    func killAll(_ group: Group) throws(CgroupError) {
        for node in nodes(of: group) { try node.killAll() }
    }

    /// Freezes or thaws the group's cgroup and its guests'.
    func setFrozen(_ frozen: Bool, _ group: Group) throws(CgroupError) {
        for node in nodes(of: group) { try node.setFrozen(frozen) }
    }

    /// Whether no process is left in the group's cgroups.
    func isEmpty(_ group: Group) -> Bool { nodes(of: group).allSatisfy { !$0.isPopulated } }

    /// Removes a cgroup whose group or session ended; while something still
    /// runs in it, the sweep tries again.
    func discard(_ node: CgroupNode) {
        do throws(CgroupError) {
            try node.remove()
            leftovers[node.relative] = nil
        } catch {
            leftovers[node.relative] = node
        }
    }

    /// A group's end: its cgroup and its guests' (`guests`), and the cgroups of those people
    /// when nothing is left in them.
    func discardGroup(user uid: uid_t, name: String, guests: Set<uid_t> = []) {
        discard(tree.group(owner: uid, name: name))
        for person in [uid] + guests.sorted() {
            if person != uid { discard(tree.guest(person, inGroup: name)) }
            let user = tree.user(person)
            if user.childNames().isEmpty { try? user.remove() }
        }
    }

    /// Once a second: cgroups left behind that are empty now go.
    func sweepLeftovers() {
        for node in leftovers.values where !node.isPopulated {
            discard(node)
        }
    }

    /// At start-up, after the groups were taken back: the cgroups of groups
    /// that are no longer (their holder died while the supervisor was down)
    /// are emptied (cgroup.kill: nothing a group started outlives it) and
    /// removed, and so are empty session cgroups.
    /// `live`: the groups taken back, by name; each learns its guests' cgroups here.
    /// Returns how many groups' cgroups went, and the highest session number a cgroup
    /// still has (the numbering goes on above it).
    func removeStrays(keeping live: [String: Group]) -> (removed: Int, highestSession: UInt64) {
        var removed = 0
        var highest: UInt64 = 0
        for userName in tree.node(["users"]).childNames() {
            guard let uid = uid_t(userName) else { continue }
            let user = tree.user(uid)
            for child in user.childNames() {
                let isGroup = child.hasPrefix(CgroupTree.groupPrefix)
                guard isGroup || child.hasPrefix(CgroupTree.guestPrefix) else { continue }
                let name = String(child.dropFirst(isGroup ? CgroupTree.groupPrefix.count : CgroupTree.guestPrefix.count))
                let node = user.child(child)
                // A group that is a unit has only staging cgroups here (an anchor's), left by a start cut short.
                if let group = live[name], group.scope == nil, !isGroup || group.record.cgroupUser == uid {
                    if !isGroup { group.guests.insert(uid) }
                    highest = max(highest, keepSessions(of: node))
                    continue
                }
                try? node.killAll()
                discard(node)
                if isGroup { removed += 1 }
            }
            if user.childNames().isEmpty { try? user.remove() }
        }
        // The scopes of groups that are no longer are emptied; systemd removes them then.
        // Only scopes this nsgroupd made (their mark) are its to judge.
        for scope in unitCgroups.ownScopes() {
            if let group = live[scope.name], let own = group.scope,
               scope.guest ? scope.user != group.record.cgroupUser : own == scope.node {
                if scope.guest { group.guests.insert(scope.user) }
                highest = max(highest, keepSessions(of: scope.node))
                continue
            }
            try? scope.node.killAll()
            if !scope.guest { removed += 1 }
        }
        return (removed, highest)
    }

    /// The session cgroups of a group's (or guest's) cgroup found at start-up: empty ones go,
    /// populated ones are left to the sweep. Returns the highest session number among them.
    private func keepSessions(of node: CgroupNode) -> UInt64 {
        var highest: UInt64 = 0
        for leaf in node.childNames() where leaf.hasPrefix("session-") {
            highest = max(highest, UInt64(leaf.dropFirst("session-".count)) ?? 0)
            let session = node.child(leaf)
            if session.isPopulated { leftovers[session.relative] = session } else { discard(session) }
        }
        return highest
    }

    // MARK: Reading

    /// A group's description with what changes all the time: its usage, its
    /// cgroup, whether it is frozen, and (`detailed`, for inspect) each
    /// session's usage. `inspect` reads the usage now (a few small kernel
    /// files); `list` shows the Sweep's snapshot, at most a second old, and
    /// reads no file: a list of thousands of groups costs what it did before
    /// groups had cgroups.
    func describe(_ group: Group, detailed: Bool) -> JSONValue {
        if !detailed, let cached = group.cachedListJSON { return cached }
        guard case .object(var o) = group.infoJSON else { return group.infoJSON }
        let node = self.node(of: group)
        if detailed {
            o["usage"] = ResourceUsage(node.usage()).json
        } else {
            // The Sweep's snapshot; read now only for a group it has not reached yet.
            if group.usageSnapshot == nil { group.usageSnapshot = ResourceUsage(node.usage()) }
            o["usage"] = group.usageSnapshot?.json
        }
        o["frozen"] = .bool(group.frozen)
        o["cgroup"] = .string(node.unifiedPath)
        if detailed, case .array(let sessions)? = o["sessions"] {
            o["sessions"] = .array(sessions.map { session in
                guard case .object(var s) = session, let id = s["session"]?.int64Value else { return session }
                let leaf = sessionNode(UInt64(id), guestOf: group.sessions[UInt64(id)]?.record.guestOf, of: group)
                s["usage"] = ResourceUsage(leaf.usage()).json
                s["cgroup"] = .string(leaf.unifiedPath)
                return .object(s)
            })
        }
        let json = JSONValue.object(o)
        if !detailed { group.cachedListJSON = json }
        return json
    }

    /// Whether a session cgroup of the group (or of its guests) still has processes (for `idle`).
    func hasRunningSession(_ group: Group) -> Bool {
        nodes(of: group).contains { node in
            node.childNames().contains { $0.hasPrefix("session-") && node.child($0).isPopulated }
        }
    }
}

/// Descriptors of cgroup files that a new process is cloned with: the
/// unified directory (CLONE_INTO_CGROUP), cgroup.procs of each v1 hierarchy
/// it joins, and (for a holder) cgroup.procs of its leaf in every
/// hierarchy. Closed when this goes, after the clone.
final class CgroupFiles {
    private let directory: FileDescriptor
    private let join: CgroupProcsDescriptors
    private let leaf: CgroupProcsDescriptors

    init(directory: consuming FileDescriptor, join: consuming CgroupProcsDescriptors, leaf: consuming CgroupProcsDescriptors) {
        self.directory = directory
        self.join = join
        self.leaf = leaf
    }

    var holder: HolderCgroup {
        HolderCgroup(groupDirectory: directory.rawValue, groupProcs: join.rawValues, leafProcs: leaf.rawValues)
    }
    var session: SessionCgroup { SessionCgroup(directory: directory.rawValue, procs: join.rawValues) }
}

extension CgroupLimits {
    init(_ limits: GroupLimits) {
        self.init(memory: limits.memory, pids: limits.pids, cpuWeight: limits.cpuWeight, cpus: limits.cpus)
    }
}

extension GroupLimits {
    /// For the journal: "memory=64m pids=50 cpu-weight=100 cpus=1.5", or "none".
    var auditText: String {
        var parts: [String] = []
        if let memory { parts.append("memory=\(ByteSize.format(memory))") }
        if let pids { parts.append("pids=\(pids)") }
        if let cpuWeight { parts.append("cpu-weight=\(cpuWeight)") }
        if let cpus { parts.append("cpus=\(cpus)") }
        return parts.isEmpty ? "none" : parts.joined(separator: " ")
    }
}

extension ResourceUsage {
    init(_ usage: CgroupUsage) {
        self.init(memory: usage.memory, memoryPeak: usage.memoryPeak, pids: usage.pids, cpuUsec: usage.cpuUsec)
    }
}
