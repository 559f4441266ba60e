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
