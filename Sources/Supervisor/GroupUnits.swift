#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import Logging
import Systemd

/// Each group a unit of systemd's (issue 19). Where systemd is the init system, a group's
/// cgroup is a transient scope, `nsgroup-NAME.scope` in its person's slice
/// `nsgroup-UID.slice` (below `nsgroup.slice`), started over D-Bus with `Delegate=yes` and
/// the group's limits as its properties (MemoryMax, TasksMax, CPUWeight,
/// CPUQuotaPerSecUSec); the per-user limits are the slice's. Inside the scope nsgroupd makes
/// the same leaves as in its own tree (holder, session-ID, pasta). So `systemctl status`,
/// `systemd-cgls` and `systemctl kill` see each group, and journald charges a session's log
/// lines to its group's unit. Elsewhere (no systemd, or the controllers in v1 hierarchies)
/// groups stay below nsgroupd's own cgroup, as `Containment` lays them out.
///
/// Owned by `Containment`; every call is asynchronous on the loop (`UnitManager`).
final class GroupUnits {
    let manager: UnitManager
    /// Where systemd puts the scopes.
    let cgroups: UnitCgroups
    private let loop: EventLoop
    private let logger: Logger
    /// Starts waiting for a scope of the same name to go, by scope name.
    private var retries: [String: EventSource] = [:]
    /// The per-user limits last set on each user's slice.
    private var sliceLimits: [uid_t: CgroupLimits] = [:]

    static let slice = "nsgroup.slice"
    /// How often a start that found an older scope of its name tries again, 100 ms apart.
    static let attempts = 30

    init(manager: UnitManager, cgroups: UnitCgroups, loop: EventLoop, logger: Logger) {
        self.manager = manager
        self.cgroups = cgroups
        self.loop = loop
        self.logger = logger
    }

    /// Why groups cannot be units on this host, or nil when they can: systemd must be the init
    /// system, and every controller nsgroupd uses must be in the unified hierarchy (a scope's
    /// v1 cgroups are systemd's to make, and nsgroupd would have no leaves in them).
    static func unavailable(booted: Bool, layout: CgroupLayout) -> String? {
        guard booted else { return "systemd is not the init system" }
        let legacy = CgroupController.allCases.filter {
            if case .legacy = layout.place(of: $0) { return true }
            return false
        }
        guard legacy.isEmpty else {
            return "\(legacy.map(\.rawValue).joined(separator: ", ")) \(legacy.count == 1 ? "is" : "are") in a v1 hierarchy, where a scope's cgroups are systemd's alone"
        }
        return nil
    }

    static func scopeName(_ group: String) -> String { "nsgroup-\(group).scope" }
    /// The scope of `uid`'s sessions in group `group`, someone else's: "nsgroup-web:1002.scope"
    /// (no group name has a ':', so it is nobody's group scope).
    static func guestScopeName(_ group: String, _ uid: uid_t) -> String { "nsgroup-\(group):\(uid).scope" }
    static func sliceName(_ uid: uid_t) -> String { "nsgroup-\(uid).slice" }

    /// The unit properties of `limits`; an unset limit is systemd's "infinity" (or, for the
    /// weight, "not set"), so that a limit taken away is taken away in systemd too.
    static func properties(_ limits: CgroupLimits) -> [UnitProperty] {
        [
            .uint64("MemoryMax", limits.memory ?? .max),
            .uint64("TasksMax", limits.pids ?? .max),
            .uint64("CPUWeight", limits.cpuWeight ?? .max),
            .uint64("CPUQuotaPerSecUSec", limits.cpus.map { UInt64(($0 * 1_000_000).rounded()) } ?? .max),
        ]
    }

    /// The per-user limits as `user`'s slice's properties (runtime: until the next boot, in a
    /// drop-in that outlives the slice's own comings and goings). Sent when they differ from
    /// what this nsgroupd last set; `completion` gets systemd's error, if any (a create or an
    /// enter that needs the slice fails then: a limit must not silently not hold).
    func setSliceLimits(_ user: uid_t, _ limits: CgroupLimits, completion: ((UnitError?) -> Void)? = nil) {
        if sliceLimits[user] == limits {
            completion?(nil)
            return
        }
        let name = Self.sliceName(user)
        manager.setUnitProperties(name, Self.properties(limits)) { [weak self, logger] error in
            if let error {
                logger.error("Failed to set the per-user limits of \(name): \(error)")
            } else {
                self?.sliceLimits[user] = limits
            }
            completion?(error)
        }
    }

    /// Starts the scope `unit` (a group's, or a guest's in a group) around the process `anchor`,
    /// in `user`'s slice, with `limits`, and calls `completion` with its cgroup once the anchor
    /// is in it.
    func startScope(_ unit: String, user: uid_t, description: String, anchor: pid_t, limits: CgroupLimits,
                    completion: @escaping (Result<CgroupNode, UnitError>) -> Void) {
        let properties: [UnitProperty] = [
            .string("Description", description),
            .string("Slice", Self.sliceName(user)),
            .bool("Delegate", true),
            // A scope that failed is not kept loaded: its name is the next group's of that name.
            .string("CollectMode", "inactive-or-failed"),
            .uint32s("PIDs", [UInt32(bitPattern: anchor)]),
        ] + Self.properties(limits)
        start(unit, user: user, properties, attempt: 1, completion)
    }

    private func start(_ unit: String, user: uid_t, _ properties: [UnitProperty], attempt: Int,
                       _ completion: @escaping (Result<CgroupNode, UnitError>) -> Void) {
        manager.startTransientUnit(unit, properties) { [weak self] error in
            guard let self else { return }
            if let error {
                // The scope of an earlier group of this name (or an earlier guest scope), whose
                // processes are still dying or that systemd has not collected yet (its cgroup
                // may be gone already): what is left in it goes (nothing outlives its group),
                // and the start is tried again a little later. A scope of that name that this
                // nsgroupd did not make (another instance's, someone's systemd-run) is left
                // alone, and the start fails.
                guard error.name == "org.freedesktop.systemd1.UnitExists", attempt < Self.attempts else {
                    return completion(.failure(error))
                }
                if let earlier = self.cgroups.scopes().first(where: { $0.unit == unit }) {
                    guard self.cgroups.isOurs(earlier.node) else {
                        return completion(.failure(UnitError(name: error.name, "\(unit) exists and is not this nsgroupd's (\(UnitCgroups.mark) of \(earlier.node.unifiedPath) is not \(self.cgroups.instance))")))
                    }
                    try? earlier.node.killAll()
                }
                do throws(SystemdError) {
                    self.retries[unit] = try self.loop.addRepeatingTimer(everyMicroseconds: 100_000) { [weak self] in
                        guard let self else { return }
                        self.retries[unit] = nil
                        self.start(unit, user: user, properties, attempt: attempt + 1, completion)
                    }
                } catch {
                    completion(.failure(UnitError("cannot wait for the earlier \(unit) to go: \(error)")))
                }
                return
            }
            let node = self.cgroups.node(of: unit, user: user)
            guard node.exists() else {
                return completion(.failure(UnitError("systemd started \(unit), but its cgroup is not \(node.unifiedPath)")))
            }
            do throws(CgroupError) {
                try self.cgroups.mark(node)
            } catch {
                return completion(.failure(UnitError("cannot mark \(unit)'s cgroup as this nsgroupd's: \(error)")))
            }
            completion(.success(node))
        }
    }
}

/// Where systemd puts the cgroups of nsgroup's units: the unified hierarchy seen from its
/// root, `/nsgroup.slice/nsgroup-UID.slice/nsgroup-NAME.scope`.
///
/// A scope's cgroup is marked with the nsgroupd instance that made it (`mark`, an extended
/// attribute holding its state directory, as systemd marks cgroups with
/// trusted.invocation_id): unit names are the machine's, and a second nsgroupd (a test's, a
/// benchmark's) must never take the first one's scopes for strays, nor the reverse.
struct UnitCgroups {
    let tree: CgroupTree
    /// This instance: its state directory ("/run/nsgroup").
    let instance: String

    static let mark = "trusted.nsgroup.instance"

    init(layout: CgroupLayout, instance: String) {
        tree = CgroupTree(layout: layout.atHierarchyRoots, subdirectory: nil)
        self.instance = instance
    }

    /// Whether this instance made the scope whose cgroup is `node`.
    func isOurs(_ node: CgroupNode) -> Bool { node.attribute(Self.mark) == instance }

    /// Marks a scope's cgroup as this instance's, as soon as systemd has made it.
    func mark(_ node: CgroupNode) throws(CgroupError) { try node.setAttribute(Self.mark, instance) }

    /// The cgroup of `unit` in `user`'s slice.
    func node(of unit: String, user: uid_t) -> CgroupNode {
        tree.node([GroupUnits.slice, GroupUnits.sliceName(user), unit])
    }

    func scopeNode(user: uid_t, group name: String) -> CgroupNode { node(of: GroupUnits.scopeName(name), user: user) }

    func guestScopeNode(user: uid_t, group name: String) -> CgroupNode {
        node(of: GroupUnits.guestScopeName(name, user), user: user)
    }

    /// The scopes this instance made (`mark`).
    func ownScopes() -> [UnitScope] { scopes().filter { isOurs($0.node) } }

    /// The scopes below nsgroup.slice: groups' (in their person's slice) and guests' (in the
    /// guest's slice, its uid in the name too); anything else there is not nsgroupd's.
    func scopes() -> [UnitScope] {
        var found: [UnitScope] = []
        let top = tree.node([GroupUnits.slice])
        for sliceName in top.childNames() where sliceName.hasPrefix("nsgroup-") && sliceName.hasSuffix(".slice") {
            guard let uid = uid_t(sliceName.dropFirst("nsgroup-".count).dropLast(".slice".count)) else { continue }
            let slice = top.child(sliceName)
            for unit in slice.childNames() where unit.hasPrefix("nsgroup-") && unit.hasSuffix(".scope") {
                let stem = unit.dropFirst("nsgroup-".count).dropLast(".scope".count)
                let parts = stem.split(separator: ":", omittingEmptySubsequences: false)
                switch parts.count {
                case 1:
                    found.append(UnitScope(user: uid, name: String(stem), guest: false, unit: unit, node: slice.child(unit)))
                case 2 where uid_t(parts[1]) == uid:
                    found.append(UnitScope(user: uid, name: String(parts[0]), guest: true, unit: unit, node: slice.child(unit)))
                default:
                    continue
                }
            }
        }
        return found
    }
}

/// A scope of nsgroupd's found below nsgroup.slice.
struct UnitScope {
    /// The uid of its slice: the group's person, or the guest.
    let user: uid_t
    /// The group's name.
    let name: String
    /// Whether it holds a guest's sessions (`nsgroup-NAME:UID.scope`) rather than the group.
    let guest: Bool
    let unit: String
    let node: CgroupNode
}
