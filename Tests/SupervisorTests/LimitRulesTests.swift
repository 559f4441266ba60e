import Foundation
import Testing
@testable import Supervisor
import RPC

private let confPath = "/etc/nsgroup/nsgroupd.conf"

/// MemTotal in bytes, read here without MachineMemory so that the two can disagree.
private func memTotal() throws -> UInt64 {
    let text = try String(contentsOfFile: "/proc/meminfo", encoding: .utf8)
    let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }, "/proc/meminfo has no MemTotal")
    let kibibytes = try #require(UInt64(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    return kibibytes * 1024
}

/// `percent` of MemTotal, down to a whole MiB, computed the plain way.
private func percentOfMemory(_ percent: UInt64) throws -> UInt64 {
    try memTotal() * percent / 100 / (1 << 20) * (1 << 20)
}

private func parseLimits(_ lines: String) throws -> Policy {
    try PolicyFile.parse("[limits]\n\(lines)\n", path: confPath)
}

private func parseError(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> SupervisorError? {
    do throws(SupervisorError) {
        let policy = try PolicyFile.parse(text, path: confPath)
        Issue.record("the file was accepted as \(policy)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

private let memoryExpected = "a size from 1m to 1024t (bytes, or a number with k, m, g or t), a percentage of the machine's memory from 1% to 100%, or max"
private let pidsExpected = "a whole number from 1 to 4194304, or max"
private let cpusExpected = "a number of CPUs from 0.01 to 1024 (such as 1.5), or max"

// MARK: - The keys

@Suite("Limits: the [limits] keys on cgroups")
struct CgroupLimitKeyTests {
    @Test func theDefaults() throws {
        let policy = Policy.defaults()
        #expect(policy.memoryPerUser == (try percentOfMemory(50)))
        #expect(policy.memoryPerGroup == nil)
        #expect(policy.pidsPerUser == 4096)
        #expect(policy.pidsPerGroup == nil)
        #expect(policy.cpusPerUser == nil)
        #expect(policy.cpusPerGroup == nil)
        // The defaults written out are the defaults.
        let written = try parseLimits("""
            memory-per-user = 50%
            memory-per-group = max
            pids-per-user = 4096
            pids-per-group = max
            cpus-per-user = max
            cpus-per-group = max
            """)
        #expect(written == policy)
    }

    /// Policies compare by every limit: a changed one is a different policy.
    @Test func policiesDifferByEachKey() throws {
        for line in ["memory-per-user = 1g", "memory-per-group = 1g", "pids-per-user = 100", "pids-per-group = 100",
                     "cpus-per-user = 2", "cpus-per-group = 2"] {
            #expect(try parseLimits(line) != Policy.defaults(), "\(line)")
        }
    }

    @Test(arguments: [
        ("1m", 1 << 20), ("1M", 1 << 20), ("512m", 512 << 20), ("1g", 1 << 30), ("4G", 4 << 30), ("1536k", 1536 << 10),
        ("1048576", 1 << 20), ("1073741825", (1 << 30) + 1), ("1024t", 1 << 50), ("007m", 7 << 20),
    ] as [(String, UInt64)])
    func memoryTakesSizes(_ value: String, _ bytes: UInt64) throws {
        let policy = try parseLimits("memory-per-user = \(value)\nmemory-per-group = \(value)")
        #expect(policy.memoryPerUser == bytes)
        #expect(policy.memoryPerGroup == bytes)
    }

    /// A percentage is of MemTotal, read as the file is parsed, rounded down to a whole MiB.
    @Test(arguments: [1, 10, 25, 50, 75, 99, 100] as [UInt64])
    func memoryTakesAPercentageOfTheMachine(_ percent: UInt64) throws {
        let policy = try parseLimits("memory-per-user = \(percent)%\nmemory-per-group = \(percent)%")
        #expect(policy.memoryPerUser == (try percentOfMemory(percent)))
        #expect(policy.memoryPerGroup == (try percentOfMemory(percent)))
        #expect(policy.memoryPerUser! % (1 << 20) == 0)
        #expect(policy.memoryPerUser! <= (try memTotal()))
    }

    @Test(arguments: ["max", "infinity"])
    func memoryMaxIsNoLimit(_ value: String) throws {
        let policy = try parseLimits("memory-per-user = \(value)\nmemory-per-group = \(value)")
        #expect(policy.memoryPerUser == nil)
        #expect(policy.memoryPerGroup == nil)
    }

    @Test(arguments: [("1", 1), ("4096", 4096), ("007", 7), ("4194304", 4_194_304)] as [(String, UInt64)])
    func pidsTakeWholeNumbers(_ value: String, _ n: UInt64) throws {
        let policy = try parseLimits("pids-per-user = \(value)\npids-per-group = \(value)")
        #expect(policy.pidsPerUser == n)
        #expect(policy.pidsPerGroup == n)
    }

    @Test func pidsMaxIsNoLimit() throws {
        let policy = try parseLimits("pids-per-user = max\npids-per-group = max")
        #expect(policy.pidsPerUser == nil)
        #expect(policy.pidsPerGroup == nil)
    }

    @Test(arguments: [("0.01", 0.01), ("0.5", 0.5), ("1", 1), ("1.5", 1.5), ("2.25", 2.25), ("16", 16), ("1024", 1024),
                      ("1024.0", 1024), ("0.010", 0.01)] as [(String, Double)])
    func cpusTakeDecimalNumbers(_ value: String, _ n: Double) throws {
        let policy = try parseLimits("cpus-per-user = \(value)\ncpus-per-group = \(value)")
        #expect(policy.cpusPerUser == n)
        #expect(policy.cpusPerGroup == n)
    }

    @Test func cpusMaxIsNoLimit() throws {
        let policy = try parseLimits("cpus-per-user = 4\ncpus-per-group = max")
        #expect(policy.cpusPerUser == 4)
        #expect(policy.cpusPerGroup == nil)
        #expect(try parseLimits("cpus-per-user = max").cpusPerUser == nil)
    }

    /// Each key with a comment after it and odd spacing, among the others.
    @Test func theKeysReadLikeTheOthers() throws {
        let policy = try PolicyFile.parse("""
            [limits]
            groups = 9
            memory-per-user=2g   # all of one user's groups
            \tmemory-per-group = 25% ; one group
            pids-per-user = 1000
            pids-per-group = 200
            cpus-per-user = 3.5
            cpus-per-group = 0.75
            """, path: confPath)
        #expect(policy.maxGroups == 9)
        #expect(policy.memoryPerUser == 2 << 30)
        #expect(policy.memoryPerGroup == (try percentOfMemory(25)))
        #expect(policy.pidsPerUser == 1000)
        #expect(policy.pidsPerGroup == 200)
        #expect(policy.cpusPerUser == 3.5)
        #expect(policy.cpusPerGroup == 0.75)
    }

    @Test(arguments: [
        // Memory: sizes below 1m or above 1024t, percentages outside 1 to 100, anything else.
        ("memory-per-user", "-1"), ("memory-per-user", "0"), ("memory-per-user", "12x"), ("memory-per-user", "101%"),
        ("memory-per-user", "0%"), ("memory-per-user", "-5%"), ("memory-per-user", "%"), ("memory-per-user", "50.5%"),
        ("memory-per-user", "50 %"), ("memory-per-user", "1k"), ("memory-per-user", "1048575"), ("memory-per-user", "1025t"),
        ("memory-per-user", "99999999999999999999999"), ("memory-per-user", "0.5g"), ("memory-per-user", ""),
        ("memory-per-user", "MAX"), ("memory-per-user", "max%"), ("memory-per-user", "unlimited"),
        ("memory-per-group", "-1"), ("memory-per-group", "0"), ("memory-per-group", "12x"), ("memory-per-group", "101%"),
        ("memory-per-group", "1 g"),
    ])
    func badMemoryIsRefused(_ key: String, _ value: String) throws {
        let error = try #require(parseError("[limits]\n\(key) = \(value)\n"))
        #expect(error.kind == .configuration(path: confPath, line: 2))
        #expect(error.message == "limits.\(key): \"\(value)\" is not \(memoryExpected)")
    }

    @Test(arguments: [
        ("pids-per-user", "-1"), ("pids-per-user", "0"), ("pids-per-user", "12x"), ("pids-per-user", "4194305"),
        ("pids-per-user", "1.5"), ("pids-per-user", "1k"), ("pids-per-user", "50%"), ("pids-per-user", "+5"),
        ("pids-per-user", "0x10"), ("pids-per-user", ""), ("pids-per-user", "Max"), ("pids-per-user", "infinity"),
        ("pids-per-user", "99999999999999999999999"),
        ("pids-per-group", "-1"), ("pids-per-group", "0"), ("pids-per-group", "12x"), ("pids-per-group", "1 000"),
    ])
    func badPidsAreRefused(_ key: String, _ value: String) throws {
        let error = try #require(parseError("[limits]\n\(key) = \(value)\n"))
        #expect(error.kind == .configuration(path: confPath, line: 2))
        #expect(error.message == "limits.\(key): \"\(value)\" is not \(pidsExpected)")
    }

    @Test(arguments: [
        ("cpus-per-user", "-1"), ("cpus-per-user", "0"), ("cpus-per-user", "0.001"), ("cpus-per-user", "0.009"),
        ("cpus-per-user", "1024.5"), ("cpus-per-user", "1025"), ("cpus-per-user", "12x"), ("cpus-per-user", "1."),
        ("cpus-per-user", ".5"), ("cpus-per-user", "1.2.3"), ("cpus-per-user", "1e2"), ("cpus-per-user", "inf"),
        ("cpus-per-user", "nan"), ("cpus-per-user", "+1"), ("cpus-per-user", "1,5"), ("cpus-per-user", "0x1"),
        ("cpus-per-user", "50%"), ("cpus-per-user", ""), ("cpus-per-user", "MAX"), ("cpus-per-user", "infinity"),
        ("cpus-per-group", "-1"), ("cpus-per-group", "0"), ("cpus-per-group", "0.001"), ("cpus-per-group", "12x"),
    ])
    func badCpusAreRefused(_ key: String, _ value: String) throws {
        let error = try #require(parseError("[limits]\n\(key) = \(value)\n"))
        #expect(error.kind == .configuration(path: confPath, line: 2))
        #expect(error.message == "limits.\(key): \"\(value)\" is not \(cpusExpected)")
    }

    /// "max" means no limit only for these keys: the older ones still want a number.
    @Test func maxIsNotANumberForTheOtherKeys() throws {
        #expect(try #require(parseError("[limits]\ngroups-per-user = max\n")).message
                == #"limits.groups-per-user: "max" is not a whole number from 0 to 1000000"#)
        #expect(try #require(parseError("[limits]\ntmpfs-size = max\n")).message
                == #"limits.tmpfs-size: "max" is not a size from 1m to 1t (bytes, or a number with k, m, g or t)"#)
    }

    /// An error names its own line among others, and a key is set once.
    @Test func errorsNameTheirLine() throws {
        let error = try #require(parseError("# limits\n[limits]\npids-per-user = 10\n\ncpus-per-group = 0.001\n"))
        #expect(error.description == "\(confPath):5: limits.cpus-per-group: \"0.001\" is not \(cpusExpected)")
        let twice = try #require(parseError("[limits]\nmemory-per-user = 1g\nmemory-per-user = 50%\n"))
        #expect(twice.description == "\(confPath):3: limits.memory-per-user is set twice (first on line 2)")
    }
}

// MARK: - MemTotal

@Suite("Limits: the machine's memory")
struct MachineMemoryTests {
    @Test func theRealMemTotal() throws {
        #expect(MachineMemory.total() == (try memTotal()))
    }

    @Test func memTotalIsReadFromItsLine() {
        #expect(MachineMemory.total(meminfo: "MemTotal:       24684084 kB\nMemFree:        23085868 kB\n") == 24_684_084 * 1024)
        #expect(MachineMemory.total(meminfo: "MemFree: 1 kB\nMemTotal: 2048 kB") == 2 << 20)
        for text in ["", "MemFree: 1 kB\n", "MemTotal: 2048\n", "MemTotal: 2048 MB\n", "MemTotal: x kB\n",
                     "MemTotal: 99999999999999999999 kB\n", "MemTotal: 18014398509481984 kB\n"] {
            #expect(MachineMemory.total(meminfo: text) == nil, "\(text)")
        }
    }

    @Test func aShareIsRoundedDownToAMebibyte() {
        #expect(MachineMemory.share(50, of: 8 << 30) == 4 << 30)
        #expect(MachineMemory.share(100, of: 8 << 30) == 8 << 30)
        #expect(MachineMemory.share(1, of: 100 << 20) == 1 << 20)
        #expect(MachineMemory.share(1, of: 199 << 20) == 1 << 20)
        #expect(MachineMemory.share(50, of: 3 << 20) == 1 << 20)
        #expect(MachineMemory.share(1, of: 50 << 20) == 0)
        #expect(MachineMemory.share(33, of: 24_684_084 * 1024) == 7954 << 20)
        // No size of memory overflows.
        #expect(MachineMemory.share(100, of: .max) == UInt64.max & ~((1 << 20) - 1))
    }
}

// MARK: - Resolving a create's limits

@Suite("Limits: resolve and userLimits")
struct LimitRulesTests {
    /// A policy with these limits only (no default read from the machine).
    func policy(memory: (group: UInt64?, user: UInt64?) = (nil, nil), pids: (group: UInt64?, user: UInt64?) = (nil, nil),
                cpus: (group: Double?, user: Double?) = (nil, nil)) -> Policy {
        var policy = Policy()
        policy.memoryPerGroup = memory.group
        policy.memoryPerUser = memory.user
        policy.pidsPerGroup = pids.group
        policy.pidsPerUser = pids.user
        policy.cpusPerGroup = cpus.group
        policy.cpusPerUser = cpus.user
        return policy
    }

    /// The refusal `resolve` throws, or nil (with an issue recorded) when it accepts.
    func refusal(_ policy: Policy, _ requested: GroupLimits, sourceLocation: SourceLocation = #_sourceLocation) -> RPCError? {
        do throws(RPCError) {
            let limits = try policy.resolve(requested)
            Issue.record("\(requested) was resolved to \(limits)", sourceLocation: sourceLocation)
            return nil
        } catch {
            return error
        }
    }

    @Test func withNoSettingsWhatIsAskedIsWhatIsGiven() throws {
        let open = policy()
        #expect(try open.resolve(GroupLimits()) == GroupLimits())
        let asked = GroupLimits(memory: 1 << 50, pids: 4_194_304, cpuWeight: 10_000, cpus: 1024)
        #expect(try open.resolve(asked) == asked)
    }

    @Test func whatIsNotAskedIsThePerGroupSetting() throws {
        let policy = policy(memory: (512 << 20, 4 << 30), pids: (100, 4096), cpus: (2, 8))
        #expect(try policy.resolve(GroupLimits()) == GroupLimits(memory: 512 << 20, pids: 100, cpus: 2))
        // Each on its own.
        #expect(try policy.resolve(GroupLimits(memory: 1 << 20)) == GroupLimits(memory: 1 << 20, pids: 100, cpus: 2))
        #expect(try policy.resolve(GroupLimits(pids: 7)) == GroupLimits(memory: 512 << 20, pids: 7, cpus: 2))
        #expect(try policy.resolve(GroupLimits(cpus: 0.5)) == GroupLimits(memory: 512 << 20, pids: 100, cpus: 0.5))
    }

    /// Without a per-group setting, a limit not asked for stays none: the per-user one
    /// binds the group through its parent cgroup.
    @Test func withoutAPerGroupSettingWhatIsNotAskedStaysNone() throws {
        let policy = policy(memory: (nil, 4 << 30), pids: (nil, 4096), cpus: (nil, 8))
        #expect(try policy.resolve(GroupLimits()) == GroupLimits())
        #expect(try policy.resolve(GroupLimits(pids: 10)) == GroupLimits(pids: 10))
    }

    @Test func upToEitherSettingIsGivenAsAsked() throws {
        let policy = policy(memory: (512 << 20, 4 << 30), pids: (100, 4096), cpus: (2, 8))
        let asked = GroupLimits(memory: 100 << 20, pids: 50, cpuWeight: 200, cpus: 1.5)
        #expect(try policy.resolve(asked) == asked)
        let atTheLimit = GroupLimits(memory: 512 << 20, pids: 100, cpus: 2)
        #expect(try policy.resolve(atTheLimit) == atTheLimit)
    }

    @Test func aboveThePerGroupSettingIsRefused() throws {
        let policy = policy(memory: (512 << 20, nil), pids: (100, nil), cpus: (2, nil))
        let cases: [(GroupLimits, String)] = [
            (GroupLimits(memory: 1 << 30), #""memory" 1g is above limits.memory-per-group (512m)"#),
            (GroupLimits(memory: (512 << 20) + 1), #""memory" 536870913 is above limits.memory-per-group (512m)"#),
            (GroupLimits(pids: 101), #""pids" 101 is above limits.pids-per-group (100)"#),
            (GroupLimits(cpus: 3), #""cpus" 3 is above limits.cpus-per-group (2)"#),
            (GroupLimits(cpus: 2.01), #""cpus" 2.01 is above limits.cpus-per-group (2)"#),
        ]
        for (asked, message) in cases {
            let error = try #require(refusal(policy, asked))
            #expect(error.reason == .limitExceeded)
            #expect(error.message == message)
        }
    }

    @Test func aboveThePerUserSettingIsRefused() throws {
        let policy = policy(memory: (nil, 4 << 30), pids: (nil, 4096), cpus: (nil, 1.25))
        let cases: [(GroupLimits, String)] = [
            (GroupLimits(memory: 5 << 30), #""memory" 5g is above limits.memory-per-user (4g)"#),
            (GroupLimits(pids: 5000), #""pids" 5000 is above limits.pids-per-user (4096)"#),
            (GroupLimits(cpus: 1.5), #""cpus" 1.5 is above limits.cpus-per-user (1.25)"#),
        ]
        for (asked, message) in cases {
            let error = try #require(refusal(policy, asked))
            #expect(error.reason == .limitExceeded)
            #expect(error.message == message)
            #expect(error.json["data"]?["reason"] == .string("limit_exceeded"))
        }
    }

    /// Over both, the refusal names the lower setting, so that one answer says what would pass.
    @Test func aboveBothTheTighterSettingIsNamed() throws {
        let groupTighter = policy(memory: (1 << 30, 2 << 30), pids: (100, 200), cpus: (1, 2))
        #expect(refusal(groupTighter, GroupLimits(memory: 3 << 30))?.message == #""memory" 3g is above limits.memory-per-group (1g)"#)
        #expect(refusal(groupTighter, GroupLimits(pids: 300))?.message == #""pids" 300 is above limits.pids-per-group (100)"#)
        #expect(refusal(groupTighter, GroupLimits(cpus: 3))?.message == #""cpus" 3 is above limits.cpus-per-group (1)"#)
        let userTighter = policy(memory: (8 << 30, 4 << 30), pids: (5000, 4096), cpus: (4, 2))
        #expect(refusal(userTighter, GroupLimits(memory: 9 << 30))?.message == #""memory" 9g is above limits.memory-per-user (4g)"#)
        #expect(refusal(userTighter, GroupLimits(pids: 6000))?.message == #""pids" 6000 is above limits.pids-per-user (4096)"#)
        #expect(refusal(userTighter, GroupLimits(cpus: 5))?.message == #""cpus" 5 is above limits.cpus-per-user (2)"#)
        // Between the two: only the per-user setting is passed.
        #expect(refusal(userTighter, GroupLimits(memory: 6 << 30))?.message == #""memory" 6g is above limits.memory-per-user (4g)"#)
        // The same value in both: the per-group key is named.
        let same = policy(pids: (100, 100))
        #expect(refusal(same, GroupLimits(pids: 101))?.message == #""pids" 101 is above limits.pids-per-group (100)"#)
    }

    /// A per-group setting above the per-user one is still what a group gets unasked:
    /// the kernel holds it to the user's through the parent cgroup.
    @Test func aPerGroupSettingAboveThePerUserOneIsTheDefault() throws {
        let policy = policy(memory: (8 << 30, 4 << 30))
        #expect(try policy.resolve(GroupLimits()).memory == 8 << 30)
    }

    /// The first kind over its settings is refused, whatever the others ask.
    @Test func oneKindOverIsEnoughToRefuse() throws {
        let policy = policy(memory: (1 << 30, nil), pids: (100, nil), cpus: (2, nil))
        let error = try #require(refusal(policy, GroupLimits(memory: 1 << 20, pids: 50, cpuWeight: 100, cpus: 4)))
        #expect(error.message == #""cpus" 4 is above limits.cpus-per-group (2)"#)
    }

    @Test func cpuWeightPassesAsAsked() throws {
        let policy = policy(memory: (1 << 30, 2 << 30), pids: (100, 200), cpus: (1, 2))
        for weight: UInt64? in [nil, 1, 100, 10_000] {
            #expect(try policy.resolve(GroupLimits(cpuWeight: weight)).cpuWeight == weight)
        }
    }

    @Test func theDefaultPolicyBindsMemoryAndPids() throws {
        let policy = Policy.defaults()
        let half = try percentOfMemory(50)
        #expect(try policy.resolve(GroupLimits()) == GroupLimits())
        #expect(try policy.resolve(GroupLimits(memory: half, pids: 4096, cpus: 1024)) == GroupLimits(memory: half, pids: 4096, cpus: 1024))
        let error = try #require(refusal(policy, GroupLimits(memory: half + 1)))
        #expect(error.message == "\"memory\" \(ByteSize.format(half + 1)) is above limits.memory-per-user (\(ByteSize.format(half)))")
        #expect(refusal(policy, GroupLimits(pids: 4097))?.message == #""pids" 4097 is above limits.pids-per-user (4096)"#)
    }

    @Test func userLimitsAreThePerUserSettings() throws {
        let policy = policy(memory: (1 << 30, 8 << 30), pids: (100, 2000), cpus: (1, 3.5))
        #expect(policy.userLimits == GroupLimits(memory: 8 << 30, pids: 2000, cpuWeight: nil, cpus: 3.5))
        #expect(self.policy().userLimits == GroupLimits())
        let defaults = Policy.defaults()
        #expect(defaults.userLimits == GroupLimits(memory: try percentOfMemory(50), pids: 4096))
        let configured = try PolicyFile.parse("[limits]\nmemory-per-user = max\npids-per-user = max\ncpus-per-user = 0.5\n", path: confPath)
        #expect(configured.userLimits == GroupLimits(cpus: 0.5))
    }

    @Test func cpusAreWrittenShort() {
        #expect(LimitText.cpus(2) == "2")
        #expect(LimitText.cpus(1024) == "1024")
        #expect(LimitText.cpus(1.5) == "1.5")
        #expect(LimitText.cpus(0.01) == "0.01")
        #expect(LimitText.cpus(0.1 + 0.2) == "0.30000000000000004")
    }
}
