import ArgumentParser
import RPC

@main
struct NSGroupBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nsgroup-bench",
        abstract: "Measure nsgroup against its anchors, in one run, as ratios.",
        discussion: """
            Run as root from a release build (make bench). Unless --socket names a running \
            supervisor, each benchmark starts a private nsgroupd next to this binary, on a \
            socket of its own, and stops it afterwards.
            """,
        version: nsgroupVersion,
        subcommands: [EnterBenchmark.self, LatencyBenchmark.self, EnterThroughputBenchmark.self, CreateThroughputBenchmark.self, LoadBenchmark.self, SoakBenchmark.self, ThroughputBenchmark.self, ScaleBenchmark.self, CycleBenchmark.self, OverlayBenchmark.self, StreamBenchmark.self, SSHBenchmark.self, CodableBenchmark.self, RefusalFloodBenchmark.self, StartupBenchmark.self, AllBenchmark.self])
}
