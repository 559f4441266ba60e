#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Client
import RPC

/// Enters per second from concurrent clients against concurrent nsenter + setpriv.
struct EnterThroughputBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enter-throughput",
        abstract: "Completed `enter G -- true` per second from N concurrent clients, against N concurrent nsenter + setpriv loops.",
        discussion: """
            Three ways, each on --clients threads at once for --seconds, interleaved over --rounds \
            (the order rotates): connections held open by root entering over RPC (stdio on /dev/null, \
            each waiting for its `exited` notification: the supervisor's own rate, the headline); \
            `nsgroup enter G -- true` run as the unprivileged user, a process per enter; and the \
            anchor, `nsenter -t HOLDER -a setpriv --reuid U --regid G --init-groups true` run as \
            root, a process per enter. An enter counts when its program has exited with status 0. \
            Goal: RPC/anchor at least 0.7. Exits non-zero if any enter failed or exited otherwise, \
            never on a slow figure.
            """)

    @OptionGroup var options: ConcurrentRunOptions

    func run() throws {
        Interrupt.install()
        let o = options
        let outcome = try EnterThroughputRun(seconds: o.seconds, rounds: o.rounds, clients: o.clients, user: o.user, socket: o.socket).run()
        if !outcome.passed { throw ExitCode.failure }
    }
}

/// The options enter-throughput and create-throughput share.
struct ConcurrentRunOptions: ParsableArguments {
    @Option(help: "Seconds of each measurement.")
    var seconds = 2.0

    @Option(help: "Rounds; each measures every way once.")
    var rounds = 3

    @Option(help: "Concurrent clients of each way.")
    var clients = 8

    @Option(help: "The unprivileged user who runs the CLI (and owns the group entered; default: nsg-alice, else nobody).")
    var user: String?

    @Option(help: "Use the supervisor on this socket instead of starting one.")
    var socket: String?

    func validate() throws {
        guard seconds > 0, seconds <= 600, rounds > 0, clients > 0, clients <= 64 else {
            throw ValidationError("--seconds in (0, 600], --rounds > 0, --clients in 1...64")
        }
    }
}

/// What a throughput run reports: whether every operation was right, and its rows.
struct ThroughputOutcome {
    var passed: Bool
    var rows: [SummaryRow]
}

/// Completed operations of several ways, each measured for a time by
/// concurrent threads, interleaved over rounds.
struct ConcurrentRates {
    var labels: [String]
    private(set) var tallies: [LoopTally]
    private(set) var nanoseconds: [UInt64]

    init(labels: [String]) {
        self.labels = labels
        tallies = Array(repeating: LoopTally(), count: labels.count)
        nanoseconds = Array(repeating: 0, count: labels.count)
    }

    func rate(_ way: Int) -> Double { Double(tallies[way].completed) / (Double(nanoseconds[way]) / 1e9) }

    /// Prints the rate of each way (RPC, CLI, the anchor last) and the two ratios to the
    /// anchor, the first against `goal`; returns (RPC, CLI) / anchor.
    func report(unit: String, goal: Double, cliNote: String) -> (rpc: Double, cli: Double) {
        let rpc = rate(0) / rate(2)
        let cli = rate(1) / rate(2)
        let width = labels.map(\.count).max()! + 2
        print(padded("", width) + padded("\(unit)/s", 12) + padded(unit, 9) + "ratio to anchor")
        for way in 0..<3 {
            print(padded(labels[way], width) + padded(formatRate(rate(way)), 12) + padded(String(tallies[way].completed), 9)
                  + (way == 2 ? "-" : formatRatio(rate(way) / rate(2))))
        }
        print("")
        print("ratio RPC / anchor: \(formatRatio(rpc))   goal: at least \(formatFixed(goal, 2))   \(metText(rpc >= goal))")
        print("ratio CLI / anchor: \(formatRatio(cli))   (\(cliNote))")
        return (rpc, cli)
    }

    /// Measures way `way` once: `threads` threads run `operation` from a common
    /// start for `seconds`; the time runs until the last operation under way
    /// at the deadline has ended.
    mutating func measure(_ way: Int, threads: Int, seconds: Double, _ operation: @escaping @Sendable (Int) -> String?) {
        let start = monotonicNanoseconds() + 20_000_000
        let tally = runLoops(threads: threads, from: start, until: start + UInt64(seconds * 1e9), operation)
        nanoseconds[way] += monotonicNanoseconds() - start
        tallies[way] = tallies[way] + tally
    }

    /// Every way in every round, the order rotating from round to round.
    mutating func run(rounds: Int, threads: Int, seconds: Double, _ operations: [@Sendable (Int) -> String?]) throws {
        for round in 0..<rounds {
            for k in 0..<operations.count {
                try Interrupt.check()
                let way = (round + k) % operations.count
                measure(way, threads: threads, seconds: seconds, operations[way])
            }
        }
    }
}

struct EnterThroughputRun {
    var seconds: Double
    var rounds: Int
    var clients: Int
    var user: String?
    var socket: String?

    func run() throws -> ThroughputOutcome {
        guard geteuid() == 0 else { throw BenchError("run as root: the anchor (nsenter) needs it") }
        let entry = try benchUser(user)
        let identity = (uid: entry.uid, gid: entry.gid)
        let supervisor = try BenchSupervisor(socket: socket)
        let name = "bet\(getpid())-g"
        defer {
            GroupOps.destroy([name], socketPath: supervisor.socketPath).forEach { printError("nsgroup-bench: clean-up: \($0)") }
            supervisor.stop()
        }
        let nsgroup = ["nsgroup", "--socket", supervisor.socketPath]
        let created = try ProgramRunner.run(Binaries.nsgroup, nsgroup + ["create", name], as: identity)
        guard created == 0 else { throw BenchError("nsgroup create \(name) as \(entry.name) failed (status \(created))") }
        let info = try GroupInfo(json: try supervisor.client().call("inspect", NameParams(name: name).json).result)

        let nsenter = "/usr/bin/nsenter"
        var anchor = ["nsenter", "-t", String(info.holder), "-a", "setpriv", "--reuid", String(entry.uid),
                      "--regid", String(entry.gid), "--init-groups", "true"]
        // setpriv --init-groups looks the user's groups up (initgroups), as the
        // supervisor does; a util-linux without it gets the nearest, no groups.
        if (try? ProgramRunner.run(nsenter, anchor)) != 0 {
            anchor[anchor.firstIndex(of: "--init-groups")!] = "--clear-groups"
            let status = try ProgramRunner.run(nsenter, anchor)
            guard status == 0 else { throw BenchError("\(anchor.joined(separator: " ")) exited with \(status)") }
        }
        let cli = nsgroup + ["enter", name, "--", "true"]
        let nsgroupPath = Binaries.nsgroup
        let connections = try (0..<clients).map { _ in try EnterConnection(socketPath: supervisor.socketPath, replyTimeoutSeconds: 30) }

        let overRPC: @Sendable (Int) -> String? = { thread in
            do {
                let status = try connections[thread].run(name, ["true"])
                return status == 0 ? nil : "enter -- true over RPC ended with status \(status)"
            } catch {
                return "\(error)"
            }
        }
        let throughCLI: @Sendable (Int) -> String? = { _ in
            do {
                let status = try ProgramRunner.run(nsgroupPath, cli, as: identity)
                return status == 0 ? nil : "nsgroup enter -- true exited with \(status)"
            } catch {
                return "cannot run nsgroup: \(error)"
            }
        }
        let anchorArguments = anchor
        let throughNsenter: @Sendable (Int) -> String? = { _ in
            do {
                let status = try ProgramRunner.run(nsenter, anchorArguments)
                return status == 0 ? nil : "nsenter … true exited with \(status)"
            } catch {
                return "cannot run nsenter: \(error)"
            }
        }
        // Warm-up: each way a few times from every thread.
        var warm = ConcurrentRates(labels: ["", "", ""])
        try warm.run(rounds: 1, threads: clients, seconds: min(0.2, seconds), [overRPC, throughCLI, throughNsenter])

        var rates = ConcurrentRates(labels: ["enter over RPC (root, held connections)", "nsgroup enter \(name) -- true (\(entry.name))",
                                             anchor.joined(separator: " ")])
        try rates.run(rounds: rounds, threads: clients, seconds: seconds, [overRPC, throughCLI, throughNsenter])

        print("nsgroup-bench enter-throughput: \(clients) clients at once per way, \(rounds) rounds × \(formatFixed(seconds, 1)) s, interleaved")
        print(supervisor.stateDescription)
        print("")
        let (rpcRatio, cliRatio) = rates.report(unit: "enters", goal: 0.7, cliNote: "with a start of the nsgroup CLI per enter")

        let warmFailures = LoopTally.sum(warm.tallies)
        let failures = LoopTally.sum(rates.tallies) + warmFailures
        let checks = [
            Check(name: "every enter exited 0", passed: failures.failures == 0,
                  detail: "\(LoopTally.sum(rates.tallies).completed + warmFailures.completed) enters" + (failures.failures == 0 ? "" : "; " + failures.failureText)),
            Check(name: "every way completed enters", passed: rates.tallies.allSatisfy { $0.completed > 0 },
                  detail: rates.tallies.map { String($0.completed) }.joined(separator: ", ")),
        ]
        print("")
        for check in checks { print(check.line) }
        let failed = checks.filter { $0.passed == false }.count
        print(failed == 0 ? "enter-throughput: PASS (\(checks.count) checks)" : "enter-throughput: FAIL (\(failed) of \(checks.count) checks failed)")
        return ThroughputOutcome(passed: failed == 0, rows: [
            SummaryRow(figure: "`enter g -- true`/s, \(clients) RPC clients at once vs \(clients) `nsenter -a setpriv … true` loops",
                       ours: formatRate(rates.rate(0)), anchor: formatRate(rates.rate(2)), ratio: rpcRatio, goal: "≥ 0.7", met: rpcRatio >= 0.7),
            SummaryRow(figure: "`nsgroup enter g -- true`/s, \(clients) CLI loops vs the same nsenter loops",
                       ours: formatRate(rates.rate(1)), anchor: formatRate(rates.rate(2)), ratio: cliRatio, goal: "-", met: nil),
        ])
    }
}
