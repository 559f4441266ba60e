#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Client
import POSIX
import RPC

/// Create + destroy of a group against one `unshare` of the same kinds.
struct CycleBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cycle",
        abstract: "Time create + destroy of a group against `unshare --fork --pid --mount --uts --ipc --net --mount-proc true`.",
        discussion: """
            Three ways, interleaved (the order rotates every run), each timed from start to end: \
            `nsgroup create g` then `nsgroup destroy g` through the CLI as the unprivileged user, \
            as a user would (two process starts; the headline ratio); create and destroy over one \
            RPC connection held open by root (the daemon's own cost); and the anchor, unshare run \
            as root, which makes the same namespaces (the group also gets cgroup, devpts and its \
            loopback up) and ends them when `true` exits. Ratios of the medians. Goal: at most 2.
            """)

    @Option(help: "How many cycles of each.")
    var runs = 100

    @Option(help: "Cycles of each before measuring.")
    var warmup = 10

    @Option(help: "The unprivileged user who runs the CLI (default: nsg-alice, else nobody).")
    var user: String?

    @Option(help: ArgumentHelp("Directory to make the private supervisor's state directory in (default: a tmpfs, as /run is).",
                               discussion: "Give a directory on disk to see what fsync of the state files adds."))
    var stateParent: String?

    @Option(help: "Use the supervisor on this socket instead of starting one.")
    var socket: String?

    func validate() throws {
        guard runs > 0, warmup >= 0 else { throw ValidationError("--runs must be positive") }
    }

    func run() throws {
        Interrupt.install()
        _ = try CycleRun(runs: runs, warmup: warmup, user: user, socket: socket, stateParent: stateParent).run()
    }
}

/// The unprivileged user the CLI benchmarks act as.
func benchUser(_ name: String?) throws -> UserEntry {
    guard let entry = name.flatMap(UserDatabase.user(named:)) ?? UserDatabase.user(named: "nsg-alice")
            ?? UserDatabase.user(named: "nobody")
    else { throw BenchError("no user to act as") }
    return entry
}

struct CycleRun {
    var runs: Int
    var warmup: Int
    var user: String?
    var socket: String?
    var stateParent: String? = nil

    static let unshare = "/usr/bin/unshare"
    static let anchorArguments = ["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net", "--mount-proc", "true"]

    func run() throws -> [SummaryRow] {
        guard geteuid() == 0 else { throw BenchError("run as root: the anchor (unshare) needs it") }
        let entry = try benchUser(user)
        let identity = (uid: entry.uid, gid: entry.gid)
        let supervisor = try BenchSupervisor(socket: socket, parent: stateParent)
        let cliName = "bcy\(getpid())-cli", rpcName = "bcy\(getpid())-rpc"
        defer {
            GroupOps.destroy([cliName, rpcName], socketPath: supervisor.socketPath).forEach { printError("nsgroup-bench: clean-up: \($0)") }
            supervisor.stop()
        }
        let client = try RPCClient(socketPath: supervisor.socketPath)
        let nsgroup = ["nsgroup", "--socket", supervisor.socketPath]

        typealias Timed = TwoStepTime
        func cli() throws -> Timed {
            let start = monotonicNanoseconds()
            let created = try ProgramRunner.run(Binaries.nsgroup, nsgroup + ["create", cliName], as: identity)
            let middle = monotonicNanoseconds()
            guard created == 0 else { throw BenchError("nsgroup create \(cliName) as \(entry.name) exited with \(created)") }
            let destroyed = try ProgramRunner.run(Binaries.nsgroup, nsgroup + ["destroy", cliName], as: identity)
            let end = monotonicNanoseconds()
            guard destroyed == 0 else { throw BenchError("nsgroup destroy \(cliName) as \(entry.name) exited with \(destroyed)") }
            return Timed(total: end - start, firstStep: middle - start)
        }
        func rpc() throws -> Timed {
            let start = monotonicNanoseconds()
            _ = try client.call("create", CreateParams(name: rpcName).json)
            let middle = monotonicNanoseconds()
            _ = try client.call("destroy", NameParams(name: rpcName).json)
            let end = monotonicNanoseconds()
            return Timed(total: end - start, firstStep: middle - start)
        }
        func anchor() throws -> Timed {
            let start = monotonicNanoseconds()
            let status = try ProgramRunner.run(Self.unshare, Self.anchorArguments)
            let elapsed = monotonicNanoseconds() - start
            guard status == 0 else { throw BenchError("\(Self.anchorArguments.joined(separator: " ")) exited with \(status)") }
            return Timed(total: elapsed, firstStep: elapsed)
        }
        /// What the CLI costs before it does anything: starting it, and one round trip.
        func version() throws -> Timed {
            let start = monotonicNanoseconds()
            let status = try ProgramRunner.run(Binaries.nsgroup, nsgroup + ["version"], as: identity)
            let elapsed = monotonicNanoseconds() - start
            guard status == 0 else { throw BenchError("nsgroup version as \(entry.name) exited with \(status)") }
            return Timed(total: elapsed, firstStep: elapsed)
        }
        let (timings, firstSteps, secondSteps) = try interleaved([cli, rpc, anchor, version], runs: runs, warmup: warmup)

        let cliRatio = timings[0].median / timings[2].median
        let rpcRatio = timings[1].median / timings[2].median
        print("nsgroup-bench cycle: \(runs) cycles each (after \(warmup) warm-up), interleaved; the CLI runs as \(entry.name)")
        print(supervisor.stateDescription)
        print("")
        printTimings([("nsgroup create g; nsgroup destroy g (CLI)", timings[0]),
                      ("create + destroy over one RPC connection", timings[1]),
                      ("unshare --fork --pid --mount --uts --ipc --net --mount-proc true", timings[2])], width: 66)
        print("")
        print("ratio of medians (CLI / unshare): \(formatRatio(cliRatio))   goal: at most 2.00   \(metText(cliRatio <= 2))")
        print("ratio of medians (RPC / unshare): \(formatRatio(rpcRatio))   (the daemon's own cost, no process starts)")
        print("")
        print("where the CLI cycle goes (medians): nsgroup create \(formatMilliseconds(firstSteps[0].median)), "
              + "nsgroup destroy \(formatMilliseconds(secondSteps[0].median)); over RPC create \(formatMilliseconds(firstSteps[1].median)), "
              + "destroy \(formatMilliseconds(secondSteps[1].median)); `nsgroup version` as \(entry.name) "
              + "(start-up and one round trip) \(formatMilliseconds(timings[3].median))")
        return [
            SummaryRow(figure: "`nsgroup create g; nsgroup destroy g` vs `unshare … --mount-proc true`", ours: formatMilliseconds(timings[0].median),
                       anchor: formatMilliseconds(timings[2].median), ratio: cliRatio, goal: "≤ 2", met: cliRatio <= 2),
            SummaryRow(figure: "create + destroy over RPC vs the same unshare", ours: formatMilliseconds(timings[1].median),
                       anchor: formatMilliseconds(timings[2].median), ratio: rpcRatio, goal: "-", met: nil),
        ]
    }
}
