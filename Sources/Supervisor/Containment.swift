#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import Namespaces
import POSIX
import RPC

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

    /// What the supervisor keeps for itself of a limit on its whole subtree
    /// (a TasksMax or MemoryMax on nsgroupd.service): `users` gets the rest,
    /// so no group can take the supervisor's last process or page.
    static let pidsReserve: UInt64 = 64
    static let memoryReserve: UInt64 = 128 << 20

    init(tree: CgroupTree, policies: PolicyHolder, audit: Audit) {
        self.tree = tree
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
            try node.apply(CgroupLimits(policy.userLimits))
            try node.delegateControllersToChildren()
        }
        return node
    }

    /// After a reload: the per-user limits as nsgroupd.conf says now, on every user's cgroup.
    func applyUserLimits() {
        let limits = CgroupLimits(policy.userLimits)
        for name in tree.node(["users"]).childNames() {
            guard let uid = uid_t(name) else { continue }
            do throws(CgroupError) {
                try tree.user(uid).apply(limits)
            } catch {
                audit.logger.error("Failed to apply the per-user limits to uid \(uid): \(error), ignoring")
            }
        }
    }

    // MARK: Groups

    func node(of group: Group) -> CgroupNode { tree.group(owner: group.record.cgroupUser, name: group.name) }

    /// The cgroup of a new group, with its limits and its holder's leaf, and
    /// the descriptors its holder is cloned with. A cgroup of that name left
    /// by an earlier group of the same owner (its holder died while the
    /// supervisor was down) is emptied and made anew.
    func prepareGroup(user: uid_t, name: String, limits: GroupLimits) throws(CgroupError) -> (node: CgroupNode, files: CgroupFiles) {
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

    /// The cgroup of a new session and the descriptors its first child is cloned with.
    func prepareSession(_ id: UInt64, of group: Group) throws(CgroupError) -> (node: CgroupNode, files: CgroupFiles) {
        let node = self.node(of: group).child("session-\(id)")
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

    /// A session ended: its cgroup goes (once empty). Where the group's count
    /// of OOM kills would lose the session's with it (v1), the group keeps them.
    func sessionEnded(_ id: UInt64, of group: Group) {
        let leaf = node(of: group).child("session-\(id)")
        if !leaf.countsKillsOfRemovedChildren, !leaf.isPopulated { group.oomKillsOfRemovedSessions += leaf.oomKills() ?? 0 }
        if leaf.isPopulated { leftovers[leaf.relative] = leaf } else { discard(leaf) }
    }

    /// OOM kills in the group so far, sessions that ended included.
    func oomKills(_ group: Group) -> UInt64? {
        node(of: group).oomKills().map { $0 + group.oomKillsOfRemovedSessions }
    }

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

    /// A group's end: its cgroup and, when it was the owner's last, the owner's.
    func discardGroup(user uid: uid_t, name: String) {
        discard(tree.group(owner: uid, name: name))
        let user = tree.user(uid)
        if user.childNames().isEmpty { try? user.remove() }
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
    func removeStrays(keeping live: Set<String>) -> Int {
        var removed = 0
        let users = tree.node(["users"])
        for userName in users.childNames() {
            guard let uid = uid_t(userName) else { continue }
            for groupName in tree.user(uid).childNames() {
                let node = tree.group(owner: uid, name: groupName)
                if live.contains(node.relative) {
                    for child in node.childNames() where child.hasPrefix("session-") && !node.child(child).isPopulated {
                        discard(node.child(child))
                    }
                    continue
                }
                try? node.killAll()
                discard(node)
                removed += 1
            }
            if tree.user(uid).childNames().isEmpty { try? tree.user(uid).remove() }
        }
        return removed
    }

    // MARK: Reading

    /// A group's description with what changes all the time: its usage, its
    /// cgroup, whether it is frozen, and (`detailed`, for inspect) each
    /// session's usage. `list` reads four small kernel files per group.
    func describe(_ group: Group, detailed: Bool) -> JSONValue {
        guard case .object(var o) = group.infoJSON else { return group.infoJSON }
        let node = self.node(of: group)
        o["usage"] = ResourceUsage(node.usage()).json
        o["frozen"] = .bool(group.frozen)
        o["cgroup"] = .string(node.unifiedPath)
        if detailed, case .array(let sessions)? = o["sessions"] {
            o["sessions"] = .array(sessions.map { session in
                guard case .object(var s) = session, let id = s["session"]?.int64Value else { return session }
                let leaf = node.child("session-\(id)")
                s["usage"] = ResourceUsage(leaf.usage()).json
                s["cgroup"] = .string(leaf.unifiedPath)
                return .object(s)
            })
        }
        return .object(o)
    }

    /// Whether a session cgroup of the group still has processes (for `idle`).
    func hasRunningSession(_ group: Group) -> Bool {
        let node = self.node(of: group)
        return node.childNames().contains { $0.hasPrefix("session-") && node.child($0).isPopulated }
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
