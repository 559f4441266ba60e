#if canImport(Glibc)
import Glibc
#endif
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

    init(loop: EventLoop, registry: GroupRegistry, sessions: SessionTable, bus: EventBus, audit: Audit) {
        self.loop = loop
        self.registry = registry
        self.sessions = sessions
        self.bus = bus
        self.audit = audit
    }

    /// Kills the holder through its pidfd and answers once it has been
    /// reaped. In a group with a pid namespace the holder is PID 1, so the
    /// kernel takes every process of the group down with it.
    func destroy(_ params: NameParams, _ context: RequestContext) throws(RPCError) -> Reply {
        let group = try registry.group(params.name, caller: context.caller, action: "destroy", manage: true)
        if !group.destroying {
            group.destroying = true
            do {
                try group.holder.signal(SIGKILL)
            } catch where error.rawValue == ESRCH {
                // Already gone: its pidfd reports it on the next loop iteration.
            } catch {
                group.destroying = false
                throw RPCError(.internalError, "cannot destroy group \"\(params.name)\": pidfd_send_signal: \(error)")
            }
            // Without a pid namespace the kernel does not take the group's
            // processes down with the holder: end what we started there.
            sessions.killAll(in: group)
            CrashPoint.reach(.destroyKilled)
        }
        group.destroyWaiters.append(context.later())
        return .deferred
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
        // Sessions do not outlive their group; they are still reaped and
        // reported by their own watches.
        sessions.killAll(in: group)
        do {
            try registry.removeRecord(name: group.name)
        } catch {
            audit.logger.error("Failed to remove the state file of group \(group.name): \(error), ignoring")
        }
        let fields = [
            AuditField.name: group.name,
            AuditField.ownerUID: String(group.owner),
            AuditField.holderPID: String(group.record.holderPID),
        ]
        bus.groupEvent(group.destroying ? .groupDestroyed : .groupFailed, group)
        if group.destroying {
            audit.record(.groupDestroyed, "Destroyed group \(group.name)",
                         fields: fields.merging([AuditField.operation: "destroy", AuditField.result: "ok"]) { $1 })
        } else {
            let how = status.map { $0.description } ?? "ended"
            audit.record(.holderDied, level: .warning,
                         "Holder \(group.record.holderPID) of group \(group.name) \(how) unexpectedly; group removed",
                         fields: fields.merging([AuditField.result: "holder_died"]) { $1 })
        }
        let waiters = group.destroyWaiters
        group.destroyWaiters.removeAll()
        for waiter in waiters { waiter.finish(.result(.object([:]))) }
    }
}
