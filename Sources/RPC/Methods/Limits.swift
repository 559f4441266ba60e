/// Limits on a group's resources, as `create` asks for them and `list` and
/// `inspect` report the ones in force. Absent means no limit of that kind
/// (beyond its owner's). The kernel enforces them on the group's cgroup.
public struct GroupLimits: Sendable, Equatable {
    /// Memory in bytes (cgroup v2 memory.max, v1 memory.limit_in_bytes).
    public var memory: UInt64?
    /// Processes and threads (pids.max).
    public var pids: UInt64?
    /// CPU share relative to other groups, 100 being the default (cpu.weight; v1 cpu.shares).
    public var cpuWeight: UInt64?
    /// CPU time per wall-clock time: 1.5 means one and a half CPUs (cpu.max; v1 cfs quota).
    public var cpus: Double?

    public static let memoryRange: ClosedRange<Int64> = (1 << 20)...(1 << 50)
    public static let pidsRange: ClosedRange<Int64> = 1...4_194_304
    public static let cpuWeightRange: ClosedRange<Int64> = 1...10_000
    public static let cpusRange: ClosedRange<Double> = 0.01...1024

    public init(memory: UInt64? = nil, pids: UInt64? = nil, cpuWeight: UInt64? = nil, cpus: Double? = nil) {
        self.memory = memory
        self.pids = pids
        self.cpuWeight = cpuWeight
        self.cpus = cpus
    }

    public var isEmpty: Bool { memory == nil && pids == nil && cpuWeight == nil && cpus == nil }

    /// Reads `{memory?, pids?, cpuWeight?, cpus?}` and refuses any other member.
    public init(reader r: inout ParamsReader) throws(RPCError) {
        memory = try r.integer("memory", in: Self.memoryRange).map(UInt64.init)
        pids = try r.integer("pids", in: Self.pidsRange).map(UInt64.init)
        cpuWeight = try r.integer("cpuWeight", in: Self.cpuWeightRange).map(UInt64.init)
        cpus = try r.number("cpus", in: Self.cpusRange)
        try r.finish()
    }

    /// Reads the limits a group object shows, as a client does: members it does not
    /// know are ignored (a newer server may limit more), and the ranges are only those
    /// of the types, so that a server's reply is not held to what `create` may ask.
    public init(json: JSONValue) throws(RPCError) {
        var r = try ParamsReader(json, method: "limits")
        let all: ClosedRange<Int64> = 0...Int64.max
        memory = try r.integer("memory", in: all).map(UInt64.init)
        pids = try r.integer("pids", in: all).map(UInt64.init)
        cpuWeight = try r.integer("cpuWeight", in: all).map(UInt64.init)
        cpus = try r.number("cpus", in: 0...Double.greatestFiniteMagnitude)
    }

    public var json: JSONValue {
        var o = JSONObject()
        if let memory { o["memory"] = .number(JSONNumber(memory)) }
        if let pids { o["pids"] = .number(JSONNumber(pids)) }
        if let cpuWeight { o["cpuWeight"] = .number(JSONNumber(cpuWeight)) }
        if let cpus, let n = JSONNumber(cpus) { o["cpus"] = .number(n) }
        return .object(o)
    }
}

/// What a group or a session uses now, read from its cgroup. A field is
/// absent where the host has no controller that counts it.
public struct ResourceUsage: Sendable, Equatable {
    /// Bytes charged now (memory.current; v1 memory.usage_in_bytes).
    public var memory: UInt64?
    /// The most ever charged (memory.peak; v1 memory.max_usage_in_bytes).
    public var memoryPeak: UInt64?
    /// Processes and threads now (pids.current).
    public var pids: UInt64?
    /// CPU time used, in microseconds (cpu.stat usage_usec).
    public var cpuUsec: UInt64?

    public init(memory: UInt64? = nil, memoryPeak: UInt64? = nil, pids: UInt64? = nil, cpuUsec: UInt64? = nil) {
        self.memory = memory
        self.memoryPeak = memoryPeak
        self.pids = pids
        self.cpuUsec = cpuUsec
    }

    public init(json: JSONValue) throws(RPCError) {
        var r = try ParamsReader(json, method: "usage")
        let all: ClosedRange<Int64> = 0...Int64.max
        memory = try r.integer("memory", in: all).map(UInt64.init)
        memoryPeak = try r.integer("memoryPeak", in: all).map(UInt64.init)
        pids = try r.integer("pids", in: all).map(UInt64.init)
        cpuUsec = try r.integer("cpuUsec", in: all).map(UInt64.init)
    }

    public var json: JSONValue {
        var o = JSONObject()
        if let memory { o["memory"] = .number(JSONNumber(memory)) }
        if let memoryPeak { o["memoryPeak"] = .number(JSONNumber(memoryPeak)) }
        if let pids { o["pids"] = .number(JSONNumber(pids)) }
        if let cpuUsec { o["cpuUsec"] = .number(JSONNumber(cpuUsec)) }
        return .object(o)
    }
}
