#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import POSIX
import RPC
import Systemd

/// `destroy`, and the end of every group however it comes: the watch on each
/// holder's pidfd, and what happens when the holder is gone.
final class DestroyHandler {
    private let loop: EventLoop
    private let registry: GroupRegistry
    /// Ends the sessions of a group going away.
    private let sessions: SessionTable
    private let bus: EventBus
    private let audit: Audit
    private let containment: Containment

    init(loop: EventLoop, registry: GroupRegistry, sessions: SessionTable, bus: EventBus, audit: Audit,
         containment: Containment) {
        self.loop = loop
        self.registry = registry
        self.sessions = sessions
        self.bus = bus
        self.audit = audit
        self.containment = containment
    }

    /// Kills everything in the group's cgroup and answers once the holder
    /// has been reaped.
    func destroy(_ params: NameParams, _ context: RequestContext) throws(RPCError) -> Reply {
        let group = try registry.group(params.name, caller: context.caller, action: "destroy", manage: true)
        // The answer comes once the group has left the registry: its record names it here.
        context.details.fields[AuditField.groupID] = group.id
        if !group.destroying {
            do throws(Errno) {
                try end(group, reason: "request", by: context.caller.uid)
            } catch {
                throw RPCError(.internalError, "cannot destroy group \"\(params.name)\": pidfd_send_signal: \(error)")
            }
        }
        group.destroyWaiters.append(context.later())
        return .deferred
    }

    /// Destroys a group nobody asked to destroy: its lifetime is over, or it
    /// was idle too long. The journal and the event stream say why.
    func expire(_ group: Group, reason: String) {
        guard !group.destroying else { return }
        do throws(Errno) {
            try end(group, reason: reason)
        } catch {
            audit.logger.error("Failed to destroy group \(group.name) (\(reason)): pidfd_send_signal: \(error)")
        }
    }

    /// Kills the holder through its pidfd and every process of the group
    /// through its cgroup (cgroup.kill): with a pid namespace the kernel
    /// would take them down with the holder, its PID 1; without one, what a
    /// session double-forked would live on. Then what was started here.
    /// What ended its sessions is marked first (`reason`, and `by` whom for a request):
    /// their end records say so (SessionEnd).
    private func end(_ group: Group, reason: String, by uid: uid_t? = nil) throws(Errno) {
        group.destroying = true
        group.destroyReason = reason
        group.destroyedBy = uid
        do {
            try group.holder.signal(SIGKILL)
        } catch where error.rawValue == ESRCH {
            // Already gone: its pidfd reports it on the next loop iteration.
        } catch {
            group.destroying = false
            throw error
        }
        killContents(of: group)
        CrashPoint.reach(.destroyKilled)
    }

    /// Everything in the group's cgroup, and enters still under way.
    private func killContents(of group: Group) {
        do throws(CgroupError) {
            try containment.killAll(group)
        } catch {
            audit.logger.error("Failed to kill the processes of group \(group.name) through \(containment.node(of: group).unifiedPath): \(error)")
        }
        sessions.killAll(in: group)
    }

    /// Watches the holder's pidfd, which becomes readable when it exits.
    func watchHolder(_ group: Group) throws {
        group.holderWatch = try loop.addIO(fd: group.holder.rawValue, events: .readable) { [weak self, weak group] _ in
            guard let self, let group else { return }
            self.holderExited(group)
        }
    }

    /// The holder is gone, by destroy or otherwise: reap it, drop the group
    /// and its record, and answer every destroy that waited.
    private func holderExited(_ group: Group) {
        let status = try? group.holder.reap()
        group.holderWatch?.cancel()
        group.holderWatch = nil
        CrashPoint.reach(.destroyReaped)
        NetnsPublisher.unpublish(of: group.record)
        registry.unregister(group)
        // Nothing outlives its group (a holder that died leaves what the
        // group started); sessions are still reaped and reported by their
        // own watches. Its cgroup goes once empty (drained, below).
        killContents(of: group)
        do {
            try registry.removeRecord(name: group.name)
        } catch {
            audit.logger.error("Failed to remove the state file of group \(group.name): \(error), ignoring")
        }
        let fields = [
            AuditField.name: group.name,
            AuditField.groupID: group.id,
            AuditField.ownerUID: String(group.owner),
            AuditField.holderPID: String(group.record.holderPID),
        ]
        bus.groupEvent(group.destroying ? .groupDestroyed : .groupFailed, group,
                       reason: group.destroying ? group.destroyReason : nil)
        if group.destroying {
            let why: AuditText = switch group.destroyReason {
            case "lifetime": ": its lifetime of \(group.record.lifetime.map { "\($0) s" } ?? "?") is over"
            case "idle": ": no session ran for \(group.record.idle.map { "\($0) s" } ?? "?")"
            default: group.destroyedBy.map { " at the request of " + audit.uid($0) } ?? ""
            }
            // Who destroyed it is said here too (none for an expiry: the supervisor did): the
            // destroy's own record comes only when it answers, once the group's processes are
            // gone, and a supervisor stopped before then never writes it.
            var destroyer = [AuditField.endedBy: group.destroyReason == "request" ? "destroy" : "expired"]
            if group.destroyReason == "request", let uid = group.destroyedBy { destroyer[AuditField.endedByUID] = String(uid) }
            audit.record(.groupDestroyed, "Destroyed group \(group.name)\(why)",
                         fields: fields.merging([AuditField.operation: "destroy", AuditField.result: "ok",
                                                 AuditField.reason: group.destroyReason]) { $1 }.merging(destroyer) { $1 })
        } else {
            let how = status.map { $0.description } ?? "ended"
            audit.record(.holderDied, level: .warning,
                         "Holder \(group.record.holderPID) of group \(group.name) \(how) unexpectedly; group removed",
                         fields: fields.merging([AuditField.result: "holder_died"]) { $1 })
        }
        drain(group)
    }

    /// How long a destroy waits for the processes cgroup.kill ended to be
    /// gone (a process in uninterruptible sleep, on a hung NFS server, takes
    /// its time), checking every `drainTick` microseconds.
    static let drainSeconds = 10.0
    static let drainTick: UInt64 = 10_000

    /// Answers the destroys that waited once nothing is left in the group's
    /// cgroups, and removes them: when `{}` arrives, the name can be taken
    /// again at once (PROTOCOL.md, destroy). Until then the name stays taken.
    /// Nothing waits: a timer on the loop looks again every few milliseconds,
    /// for at most `drainSeconds`; after that the answer goes anyway and the
    /// cgroups are left for the sweep.
    private func drain(_ group: Group) {
        let finish = { [registry, containment] in
            registry.release(group.name)
            containment.discardGroup(user: group.record.cgroupUser, name: group.name, guests: group.guests)
            let waiters = group.destroyWaiters
            group.destroyWaiters.removeAll()
            for waiter in waiters { waiter.finish(.result(.object([:]))) }
        }
        if containment.isEmpty(group) { return finish() }
        registry.reserve(group.name, chargedTo: group.record.cgroupUser, tmpfs: [])
        let deadline = monotonicSeconds() + Self.drainSeconds
        var timer: EventSource?
        do {
            timer = try loop.addRepeatingTimer(everyMicroseconds: Self.drainTick) { [containment, audit] in
                let empty = containment.isEmpty(group)
                guard empty || monotonicSeconds() >= deadline else { return }
                if !empty {
                    audit.logger.warning("Processes of group \(group.name) still run \(Int(Self.drainSeconds)) s after cgroup.kill; its cgroup is left for later")
                }
                timer?.cancel()
                timer = nil
                finish()
            }
        } catch {
            finish()
        }
    }
}
