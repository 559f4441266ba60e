#if canImport(Glibc)
import Glibc
#endif
import POSIX

/// The limits of a cgroup; nil is no limit (or the default weight).
public struct CgroupLimits: Sendable, Equatable {
    /// Bytes of memory (memory.max; v1 memory.limit_in_bytes). The kernel keeps whole pages.
    public var memory: UInt64?
    /// Processes and threads (pids.max).
    public var pids: UInt64?
    /// CPU weight, 1…10000, 100 being everyone's default (cpu.weight; v1 cpu.shares at
    /// weight × 1024 / 100, within 2…262144). The default reads back as nil.
    public var cpuWeight: UInt64?
    /// CPUs' worth of time, at least 0.01 (cpu.max "QUOTA 100000"; v1 cpu.cfs_quota_us with
    /// cpu.cfs_period_us 100000).
    public var cpus: Double?

    public init(memory: UInt64? = nil, pids: UInt64? = nil, cpuWeight: UInt64? = nil, cpus: Double? = nil) {
        self.memory = memory
        self.pids = pids
        self.cpuWeight = cpuWeight
        self.cpus = cpus
    }
}

/// What a cgroup uses now; nil where it cannot be read (or the controller is absent).
public struct CgroupUsage: Sendable, Equatable {
    /// Bytes charged now (memory.current; v1 memory.usage_in_bytes).
    public var memory: UInt64?
    /// The most bytes ever charged (memory.peak, Linux 5.19; v1 memory.max_usage_in_bytes).
    public var memoryPeak: UInt64?
    /// Processes and threads (pids.current).
    public var pids: UInt64?
    /// CPU time in microseconds (cpu.stat usage_usec; v1 cpuacct.usage / 1000).
    public var cpuUsec: UInt64?

    public init(memory: UInt64? = nil, memoryPeak: UInt64? = nil, pids: UInt64? = nil, cpuUsec: UInt64? = nil) {
        self.memory = memory
        self.memoryPeak = memoryPeak
        self.pids = pids
        self.cpuUsec = cpuUsec
    }
}

extension CgroupFiles {
    /// v1 memory.limit_in_bytes and friends: "no limit" is the largest page count the kernel
    /// counts in, times the page size (9223372036854771712 with 4 KiB pages), not -1.
    static func legacyMemoryLimit(_ path: String) -> UInt64? {
        guard let value = number(path), value < 1 << 62 else { return nil }
        return value
    }
}

extension CgroupNode {
    /// The period of every CPU quota we write, in microseconds (the kernel's default).
    public static let cpuPeriod: UInt64 = 100_000

    /// Writes the limits: v2 memory.max, pids.max, cpu.weight and cpu.max ("QUOTA 100000");
    /// v1 memory.limit_in_bytes, pids.max, cpu.shares (weight × 1024 / 100, clamped to
    /// 2…262144), cpu.cfs_period_us 100000 and cpu.cfs_quota_us. nil writes "no limit" ("max",
    /// -1; weight 100, shares 1024).
    ///
    /// Everything is checked before anything is written: a limit for an absent controller, a
    /// weight outside 1…10000, or fewer than 0.01 CPUs throws (operation "apply").
    public func apply(_ limits: CgroupLimits) throws(CgroupError) {
        try checkName()
        let wanted: [(CgroupController, Bool)] = [
            (.memory, limits.memory != nil), (.pids, limits.pids != nil),
            (.cpu, limits.cpuWeight != nil || limits.cpus != nil),
        ]
        for (controller, limited) in wanted where limited && layout.place(of: controller) == .absent {
            throw CgroupError(operation: "apply", path: unifiedDirectory,
                              reason: "no \(controller.rawValue) controller: it is neither enabled in cgroup2 nor mounted as a v1 hierarchy")
        }
        if let weight = limits.cpuWeight, !(1...10_000).contains(weight) {
            throw CgroupError(operation: "apply", path: unifiedDirectory, reason: "cpu weight \(weight) is not within 1…10000")
        }
        var quota: UInt64?
        if let cpus = limits.cpus {
            guard cpus.isFinite, cpus >= 0.01, cpus <= 1_000_000 else {
                throw CgroupError(operation: "apply", path: unifiedDirectory, reason: "\(cpus) CPUs is not within 0.01…1000000")
            }
            quota = UInt64((cpus * Double(Self.cpuPeriod)).rounded())
        }

        switch layout.place(of: .memory) {
        case .unified: try write(limits.memory.map { String($0) } ?? "max", unifiedDirectory + "/memory.max")
        case .legacy: try write(limits.memory.map { String($0) } ?? "-1", directory(for: .memory)! + "/memory.limit_in_bytes")
        case .absent: break
        }
        if let directory = directory(for: .pids) {
            try write(limits.pids.map { String($0) } ?? "max", directory + "/pids.max")
        }
        let weight = limits.cpuWeight ?? 100
        switch layout.place(of: .cpu) {
        case .unified:
            try write(String(weight), unifiedDirectory + "/cpu.weight")
            try write("\(quota.map { String($0) } ?? "max") \(Self.cpuPeriod)", unifiedDirectory + "/cpu.max")
        case .legacy:
            let directory = directory(for: .cpu)!
            try write(String(min(max(weight * 1024 / 100, 2), 262_144)), directory + "/cpu.shares")
            try write(String(Self.cpuPeriod), directory + "/cpu.cfs_period_us")
            try write(quota.map { String($0) } ?? "-1", directory + "/cpu.cfs_quota_us")
        case .absent:
            break
        }
    }

    /// The limits the files hold now (after a restart, say); nil where there is none or the
    /// file cannot be read. The default CPU weight (100, v1 shares 1024) reads as nil.
    public func readLimits() -> CgroupLimits {
        var limits = CgroupLimits()
        guard invalidName == nil else { return limits }
        switch layout.place(of: .memory) {
        case .unified: limits.memory = CgroupFiles.number(unifiedDirectory + "/memory.max")
        case .legacy: limits.memory = CgroupFiles.legacyMemoryLimit(directory(for: .memory)! + "/memory.limit_in_bytes")
        case .absent: break
        }
        if let directory = directory(for: .pids) {
            limits.pids = CgroupFiles.number(directory + "/pids.max")
        }
        switch layout.place(of: .cpu) {
        case .unified:
            if let weight = CgroupFiles.number(unifiedDirectory + "/cpu.weight"), weight != 100 {
                limits.cpuWeight = weight
            }
            limits.cpus = CgroupFiles.withContents(unifiedDirectory + "/cpu.max") { bytes -> Double? in
                guard case .number(let quota) = CgroupValue.parse(bytes),
                      let space = bytes.firstIndex(of: UInt8(ascii: " ")),
                      case .number(let period) = CgroupValue.parse(bytes, from: space + 1), period > 0
                else { return nil }
                return Double(quota) / Double(period)
            }
        case .legacy:
            let directory = directory(for: .cpu)!
            if let shares = CgroupFiles.number(directory + "/cpu.shares"), shares != 1024 {
                limits.cpuWeight = (shares * 100 + 512) / 1024
            }
            if case .number(let quota) = CgroupFiles.value(directory + "/cpu.cfs_quota_us"),
               let period = CgroupFiles.number(directory + "/cpu.cfs_period_us"), period > 0 {
                limits.cpus = Double(quota) / Double(period)
            }
        case .absent:
            break
        }
        return limits
    }

    /// What the node and everything below it use now: memory.current and memory.peak (v1
    /// memory.usage_in_bytes, memory.max_usage_in_bytes), pids.current, and CPU time from the
    /// unified cpu.stat's usage_usec, which every non-root cgroup2 has even without the cpu
    /// controller (v1 cpuacct.usage / 1000 where cpu.stat cannot be read and cpuacct shares a
    /// hierarchy with one of our controllers). Four or five small files, each opened, read
    /// into a buffer on the stack and closed.
    public func usage() -> CgroupUsage {
        var usage = CgroupUsage()
        guard invalidName == nil else { return usage }
        let unified = unifiedDirectory
        switch layout.place(of: .memory) {
        case .unified:
            usage.memory = CgroupFiles.number(unified + "/memory.current")
            usage.memoryPeak = CgroupFiles.number(unified + "/memory.peak")
        case .legacy:
            let directory = directory(for: .memory)!
            usage.memory = CgroupFiles.number(directory + "/memory.usage_in_bytes")
            usage.memoryPeak = CgroupFiles.number(directory + "/memory.max_usage_in_bytes")
        case .absent:
            break
        }
        if let directory = directory(for: .pids) {
            usage.pids = CgroupFiles.number(directory + "/pids.current")
        }
        usage.cpuUsec = CgroupFiles.number("usage_usec", in: unified + "/cpu.stat")
        if usage.cpuUsec == nil, let directory = directory(in: layout.cpuAccounting),
           let nanoseconds = CgroupFiles.number(directory + "/cpuacct.usage") {
            usage.cpuUsec = nanoseconds / 1000
        }
        return usage
    }

    /// How many times the OOM killer has killed a process in the node or below: memory.events
    /// "oom_kill", which v2 counts in every ancestor of the victim's cgroup too; v1 counts a
    /// kill only in the victim's own cgroup (memory.oom_control "oom_kill", Linux 4.13), so
    /// there the node's and every descendant's are added up. A kill in a v1 cgroup that was
    /// removed since is not counted any more: `countsKillsOfRemovedChildren` says whether it is.
    /// nil when unreadable.
    public func oomKills() -> UInt64? {
        guard invalidName == nil else { return nil }
        switch layout.place(of: .memory) {
        case .unified: return CgroupFiles.number("oom_kill", in: unifiedDirectory + "/memory.events")
        case .legacy:
            guard var total = CgroupFiles.number("oom_kill", in: directory(for: .memory)! + "/memory.oom_control") else {
                return nil
            }
            for name in childNames() { total += child(name).oomKills() ?? 0 }
            return total
        case .absent: return nil
        }
    }

    /// Whether `oomKills()` of a node still counts the kills in a child after the child is removed (v2).
    public var countsKillsOfRemovedChildren: Bool { layout.place(of: .memory) == .unified }
}
