#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import POSIX
import RPC
import Systemd

/// Once a second for each group, on the loop: a group whose lifetime is
/// over or that was idle too long is destroyed, its usage snapshot (what
/// `list` shows) is read again, and OOM kills in it are reported; cgroups
/// left behind by ended groups and sessions are removed once empty. The work
/// is spread over ten turns a second, a tenth of the groups each, so that
/// thousands of groups never hold the loop for long at once. Each group costs
/// a few reads of cgroupfs files: kernel files, which never wait on a user.
final class Sweep {
    private let registry: GroupRegistry
    private let containment: Containment
    private let destroyer: DestroyHandler
    private let bus: EventBus
    private let audit: Audit
    private var timer: EventSource?
    private var tick = 0

    static let turnsPerSecond = 10

    init(loop: EventLoop, registry: GroupRegistry, containment: Containment, destroyer: DestroyHandler, bus: EventBus,
         audit: Audit) throws {
        self.registry = registry
        self.containment = containment
        self.destroyer = destroyer
        self.bus = bus
        self.audit = audit
        timer = try loop.addRepeatingTimer(everyMicroseconds: UInt64(1_000_000 / Self.turnsPerSecond)) { [weak self] in
            self?.turn()
        }
    }

    deinit { timer?.cancel() }

    func turn() {
        let slice = tick % Self.turnsPerSecond
        tick += 1
        let now = monotonicSeconds()
        let wallClock = Timestamp.now()
        for (index, group) in registry.all.enumerated() where index % Self.turnsPerSecond == slice && !group.destroying {
            if let expires = group.record.expires, wallClock >= expires {
                destroyer.expire(group, reason: "lifetime")
                continue
            }
            if let idle = group.record.idle {
                if !group.sessions.isEmpty || !group.launching.isEmpty || containment.hasRunningSession(group) {
                    group.lastActive = now
                } else if now - group.lastActive >= Double(idle) {
                    destroyer.expire(group, reason: "idle")
                    continue
                }
            }
            group.usageSnapshot = ResourceUsage(containment.node(of: group).usage())
            reportOOMKills(group)
        }
        if slice == 0 { containment.sweepLeftovers() }
    }

    /// A rise in the OOM kill count of the group's cgroup: the journal and the event stream say so.
    func reportOOMKills(_ group: Group) {
        guard let kills = containment.oomKills(group), kills > group.oomKillsReported else { return }
        let new = kills - group.oomKillsReported
        group.oomKillsReported = kills
        let limit = group.record.limits.memory.map { " (memory limit \(ByteSize.format($0)))" } ?? ""
        audit.record(.groupOOM, level: .warning,
                     "The OOM killer ended \((new == 1 ? "1 process" : "\(new) processes")) in group \(group.name)\(limit)",
                     fields: [AuditField.name: group.name, AuditField.groupID: group.id, AuditField.ownerUID: String(group.owner),
                              AuditField.oomKills: String(kills), AuditField.cgroup: containment.node(of: group).unifiedPath])
        bus.groupEvent(.groupOOM, group, oomKills: kills)
    }
}
