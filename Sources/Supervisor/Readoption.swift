#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import Namespaces
import Logging
import POSIX
import RPC

/// At start-up, takes back the groups (and their sessions) an earlier
/// supervisor left running, or drops their records.
final class Readoption {
    private let registry: GroupRegistry
    private let sessions: SessionTable
    /// Watches each holder taken back, as it watches every group's.
    private let destroyer: DestroyHandler
    private let audit: Audit
    private let containment: Containment
    private let pasta: PastaLauncher

    init(registry: GroupRegistry, sessions: SessionTable, destroyer: DestroyHandler, audit: Audit, containment: Containment,
         pasta: PastaLauncher) {
        self.pasta = pasta
        self.registry = registry
        self.sessions = sessions
        self.destroyer = destroyer
        self.audit = audit
        self.containment = containment
    }

    /// Takes back the groups an earlier supervisor left running. A group is
    /// taken back only if its record is trustworthy and its holder is alive
    /// with the recorded pid, start time and namespace inodes; every other
    /// record is removed, with a journal record saying why. Nothing a
    /// record says is acted on before it is verified: a process that merely
    /// has the recorded pid is never signalled.
    func readoptGroups() {
        for name in registry.storedNames() {
            let record: GroupRecord
            do {
                record = try registry.loadRecord(name: name)
            } catch {
                drop(name, reason: error.reason, "its state file is refused: \(error)", record: nil)
                continue
            }
            let holder: Pidfd
            do {
                holder = try Pidfd.open(pid: record.holderPID)
            } catch {
                drop(name, reason: "holder_gone", "its holder \(record.holderPID) is gone", record: record)
                continue
            }
            // Its holder's leaf: in the group's scope when the group is a unit (GroupUnits), else
            // below nsgroupd's own cgroup.
            // (A unit is taken back as one by any nsgroupd: one that cannot reach systemd now,
            // or runs with --no-units, must not orphan it.)
            let unitNode = containment.unitCgroups.scopeNode(user: record.cgroupUser, group: record.name)
            let scope = Self.outside(unitNode.child("holder"), record) == nil ? unitNode : nil
            let leaf = (scope ?? containment.tree.group(owner: record.cgroupUser, name: record.name)).child("holder")
            if let mismatch = Self.mismatch(record, holder) ?? Self.outside(leaf, record) {
                let reason = holder.isAlive ? "mismatch" : "holder_gone"
                drop(name, reason: reason, reason == "mismatch" ? mismatch : "its holder \(record.holderPID) is gone", record: record)
                continue
            }
            let group = Group(record: record, holder: holder)
            group.scope = scope
            do {
                try destroyer.watchHolder(group)
            } catch {
                drop(name, reason: "unreadable", "cannot watch its holder: \(error)", record: record)
                continue
            }
            registry.register(group)
            group.frozen = containment.node(of: group).isFrozen
            readoptSessions(of: group)
            pasta.adopt(group)
            // A crash between recording and publishing leaves it unpublished: publish now.
            if let netns = record.netnsName, let net = record.namespaces.first(where: { $0.kind == .net }),
               !NetnsPublisher.isPublished(netns, inode: net.inode), !NetnsPublisher.exists(netns) {
                try? NetnsPublisher.publish(netns, holder: group.holder)
            }
            audit.record(.groupAdopted, "Took back group \(name) (holder \(record.holderPID)) with \(counted(group.sessions.count, "running session"))",
                         fields: [AuditField.name: name, AuditField.groupID: group.id, AuditField.ownerUID: String(record.owner),
                                  AuditField.holderPID: String(record.holderPID), AuditField.result: "ok"])
        }
        // What groups that are gone left in their cgroups dies now: nothing outlives its group.
        let live = Dictionary(registry.all.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let strays = containment.removeStrays(keeping: live)
        sessions.noteTaken(strays.highestSession)
        // OOM kills from before the restart are not new (the guests' cgroups are known now).
        for group in registry.all { group.oomKillsReported = containment.oomKills(group) ?? 0 }
        if strays.removed > 0 {
            audit.logger.notice("Emptied and removed the cgroups of \(counted(strays.removed, "group")) that ended while the supervisor was down")
        }
    }

    /// Why the holder is not in its group's cgroup, or nil: a group is taken
    /// back only where its limits and kill-all still hold.
    static func outside(_ leaf: CgroupNode, _ record: GroupRecord) -> String? {
        let found = unifiedCgroup(ofProcess: record.holderPID)
        return found == leaf.unifiedPath ? nil : "its holder is in cgroup \(found ?? "?"), not \(leaf.unifiedPath)"
    }

    /// Why the live process `holder` is not the holder `record` describes, or nil.
    static func mismatch(_ record: GroupRecord, _ holder: borrowing Pidfd) -> String? {
        guard let startTime = try? ProcFS.startTime(pid: record.holderPID) else { return "its holder cannot be read" }
        guard startTime == record.holderStartTime else {
            return "process \(record.holderPID) is not its holder (started at \(startTime), not \(record.holderStartTime))"
        }
        for id in record.namespaces {
            guard let now = try? NamespaceID.read(pid: record.holderPID, kind: id.kind, entry: id.kind.holderEntry) else {
                return "its holder's \(id.kind.rawValue) namespace cannot be read"
            }
            guard now == id else { return "its holder is in \(now), not \(id)" }
            // A group's namespaces are always new ones: a record naming the
            // supervisor's own describes no group, whatever process it names.
            if let own = try? NamespaceID.read(pid: getpid(), kind: id.kind), own == id {
                return "it names the supervisor's own \(id.kind.rawValue) namespace"
            }
        }
        // And the process runs the holder program for this group (an
        // upgraded one shows as "… (deleted)").
        let exe = (try? ProcFS.readLink("/proc/\(record.holderPID)/exe")) ?? ""
        let program = exe.split(separator: "/").last.map { String($0.split(separator: " ").first ?? "") } ?? ""
        guard program == "nsgroup-holder" else { return "process \(record.holderPID) runs \(exe), not nsgroup-holder" }
        // Everything was read by pid: it must have been the same process throughout.
        return holder.isAlive ? nil : "its holder ended while being checked"
    }

    /// Sessions in the record that still run are watched again (their exit
    /// status will be unknown: init reaps them now); the others are recorded
    /// as ended while the supervisor was down. The group's record is saved once
    /// after: without them, and with ids for a group and sessions an earlier version
    /// recorded without (Group and Session make them).
    private func readoptSessions(of group: Group) {
        for record in group.record.sessions {
            sessions.noteTaken(record.id)
            guard let pidfd = Self.verifiedSession(record) else {
                // When it ended is not known, so neither is how long it ran.
                var fields = SessionEnd.fields(record, .supervisorDown, microseconds: nil)
                fields.merge([AuditField.name: group.name, AuditField.groupID: group.id, AuditField.operation: "enter",
                              AuditField.result: "ended_while_down", AuditField.ownerUID: String(group.owner),
                              AuditField.sessionPID: String(record.pid)]) { $1 }
                fields.merge(RequestFields.argvFields(record.argv, truncated: record.argvTruncated)) { $1 }
                audit.record(.sessionEnded, SessionEnd.message(session: record.id, pid: record.pid, group: group.name,
                                                               .supervisorDown, microseconds: nil),
                             caller: PeerCredentials(pid: record.callerPID, uid: record.uid, gid: record.callerGID, groups: []),
                             fields: fields)
                continue
            }
            let session = Session(record: record, pidfd: pidfd, adopted: true, connection: nil)
            do {
                try sessions.adopt(session, in: group)
            } catch {
                audit.logger.error("Failed to watch session \(record.id) of group \(group.name): \(error), ignoring")
            }
        }
        registry.saveSessions(of: group)
    }

    /// A pidfd for the recorded session if that very process still runs.
    private static func verifiedSession(_ record: SessionRecord) -> Pidfd? {
        guard let pidfd = try? Pidfd.open(pid: record.pid),
              let startTime = try? ProcFS.startTime(pid: record.pid), startTime == record.startTime,
              pidfd.isAlive
        else { return nil }
        return pidfd
    }

    /// Removes an untrusted or stale record. Sessions it lists that are
    /// verifiably still running are ended: they do not outlive their group.
    private func drop(_ name: String, reason: String, _ why: String, record: GroupRecord?) {
        registry.discardRecord(name: name)
        if let record { NetnsPublisher.unpublish(of: record) }
        var ended = 0
        for session in record?.sessions ?? [] {
            if let pidfd = Self.verifiedSession(session), (try? pidfd.signal(SIGKILL)) != nil { ended += 1 }
        }
        var fields = [AuditField.name: name, AuditField.result: "dropped", AuditField.reason: reason]
        if let record {
            fields[AuditField.ownerUID] = String(record.owner)
            fields[AuditField.holderPID] = String(record.holderPID)
            if let id = record.groupID { fields[AuditField.groupID] = id }
        }
        // A holder that died while no supervisor ran is no one's doing; a process that is not
        // the recorded holder may be a reused pid, or a forgery: warning; a state file refused
        // (a symlink, writable by others, malformed) in root's own directory is an integrity
        // problem: error.
        let level: Logger.Level = reason == "holder_gone" ? .notice : record == nil ? .error : .warning
        audit.record(.groupDropped, level: level,
                     "Dropped the record of group \(name): \(why)\(ended > 0 ? "; ended \(counted(ended, "session"))" : "")",
                     fields: fields)
    }
}
