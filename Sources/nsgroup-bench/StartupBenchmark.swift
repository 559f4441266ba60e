#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

/// The CLI's own start-up: `nsgroup --socket /nonexistent list` (start, parse,
/// fail to connect, one error line) against a static C program that starts and
/// exits at once, in the same run.
struct StartupBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "startup",
        abstract: "Time `nsgroup --socket /nonexistent list` against a static C program that starts and exits.",
        discussion: """
            The anchor is nsgroup-holder run with no arguments: a static C program of this \
            build, with no Swift runtime, that refuses them and exits. Both run alternately \
            from fork to exit, stdio on /dev/null; wall time is the median, CPU time (user + \
            system of the child) the mean. No supervisor is needed. Goal: at most 2.
            """)

    @Option(help: "How many runs of each.")
    var runs = 500

    @Option(help: "Runs of each before measuring.")
    var warmup = 50

    func validate() throws {
        guard runs > 0, warmup >= 0 else { throw ValidationError("--runs must be positive") }
    }

    func run() throws {
        Interrupt.install()
        _ = try StartupRun(runs: runs, warmup: warmup).run()
    }
}

struct StartupRun {
    var runs: Int
    var warmup: Int

    static let cliArguments = ["nsgroup", "--socket", "/nonexistent", "list"]

    /// One program run: wall and CPU time in nanoseconds, and its exit status.
    private func measure(_ path: String, _ arguments: [String]) throws -> (wall: UInt64, cpu: UInt64, status: Int32) {
        let before = childrenCPUNanoseconds()
        let start = monotonicNanoseconds()
        let status = try ProgramRunner.run(path, arguments)
        let wall = monotonicNanoseconds() - start
        return (wall, childrenCPUNanoseconds() - before, status)
    }

    func run() throws -> [SummaryRow] {
        let anchorPath = Binaries.directory + "/nsgroup-holder"
        let cli = { () throws -> (wall: UInt64, cpu: UInt64) in
            let r = try measure(Binaries.nsgroup, Self.cliArguments)
            // 125: nsgroup could not reach the supervisor, as intended.
            guard r.status == 125 else { throw BenchError("nsgroup --socket /nonexistent list exited with \(r.status), expected 125") }
            return (r.wall, r.cpu)
        }
        let anchor = { () throws -> (wall: UInt64, cpu: UInt64) in
            let r = try measure(anchorPath, ["nsgroup-holder"])
            guard r.status != 0, r.status < 126 else { throw BenchError("nsgroup-holder without arguments exited with \(r.status)") }
            return (r.wall, r.cpu)
        }
        for _ in 0..<warmup {
            try Interrupt.check()
            _ = try cli()
            _ = try anchor()
        }
        var wall = [Timings(), Timings()]
        var cpu: [UInt64] = [0, 0]
        for i in 0..<runs {
            try Interrupt.check()
            // Alternate which goes first, so neither always follows the other.
            let order = i % 2 == 0 ? [0, 1] : [1, 0]
            for which in order {
                let r = try which == 0 ? cli() : anchor()
                wall[which].add(nanoseconds: r.wall)
                cpu[which] += r.cpu
            }
        }
        let cpuMean = cpu.map { Double($0) / Double(runs) / 1_000_000 }
        let wallRatio = wall[0].median / wall[1].median
        let cpuRatio = cpuMean[0] / max(cpuMean[1], 0.001)
        print("nsgroup --socket /nonexistent list vs nsgroup-holder (static C), \(runs) runs each")
        print("  wall median   nsgroup \(formatMilliseconds(wall[0].median))   anchor \(formatMilliseconds(wall[1].median))   ratio \(formatRatio(wallRatio))")
        print("  CPU mean      nsgroup \(formatMilliseconds(cpuMean[0]))   anchor \(formatMilliseconds(cpuMean[1]))   ratio \(formatRatio(cpuRatio))")
        return [
            SummaryRow(figure: "`nsgroup --socket /nonexistent list` (start-up and one error) vs a static C program that starts and exits, wall medians of \(runs)",
                       ours: formatMilliseconds(wall[0].median), anchor: formatMilliseconds(wall[1].median),
                       ratio: wallRatio, goal: "≤ 2", met: wallRatio <= 2),
            SummaryRow(figure: "the same, CPU time (user + system) means",
                       ours: formatMilliseconds(cpuMean[0]), anchor: formatMilliseconds(cpuMean[1]),
                       ratio: cpuRatio, goal: "–", met: nil),
        ]
    }
}

/// User + system CPU time of the waited-for children so far.
private func childrenCPUNanoseconds() -> UInt64 {
    var usage = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &usage)
    func ns(_ t: timeval) -> UInt64 { UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_usec) * 1000 }
    return ns(usage.ru_utime) + ns(usage.ru_stime)
}
