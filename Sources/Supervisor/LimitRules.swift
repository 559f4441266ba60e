import RPC

/// The [limits] keys on cgroups, as a create and a user's cgroup take them.
extension Policy {
    /// The limits a create gets for what it asked (`GroupLimits`' ranges already checked):
    /// memory, pids and cpus each at most limits.X-per-group and limits.X-per-user, where
    /// set; one not asked for is limits.X-per-group (nil: none, beyond its owner's).
    /// cpuWeight is only a share between groups and passes as asked.
    ///
    /// A value above either setting is refused with `limit_exceeded`, naming the tighter
    /// setting it is above (the per-group one when both are the same): `"memory" 1g is
    /// above limits.memory-per-group (512m)`. Who is bound is the caller's to decide: with
    /// `holdingToMaxima` false (root, whom per-user limits do not bind) what is asked is
    /// given as it is, and only what is not asked comes from the settings.
    func resolve(_ requested: GroupLimits, holdingToMaxima: Bool = true) throws(RPCError) -> GroupLimits {
        var limits = requested
        limits.memory = try Self.resolve("memory", requested.memory, perGroup: memoryPerGroup, perUser: memoryPerUser,
                                         holding: holdingToMaxima, text: ByteSize.format)
        limits.pids = try Self.resolve("pids", requested.pids, perGroup: pidsPerGroup, perUser: pidsPerUser,
                                       holding: holdingToMaxima, text: { String($0) })
        limits.cpus = try Self.resolve("cpus", requested.cpus, perGroup: cpusPerGroup, perUser: cpusPerUser,
                                       holding: holdingToMaxima, text: LimitText.cpus)
        return limits
    }

    /// What goes on users/UID's cgroup, over all of one person's groups and sessions.
    var userLimits: GroupLimits {
        GroupLimits(memory: memoryPerUser, pids: pidsPerUser, cpuWeight: nil, cpus: cpusPerUser)
    }

    /// One kind of limit: `field` is both the create parameter and the start of its keys.
    private static func resolve<Value: Comparable>(_ field: String, _ requested: Value?, perGroup: Value?, perUser: Value?,
                                                   holding: Bool, text: (Value) -> String) throws(RPCError) -> Value? {
        guard let requested else { return perGroup }
        guard holding else { return requested }
        var exceeded: (scope: String, setting: Value)?
        for (scope, setting) in [("per-group", perGroup), ("per-user", perUser)] {
            guard let setting, requested > setting else { continue }
            if let tighter = exceeded, tighter.setting <= setting { continue }
            exceeded = (scope, setting)
        }
        if let exceeded {
            throw RPCError(.limitExceeded,
                           "\"\(field)\" \(text(requested)) is above limits.\(field)-\(exceeded.scope) (\(text(exceeded.setting)))")
        }
        return requested
    }
}

/// Limits as refusals and nsgroupd.conf write them.
enum LimitText {
    /// A number of CPUs: "2" for 2.0, "1.5", "0.01".
    static func cpus(_ value: Double) -> String {
        if value == value.rounded(.towardZero), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}
