#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import Namespaces
import POSIX
import RPC

/// `describe`: what the server offers the caller, from the policy in force and the
/// counts the other handlers keep. Like `version` it changes nothing, and it waits on
/// nothing: the caller's identity is the connection's, the counts are in memory, and
/// the features are procfs, cgroupfs's layout read at start-up, and two stat(2)s of
/// /dev and /usr/bin, as create's own checks make them.
final class DescribeHandler {
    private let policies: PolicyHolder
    private let registry: GroupRegistry
    private let subordinates: SubordinateOwners
    private let createHandler: CreateHandler
    private let enterHandler: EnterHandler
    private let listener: Listener
    private let layout: CgroupLayout

    init(policies: PolicyHolder, registry: GroupRegistry, subordinates: SubordinateOwners, createHandler: CreateHandler,
         enterHandler: EnterHandler, listener: Listener, layout: CgroupLayout) {
        self.policies = policies
        self.registry = registry
        self.subordinates = subordinates
        self.createHandler = createHandler
        self.enterHandler = enterHandler
        self.listener = listener
        self.layout = layout
    }

    private var policy: Policy { policies.current }

    func describe(_ context: RequestContext) -> Reply {
        let caller = context.caller
        // Per-user limits bind everyone but root (CreateHandler, EnterHandler, Containment).
        let bound = caller.uid != 0
        let charged = subordinates.chargedUID(caller.uid)
        let allowed: [NamespaceKind] = !policy.mayCreate(caller) ? []
            : policy.isAdmin(caller) ? NamespaceKind.allCases : NamespaceKind.allCases.filter(policy.namespaces.contains)
        let limits = DescribeLimits(
            maxLine: UInt64(policy.maxLine),
            groups: bound ? Allowance(max: UInt64(policy.groupsPerUser), used: UInt64(createHandler.groupsHeld(by: caller.uid))) : nil,
            // How many groups the others hold is theirs: root and admins only (an oracle otherwise).
            serverGroups: policy.isAdmin(caller)
                ? Allowance(max: UInt64(policy.maxGroups), used: UInt64(registry.count + registry.reservedCount)) : nil,
            sessions: bound ? Allowance(max: UInt64(policy.sessionsPerUser), used: UInt64(enterHandler.sessionsRunning(chargedTo: charged))) : nil,
            connections: Allowance(max: UInt64(policy.connectionsPerUser), used: UInt64(listener.openConnections(chargedTo: charged))),
            tmpfsSize: bound ? policy.tmpfsSize : nil,
            tmpfsPerUser: bound ? Allowance(max: policy.tmpfsPerUser, used: createHandler.tmpfsHeld(by: caller.uid)) : nil,
            perUser: bound ? userLimits : nil,
            perGroup: GroupLimits(memory: policy.memoryPerGroup, pids: policy.pidsPerGroup, cpus: policy.cpusPerGroup))
        let result = DescribeResult(allowedKinds: allowed.map(\.rawValue), defaultKinds: NamespaceKind.defaultSet.map(\.rawValue),
                                    limits: limits, features: features)
        return .result(result.json)
    }

    /// The per-user limits the kernel holds a person to: those of controllers this host has
    /// (Containment leaves the others off users/UID).
    private var userLimits: GroupLimits {
        var limits = policy.userLimits
        if layout.place(of: .memory) == .absent { limits.memory = nil }
        if layout.place(of: .pids) == .absent { limits.pids = nil }
        if layout.place(of: .cpu) == .absent { limits.cpus = nil }
        return limits
    }

    private var features: DescribeFeatures {
        let places = CgroupController.allCases.map { controller -> (name: String, place: String) in
            switch layout.place(of: controller) {
            case .unified: (controller.rawValue, "v2")
            case .legacy: (controller.rawValue, "v1")
            case .absent: (controller.rawValue, "none")
            }
        }
        return DescribeFeatures(userNamespaces: NamespaceKind.user.isAvailable, timeNamespaces: NamespaceKind.time.isAvailable,
                                cgroups: places.contains { $0.place == "v1" } ? "hybrid" : "v2", controllers: places,
                                pasta: PastaLauncher.missing == nil, overlayRoot: OverlayRootRules.missing == nil)
    }
}
