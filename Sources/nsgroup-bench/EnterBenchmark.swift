#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Client
import RPC

/// `nsgroup enter g -- true` against `nsenter -t HOLDER -a setpriv … true` on the same group.
struct EnterBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enter",
        abstract: "Time `nsgroup enter g -- true` against nsenter + setpriv on the same group.",
        discussion: """
            Both commands run the same number of times, interleaved, each from a fresh process \
            started by this benchmark. nsgroup runs as the unprivileged user (it needs no \
            privilege); the anchor runs as root and drops to the same user with setpriv, as \
            nsenter needs root. The ratio is of the medians. Goal: at most 1.5.
            """)

    @Option(help: "How many times to run each command.")
    var runs = 200

    @Option(help: "Runs of each before measuring.")
    var warmup = 20

    @Option(help: "The unprivileged user who enters (default: nsg-alice, else nobody).")
    var user: String?

    @Option(help: "Use the supervisor on this socket instead of starting one.")
    var socket: String?

    func run() throws {
        Interrupt.install()
        _ = try EnterRun(runs: runs, warmup: warmup, user: user, socket: socket).run()
    }
}

struct EnterRun {
    var runs: Int
    var warmup: Int
    var user: String?
    var socket: String?

    func run() throws -> [SummaryRow] {
        guard geteuid() == 0 else { throw BenchError("run as root: the anchor (nsenter) needs it") }
        let entry = try benchUser(user)
        let identity = (uid: entry.uid, gid: entry.gid)
        let supervisor = try BenchSupervisor(socket: socket)
        defer { supervisor.stop() }
        let name = "bench-enter-\(getpid())"

        let created = try ProgramRunner.run(Binaries.nsgroup, ["nsgroup", "--socket", supervisor.socketPath, "create", name],
                                            as: identity)
        guard created == 0 else { throw BenchError("nsgroup create \(name) as \(entry.name) failed (status \(created))") }
        defer {
            _ = try? ProgramRunner.run(Binaries.nsgroup, ["nsgroup", "--socket", supervisor.socketPath, "destroy", name],
                                       as: identity)
        }
        let info = try GroupInfo(json: try supervisor.client().call("inspect", NameParams(name: name).json).result)

        let ours = ["nsgroup", "--socket", supervisor.socketPath, "enter", name, "--", "true"]
        let anchor = ["nsenter", "-t", String(info.holder), "-a", "setpriv", "--reuid", String(entry.uid),
                      "--regid", String(entry.gid), "--clear-groups", "true"]
        let nsenter = "/usr/bin/nsenter"

        func once(_ path: String, _ argv: [String], as who: (uid: uid_t, gid: gid_t)?) throws -> UInt64 {
            let start = monotonicNanoseconds()
            let status = try ProgramRunner.run(path, argv, as: who)
            let elapsed = monotonicNanoseconds() - start
            guard status == 0 else { throw BenchError("\(argv.joined(separator: " ")) exited with \(status)") }
            return elapsed
        }
        for _ in 0..<warmup {
            try Interrupt.check()
            _ = try once(Binaries.nsgroup, ours, as: identity)
            _ = try once(nsenter, anchor, as: nil)
        }
        var oursTimings = Timings()
        var anchorTimings = Timings()
        for i in 0..<runs {
            try Interrupt.check()
            // Alternate which goes first, so neither always follows the other.
            if i % 2 == 0 {
                oursTimings.add(nanoseconds: try once(Binaries.nsgroup, ours, as: identity))
                anchorTimings.add(nanoseconds: try once(nsenter, anchor, as: nil))
            } else {
                anchorTimings.add(nanoseconds: try once(nsenter, anchor, as: nil))
                oursTimings.add(nanoseconds: try once(Binaries.nsgroup, ours, as: identity))
            }
        }

        let ratio = oursTimings.median / anchorTimings.median
        print("nsgroup-bench enter: \(runs) runs each (after \(warmup) warm-up), entering as \(entry.name)")
        print("")
        print(padded("", 46) + padded("median", 11) + padded("p10", 11) + padded("p90", 11) + "mean")
        for (label, t) in [("nsgroup enter \(name) -- true", oursTimings),
                           ("nsenter -t \(info.holder) -a setpriv … true", anchorTimings)] {
            print(padded(label, 46) + padded(formatMilliseconds(t.median), 11) + padded(formatMilliseconds(t.p10), 11)
                  + padded(formatMilliseconds(t.p90), 11) + formatMilliseconds(t.mean))
        }
        print("")
        print("ratio of medians (nsgroup / nsenter): \(formatRatio(ratio))   goal: at most 1.50   \(ratio <= 1.5 ? "met" : "NOT met")")
        return [SummaryRow(figure: "`nsgroup enter g -- true` vs `nsenter -a setpriv … true`", ours: formatMilliseconds(oursTimings.median),
                           anchor: formatMilliseconds(anchorTimings.median), ratio: ratio, goal: "≤ 1.5", met: ratio <= 1.5)]
    }
}
