#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

/// enter, latency, enter-throughput, create-throughput, throughput, scale, cycle, startup, codable and refusals
/// at their default sizes, then one table.
struct AllBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all",
        abstract: "Run enter, latency, enter-throughput, create-throughput, throughput, scale, cycle, startup, codable and refusals, then print one summary table, ratios first.",
        discussion: """
            Each benchmark starts its own private supervisor (unless --socket is given) and \
            prints its own report first. load and soak are correctness runs, not figures: run \
            them on their own. Exits non-zero if a benchmark could not run; a goal not met is \
            reported, not an error; a correctness check of latency, enter-throughput, \
            create-throughput or refusals that fails is an error. refusals always starts its \
            own two supervisors.
            """)

    @Flag(help: "Tiny counts: check that everything runs, measure nothing worth reading.")
    var quick = false

    @Option(help: "The unprivileged user of enter, cycle and refusals (default: nsg-alice, else nobody).")
    var user: String?

    @Option(help: "Use the supervisor on this socket instead of starting one for each benchmark.")
    var socket: String?

    func run() throws {
        Interrupt.install()
        let benchmarks: [(name: String, run: () throws -> [SummaryRow])] = [
            ("enter", { try EnterRun(runs: quick ? 3 : 200, warmup: quick ? 1 : 20, user: user, socket: socket).run() }),
            ("latency", {
                let outcome = try LatencyRun(seconds: quick ? 0.5 : 3, intervalMilliseconds: 2, clients: 8, user: user, socket: socket).run()
                guard outcome.passed else { throw BenchError("a correctness check failed (see above)") }
                return outcome.rows
            }),
            ("enter-throughput", {
                let outcome = try EnterThroughputRun(seconds: quick ? 0.2 : 2, rounds: quick ? 1 : 3, clients: 8, user: user, socket: socket).run()
                guard outcome.passed else { throw BenchError("a correctness check failed (see above)") }
                return outcome.rows
            }),
            ("create-throughput", {
                let outcome = try CreateThroughputRun(seconds: quick ? 0.2 : 2, rounds: quick ? 1 : 3, clients: 8, user: user, socket: socket).run()
                guard outcome.passed else { throw BenchError("a correctness check failed (see above)") }
                return outcome.rows
            }),
            ("throughput", { try ThroughputRun(seconds: quick ? 0.2 : 2, rounds: quick ? 1 : 3, connections: 8, socket: socket).run() }),
            ("scale", { try ScaleRun(requests: quick ? 10 : 200, counts: quick ? [1, 10] : [1, 100, 1000], socket: socket).run() }),
            ("cycle", { try CycleRun(runs: quick ? 3 : 100, warmup: quick ? 1 : 10, user: user, socket: socket).run() }),
            ("overlay", { try OverlayRun(runs: quick ? 3 : 50, warmup: quick ? 1 : 5, user: user, socket: socket).run() }),
            ("stream", { try StreamRun(mebibytes: quick ? 4 : 64, runs: quick ? 2 : 5, warmup: 1, user: user, socket: socket).run() }),
            ("startup", { try StartupRun(runs: quick ? 3 : 500, warmup: quick ? 1 : 50).run() }),
            ("codable", { try CodableRun(rounds: quick ? 1 : 7, sampleMilliseconds: 20, iterations: quick ? 2 : nil).run() }),
            ("refusals", {
                let outcome = try RefusalFloodRun(requests: quick ? 500 : 10_000, user: user).run()
                guard outcome.passed else { throw BenchError("a correctness check failed (see above)") }
                return outcome.rows
            }),
        ]
        var rows: [SummaryRow] = []
        var failed: [String] = []
        for benchmark in benchmarks {
            if Interrupt.requested { failed.append(benchmark.name + " (interrupted)"); continue }
            print("==== nsgroup-bench \(benchmark.name)")
            do {
                rows += try benchmark.run()
            } catch {
                print("nsgroup-bench \(benchmark.name) failed: \(error)")
                failed.append(benchmark.name)
            }
            print("")
        }
        print("==== summary" + (quick ? " (--quick: tiny counts, figures not meaningful)" : ""))
        Summary.print(rows)
        if !failed.isEmpty {
            print("")
            print("did not complete: " + failed.joined(separator: ", "))
            throw ExitCode.failure
        }
    }
}
