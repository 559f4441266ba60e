#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Client
import POSIX
import RPC

/// `list` against the number of groups, and what a group costs in memory.
struct ScaleBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Time of `list` with 1, 100 and 1000 groups; supervisor memory per group; holder memory.",
        discussion: """
            Groups are made by root over RPC with only a uts namespace (the cheapest kind: \
            1000 creates take seconds, and a group's record and holder cost the supervisor the \
            same whatever its kinds). For each count: the median client round trip of `list` \
            and of `version` (the cheapest request) over --requests requests, their difference \
            as an estimate of the server's work, and the supervisor's own CPU time per `list` \
            from /proc/PID/task/*/schedstat (what the goal is judged on). Supervisor memory per \
            group is (RSS with the most groups − RSS with none) / groups; holder memory is the \
            median VmRSS of the holders. Goals: list of 1000 groups under 5 ms at the server, \
            under 20 KiB of supervisor memory per group, holders under 1 MiB.
            """)

    @Option(help: "Requests timed at each count.")
    var requests = 200

    @Option(help: "Group counts to measure at (comma-separated, increasing; the last is the memory figure's).")
    var counts = "1,100,1000"

    @Option(help: "Use the supervisor on this socket instead of starting one.")
    var socket: String?

    func validate() throws {
        let parsed = counts.split(separator: ",").compactMap { Int($0) }
        guard !parsed.isEmpty, parsed.allSatisfy({ $0 > 0 && $0 <= 4000 }), parsed == parsed.sorted() else {
            throw ValidationError("--counts: increasing numbers from 1 to 4000")
        }
        guard requests > 0 else { throw ValidationError("--requests must be positive") }
    }

    func run() throws {
        Interrupt.install()
        _ = try ScaleRun(requests: requests, counts: counts.split(separator: ",").compactMap { Int($0) }, socket: socket).run()
    }
}

struct ScaleRun {
    var requests: Int
    var counts: [Int]
    var socket: String?

    static let namespaces = ["uts"]
    static let listGoalMilliseconds = 5.0
    static let perGroupGoalKiB = 20.0
    static let holderGoalKiB = 1024.0

    private struct Point {
        var groups: Int
        var replyBytes: Int
        var list: Timings
        var version: Timings
        /// The supervisor's CPU time per request, in ms (nil: its pid is unknown).
        var listCPU: Double?
        var versionCPU: Double?
    }

    func run() throws -> [SummaryRow] {
        guard geteuid() == 0 else { throw BenchError("run as root: the benchmark creates groups") }
        let supervisor = try BenchSupervisor(socket: socket)
        let prefix = "bsc\(getpid())-"
        defer {
            GroupOps.destroy(prefix: prefix, socketPath: supervisor.socketPath).forEach { printError("nsgroup-bench: clean-up: \($0)") }
            supervisor.stop()
        }
        let pid = supervisor.serverPID
        let maxCount = counts.last!
        let existing = try GroupOps.list(supervisor.socketPath).count
        guard existing == 0 || socket != nil else { throw BenchError("the private supervisor already has groups") }

        // Warm-up: every request kind once, so the baseline has seen them.
        try GroupOps.create([prefix + "warm"], namespaces: Self.namespaces, socketPath: supervisor.socketPath)
        _ = try measure(supervisor.socketPath, pid: pid, groups: 1, count: 20)
        GroupOps.destroy([prefix + "warm"], socketPath: supervisor.socketPath)
        var rssEmpty: Int?
        if let pid {
            _ = try ProcessProbe.settledDescriptorCount(pid)
            rssEmpty = try ProcFS.residentKiB(pid: pid)
        }

        var points: [Point] = []
        var made = 0
        var rssMadeOnly: Int?
        for count in counts {
            try Interrupt.check()
            let names = (made..<count).map { prefix + "g" + String($0) }
            try GroupOps.create(names, namespaces: Self.namespaces, socketPath: supervisor.socketPath)
            made = count
            if count == maxCount, let pid { rssMadeOnly = try ProcFS.residentKiB(pid: pid) }
            points.append(try measure(supervisor.socketPath, pid: pid, groups: count + existing, count: requests))
        }
        let rssListed = pid.flatMap { try? ProcFS.residentKiB(pid: $0) }
        let holders = try GroupOps.list(supervisor.socketPath).filter { $0.name.hasPrefix(prefix) }.map(\.holder)
        let holderRSS = holders.compactMap { try? ProcFS.residentKiB(pid: $0) }.map(Double.init)

        print("nsgroup-bench scale: `list` as root with N groups (uts only), \(requests) requests per figure, one connection, request-then-wait")
        print("server time: the supervisor's CPU time per request (schedstat); estimate: round trip − `version` round trip")
        print(supervisor.stateDescription)
        print("")
        print(padded("groups", 8) + padded("reply", 11) + padded("list rtt", 11) + padded("version rtt", 13)
              + padded("estimate", 11) + padded("server CPU", 12) + "(medians; p90 of list rtt)")
        for point in points {
            let estimate = point.list.median - point.version.median
            print(padded(String(point.groups), 8) + padded(formatKiB(Double(point.replyBytes) / 1024), 11)
                  + padded(formatMilliseconds(point.list.median), 11) + padded(formatMilliseconds(point.version.median), 13)
                  + padded(formatMilliseconds(estimate), 11)
                  + padded(point.listCPU.map(formatMilliseconds) ?? "n/a", 12) + formatMilliseconds(point.list.p90))
        }
        print("")
        var rows: [SummaryRow] = []
        let top = points.last!
        let serverTime = top.listCPU ?? (top.list.median - top.version.median)
        let listMet = serverTime < Self.listGoalMilliseconds
        print("list of \(top.groups) groups at the server: \(formatMilliseconds(serverTime))"
              + (top.listCPU != nil ? " CPU (estimate from round trips: \(formatMilliseconds(top.list.median - top.version.median)))" : " (estimate)")
              + "   goal: under \(formatFixed(Self.listGoalMilliseconds, 0)) ms   \(metText(listMet))")
        rows.append(SummaryRow(figure: "list of \(top.groups) groups, time at the server (CPU)", ours: formatMilliseconds(serverTime),
                               anchor: nil, ratio: nil, goal: "< 5 ms", met: listMet))
        if let rssEmpty, let rssMadeOnly, let rssListed {
            let perGroup = Double(rssMadeOnly - rssEmpty) / Double(maxCount)
            let perGroupListed = Double(rssListed - rssEmpty) / Double(maxCount)
            let met = max(perGroup, perGroupListed) < Self.perGroupGoalKiB
            print("supervisor RSS: \(rssEmpty) KiB with no group, \(rssMadeOnly) KiB with \(maxCount) (\(formatFixed(perGroup, 1)) KiB per group), "
                  + "\(rssListed) KiB after listing them (\(formatFixed(perGroupListed, 1)) KiB per group)   goal: under 20 KiB per group   \(metText(met))")
            rows.append(SummaryRow(figure: "supervisor RSS per group (\(maxCount) groups, after listing)",
                                   ours: formatFixed(max(perGroup, perGroupListed), 1) + " KiB", anchor: nil, ratio: nil,
                                   goal: "< 20 KiB", met: met))
        } else {
            print("supervisor RSS: n/a (its pid is unknown)")
        }
        if !holderRSS.isEmpty {
            let median = percentile(holderRSS, 0.5)
            let met = median < Self.holderGoalKiB
            print("holder RSS (VmRSS): median \(formatFixed(median, 0)) KiB, p90 \(formatFixed(percentile(holderRSS, 0.9), 0)) KiB over \(holderRSS.count) holders"
                  + "   goal: under 1 MiB   \(metText(met))")
            rows.append(SummaryRow(figure: "holder RSS (median VmRSS)", ours: formatFixed(median, 0) + " KiB", anchor: nil, ratio: nil,
                                   goal: "< 1 MiB", met: met))
        }
        return rows
    }

    private func measure(_ socketPath: String, pid: pid_t?, groups: Int, count: Int) throws -> Point {
        let connection = try RawConnection(path: socketPath)
        let reply = try RawRequest.reply(to: RawRequest.list, socketPath: socketPath)
        let warm = max(5, count / 10)
        _ = try connection.roundTrips(RawRequest.list, expecting: RawRequest.resultPrefix, count: warm)
        _ = try connection.roundTrips(RawRequest.version, expecting: RawRequest.resultPrefix, count: warm)
        var list = Timings(), version = Timings()
        // Alternating batches of each, so that neither sees only a quiet or a busy moment.
        var listCPU: UInt64 = 0, versionCPU: UInt64 = 0
        let batch = max(1, min(count, 20))
        var done = 0
        while done < count {
            let n = min(batch, count - done)
            var before = cpuTime(pid)
            for t in try connection.latencies(RawRequest.list, expecting: RawRequest.resultPrefix, count: n) { list.add(nanoseconds: t) }
            var after = cpuTime(pid)
            listCPU += after &- before
            before = after
            for t in try connection.latencies(RawRequest.version, expecting: RawRequest.resultPrefix, count: n) { version.add(nanoseconds: t) }
            after = cpuTime(pid)
            versionCPU += after &- before
            done += n
        }
        return Point(groups: groups, replyBytes: reply.count, list: list, version: version,
                     listCPU: pid == nil ? nil : Double(listCPU) / Double(count) / 1e6,
                     versionCPU: pid == nil ? nil : Double(versionCPU) / Double(count) / 1e6)
    }
}
