#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CBench
import Client
import POSIX
import RPC
import Synchronization

/// `list` and `inspect` latency idle, under enter loops, and while one enter
/// waits on a file lease a user holds.
struct LatencyBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latency",
        abstract: "p50/p99 of list and inspect: idle, while clients loop on enter, and while one enter is stuck on a leased file.",
        discussion: """
            Two probe connections (root) send `list` and `inspect G`, one request every --interval-ms \
            each, waiting for each reply, for --seconds per phase: (a) idle; (b) while --clients \
            connections (root, RPC) run `enter G -- true` in loops; (c) while the user's \
            `nsgroup enter G -- FILE` waits in the kernel because the benchmark holds a write lease \
            (F_SETLEASE) on FILE, a copy of true that the user owns. The window of (c) starts once the \
            exec has reached the file and the lease is given up when it ends, so the stuck enter \
            finishes and the phase lasts --seconds whatever the supervisor does. A request that \
            waited longer than the interval stands in for those the probe could not send meanwhile \
            (latencies are corrected for coordinated omission). Goal: p99 under (c) at most 2× idle, \
            and no request over 1 s. Exits non-zero on a correctness failure (a lost reply, an enter \
            with the wrong status, a stuck enter that never reached the file or never finished, a \
            group left over), never on a slow figure.
            """)

    @Option(help: "Seconds of each phase (the stuck enter is held that long).")
    var seconds = 3.0

    @Option(help: "Milliseconds between the requests of each probe.")
    var intervalMs = 2.0

    @Option(help: "Connections running enter loops in phase (b).")
    var clients = 8

    @Option(help: "The unprivileged user who owns the group and the leased file (default: nsg-alice, else nobody).")
    var user: String?

    @Option(help: "Use the supervisor on this socket instead of starting one.")
    var socket: String?

    func validate() throws {
        guard seconds > 0, seconds <= 40, intervalMs >= 0.1, intervalMs <= 1000, clients > 0, clients <= 64 else {
            throw ValidationError("--seconds in (0, 40] (under the kernel's lease-break-time), --interval-ms in [0.1, 1000], --clients in 1...64")
        }
    }

    func run() throws {
        Interrupt.install()
        let outcome = try LatencyRun(seconds: seconds, intervalMilliseconds: intervalMs, clients: clients, user: user, socket: socket).run()
        if !outcome.passed { throw ExitCode.failure }
    }
}

/// Request latencies of one probe in one phase.
struct LatencySample {
    /// Round trips as measured, in nanoseconds.
    var measured: [UInt64] = []
    /// The probe's interval: a round trip longer than it kept the probe from
    /// sending the requests it would have sent meanwhile.
    var intervalNanoseconds: UInt64
    var failure: String?

    /// Measured round trips plus, for each one longer than the interval, one
    /// of (L - k·interval) for every interval it covered: what the requests the
    /// probe could not send would have waited (coordinated omission), so that a
    /// stall of the server weighs by its length and not as one sample.
    var corrected: [Double] {
        var values: [Double] = []
        values.reserveCapacity(measured.count)
        for latency in measured {
            values.append(Double(latency) / 1e6)
            guard intervalNanoseconds > 0 else { continue }
            var missed = latency
            while missed > intervalNanoseconds {
                missed -= intervalNanoseconds
                values.append(Double(missed) / 1e6)
            }
        }
        return values.sorted()
    }

    var maximum: Double { Double(measured.max() ?? 0) / 1e6 }
    var overOneSecond: Int { measured.filter { $0 > 1_000_000_000 }.count }
}

/// A stat line of one probe in one phase, in milliseconds.
struct LatencyFigures {
    var requests: Int
    var p50: Double
    var p99: Double
    var maximum: Double
    var overOneSecond: Int

    init(_ sample: LatencySample) {
        let values = sample.corrected
        requests = sample.measured.count
        p50 = percentile(values, 0.5)
        p99 = percentile(values, 0.99)
        maximum = sample.maximum
        overOneSecond = sample.overOneSecond
    }
}

struct LatencyOutcome {
    var passed: Bool
    var rows: [SummaryRow]
}

struct LatencyRun {
    var seconds: Double
    var intervalMilliseconds: Double
    var clients: Int
    var user: String?
    var socket: String?

    private var intervalNanoseconds: UInt64 { UInt64(intervalMilliseconds * 1e6) }
    private var windowNanoseconds: UInt64 { UInt64(seconds * 1e9) }

    func run() throws -> LatencyOutcome {
        guard geteuid() == 0 else { throw BenchError("run as root: the benchmark holds a lease on a file it does not own") }
        let entry = try benchUser(user)
        let identity = (uid: entry.uid, gid: entry.gid)
        let supervisor = try BenchSupervisor(socket: socket)
        let name = "blt\(getpid())-g"
        defer {
            GroupOps.destroy([name], socketPath: supervisor.socketPath).forEach { printError("nsgroup-bench: clean-up: \($0)") }
            supervisor.stop()
        }
        let nsgroup = ["nsgroup", "--socket", supervisor.socketPath]
        let created = try ProgramRunner.run(Binaries.nsgroup, nsgroup + ["create", name], as: identity)
        guard created == 0 else { throw BenchError("nsgroup create \(name) as \(entry.name) failed (status \(created))") }

        // The file the stuck enter runs: a copy of true, owned by the user, in
        // a directory of its own that everyone can search.
        let directory = try makeDirectory(BenchSupervisor.defaultParent + "/nsgroup-bench-lease-XXXXXX")
        defer { Directory.removeTree(directory) }
        let program = directory + "/leased-true"
        try copyFile("/bin/true", to: program, mode: 0o755)
        guard chown(program, entry.uid, entry.gid) == 0 else { throw BenchError("chown \(program): \(Errno.current)") }
        let breakTime = Int(((try? ProcFS.readText("/proc/sys/fs/lease-break-time")) ?? "").trimmed) ?? 45

        let requests: [(label: String, line: [UInt8])] = [
            ("list", RawRequest.list),
            ("inspect", Array(#"{"jsonrpc":"2.0","method":"inspect","params":{"name":"\#(name)"},"id":1}"#.utf8) + [0x0A]),
        ]
        let probes = try requests.map { _ in try RawConnection(path: supervisor.socketPath) }
        // Warm both paths (and the connections) up before anything is measured.
        for (index, request) in requests.enumerated() {
            _ = try probes[index].roundTrips(request.line, expecting: RawRequest.resultPrefix, count: 50)
        }

        print("nsgroup-bench latency: `list` and `inspect \(name)` on 2 connections (root), one request every "
              + "\(formatFixed(intervalMilliseconds, 1)) ms each, waiting for each reply; \(formatFixed(seconds, 1)) s per phase")
        print("(a) idle; (b) while \(clients) connections (root, RPC) run `enter \(name) -- true` in loops; "
              + "(c) while \(entry.name)'s `nsgroup enter \(name) -- \(program)` waits on a write lease (lease-break-time \(breakTime) s), "
              + "given up when the window ends")
        print(supervisor.stateDescription)
        print("")

        var checks: [Check] = []

        // (a) idle.
        try Interrupt.check()
        let idle = measureProbes(probes, requests, start: monotonicNanoseconds() + 10_000_000)

        // (b) enter loops.
        try Interrupt.check()
        let enterConnections = try (0..<clients).map { _ in try EnterConnection(socketPath: supervisor.socketPath, replyTimeoutSeconds: 30) }
        let start = monotonicNanoseconds() + 20_000_000
        let deadline = start + windowNanoseconds
        let loaded = ClientThreads.run(clients + 1) { index -> (LoopTally?, [LatencySample]) in
            guard index < clients else { return (nil, measureProbes(probes, requests, start: start)) }
            var tally = LoopTally()
            sleep(untilMonotonic: start)
            while monotonicNanoseconds() < deadline, !Interrupt.requested {
                do {
                    let status = try enterConnections[index].run(name, ["true"])
                    if status == 0 { tally.completed += 1 } else { tally.fail("enter -- true ended with status \(status)") }
                } catch {
                    tally.fail("\(error)")
                    break
                }
            }
            return (tally, [])
        }
        let enterTally = LoopTally.sum(loaded.compactMap(\.0))
        let underEnters = loaded.last!.1
        checks.append(Check(name: "every enter of the loops exited 0", passed: enterTally.failures == 0 && enterTally.completed > 0,
                            detail: "\(enterTally.completed) enters exited 0" + (enterTally.failures == 0 ? "" : "; " + enterTally.failureText)))

        // (c) one enter stuck on a leased file.
        try Interrupt.check()
        let stuck = try stuckPhase(probes, requests, program: program, group: name, nsgroup: nsgroup, identity: identity,
                                   breakTime: breakTime)
        checks += stuck.checks

        let phases: [(label: String, samples: [LatencySample])] = [
            ("(a) idle", idle), ("(b) \(clients) enter loops", underEnters), ("(c) one enter stuck", stuck.samples),
        ]
        for (phase, samples) in phases {
            let failures = samples.compactMap(\.failure)
            checks.append(Check(name: "every probe request of \(phase) answered", passed: failures.isEmpty,
                                detail: samples.enumerated().map { "\(requests[$0.offset].label) \($0.element.measured.count)" }.joined(separator: ", ")
                                    + (failures.isEmpty ? "" : "; " + failures.joined(separator: "; "))))
        }

        print(padded("phase", 22) + padded("request", 9) + padded("requests", 10) + padded("p50", 12) + padded("p99", 12)
              + padded("max", 12) + "over 1 s")
        var figures: [[LatencyFigures]] = []
        for (phase, samples) in phases {
            figures.append(samples.map(LatencyFigures.init))
            for (index, figure) in figures.last!.enumerated() {
                print(padded(phase, 22) + padded(requests[index].label, 9) + padded(String(figure.requests), 10)
                      + padded(formatLatency(figure.p50), 12) + padded(formatLatency(figure.p99), 12)
                      + padded(formatLatency(figure.maximum), 12) + String(figure.overOneSecond))
            }
        }
        print("")
        var rows: [SummaryRow] = []
        print("p99 against idle:")
        for (index, request) in requests.enumerated() {
            let idleP99 = figures[0][index].p99
            let loadedRatio = figures[1][index].p99 / idleP99
            let stuckRatio = figures[2][index].p99 / idleP99
            print("  " + padded(request.label, 9) + "enter loops " + padded(formatRatio(loadedRatio), 10)
                  + "stuck enter " + padded(formatRatio(stuckRatio), 10) + "goal (stuck): at most 2.00   \(metText(stuckRatio <= 2))")
            rows.append(SummaryRow(figure: "`\(request.label)` p99 while an enter is stuck on a leased file vs idle",
                                   ours: formatLatency(figures[2][index].p99), anchor: "idle " + formatLatency(idleP99),
                                   ratio: stuckRatio, goal: "≤ 2", met: stuckRatio <= 2))
            rows.append(SummaryRow(figure: "`\(request.label)` p99 while \(clients) clients loop on `enter -- true` vs idle",
                                   ours: formatLatency(figures[1][index].p99), anchor: "idle " + formatLatency(idleP99),
                                   ratio: loadedRatio, goal: "-", met: nil))
        }
        let longest = figures[2].map(\.maximum).max() ?? 0
        let late = figures[2].reduce(0) { $0 + $1.overOneSecond }
        print("longest list/inspect while the enter was stuck: \(formatLatency(longest)); requests over 1 s: \(late)   "
              + "goal: none   \(metText(late == 0))")
        if let waited = stuck.enterNanoseconds {
            print("the stuck enter: reached the file \(formatLatency(Double(stuck.reachedNanoseconds ?? 0) / 1e6)) after it started, "
                  + "ended \(formatLatency(Double(waited) / 1e6)) after it started (the lease was held \(formatFixed(seconds, 1)) s of that)")
        }
        print("enter loops of (b): \(enterTally.completed) enters in \(formatFixed(seconds, 1)) s")
        rows.append(SummaryRow(figure: "longest `list`/`inspect` while an enter is stuck on a leased file", ours: formatLatency(longest),
                               anchor: nil, ratio: nil, goal: "< 1 s", met: late == 0))

        let left = ((try? GroupOps.list(supervisor.socketPath)) ?? []).filter { $0.name == name }
        let destroyFailures = GroupOps.destroy([name], socketPath: supervisor.socketPath)
        let after = ((try? GroupOps.list(supervisor.socketPath)) ?? [GroupInfo]()).filter { $0.name == name }
        checks.append(Check(name: "the group destroyed at the end", passed: left.count == 1 && destroyFailures.isEmpty && after.isEmpty,
                            detail: destroyFailures.isEmpty && after.isEmpty ? "\(name) destroyed" : destroyFailures.joined(separator: "; ")))

        print("")
        for check in checks { print(check.line) }
        let failed = checks.filter { $0.passed == false }.count
        print("")
        print(failed == 0 ? "latency: PASS (\(checks.count) checks)" : "latency: FAIL (\(failed) of \(checks.count) checks failed)")
        return LatencyOutcome(passed: failed == 0, rows: rows)
    }

    /// Both probes, each on its own thread, from `start` for one window.
    private func measureProbes(_ probes: [RawConnection], _ requests: [(label: String, line: [UInt8])], start: UInt64) -> [LatencySample] {
        let deadline = start + windowNanoseconds
        let lines = requests.map(\.line)
        let interval = intervalNanoseconds
        return ClientThreads.run(probes.count) { index in
            probe(probes[index], lines[index], start: start, deadline: deadline, interval: interval)
        }
    }

    private struct StuckOutcome {
        var samples: [LatencySample]
        var checks: [Check]
        /// How long the stuck `nsgroup enter` ran, start to exit.
        var enterNanoseconds: UInt64?
        /// How long after its start the exec reached the leased file.
        var reachedNanoseconds: UInt64?
    }

    /// Phase (c): the user's enter of the leased file on one thread; a
    /// controller that waits until the exec has reached the file, opens the
    /// window, and gives the lease up when it closes; the probes, in the window.
    private func stuckPhase(_ probes: [RawConnection], _ requests: [(label: String, line: [UInt8])], program: String, group: String,
                            nsgroup: [String], identity: (uid: uid_t, gid: gid_t), breakTime: Int) throws -> StuckOutcome {
        let leaseFD = cbench_lease_take(program)
        guard leaseFD >= 0 else { throw BenchError("cannot take a write lease on \(program): \(Errno.current)") }
        let lease = HeldLease(leaseFD)
        defer { lease.release() }
        let windowStart = WindowStart()
        let lines = requests.map(\.line)
        let interval = intervalNanoseconds, window = windowNanoseconds
        let reachLimit = UInt64(10) * 1_000_000_000
        let enterStarted = monotonicNanoseconds()
        let nsgroupPath = Binaries.nsgroup
        let argv = nsgroup + ["enter", group, "--", program]

        enum Part: Sendable {
            case enter(status: Result<Int32, BenchError>, nanoseconds: UInt64)
            case controller(reached: UInt64?)
            case probe(LatencySample)
        }
        let parts = ClientThreads.run(2 + probes.count) { index -> Part in
            switch index {
            case 0:
                let status: Result<Int32, BenchError>
                do {
                    status = .success(try ProgramRunner.run(nsgroupPath, argv, as: identity))
                } catch {
                    status = .failure(BenchError("cannot run nsgroup: \(error)"))
                }
                return .enter(status: status, nanoseconds: monotonicNanoseconds() - enterStarted)
            case 1:
                var reached: UInt64?
                let giveUp = enterStarted + reachLimit
                while monotonicNanoseconds() < giveUp, !Interrupt.requested {
                    let broken = lease.broken()
                    if broken != 0 { reached = broken == 1 ? monotonicNanoseconds() : nil; break }
                    usleep(500)
                }
                guard let reached else {
                    windowStart.value.store(UInt64.max, ordering: .releasing)
                    lease.release()
                    return .controller(reached: nil)
                }
                windowStart.value.store(reached, ordering: .releasing)
                sleep(untilMonotonic: reached + window)
                lease.release()
                return .controller(reached: reached - enterStarted)
            default:
                var start: UInt64 = 0
                while true {
                    start = windowStart.value.load(ordering: .acquiring)
                    if start != 0 { break }
                    usleep(200)
                }
                guard start != UInt64.max else {
                    return .probe(LatencySample(intervalNanoseconds: interval, failure: "not measured: the enter never reached the file"))
                }
                return .probe(probe(probes[index - 2], lines[index - 2], start: start, deadline: start + window, interval: interval))
            }
        }

        var outcome = StuckOutcome(samples: [], checks: [])
        for part in parts {
            switch part {
            case .enter(let status, let nanoseconds):
                outcome.enterNanoseconds = nanoseconds
                let detail: String
                let passed: Bool
                switch status {
                case .success(let code):
                    passed = code == 0
                    detail = "exit status \(code) after \(formatLatency(Double(nanoseconds) / 1e6))"
                case .failure(let error):
                    passed = false
                    detail = "\(error)"
                }
                outcome.checks.append(Check(name: "the stuck enter finished once the lease was given up, status 0", passed: passed, detail: detail))
            case .controller(let reached):
                outcome.reachedNanoseconds = reached
                outcome.checks.append(Check(name: "the stuck enter's exec reached the leased file (lease break pending)", passed: reached != nil,
                                            detail: reached.map { "after \(formatLatency(Double($0) / 1e6))" }
                                                ?? "no open of the file within \(reachLimit / 1_000_000_000) s"))
            case .probe(let sample):
                outcome.samples.append(sample)
            }
        }
        return outcome
    }
}

/// The write lease of phase (c), given up by whichever thread comes first:
/// the controller when the window ends, or the clean-up.
private final class HeldLease: Sendable {
    private let descriptor: Mutex<Int32?>

    init(_ descriptor: Int32) { self.descriptor = Mutex(descriptor) }

    /// cbench_lease_broken: 1 once the file was opened, 0 while untouched, -1 when given up or on error.
    func broken() -> Int32 { descriptor.withLock { fd in fd.map { cbench_lease_broken($0) } ?? -1 } }

    func release() {
        descriptor.withLock { fd in
            if let held = fd { _ = cbench_lease_release(held) }
            fd = nil
        }
    }
}

/// When the window of phase (c) starts: 0 until the exec reaches the file;
/// UInt64.max if it never did.
private final class WindowStart: Sendable {
    let value = Atomic<UInt64>(0)
}

/// Sends `line` on `connection` once every `interval` from `start` until
/// `deadline`, each after the previous reply (a late reply makes the next
/// request go at once); stops at the first broken exchange.
private func probe(_ connection: RawConnection, _ line: [UInt8], start: UInt64, deadline: UInt64, interval: UInt64) -> LatencySample {
    var sample = LatencySample(intervalNanoseconds: interval)
    sample.measured.reserveCapacity(Int((deadline - min(start, deadline)) / max(interval, 1)) + 1)
    var next = start
    while true {
        sleep(untilMonotonic: next)
        if monotonicNanoseconds() >= deadline || Interrupt.requested { break }
        var latency: UInt64 = 0
        do {
            _ = try connection.roundTrips(line, expecting: RawRequest.resultPrefix, count: 1, latencies: &latency)
        } catch {
            sample.failure = "\(error)"
            break
        }
        sample.measured.append(latency)
        next += interval
        let now = monotonicNanoseconds()
        if next < now { next = now }
    }
    return sample
}

/// Milliseconds below 10 s, seconds above.
func formatLatency(_ milliseconds: Double) -> String {
    guard milliseconds.isFinite else { return "n/a" }
    if milliseconds >= 10_000 { return formatFixed(milliseconds / 1000, 1) + " s" }
    return formatFixed(milliseconds, milliseconds < 1 ? 3 : 2) + " ms"
}

/// mkdtemp with `template` (ending in XXXXXX), made searchable by everyone.
func makeDirectory(_ template: String) throws -> String {
    var bytes = Array(template.utf8CString)
    guard let made = mkdtemp(&bytes) else { throw BenchError("mkdtemp \(template): \(Errno.current)") }
    let path = String(cString: made)
    chmod(path, 0o755)
    return path
}

/// Copies a regular file (a program) to a new file with `mode`.
func copyFile(_ source: String, to target: String, mode: mode_t) throws {
    let input = open(source, O_RDONLY | O_CLOEXEC)
    guard input >= 0 else { throw BenchError("open \(source): \(Errno.current)") }
    defer { close(input) }
    let output = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
    guard output >= 0 else { throw BenchError("create \(target): \(Errno.current)") }
    defer { close(output) }
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; throw BenchError("read \(source): \(Errno.current)") }
        if n == 0 { break }
        var written = 0
        while written < n {
            let w = buffer.withUnsafeBytes { write(output, $0.baseAddress! + written, n - written) }
            if w < 0 { if errno == EINTR { continue }; throw BenchError("write \(target): \(Errno.current)") }
            written += w
        }
    }
    fchmod(output, mode)
}
