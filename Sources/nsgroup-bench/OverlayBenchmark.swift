#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Client
import POSIX
import RPC

/// An overlay-root group's create and first command against the same done by hand.
struct OverlayBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "overlay",
        abstract: "Time create --root overlay + the first command in it against unshare + overlay mounts by hand.",
        discussion: """
            Three ways, interleaved (the order rotates every run), each as the unprivileged user: \
            `nsgroup create g --root overlay` then `nsgroup enter g -- true` through the CLI \
            (destroy follows, untimed); the same for a group of the same kinds without the overlay \
            (what the overlay itself adds); and the anchor, what the issue \
            measured by hand: `unshare -r -m -u -i -p -n -f` running a shell that mounts a tmpfs \
            and the kernel's overlays of /usr and /etc on it (userxattr), then runs true. The \
            anchor does less: two directories, no /var, no private /run or /dev/shm, no stand-ins, \
            no cgroup, no record. Ratios of the medians. Goal: at most 2.
            """)

    @Option(help: "How many of each.")
    var runs = 50

    @Option(help: "Runs of each before measuring.")
    var warmup = 5

    @Option(help: "The unprivileged user who runs everything (default: nsg-alice, else nobody).")
    var user: String?

    @Option(help: "Use the supervisor on this socket instead of starting one.")
    var socket: String?

    func validate() throws {
        guard runs > 0, warmup >= 0 else { throw ValidationError("--runs must be positive") }
    }

    func run() throws {
        Interrupt.install()
        _ = try OverlayRun(runs: runs, warmup: warmup, user: user, socket: socket).run()
    }
}

struct OverlayRun {
    var runs: Int
    var warmup: Int
    var user: String?
    var socket: String?

    static let unshare = "/usr/bin/unshare"
    /// The hand-made anchor: a user namespace with the other kinds, a tmpfs for the upper
    /// layers, overlays of /usr and /etc (what mounts there in a user namespace), then true.
    static let anchorScript = """
        mount -t tmpfs upper /mnt && mkdir /mnt/u /mnt/w /mnt/e /mnt/x && \
        mount -t overlay usr -o lowerdir=/usr,upperdir=/mnt/u,workdir=/mnt/w,userxattr /usr && \
        mount -t overlay etc -o lowerdir=/etc,upperdir=/mnt/e,workdir=/mnt/x,userxattr /etc && exec true
        """
    static let anchorArguments = ["unshare", "-r", "-m", "-u", "-i", "-p", "-n", "-f", "/bin/sh", "-c", anchorScript]

    func run() throws -> [SummaryRow] {
        guard geteuid() == 0 else { throw BenchError("run as root: the benchmark starts its own nsgroupd") }
        let entry = try benchUser(user)
        let identity = (uid: entry.uid, gid: entry.gid)
        let supervisor = try BenchSupervisor(socket: socket, parent: nil)
        let cliName = "bov\(getpid())-cli", plainName = "bov\(getpid())-plain"
        defer {
            GroupOps.destroy([cliName, plainName], socketPath: supervisor.socketPath).forEach { printError("nsgroup-bench: clean-up: \($0)") }
            supervisor.stop()
        }
        let nsgroup = ["nsgroup", "--socket", supervisor.socketPath]

        /// `nsgroup create NAME ARGUMENTS…` then `nsgroup enter NAME -- true`, as the user, timed;
        /// then, untimed, `nsgroup destroy NAME`.
        func createAndEnter(_ name: String, _ arguments: [String]) throws -> TwoStepTime {
            let start = monotonicNanoseconds()
            let created = try ProgramRunner.run(Binaries.nsgroup, nsgroup + ["create", name] + arguments, as: identity)
            let middle = monotonicNanoseconds()
            guard created == 0 else { throw BenchError("nsgroup create \(name) \(arguments.joined(separator: " ")) as \(entry.name) exited with \(created)") }
            let entered = try ProgramRunner.run(Binaries.nsgroup, nsgroup + ["enter", name, "--", "true"], as: identity)
            let end = monotonicNanoseconds()
            guard entered == 0 else { throw BenchError("nsgroup enter \(name) -- true as \(entry.name) exited with \(entered)") }
            let destroyed = try ProgramRunner.run(Binaries.nsgroup, nsgroup + ["destroy", name], as: identity)
            guard destroyed == 0 else { throw BenchError("nsgroup destroy \(name) exited with \(destroyed)") }
            return TwoStepTime(total: end - start, firstStep: middle - start)
        }
        func anchor() throws -> TwoStepTime {
            let start = monotonicNanoseconds()
            let status = try ProgramRunner.run(Self.unshare, Self.anchorArguments, as: identity)
            let elapsed = monotonicNanoseconds() - start
            guard status == 0 else { throw BenchError("unshare -r … with overlays of /usr and /etc as \(entry.name) exited with \(status)") }
            return TwoStepTime(total: elapsed, firstStep: elapsed)
        }
        // The third is the same kinds without the overlay: what the overlay itself adds.
        let (timings, firstSteps, _) = try interleaved([
            { try createAndEnter(cliName, ["--root", "overlay"]) }, anchor,
            { try createAndEnter(plainName, ["--ns", "mnt,uts,ipc,pid,net,user,cgroup"]) },
        ], runs: runs, warmup: warmup)

        let cliRatio = timings[0].median / timings[1].median
        print("nsgroup-bench overlay: \(runs) of each (after \(warmup) warm-up), interleaved, all as \(entry.name)")
        print(supervisor.stateDescription)
        print("")
        printTimings([("nsgroup create g --root overlay; nsgroup enter g -- true (CLI)", timings[0]),
                      ("unshare -r -m -u -i -p -n -f sh (tmpfs, overlays of /usr, /etc; true)", timings[1]),
                      ("nsgroup create g --ns …,user; nsgroup enter g -- true (no overlay)", timings[2])], width: 74)
        print("")
        print("ratio of medians (CLI / by hand): \(formatRatio(cliRatio))   goal: at most 2.00   \(metText(cliRatio <= 2))")
        let ownRatio = timings[0].median / timings[2].median
        print("ratio of medians (overlay / the same group without it): \(formatRatio(ownRatio))   (what the overlay itself adds)")
        print("")
        print("where the CLI's goes (medians): nsgroup create --root overlay \(formatMilliseconds(firstSteps[0].median)), "
              + "the first nsgroup enter \(formatMilliseconds(timings[0].median - firstSteps[0].median))")
        return [
            SummaryRow(figure: "`nsgroup create g --root overlay; nsgroup enter g -- true` vs `unshare -r -m -u -i -p -n -f` + overlays of /usr, /etc + true",
                       ours: formatMilliseconds(timings[0].median), anchor: formatMilliseconds(timings[1].median),
                       ratio: cliRatio, goal: "≤ 2", met: cliRatio <= 2),
            SummaryRow(figure: "the same vs the same kinds without the overlay (what the overlay adds)",
                       ours: formatMilliseconds(timings[0].median), anchor: formatMilliseconds(timings[2].median),
                       ratio: ownRatio, goal: "-", met: nil),
        ]
    }
}
