#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import Namespaces
import POSIX
import RPC

/// `create`: checks a request against the rules of each concept and the
/// policy, starts the holder, records the group before the holder may go on,
/// and registers it.
final class CreateHandler {
    private let holders: HolderSpawner
    private let registry: GroupRegistry
    private let launches: Launches
    private let reaper: Reaper
    private let pasta: PastaLauncher
    /// Watches each new holder, as it watches every group's.
    private let destroyer: DestroyHandler
    private let bus: EventBus
    private let policies: PolicyHolder
    private let subordinates: SubordinateOwners
    private let audit: Audit
    private let ttyGroup: gid_t
    private let containment: Containment

    init(holders: consuming HolderSpawner, registry: GroupRegistry, launches: Launches, reaper: Reaper, pasta: PastaLauncher,
         destroyer: DestroyHandler, bus: EventBus, policies: PolicyHolder, subordinates: SubordinateOwners,
         audit: Audit, ttyGroup: gid_t, containment: Containment) {
        self.containment = containment
        self.pasta = pasta
        self.holders = holders
        self.registry = registry
        self.launches = launches
        self.reaper = reaper
        self.destroyer = destroyer
        self.bus = bus
        self.policies = policies
        self.subordinates = subordinates
        self.audit = audit
        self.ttyGroup = ttyGroup
    }

    private var policy: Policy { policies.current }

    func create(_ params: CreateParams, _ context: RequestContext) throws(RPCError) -> Reply {
        var kinds = try Self.namespaceKinds(params.namespaces)
        // Without "namespaces", an overlay root or a pasta network brings the user namespace it needs.
        if params.namespaces == nil, params.root == .overlay || params.network == .pasta { kinds.insert(.user) }
        let hostname = try Self.hostname(params.hostname, kinds: kinds, name: params.name)
        let requestedTmpfs = try Self.tmpfsMounts(params.tmpfs, kinds: kinds)
        let binds = try Self.bindMounts(params.binds, kinds: kinds)
        let home = try privateMounts(params, kinds: kinds, caller: context.caller, home: context.identity.entry?.home)
        try Self.distinctTargets(binds: home.binds + binds, tmpfs: home.tmpfs + requestedTmpfs)
        let members = try Member.resolve(params.members, method: "create", names: context.names)
        if !members.isEmpty { RequestFields.memberFields(members, added: true, into: context.details) }
        RequestFields.membersAfter(members, into: context.details)
        let offsets = try Self.timeOffsets(params, kinds: kinds)
        let netnsName = try Self.netnsName(params.netnsName, kinds: kinds)
        let pastaRecord = try PastaLauncher.check(network: params.network, publish: params.publish, kinds: kinds,
                                                  caller: context.caller.uid)
        try OverlayRootRules.check(root: params.root, persist: params.persist, kinds: kinds)
        if params.root == .overlay, !members.isEmpty { throw OverlayRootRules.noMembers("create") }
        try checkCreatePolicy(context.caller, name: params.name, kinds: kinds)
        // The limits of its cgroup: those asked for, within nsgroupd.conf's maxima (root is not
        // held to them, as to the other per-user limits), and its defaults for the rest.
        let limits = try policy.resolve(params.limits, holdingToMaxima: context.caller.uid != 0)
        context.details.fields[AuditField.limits] = limits.auditText
        // An overlay root's upper layer is a tmpfs too (without persist), sized and counted as one;
        // it is charged as a mount on "/" but made by the holder's fuse-overlayfs, not in the list.
        let upper = params.root == .overlay && params.persist == nil ? [TmpfsMount(path: "/", options: "mode=0755")] : []
        let checked = try checkTmpfsPolicy(requestedTmpfs, privateMounts: upper + home.tmpfs, caller: context.caller,
                                           home: context.identity.entry?.home, kinds: kinds)
        let tmpfs = checked.filter { $0.path != "/" }
        let rootUpper = checked.first { $0.path == "/" }?.options
        if (!binds.isEmpty || netnsName != nil) && !policy.isAdmin(context.caller) {
            throw RPCError(.permissionDenied, binds.isEmpty
                ? "create: publishing a net namespace in /run/netns is for \(Policy.listed(policy.admins)): the names are the host's"
                : "create: bind mounts are for \(Policy.listed(policy.admins)): a bind chosen by a user could hide files from programs run inside")
        }
        if let netnsName, NetnsPublisher.exists(netnsName) {
            throw RPCError(.alreadyExists, "\(NetnsPublisher.path(netnsName)) already exists")
        }
        let userMaps = kinds.contains(.user) ? SubordinateIDs.maps(for: context.caller, name: context.identity.entry?.name) : nil

        // Without a user namespace the holder is host root: each tmpfs belongs to the owner,
        // but for a private /tmp and /var/tmp, which are root's as the host's are.
        let owned = kinds.contains(.user) ? tmpfs : tmpfs.map {
            home.shared.contains($0.path) ? $0
                : TmpfsMount(path: $0.path, options: $0.options + ",uid=\(context.caller.uid),gid=\(context.caller.gid)")
        }
        var spec = HolderSpec(name: params.name, namespaces: kinds, hostname: hostname, tmpfs: owned, binds: home.binds + binds,
                              ttyGroup: ttyGroup, userMaps: userMaps,
                              monotonicOffset: offsets.monotonic, boottimeOffset: offsets.boottime)
        spec.sharedTmpfs = home.shared
        if params.root == .overlay {
            spec.overlayRoot = OverlayRoot(executable: OverlayRootRules.executable,
                                           upper: params.persist.map { .persist($0) } ?? .tmpfs(rootUpper ?? "mode=0755"))
        }
        // Without a user namespace the holder is root: tmpfs targets are looked up as the caller,
        // and everyone enters as themselves, so someone who is not an admin may only hide a
        // directory of their own (README, "Who can run what"). Admins may cover any directory.
        if !kinds.contains(.user) {
            spec.resolveAs = ResolveCredentials(uid: context.caller.uid, gid: context.caller.gid, groups: context.caller.groups,
                                                requireOwner: !policy.isAdmin(context.caller))
        }
        // Its cgroup first, below its person's (a subordinate uid's groups are
        // its owner's: one person, one per-user limit): the holder is cloned into it, and everything it and
        // its sessions start is counted, limited and killed there.
        let charged = subordinates.chargedUID(context.caller.uid)
        var record = GroupRecord(
            name: params.name, owner: context.caller.uid, ownerName: context.identity.name,
            namespaces: [], holderPID: 0, holderStartTime: 0,
            created: Timestamp.now(), hostname: hostname, tmpfs: tmpfs, members: members, sessions: [])
        record.binds = binds
        record.userMaps = userMaps
        record.monotonicOffset = offsets.monotonic
        record.boottimeOffset = offsets.boottime
        record.netnsName = netnsName
        record.pasta = pastaRecord
        record.limits = limits
        record.cgroupUser = charged
        if let lifetime = params.lifetime {
            record.lifetime = lifetime
            record.expires = record.created + lifetime
        }
        record.idle = params.idle
        record.privateTmp = params.privateTmp
        record.privateHome = params.privateHome || params.home != nil
        record.home = params.home
        record.root = params.root
        record.persist = params.persist
        record.rootUpper = rootUpper
        // This instance's id, in its state file and every record about it.
        record.groupID = RandomID.make()
        let loginUID = pastaRecord != nil ? context.connection.connectingProcess()?.loginUID : nil
        if let units = containment.units {
            try createUnit(units, spec: spec, record: record, tmpfs: checked, loginUID: loginUID, context)
            return .deferred
        }
        let cgroup: (node: CgroupNode, files: CgroupFiles)
        do throws(CgroupError) {
            cgroup = try containment.prepareGroup(user: charged, name: params.name, limits: limits)
        } catch {
            throw RPCError.operationFailed("cannot create group \"\(params.name)\": its cgroup", error)
        }
        let launch: HolderLaunch
        do throws(SpawnError) {
            launch = try holders.start(spec, cgroup: cgroup.files.holder)
        } catch {
            containment.discardGroup(user: charged, name: params.name)
            throw RPCError.operationFailed("cannot create group \"\(params.name)\"", error)
        }
        withExtendedLifetime(cgroup.files) {}
        // From here the name is taken and the group counts towards the limits, while the
        // holder sets itself up; the answer comes when it has (or has failed).
        registry.reserve(params.name, chargedTo: charged, tmpfs: checked)
        record.holderPID = launch.pid
        watch(Pending(launch: launch, record: record, caller: context.caller, completion: context.later(), details: context.details),
              loginUID: loginUID)
        return .deferred
    }

    /// The create of a group that is a unit of systemd's (GroupUnits): its scope is started
    /// first, around an anchor in a staging cgroup, then its holder is cloned into the scope.
    /// The name is taken (reserved) from the start; the answer comes as for any create.
    private func createUnit(_ units: GroupUnits, spec: HolderSpec, record: GroupRecord, tmpfs: [TmpfsMount], loginUID: UInt32?,
                            _ context: RequestContext) throws(RPCError) {
        let name = record.name
        let user = record.cgroupUser
        let staging: CgroupNode
        do throws(CgroupError) {
            staging = try containment.makeGroupNode(user: user, name: name, limits: record.limits)
        } catch {
            throw RPCError.operationFailed("cannot create group \"\(name)\": its cgroup", error)
        }
        let anchor: Anchor
        do {
            let directory = try staging.openForClone()
            anchor = try Anchor(cgroup: directory.rawValue)
        } catch {
            containment.discardGroup(user: user, name: name)
            if let error = error as? SpawnError { throw RPCError.operationFailed("cannot create group \"\(name)\": its unit's first process", error) }
            throw RPCError.operationFailed("cannot create group \"\(name)\": its cgroup", error as! CgroupError)
        }
        registry.reserve(name, chargedTo: user, tmpfs: tmpfs)
        let completion = context.later()
        let caller = context.caller
        let details = context.details
        let scopeName = GroupUnits.scopeName(name)
        containment.startScope(units, scopeName, user: user, description: "nsgroup group \(name) of \(record.ownerName)",
                               anchor: anchor.pid, limits: record.limits) { [weak self] result in
            guard let self else { return }
            var scope: CgroupNode?
            // The anchor goes back to the staging cgroup and ends: the holder keeps the scope.
            func releaseAnchor() {
                try? staging.move(anchor.pid)
                if let pidfd = anchor.takePidfd() { self.reaper.kill(pidfd) }
                self.containment.discard(staging)
            }
            func fail(_ error: RPCError) {
                releaseAnchor()
                try? scope?.killAll()
                self.registry.release(name)
                self.containment.discardGroup(user: user, name: name)
                completion.finish(.error(error))
            }
            switch result {
            case .failure(let error):
                return fail(RPCError.unitNotStarted("cannot create group \"\(name)\"", unit: scopeName, error))
            case .success(let node):
                scope = node
            }
            guard let scope, !completion.isCancelled else {
                return fail(RPCError(.operationFailed, "cannot create group \"\(name)\": the client went away"))
            }
            let files: CgroupFiles
            do throws(CgroupError) {
                files = try self.containment.prepareScope(scope)
            } catch {
                return fail(RPCError.operationFailed("cannot create group \"\(name)\": its cgroup in \(scopeName)", error))
            }
            let launch: HolderLaunch
            do throws(SpawnError) {
                launch = try self.holders.start(spec, cgroup: files.holder)
            } catch {
                return fail(RPCError.operationFailed("cannot create group \"\(name)\"", error))
            }
            withExtendedLifetime(files) {}
            releaseAnchor()
            var started = record
            started.holderPID = launch.pid
            let pending = Pending(launch: launch, record: started, caller: caller, completion: completion, details: details)
            pending.scope = scope
            self.watch(pending, loginUID: loginUID)
        }
    }

    /// Follows a holder until it is set up (advance, settle) or its time is up.
    private func watch(_ pending: Pending, loginUID: UInt32?) {
        let launch = pending.launch
        pending.loginUID = loginUID
        let timeout = policy.spawnTimeout
        do {
            try launches.watch(.holder, channel: launch.status.rawValue, chargedTo: pending.record.cgroupUser, timeoutSeconds: timeout,
                               readable: { [weak self] in self?.advance(pending) ?? true },
                               expired: { [weak self] in
                                   self?.settle(pending, launch.fail(SpawnError(step: .waitingForHolder, errno: .timedOut)))
                               })
        } catch {
            settle(pending, launch.fail(SpawnError(step: .killed, errno: Errno(rawValue: ECANCELED))),
                   error: RPCError(.internalError, "cannot create group \"\(pending.record.name)\": cannot watch its holder: \(error)"))
            return
        }
        // A client that goes away before the answer takes its holder with it.
        pending.completion.onCancel = { [weak launch] in launch?.kill() }
    }

    /// A create whose holder is setting itself up.
    private final class Pending {
        let launch: HolderLaunch
        var record: GroupRecord
        /// Whether the record is on disk (then a failure removes it).
        var recorded = false
        let caller: PeerCredentials
        let completion: Completion
        /// The fields of the request's record (the new group's id, once the group is ready).
        let details: RequestDetails
        /// The caller's audit loginuid, which pasta keeps (nil: not known).
        var loginUID: UInt32?
        /// Its systemd scope's cgroup, when the group is a unit (GroupUnits).
        var scope: CgroupNode?

        init(launch: HolderLaunch, record: GroupRecord, caller: PeerCredentials, completion: Completion,
             details: RequestDetails) {
            self.launch = launch
            self.record = record
            self.caller = caller
            self.completion = completion
            self.details = details
        }
    }

    /// What the holder said. Once its namespaces are final, the group is
    /// recorded before the holder may go on: a supervisor killed from then on
    /// leaves a record its successor checks. True when the create has ended.
    private func advance(_ pending: Pending) -> Bool {
        let launch = pending.launch
        switch launch.advance() {
        case .running:
            return false
        case .cloned(let startTime, let namespaces):
            CrashPoint.reach(.createCloned)
            pending.record.namespaces = namespaces
            pending.record.holderStartTime = startTime
            do {
                try registry.save(pending.record)
            } catch {
                // The state file could not be written: the supervisor's fault, not the group's.
                settle(pending, launch.fail(SpawnError(step: .recordHolder, errno: error)),
                       error: RPCError(.internalError, "cannot create group \"\(pending.record.name)\": writing its state file failed: \(error)"))
                return true
            }
            pending.recorded = true
            CrashPoint.reach(.createRecorded)
            do throws(SpawnError) {
                try launch.proceed()
            } catch {
                settle(pending, launch.fail(error))
                return true
            }
            return false
        case let state:
            settle(pending, state)
            return true
        }
    }

    /// The holder is set up (the group joins the registry and the answer is
    /// its description) or failed (it is killed and reaped, its record goes).
    private func settle(_ pending: Pending, _ state: HolderLaunch.State, error: RPCError? = nil) {
        let record = pending.record
        let name = record.name
        registry.release(name)
        guard case .ready = state, let pidfd = pending.launch.takePidfd() else {
            if let pidfd = pending.launch.takePidfd() { reaper.kill(pidfd) }
            if pending.recorded { try? registry.removeRecord(name: name) }
            // What the holder started in its scope (fuse-overlayfs) ends; systemd removes the scope then.
            try? pending.scope?.killAll()
            containment.discardGroup(user: record.cgroupUser, name: name)
            let failure: RPCError
            if let error {
                failure = error
            } else if case .failed(let spawnError) = state {
                failure = RPCError.operationFailed("cannot create group \"\(name)\"", spawnError)
            } else {
                failure = RPCError(.internalError, "cannot create group \"\(name)\": its holder ended unexpectedly")
            }
            pending.completion.finish(.error(failure))
            return
        }
        CrashPoint.reach(.createStarted)
        let group = Group(record: record, holder: pidfd)
        group.scope = pending.scope
        func abandon(_ error: RPCError) { self.abandon(group, pending, error) }
        if let netnsName = record.netnsName {
            do {
                try NetnsPublisher.publish(netnsName, holder: group.holder)
            } catch {
                return abandon(RPCError.operationFailed("cannot create group \"\(name)\"", error))
            }
        }
        guard record.pasta == nil else {
            // Its network first: the answer comes once pasta runs (or says why it does not).
            pasta.start(group, owner: pending.caller, loginUID: pending.loginUID, timeoutSeconds: policy.spawnTimeout) { [weak self] error in
                guard let self else { return }
                if let error { return abandon(error) }
                self.announce(group, pending)
            }
            return
        }
        announce(group, pending)
    }

    /// A group set up that cannot be kept: its holder and whatever its cgroup holds (pasta) end, its record goes.
    private func abandon(_ group: Group, _ pending: Pending, _ error: RPCError) {
        let record = group.record
        reaper.kill(borrowing: group.holder)
        try? containment.node(of: group).killAll()
        try? registry.removeRecord(name: record.name)
        containment.discardGroup(user: record.cgroupUser, name: record.name)
        pending.completion.finish(.error(error))
    }

    /// The group is set up: it is watched and registered, and the answer and the journal say so.
    private func announce(_ group: Group, _ pending: Pending) {
        let record = group.record
        let name = record.name
        func abandon(_ error: RPCError) { self.abandon(group, pending, error) }
        do {
            try destroyer.watchHolder(group)
        } catch {
            return abandon(RPCError(.internalError, "cannot create group \"\(name)\": cannot watch its holder: \(error)"))
        }
        containment.groupReady(containment.node(of: group))
        registry.register(group)
        registry.groupsChanged()
        bus.groupEvent(.groupCreated, group)
        // The decision (request-accepted) first, then what it made.
        pending.details.fields[AuditField.groupID] = group.id
        pending.completion.finish(.result(containment.describe(group, detailed: true)))
        var fields = [
            AuditField.name: name,
            AuditField.groupID: group.id,
            AuditField.operation: "create",
            AuditField.result: "ok",
            AuditField.ownerUID: String(record.owner),
            AuditField.holderPID: String(record.holderPID),
            AuditField.namespaces: record.namespaces.map(\.description).joined(separator: " "),
            AuditField.cgroup: containment.node(of: group).unifiedPath,
            AuditField.limits: record.limits.auditText,
        ]
        var lists: [String: [String]] = [:]
        var network: AuditText = ""
        if let pasta = record.pasta {
            // Its outside network: the pasta process and what it publishes on the host.
            fields[AuditField.pastaPID] = String(pasta.pid)
            lists[AuditField.publish] = pasta.publish.map(\.description)
            network = ", pasta \(pasta.pid) publishing \(pasta.publish.isEmpty ? "nothing" : pasta.publish.map(\.description).joined(separator: " "))"
        }
        audit.record(.groupCreated, "Created group \(name) for \(audit.uid(record.owner)), holder \(record.holderPID)\(network)",
                     caller: pending.caller, fields: fields, lists: lists)
    }

    /// The mounts of privateTmp, privateHome and home (README, "create"): tmpfs mounts on /tmp
    /// and /var/tmp (`shared`: looked up as the holder, root's, 1777; for all but root each
    /// half of limits.tmpfs-size, so that the two cost one mount), then a tmpfs of the
    /// caller's (0700) on their home as the user database has it, or instead `home` bound
    /// there, both ends looked up as the caller and owned by the caller (uid 0 inside a user
    /// namespace of the group's own, where the owner is root). An overlay root adds its
    /// /run and /dev/shm to the shared ones.
    func privateMounts(_ params: CreateParams, kinds: Set<NamespaceKind>, caller: PeerCredentials,
                       home: String?) throws(RPCError) -> (tmpfs: [TmpfsMount], binds: [BindMount], shared: Set<String>) {
        var tmpfs: [TmpfsMount] = []
        var binds: [BindMount] = []
        for (asked, member) in [(params.privateTmp, "privateTmp"), (params.privateHome, "privateHome"), (params.home != nil, "home")]
        where asked && !kinds.contains(.mnt) {
            throw .invalidParams("create: \"\(member)\" needs a mnt namespace")
        }
        var shared = params.privateTmp ? ["/tmp", "/var/tmp"] : []
        let size = caller.uid == 0 ? "" : ",size=\(ByteSize.format(max(policy.tmpfsSize / 2, 1)))"
        tmpfs += shared.map { TmpfsMount(path: $0, options: "mode=1777" + size) }
        // An overlay root's fresh /run (which also hides the upper layer, fuse-overlayfs's /run) and
        // /dev/shm (the host's otherwise, through /dev): root's as the host's are, a quarter each.
        if params.root == .overlay, kinds.contains(.mnt) {
            let quarter = caller.uid == 0 ? "" : ",size=\(ByteSize.format(max(policy.tmpfsSize / 4, 1)))"
            tmpfs += [TmpfsMount(path: "/run", options: "mode=0755" + quarter), TmpfsMount(path: "/dev/shm", options: "mode=1777" + quarter)]
            shared += ["/run", "/dev/shm"]
        }
        if params.privateHome || params.home != nil {
            guard let home, HolderSpec.isValidMountPath(home) else {
                let shown = JSONValue.string(String((home ?? "").prefix(256))).serialized()
                throw .invalidParams("create: \"\(params.home == nil ? "privateHome" : "home")\" needs a home directory: the user database gives uid \(caller.uid) the home \(shown), not an absolute, normalised path other than /")
            }
            if let source = params.home {
                guard HolderSpec.isValidMountPath(source) else { throw Self.badPath(source, "home") }
                binds.append(BindMount(source: source, target: home, readOnly: false, owner: kinds.contains(.user) ? 0 : caller.uid))
            } else {
                tmpfs.append(TmpfsMount(path: home, options: "mode=0700"))
            }
        }
        return (tmpfs, binds, Set(shared))
    }

    /// The create rule, the allowed namespace kinds and the group limits.
    /// Root and admins pass the first two; per-user limits bind all but root;
    /// the global limit binds everyone.
    func checkCreatePolicy(_ caller: PeerCredentials, name: String, kinds: Set<NamespaceKind>) throws(RPCError) {
        guard policy.mayCreate(caller) else {
            var allowed: [String] = []
            if case .only(_, _, let text) = policy.create { allowed = [text] }
            throw RPCError(.permissionDenied, "uid \(caller.uid) may not create groups: nsgroupd.conf allows only \(Policy.listed(allowed + policy.admins)) (access.create)")
        }
        if !policy.isAdmin(caller), let refused = kinds.sorted().first(where: { !policy.namespaces.contains($0) }) {
            throw RPCError(.permissionDenied, "namespace kind \"\(refused.rawValue)\" is not allowed by nsgroupd.conf (access.namespaces = \(policy.namespaces.sorted().map(\.rawValue).joined(separator: ", ")))")
        }
        // A group being created (its holder setting up) counts as one that exists.
        guard registry[name] == nil, !registry.isReserved(name) else {
            throw RPCError(.alreadyExists, "a group named \"\(name)\" already exists")
        }
        let total = registry.count + registry.reservedCount
        if total >= policy.maxGroups {
            throw RPCError(.limitExceeded, "there are \(counted(total, "group")), the most allowed (limits.groups = \(policy.maxGroups))")
        }
        if caller.uid != 0 {
            // Counted by the charged person: groups of her subordinate uids are hers.
            let owned = groupsHeld(by: caller.uid)
            if owned >= policy.groupsPerUser {
                throw RPCError(.limitExceeded, "\(subordinates.chargedSubject(caller.uid, "owns")) \(counted(owned, "group")), the most allowed (limits.groups-per-user = \(policy.groupsPerUser))")
            }
        }
    }

    /// The groups limits.groups-per-user counts for `uid`: those of the person charged (her
    /// subordinate uids' are hers), those being created included.
    func groupsHeld(by uid: uid_t) -> Int {
        let charged = subordinates.chargedUID(uid)
        return registry.groups(chargedTo: charged).count + registry.reservedCount(chargedTo: charged)
    }

    /// The tmpfs bytes limits.tmpfs-per-user counts for `uid`, charged as `groupsHeld`.
    func tmpfsHeld(by uid: uid_t) -> UInt64 {
        let charged = subordinates.chargedUID(uid)
        return (registry.groups(chargedTo: charged).flatMap(\.record.chargedTmpfs) + registry.reservedTmpfs(chargedTo: charged))
            .reduce(UInt64(0)) { $0 + ($1.size.flatMap(Self.tmpfsBytes) ?? policy.tmpfsSize) }
    }

    /// The tmpfs rules of nsgroupd.conf (README, "Who can run what"). In a group without a
    /// user namespace everyone enters as themselves, so a mount there must not cover anyone
    /// else's programs or configuration: for all but admins, only at or below
    /// access.tmpfs-paths, and only on a directory of the caller's own (the holder checks that,
    /// where it opens the target as the caller: `--require-owner`). Sizes are bounded per mount (limits.tmpfs-size; a mount that names
    /// none gets that size) and per person over all their groups (limits.tmpfs-per-user); root
    /// is not bound, as with the other per-user limits. Returns the mounts with their sizes.
    /// `privateMounts` (a private /tmp, /var/tmp and home) are not held to tmpfs-paths
    /// (they cover only what is everyone's scratch or the caller's own) but are sized and
    /// counted as the others, and come first.
    func checkTmpfsPolicy(_ mounts: [TmpfsMount], privateMounts: [TmpfsMount] = [], caller: PeerCredentials, home: String?,
                          kinds: Set<NamespaceKind>) throws(RPCError) -> [TmpfsMount] {
        guard !mounts.isEmpty || !privateMounts.isEmpty else { return [] }
        if !kinds.contains(.user) && !policy.isAdmin(caller) {
            for mount in mounts where !policy.tmpfsPaths.contains(where: { $0.admits(mount.path, home: home) }) {
                if policy.tmpfsPaths.isEmpty {
                    throw RPCError(.permissionDenied, "create: tmpfs mounts in a group without a user namespace are for \(Policy.listed(policy.admins)) (access.tmpfs-paths is empty)")
                }
                throw RPCError(.permissionDenied, "create: a tmpfs on \(JSONValue.string(mount.path).serialized()) is not allowed: without a user namespace tmpfs mounts go only at or below \(policy.tmpfsPaths.map(\.description).joined(separator: ", ")) (access.tmpfs-paths), where no one else's programs live")
            }
        }
        guard caller.uid != 0 else { return privateMounts + mounts }
        var sized: [TmpfsMount] = []
        var total: UInt64 = 0
        for mount in privateMounts + mounts {
            guard let asked = mount.size, let bytes = Self.tmpfsBytes(asked) else {
                sized.append(TmpfsMount(path: mount.path, options: mount.options + ",size=\(ByteSize.format(policy.tmpfsSize))"))
                total += policy.tmpfsSize
                continue
            }
            guard bytes <= policy.tmpfsSize else {
                throw RPCError(.limitExceeded, "create: the tmpfs on \(JSONValue.string(mount.path).serialized()) asks for size=\(asked), more than one mount may have (limits.tmpfs-size = \(ByteSize.format(policy.tmpfsSize)))")
            }
            sized.append(mount)
            total += bytes
        }
        let held = tmpfsHeld(by: caller.uid)
        guard held + total <= policy.tmpfsPerUser else {
            throw RPCError(.limitExceeded, "create: \(subordinates.chargedSubject(caller.uid, "would have")) \(ByteSize.format(held + total)) of tmpfs mounts, more than allowed (limits.tmpfs-per-user = \(ByteSize.format(policy.tmpfsPerUser)))")
        }
        return sized
    }

    /// A tmpfs size in bytes (a percentage is of physical memory, as the kernel takes it).
    static func tmpfsBytes(_ value: Substring) -> UInt64? {
        if value.hasSuffix("%"), let percent = UInt64(value.dropLast()) {
            let memory = UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
            // Up to 12 digits of percent: too large for 64 bits is UInt64.max, which any cap
            // refuses (a trap here would take the supervisor down for everyone).
            let (bytes, overflow) = (memory / 100).multipliedReportingOverflow(by: percent)
            return overflow ? .max : bytes
        }
        return ByteSize.parse(String(value))
    }

    // MARK: Validation

    static func namespaceKinds(_ names: [String]?) throws(RPCError) -> Set<NamespaceKind> {
        guard let names else { return Set(NamespaceKind.defaultSet) }
        guard !names.isEmpty else { throw .invalidParams("create: \"namespaces\" must name at least one kind") }
        var kinds = Set<NamespaceKind>()
        for name in names {
            guard let kind = NamespaceKind(rawValue: name) else {
                throw .invalidParams("create: unknown namespace kind \(JSONValue.string(name).serialized()); kinds are \(NamespaceKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard kinds.insert(kind).inserted else {
                throw .invalidParams("create: namespace kind \"\(name)\" is named twice")
            }

        }
        return kinds
    }

    /// A group with a uts namespace gets a hostname: the one asked for, or the group's name.
    static func hostname(_ requested: String?, kinds: Set<NamespaceKind>, name: String) throws(RPCError) -> String? {
        guard kinds.contains(.uts) else {
            if requested != nil { throw .invalidParams("create: \"hostname\" needs a uts namespace") }
            return nil
        }
        guard let requested else { return name }
        guard HolderSpec.isValidHostname(requested) else {
            throw .invalidParams("create: invalid hostname \(JSONValue.string(requested).serialized()): 1 to 64 characters of A-Z, a-z, 0-9, '-', '.', '_', not starting with '-'")
        }
        return requested
    }

    /// The refusal of a path that is not a mount path (HolderSpec.isValidMountPath).
    static func badPath(_ path: String, _ what: String) -> RPCError {
        let shown = JSONValue.string(String(path.prefix(256))).serialized()
        return .invalidParams("create: \(what) \(shown) must be an absolute, normalised path other than / (no //, . or .. components, no ':')")
    }

    /// "PATH" or "PATH:size=64m,mode=0755"; always nosuid, nodev.
    static func tmpfsMounts(_ specs: [String], kinds: Set<NamespaceKind>) throws(RPCError) -> [TmpfsMount] {
        guard !specs.isEmpty else { return [] }
        guard kinds.contains(.mnt) else { throw .invalidParams("create: \"tmpfs\" needs a mnt namespace") }
        guard specs.count <= HolderSpec.maxTmpfsMounts else { throw .invalidParams("create: at most \(HolderSpec.maxTmpfsMounts) tmpfs mounts") }
        var seen = Set<String>()
        var mounts: [TmpfsMount] = []
        for spec in specs {
            let mount: TmpfsMount
            do throws(TmpfsMount.SpecError) {
                mount = try TmpfsMount(spec: spec)
            } catch {
                switch error {
                case .path(let path): throw badPath(path, "tmpfs path")
                case .notKeyValue(let option): throw .invalidParams("create: tmpfs option \"\(option)\" is not key=value")
                case .size(let size): throw .invalidParams("create: tmpfs size \"\(size)\" must be a number with an optional k, m, g or %")
                case .mode(let mode): throw .invalidParams("create: tmpfs mode \"\(mode)\" must be octal, like 1777 or 0755")
                case .unknownOption(let key): throw .invalidParams("create: unknown tmpfs option \"\(key)\"; options are size and mode")
                }
            }
            guard seen.insert(mount.path).inserted else { throw .invalidParams("create: tmpfs path \"\(mount.path)\" is named twice") }
            mounts.append(mount)
        }
        return mounts
    }

    /// "SOURCE:TARGET" or "SOURCE:TARGET:ro".
    static func bindMounts(_ specs: [String], kinds: Set<NamespaceKind>) throws(RPCError) -> [BindMount] {
        guard !specs.isEmpty else { return [] }
        guard kinds.contains(.mnt) else { throw .invalidParams("create: \"binds\" needs a mnt namespace") }
        guard specs.count <= HolderSpec.maxBindMounts else { throw .invalidParams("create: at most \(HolderSpec.maxBindMounts) bind mounts") }
        var mounts: [BindMount] = []
        for spec in specs {
            do throws(BindMount.SpecError) {
                mounts.append(try BindMount(spec: spec))
            } catch {
                switch error {
                case .form:
                    throw .invalidParams("create: bind \(JSONValue.string(String(spec.prefix(256))).serialized()) must be SOURCE:TARGET or SOURCE:TARGET:ro")
                case .source(let path): throw badPath(path, "bind source")
                case .target(let path): throw badPath(path, "bind target")
                }
            }
        }
        return mounts
    }

    /// Two mounts on one path would leave only the later one visible (binds come before tmpfs
    /// mounts): refused, since the caller cannot have meant both.
    static func distinctTargets(binds: [BindMount], tmpfs: [TmpfsMount]) throws(RPCError) {
        var seen = Set<String>()
        for target in binds.map(\.target) + tmpfs.map(\.path) where !seen.insert(target).inserted {
            throw .invalidParams("create: \(JSONValue.string(target).serialized()) is the target of two mounts")
        }
    }

    static func timeOffsets(_ params: CreateParams, kinds: Set<NamespaceKind>) throws(RPCError) -> (monotonic: Int64, boottime: Int64) {
        if !kinds.contains(.time), params.monotonicOffset != nil || params.boottimeOffset != nil {
            throw .invalidParams("create: time offsets need a time namespace")
        }
        return (params.monotonicOffset ?? 0, params.boottimeOffset ?? 0)
    }

    static func netnsName(_ name: String?, kinds: Set<NamespaceKind>) throws(RPCError) -> String? {
        guard let name else { return nil }
        guard kinds.contains(.net) else { throw .invalidParams("create: \"netnsName\" needs a net namespace") }
        guard NetnsPublisher.isValidName(name) else {
            throw .invalidParams("create: invalid netns name \(JSONValue.string(String(name.prefix(64))).serialized()): 1 to 63 characters of A-Z, a-z, 0-9, '_', '.', '-', starting with a letter or digit")
        }
        return name
    }
}
