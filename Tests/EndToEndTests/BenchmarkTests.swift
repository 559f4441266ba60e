import Foundation
import Glibc
import Testing

/// The benchmark's subcommands, run from the debug build. `load` and `soak`
/// are correctness runs: short bounded versions of them must pass every
/// check. The others only have to run and report their ratios: speed is
/// judged by `make bench` on a release build, never by tests.
@Suite(.serialized) struct BenchmarkCommandTests {
    static var bench: String { Products.path("nsgroup-bench") }

    /// The prefix the run's group names start with, as it prints it.
    func groupPrefix(_ output: String) -> String? {
        guard let range = output.range(of: "group names start with ") else { return nil }
        return String(output[range.upperBound...].prefix { $0 != ";" && $0 != "\n" && $0 != " " })
    }

    @Test func loadPassesEveryCheck() throws {
        let result = try run(Self.bench, ["load", "--clients", "8", "--operations", "10", "--racers", "4", "--timeout", "90"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        for check in ["every request answered", "every enter got its exited notification",
                      "every operation had its expected outcome", "raced creates: exactly one winner per name",
                      "no group lost or doubled (clients' view == list)", "list matches the holder processes",
                      "finished within the time bound", "every group destroyed at the end",
                      "supervisor descriptors back to baseline (exact)", "supervisor threads back to baseline (exact)",
                      "supervisor RSS back to baseline"] {
            #expect(result.stdout.contains("PASS  " + check), "\(check)\n\(result.stdout)")
        }
        #expect(!result.stdout.contains("FAIL"))
        #expect(result.stdout.contains("load: PASS"))
        // 8 clients × 10 operations: 80, each counted.
        #expect(result.stdout.contains("ran 80 operations"))
        let prefix = try #require(groupPrefix(result.stdout))
        #expect(holderProcessesNamed(prefix: prefix).isEmpty, "no group of the run is left")
    }

    @Test func soakPassesEveryCheck() throws {
        let result = try run(Self.bench, ["soak", "--minutes", "0.17", "--interval", "2", "--clients", "8"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        for check in ["every request answered", "no group lost or doubled (clients' view == list)",
                      "list matches the holder processes", "raced creates: exactly one winner per name",
                      "descriptors do not grow (exact)", "threads do not grow (exact)", "RSS does not grow"] {
            #expect(result.stdout.contains("PASS  " + check), "\(check)\n\(result.stdout)")
        }
        #expect(!result.stdout.contains("FAIL"))
        #expect(result.stdout.contains("soak: PASS"))
        // 10 s at 2 s intervals: 5 samples, one line each.
        #expect(result.stdout.contains("5 intervals"))
        let prefix = try #require(groupPrefix(result.stdout))
        #expect(holderProcessesNamed(prefix: prefix).isEmpty, "no group of the run is left")
    }

    /// The lease attack, bounded: one enter held on a leased file for the
    /// window (1 s per phase here), then let go. Whatever the supervisor does
    /// meanwhile, every request must be answered and the stuck enter must end
    /// with status 0; how long `list` waited is reported, not judged.
    @Test func latencyRunsAndChecksItsRequests() throws {
        _ = try TestUser.alice()
        let result = try run(Self.bench, ["latency", "--seconds", "1"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        for phase in ["(a) idle ", "(b) 8 enter loops ", "(c) one enter stuck "] {
            for request in ["list ", "inspect "] {
                // phase, request, count, p50, p99, max (each "N ms" or "N s"), requests over 1 s.
                let line = lines.first { $0.hasPrefix(phase) && $0.dropFirst(22).hasPrefix(request) }
                #expect(line.map { $0.split(separator: " ").filter { $0 == "ms" || $0 == "s" }.count == 3 } == true,
                        "\(phase)\(request)\n\(result.stdout)")
            }
        }
        #expect(result.stdout.contains("goal (stuck): at most 2.00"))
        #expect(result.stdout.contains("longest list/inspect while the enter was stuck: "))
        for check in ["every enter of the loops exited 0", "the stuck enter finished once the lease was given up, status 0",
                      "the stuck enter's exec reached the leased file (lease break pending)",
                      "every probe request of (a) idle answered", "every probe request of (b) 8 enter loops answered",
                      "every probe request of (c) one enter stuck answered", "the group destroyed at the end"] {
            #expect(result.stdout.contains("PASS  " + check), "\(check)\n\(result.stdout)")
        }
        #expect(result.stdout.contains("latency: PASS"))
        #expect(holderProcessesNamed(prefix: "blt").isEmpty)
    }

    @Test func enterThroughputRunsAndChecksEveryEnter() throws {
        _ = try TestUser.alice()
        let result = try run(Self.bench, ["enter-throughput", "--seconds", "0.3", "--rounds", "1"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("ratio RPC / anchor: "))
        #expect(result.stdout.contains("ratio CLI / anchor: "))
        #expect(result.stdout.contains("PASS  every enter exited 0"))
        #expect(result.stdout.contains("PASS  every way completed enters"))
        #expect(result.stdout.contains("enter-throughput: PASS"))
        #expect(holderProcessesNamed(prefix: "bet").isEmpty)
    }

    @Test func createThroughputRunsAndDestroysEveryGroup() throws {
        _ = try TestUser.alice()
        let result = try run(Self.bench, ["create-throughput", "--seconds", "0.3", "--rounds", "1"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("ratio RPC / anchor: "))
        #expect(result.stdout.contains("ratio CLI / anchor: "))
        for check in ["every create and destroy succeeded", "every way completed groups", "every group destroyed, no holder left"] {
            #expect(result.stdout.contains("PASS  " + check), "\(check)\n\(result.stdout)")
        }
        #expect(result.stdout.contains("create-throughput: PASS"))
        #expect(holderProcessesNamed(prefix: "bct").isEmpty)
    }

    @Test func throughputRunsAndReportsRatios() throws {
        let result = try run(Self.bench, ["throughput", "--seconds", "0.2", "--rounds", "1", "--connections", "4"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("ratio nsgroupd/echo"))
        for label in ["1 connection ", "4 connections "] {
            let line = result.stdout.split(separator: "\n").first { $0.hasPrefix(label) }
            #expect(line?.contains("goal: at least 0.50") == true, "\(result.stdout)")
        }
        #expect(holderProcessesNamed(prefix: "btp").isEmpty)
    }

    @Test func scaleRunsAndReportsItsGoals() throws {
        let result = try run(Self.bench, ["scale", "--requests", "5", "--counts", "1,10"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("list of 10 groups at the server: "))
        #expect(result.stdout.contains("KiB per group"))
        #expect(result.stdout.contains("holder RSS (VmRSS): median "))
        #expect(holderProcessesNamed(prefix: "bsc").isEmpty)
    }

    @Test func cycleRunsAndReportsARatio() throws {
        _ = try TestUser.alice()
        let result = try run(Self.bench, ["cycle", "--runs", "2", "--warmup", "1"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("ratio of medians (CLI / unshare): "))
        #expect(result.stdout.contains("ratio of medians (RPC / unshare): "))
        #expect(result.stdout.contains("the CLI runs as nsg-alice"))
        #expect(holderProcessesNamed(prefix: "bcy").isEmpty)
    }

    @Test func streamRunsAndReportsItsRatio() throws {
        _ = try TestUser.alice()
        let result = try run(Self.bench, ["stream", "--mebibytes", "2", "--runs", "1", "--warmup", "0"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("ratio of medians (streamed / descriptors): "))
        #expect(result.stdout.contains("nsgroupd CPU per MiB streamed (in and out): "))
        #expect(holderProcessesNamed(prefix: "bst").isEmpty)
    }

    /// Through a private sshd of its own: both ratios reported, and no sshd or nsgroupd of it
    /// left running.
    @Test func sshRunsAndReportsItsRatios() throws {
        _ = try TestUser.alice()
        let result = try run(Self.bench, ["ssh", "--iterations", "2", "--warmup", "0"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("ratio of medians (list / ssh): "))
        #expect(result.stdout.contains("ratio of medians (enter / ssh): "))
        let port = result.stdout.split(separator: "\n").first { $0.hasPrefix("nsgroup-bench ssh: ") }?
            .split(separator: ":").last.map(String.init) ?? "?"
        #expect(try run("/usr/bin/pgrep", ["-f", "sshd.*nsgroup-bench"]).status == 1, "an sshd of the run (port \(port)) is left")
    }

    /// The refusal budget against every refusal written, 2000 refusals each: the run must
    /// report its three ratios and its records must add up exactly (it exits non-zero if not).
    @Test func refusalsRunsAndReportsItsRatios() throws {
        _ = try TestUser.alice()
        let result = try run(Self.bench, ["refusals", "--requests", "2000"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        for ratio in ["ratio (nsgroupd + journald CPU) budgeted / anchor: ", "ratio records budgeted / anchor: ",
                      "ratio wall budgeted / anchor: "] {
            let line = result.stdout.split(separator: "\n").first { $0.hasPrefix(ratio) }
            let value = line.flatMap { Double($0.dropFirst(ratio.count).prefix { $0 != " " }) }
            #expect(value.map { $0 > 0 } == true, "\(ratio)\n\(result.stdout)")
        }
        #expect(result.stdout.contains("by nsg-alice"))
        #expect(result.stdout.contains("PASS  every request answered: 2000 replies from each supervisor"))
        #expect(result.stdout.contains("PASS  budgeted: records one by one + NSGROUP_HELD_BACK == requests: "))
        #expect(result.stdout.contains(" = 2000 of 2000, in "))
        #expect(result.stdout.contains("PASS  anchor: every refusal written one by one: 2000 request-refused records of 2000, 0 held back"))
        #expect(result.stdout.contains("refusals: PASS"))
    }

    @Test func codableRunsAndReportsItsFigures() throws {
        let result = try run(Self.bench, ["codable", "--rounds", "1", "--iterations", "2"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("ratio Codable/hand-written"))
        let lines = result.stdout.split(separator: "\n").map(String.init)
        for payload in ["list reply, 1 group ", "list reply, 64 groups ", "list reply, 1024 groups ", "state file, 16 sessions ", "event notification "] {
            // Both ways write the same JSON, checked before anything is timed.
            #expect(lines.contains { $0.hasPrefix("  " + payload) && $0.contains("same JSON: yes") }, "\(payload)\n\(result.stdout)")
            for step in ["encode", "decode"] {
                // payload, bytes, step, two times in µs, and a ratio.
                let line = lines.first { $0.hasPrefix(payload) && $0.contains(" \(step) ") }
                let words = line?.split(separator: " ") ?? []
                #expect(words.filter { $0 == "µs" }.count == 2, "\(payload)\(step)\n\(result.stdout)")
                #expect(words.last.flatMap { Double($0) }.map { $0 > 0 } == true, "\(payload)\(step)\n\(result.stdout)")
            }
        }
        #expect(!result.stdout.contains("same JSON: NO"))
        #expect(result.stdout.contains("hand-written, from the JSONValues nsgroupd keeps"))
        #expect(result.stdout.contains("Codable with .sortedKeys"))
        // The strictness probes: the server's parser does what PROTOCOL.md says for every input.
        #expect(result.stdout.contains("hand-written: refused: parse error: duplicate key \"name\" at byte 14"))
        #expect(result.stdout.contains("hand-written: refused: attach: unknown parameter \"verbose\""))
        let verdict = try #require(lines.first { $0.hasPrefix("as PROTOCOL.md says, of ") }, "\(result.stdout)")
        // "of 17 inputs: hand-written 17, plain Codable 10": the first two agree.
        let counts = verdict.split(separator: " ").compactMap { Int($0.filter(\.isNumber)) }
        #expect(counts.count == 3 && counts[0] == counts[1], "\(verdict)")
    }

    @Test func allRunsEveryBenchmarkAndSummarizes() throws {
        _ = try TestUser.alice()
        let result = try run(Self.bench, ["all", "--quick"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        for name in ["enter", "latency", "enter-throughput", "create-throughput", "throughput", "scale", "cycle", "overlay", "stream", "startup", "codable", "refusals"] {
            #expect(result.stdout.contains("==== nsgroup-bench \(name)\n"))
        }
        let summary = try #require(result.stdout.components(separatedBy: "==== summary").last)
        let rows = summary.split(separator: "\n").dropFirst(2)
        // Ratios first: enter, latency ×4, enter-throughput ×2, create-throughput ×2,
        // throughput ×2, cycle ×2, overlay ×2, stream, startup ×2, codable ×2, refusals ×3; then
        // the absolute figures: latency's longest request, and scale's three.
        #expect(rows.prefix(23).allSatisfy { $0.first?.isNumber == true }, "\(summary)")
        #expect(rows.dropFirst(23).allSatisfy { $0.hasPrefix("-") }, "\(summary)")
        #expect(rows.count == 27, "\(summary)")
    }
}
