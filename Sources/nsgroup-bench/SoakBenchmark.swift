#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

/// The load mix again and again for minutes, watching the supervisor for growth.
///
/// The run is cut into intervals. In each, the clients run the load mix
/// (`LoadPass`) until the interval's end; then every group of the interval
/// is destroyed and the clients are gone, and the supervisor is sampled:
/// open descriptors, RSS and threads. Sampling at these quiet points, rather
/// than in the middle of the traffic, is what makes an exact comparison
/// possible: at each of them the supervisor holds no connection and no group
/// of ours, so anything more it holds is something it kept.
///
/// The verdict compares the last third of the samples with the first third
/// (a warm-up pass runs before the first interval, so the allocator and the
/// runtime's caches have already grown once):
///
/// - descriptors and threads: exact. The largest count in the last third
///   must not exceed the largest in the first. One descriptor leaked per
///   interval shows at once.
/// - RSS: the median of the last third may exceed the median of the first
///   third by at most the tolerance (default 1 MiB). Medians, so one sample
///   caught while malloc had not yet trimmed does not decide; a tolerance,
///   because malloc keeps freed memory it cannot give back (fragmentation)
///   and may grow its heap to the peak of any interval once. Growth without
///   bound keeps rising with every interval, so over the run it leaves the
///   tolerance behind; the output also gives the rate in KiB per minute.
///
/// Each interval's traffic is also checked as `load` checks it (replies,
/// exits, raced creates, list against the clients' view and the holders).
struct SoakBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Repeat the load mix for minutes; fail if the supervisor's descriptors, threads or RSS keep growing.",
        discussion: """
            Samples are taken between intervals, when the interval's groups are destroyed and its \
            clients gone. Verdict: the last third of the samples against the first third — exact \
            for descriptors and threads, medians within --rss-tolerance KiB for RSS. Exits non-zero \
            on any FAIL.
            """)

    @Option(help: "How long to run, in minutes (fractions allowed).")
    var minutes = 2.0

    @Option(help: "Seconds between samples.")
    var interval = 10.0

    @Option(help: "Concurrent clients.")
    var clients = 64

    @Option(help: "Clients racing to create each shared name.")
    var racers = 4

    @Option(help: "KiB the median RSS of the last third of samples may exceed that of the first third.")
    var rssTolerance = 1024

    @Option(help: "Namespace kinds of the groups made (comma-separated; default: the supervisor's default set).")
    var ns: String?

    @Option(help: "Use the supervisor on this socket instead of starting one.")
    var socket: String?

    func validate() throws {
        guard minutes > 0, interval > 0, clients > 0, racers > 0 else {
            throw ValidationError("--minutes, --interval, --clients and --racers must be positive")
        }
        guard minutes * 60 / interval >= 3 else { throw ValidationError("need at least 3 intervals: lower --interval or raise --minutes") }
        guard minutes <= 24 * 60 else { throw ValidationError("--minutes: at most a day") }
    }

    struct Sample {
        var seconds: Double
        var requests: Int
        var process: ProcessSample
    }

    func run() throws {
        Interrupt.install()
        guard geteuid() == 0 else { throw BenchError("run as root: the soak creates groups of several kinds and enters them") }
        let namespaces = ns.map(parseKinds)
        let supervisor = try BenchSupervisor(socket: socket)
        let prefix = "bs\(getpid())-"
        defer {
            GroupOps.destroy(prefix: prefix, socketPath: supervisor.socketPath).forEach { printError("nsgroup-bench: clean-up: \($0)") }
            supervisor.stop()
        }
        guard let pid = supervisor.serverPID else {
            throw BenchError("the supervisor's pid is unknown (a socket made by systemd?): the soak watches its process")
        }
        let intervals = Int((minutes * 60 / interval).rounded(.down))
        let intervalNanoseconds = UInt64(interval * 1e9)
        print("nsgroup-bench soak: \(intervals) intervals of \(formatFixed(interval, 1)) s, \(clients) clients, \(racers) racing per shared name, "
              + "groups of \(namespaces?.joined(separator: ",") ?? "the default kinds"), supervisor pid \(pid)")
        print("mix \(LoadPass.mixDescription)")
        print(supervisor.stateDescription)
        print("group names start with \(prefix); samples are taken after each interval, once its groups are destroyed and its clients gone")
        print("")

        func pass(_ tag: String, operations: Int, deadline: UInt64, endsAtDeadline: Bool) -> LoadPass {
            LoadPass(socketPath: supervisor.socketPath, clients: clients, operations: operations, deadline: deadline,
                     deadlineEndsPass: endsAtDeadline, racers: racers, namespaces: namespaces, prefix: prefix + tag)
        }
        // Warm-up, as in `load`.
        let warmUp = pass("w-", operations: 10, deadline: monotonicNanoseconds() + 120_000_000_000, endsAtDeadline: false)
        var failures: [String: Check] = [:]
        var checkOrder: [String] = []
        func record(_ checks: [Check], interval: Int) {
            for check in checks {
                if !checkOrder.contains(check.name) { checkOrder.append(check.name) }
                if check.passed == false, failures[check.name] == nil {
                    failures[check.name] = Check(name: check.name, passed: false, detail: "interval \(interval): \(check.detail)")
                }
            }
        }
        // Only its failures are reported (its time bound is not the soak's).
        record(try warmUp.run().checks(supervisorPID: pid).filter { $0.passed == false }
            .map { Check(name: "warm-up: " + $0.name, passed: false, detail: $0.detail) }, interval: 0)
        GroupOps.destroy(prefix: warmUp.prefix, socketPath: supervisor.socketPath).forEach { printError("nsgroup-bench: clean-up: \($0)") }
        _ = try ProcessProbe.settledDescriptorCount(pid)
        let baseline = try ProcessProbe.sample(pid)
        print(padded("time", 9) + padded("requests", 10) + padded("fds", 6) + padded("RSS KiB", 10) + "threads")
        print(padded("warm-up", 9) + padded("-", 10) + padded(String(baseline.descriptors), 6)
              + padded(String(baseline.residentKiB), 10) + String(baseline.threads))

        let start = monotonicNanoseconds()
        var samples: [Sample] = []
        var totalRequests = 0
        for k in 1...intervals {
            try Interrupt.check()
            let deadline = start + UInt64(k) * intervalNanoseconds
            let current = pass("\(k)-", operations: 100_000, deadline: deadline, endsAtDeadline: true)
            let outcome = try current.run()
            totalRequests += outcome.requests
            record(outcome.checks(supervisorPID: pid), interval: k)
            let left = GroupOps.destroy(prefix: current.prefix, socketPath: supervisor.socketPath)
            if !left.isEmpty {
                record([Check(name: "every group destroyed after its interval", passed: false, detail: left.prefix(3).joined(separator: "; "))], interval: k)
            }
            _ = try ProcessProbe.settledDescriptorCount(pid)
            let sample = Sample(seconds: Double(monotonicNanoseconds() - start) / 1e9, requests: outcome.requests,
                                process: try ProcessProbe.sample(pid))
            samples.append(sample)
            print(padded(formatFixed(sample.seconds, 1) + " s", 9) + padded(String(sample.requests), 10)
                  + padded(String(sample.process.descriptors), 6) + padded(String(sample.process.residentKiB), 10)
                  + String(sample.process.threads))
        }

        let third = max(1, samples.count / 3)
        let first = Array(samples.prefix(third))
        let last = Array(samples.suffix(third))
        func maximum(_ s: [Sample], _ key: (ProcessSample) -> Int) -> Int { s.map { key($0.process) }.max() ?? 0 }
        func median(_ s: [Sample]) -> Double {
            let sorted = s.map { Double($0.process.residentKiB) }.sorted()
            return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
        let rssFirst = median(first)
        let rssLast = median(last)
        let minutesApart = (last.map(\.seconds).reduce(0, +) / Double(last.count) - first.map(\.seconds).reduce(0, +) / Double(first.count)) / 60
        let rate = minutesApart > 0 ? (rssLast - rssFirst) / minutesApart : 0

        print("")
        print("\(totalRequests) requests in \(samples.count) intervals; verdict: the last \(third) sample(s) against the first \(third):")
        print("descriptors and threads exact (largest of the last ≤ largest of the first); RSS: median of the last ≤ median of the first + \(rssTolerance) KiB")
        var checks: [Check] = checkOrder.map { failures[$0] ?? Check(name: $0, passed: true, detail: "in every interval") }
        let fdFirst = maximum(first, \.descriptors), fdLast = maximum(last, \.descriptors)
        checks.append(Check(name: "descriptors do not grow (exact)", passed: fdLast <= fdFirst,
                            detail: "largest count \(fdFirst) in the first third, \(fdLast) in the last (baseline \(baseline.descriptors))"))
        let threadsFirst = maximum(first, \.threads), threadsLast = maximum(last, \.threads)
        checks.append(Check(name: "threads do not grow (exact)", passed: threadsLast <= threadsFirst,
                            detail: "largest count \(threadsFirst) in the first third, \(threadsLast) in the last (baseline \(baseline.threads))"))
        checks.append(Check(name: "RSS does not grow (median within \(rssTolerance) KiB)", passed: rssLast - rssFirst <= Double(rssTolerance),
                            detail: "median \(formatFixed(rssFirst, 0)) KiB in the first third, \(formatFixed(rssLast, 0)) KiB in the last "
                                + "(\(rssLast >= rssFirst ? "+" : "")\(formatFixed(rssLast - rssFirst, 0)) KiB, \(formatFixed(rate, 0)) KiB/min; baseline \(baseline.residentKiB) KiB)"))
        for check in checks { print(check.line) }
        let failed = checks.filter { $0.passed == false }.count
        print("")
        print(failed == 0 ? "soak: PASS (\(checks.count) checks)" : "soak: FAIL (\(failed) of \(checks.count) checks failed)")
        if failed > 0 { throw ExitCode.failure }
    }
}
