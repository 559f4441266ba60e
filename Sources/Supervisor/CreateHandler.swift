#if canImport(Glibc)
import Glibc
#endif
import Namespaces
import RPC

extension Supervisor {
    static let maxTmpfsMounts = 32

    func create(_ context: RequestContext) throws(RPCError) -> Reply {
        let params = try CreateParams(params: context.request.params)
        let kinds = try Self.namespaceKinds(params.namespaces)
        let hostname = try Self.hostname(params.hostname, kinds: kinds, name: params.name)
        let tmpfs = try Self.tmpfsMounts(params.tmpfs, kinds: kinds)
        let members = try Self.members(params.members, method: "create")
        try checkCreatePolicy(context.caller, name: params.name, kinds: kinds)

        let spec = HolderSpec(name: params.name, namespaces: kinds, hostname: hostname, tmpfs: tmpfs, ttyGroup: ttyGroup)
        let owner = context.caller.uid
        var recorded: GroupRecord?
        let spawned: SpawnedHolder
        do throws(SpawnError) {
            spawned = try holders.spawn(spec) { pid, startTime, namespaces throws(SpawnError) in
                CrashPoint.reach(.createCloned)
                let record = GroupRecord(
                    name: params.name, owner: owner,
                    ownerName: UserDatabase.user(uid: owner)?.name ?? String(owner),
                    namespaces: namespaces, holderPID: pid, holderStartTime: startTime,
                    created: Timestamp.now(), hostname: hostname, tmpfs: tmpfs, members: members, sessions: [])
                // On disk before the holder may go on: a supervisor killed
                // from here on leaves a record its successor checks.
                do throws(Errno) { try state.save(record) } catch { throw SpawnError(step: "write the state file", errno: error) }
                recorded = record
                CrashPoint.reach(.createRecorded)
            }
        } catch {
            if recorded != nil { try? state.remove(name: params.name) }
            if recorded == nil, error.step == "write the state file" {
                throw RPCError(.internalError, "cannot create group \"\(params.name)\": writing its state file failed: \(error.errno)")
            }
            throw RPCError(.operationFailed, "cannot create group \"\(params.name)\": \(error)",
                           details: ["step": .string(error.step), "errno": .string(error.errno.name)])
        }
        CrashPoint.reach(.createStarted)
        let record = recorded!
        let group = Group(record: record, holder: spawned.takePidfd())
        do {
            try watchHolder(group)
        } catch {
            try? group.holder.signal(SIGKILL)
            _ = try? group.holder.reap(block: true)
            try? state.remove(name: record.name)
            throw RPCError(.internalError, "cannot create group \"\(params.name)\": cannot watch its holder: \(error)")
        }
        groups[record.name] = group
        groupsChanged()
        audit.record(.groupCreated, "Created group \(record.name) for uid \(record.owner), holder \(record.holderPID)",
                     caller: context.caller, fields: [
                        AuditField.name: record.name,
                        AuditField.operation: "create",
                        AuditField.result: "ok",
                        AuditField.ownerUID: String(record.owner),
                        AuditField.holderPID: String(record.holderPID),
                        AuditField.namespaces: record.namespaces.map(\.description).joined(separator: " "),
                     ])
        return .result(group.info.json)
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
        guard groups[name] == nil else {
            throw RPCError(.alreadyExists, "a group named \"\(name)\" already exists")
        }
        if groups.count >= policy.maxGroups {
            throw RPCError(.limitExceeded, "there are \(counted(groups.count, "group")), the most allowed (limits.groups = \(policy.maxGroups))")
        }
        if caller.uid != 0 {
            let owned = groups.values.filter { $0.owner == caller.uid }.count
            if owned >= policy.groupsPerUser {
                throw RPCError(.limitExceeded, "uid \(caller.uid) owns \(counted(owned, "group")), the most allowed (limits.groups-per-user = \(policy.groupsPerUser))")
            }
        }
    }

    static let maxMembers = 64

    /// Resolves members against the user and group databases, once each.
    static func members(_ names: [String], method: String, alreadyShared: Int = 0) throws(RPCError) -> [Member] {
        guard names.count + alreadyShared <= maxMembers else {
            throw .invalidParams("\(method): a group is shared with at most \(maxMembers) users and groups")
        }
        var members: [Member] = []
        for name in names {
            let member = try Member.resolve(name, method: method)
            if !members.contains(where: { $0.sameAs(member) }) { members.append(member) }
        }
        return members
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
            if kind == .user || kind == .time {
                throw .invalidParams("create: \"\(name)\" namespaces are not supported yet")
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
        let bytes = Array(requested.utf8)
        let allowed = bytes.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "_")
        }
        guard (1...64).contains(bytes.count), allowed, bytes.first != UInt8(ascii: "-") else {
            throw .invalidParams("create: invalid hostname \(JSONValue.string(requested).serialized()): 1 to 64 characters of A-Z, a-z, 0-9, '-', '.', '_', not starting with '-'")
        }
        return requested
    }

    static func tmpfsMounts(_ paths: [String], kinds: Set<NamespaceKind>) throws(RPCError) -> [TmpfsMount] {
        guard !paths.isEmpty else { return [] }
        guard kinds.contains(.mnt) else { throw .invalidParams("create: \"tmpfs\" needs a mnt namespace") }
        guard paths.count <= maxTmpfsMounts else { throw .invalidParams("create: at most \(maxTmpfsMounts) tmpfs mounts") }
        var seen = Set<String>()
        var mounts: [TmpfsMount] = []
        for path in paths {
            let shown = JSONValue.string(String(path.prefix(256))).serialized()
            let components = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard path.hasPrefix("/"), path != "/", path.utf8.count < 4096, !path.utf8.contains(0),
                  components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." })
            else {
                throw .invalidParams("create: tmpfs path \(shown) must be an absolute, normalised path other than / (no //, . or .. components)")
            }
            guard seen.insert(path).inserted else { throw .invalidParams("create: tmpfs path \(shown) is named twice") }
            mounts.append(TmpfsMount(path: path))
        }
        return mounts
    }
}

/// "1 group", "3 groups".
func counted(_ n: Int, _ noun: String) -> String {
    "\(n) \(noun)\(n == 1 ? "" : "s")"
}
