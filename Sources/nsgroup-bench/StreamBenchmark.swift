#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import POSIX

/// Bytes through a streamed session (`enter --stream`) against the same session on passed descriptors.
struct StreamBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Move N MiB through `cat` in a group with `enter --stream` against `enter` on passed descriptors.",
        discussion: """
            As the unprivileged user, interleaved: `nsgroup enter --stream g -- cat < FILE > /dev/null` \
            (every byte goes in and out through nsgroupd as base64 in JSON lines, with the input \
            window and the output flow control), and the anchor, the same with descriptors passed \
            (the session reads the file and writes /dev/null itself; nothing goes through \
            nsgroupd). Also the supervisor's CPU time per MiB streamed (in and out). No goal: \
            the figure says what a client that cannot pass descriptors pays.
            """)

    @Option(help: "MiB moved each run.")
    var mebibytes = 64

    @Option(help: "How many of each.")
    var runs = 5

    @Option(help: "Runs of each before measuring.")
    var warmup = 1

    @Option(help: "The unprivileged user who runs everything (default: nsg-alice, else nobody).")
    var user: String?

    @Option(help: "Use the supervisor on this socket instead of starting one.")
    var socket: String?

    func validate() throws {
        guard mebibytes > 0, mebibytes <= 4096, runs > 0, warmup >= 0 else {
            throw ValidationError("--mebibytes in 1...4096, --runs positive")
        }
    }

    func run() throws {
        Interrupt.install()
        _ = try StreamRun(mebibytes: mebibytes, runs: runs, warmup: warmup, user: user, socket: socket).run()
    }
}

struct StreamRun {
    var mebibytes: Int
    var runs: Int
    var warmup: Int
    var user: String?
    var socket: String?

    func run() throws -> [SummaryRow] {
        guard geteuid() == 0 else { throw BenchError("run as root: the benchmark starts its own nsgroupd") }
        let entry = try benchUser(user)
        let identity = (uid: entry.uid, gid: entry.gid)
        let supervisor = try BenchSupervisor(socket: socket, parent: nil)
        let name = "bst\(getpid())"
        // The input: random bytes in a file the user may read, on the benchmark's tmpfs.
        var template = Array("/tmp/nsgroup-bench-stream-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchError("mkdtemp: \(Errno.current)") }
        let directory = String(cString: made)
        let input = directory + "/in"
        defer {
            unlink(input)
            rmdir(directory)
            GroupOps.destroy([name], socketPath: supervisor.socketPath).forEach { printError("nsgroup-bench: clean-up: \($0)") }
            supervisor.stop()
        }
        chmod(directory, 0o755)
        let made2 = try ProgramRunner.run("/bin/sh", ["sh", "-c", "head -c \(mebibytes << 20) /dev/urandom > \(input) && chmod 0644 \(input)"])
        guard made2 == 0 else { throw BenchError("could not write \(input)") }
        let nsgroup = "\(Binaries.nsgroup) --socket \(supervisor.socketPath)"
        let created = try ProgramRunner.run(Binaries.nsgroup, ["nsgroup", "--socket", supervisor.socketPath, "create", name], as: identity)
        guard created == 0 else { throw BenchError("nsgroup create \(name) as \(entry.name) exited with \(created)") }

        var streamedCPU: UInt64 = 0
        func through(_ options: String, countCPU: Bool) throws -> TwoStepTime {
            let before = cpuTime(supervisor.serverPID)
            let start = monotonicNanoseconds()
            let status = try ProgramRunner.run("/bin/sh", ["sh", "-c", "exec \(nsgroup) enter \(options) \(name) -- cat < \(input) > /dev/null"],
                                               as: identity)
            let elapsed = monotonicNanoseconds() - start
            if countCPU { streamedCPU &+= cpuTime(supervisor.serverPID) &- before }
            guard status == 0 else { throw BenchError("nsgroup enter \(options) \(name) -- cat as \(entry.name) exited with \(status)") }
            return TwoStepTime(total: elapsed, firstStep: elapsed)
        }
        let (timings, _, _) = try interleaved([{ try through("--stream", countCPU: true) }, { try through("", countCPU: false) }],
                                              runs: runs, warmup: warmup)
        let ratio = timings[0].median / timings[1].median
        let rate = Double(mebibytes) / (timings[0].median / 1000)
        // Warm-up runs counted too: CPU over every streamed run, per MiB carried each way.
        let cpuPerMiB = Double(streamedCPU) / 1e6 / Double((runs + warmup) * mebibytes)
        print("nsgroup-bench stream: \(mebibytes) MiB through cat, \(runs) of each (after \(warmup) warm-up), interleaved, as \(entry.name)")
        print(supervisor.stateDescription)
        print("")
        printTimings([("nsgroup enter --stream g -- cat (through nsgroupd)", timings[0]),
                      ("nsgroup enter g -- cat (descriptors passed)", timings[1])], width: 52)
        print("")
        print("ratio of medians (streamed / descriptors): \(formatRatio(ratio))   streamed: \(formatFixed(rate, 1)) MiB/s each way")
        print("nsgroupd CPU per MiB streamed (in and out): \(formatFixed(cpuPerMiB, 2)) ms")
        return [
            SummaryRow(figure: "\(mebibytes) MiB through `nsgroup enter --stream g -- cat` vs the same on passed descriptors (\(formatFixed(rate, 1)) MiB/s each way; nsgroupd \(formatFixed(cpuPerMiB, 2)) ms CPU per MiB)",
                       ours: formatMilliseconds(timings[0].median), anchor: formatMilliseconds(timings[1].median),
                       ratio: ratio, goal: "-", met: nil),
        ]
    }
}
