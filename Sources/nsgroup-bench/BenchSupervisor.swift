#if canImport(Glibc)
import Glibc
#endif
import CBench
import Cgroups
import Client
import POSIX
import RPC

/// Where the binaries of this build are: next to nsgroup-bench.
enum Binaries {
    static let directory: String = {
        let exe = (try? ProcFS.readLink("/proc/self/exe")) ?? CommandLine.arguments[0]
        return String(exe[..<(exe.lastIndex(of: "/") ?? exe.startIndex)])
    }()

    static var nsgroupd: String { directory + "/nsgroupd" }
    static var nsgroup: String { directory + "/nsgroup" }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A supervisor to measure: a private one started here, or one already running.
final class BenchSupervisor {
    let socketPath: String
    private var process: pid_t = 0
    private var directory: String?

    /// Where a private supervisor keeps its socket and state.
    private(set) var directoryPath: String?

    /// Connects to `socket`, or starts a private nsgroupd when it is nil,
    /// with its socket and state in a new directory under `parent`
    /// (default: `defaultParent`), configured with `configuration` and then
    /// `extraConfiguration` (more sections, e.g. `[audit]`).
    init(socket: String?, parent: String? = nil, extraConfiguration: String = "") throws {
        if let socket {
            socketPath = socket
            return
        }
        var template = Array(((parent ?? Self.defaultParent) + "/nsgroup-bench-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchError("mkdtemp: \(Errno.current)") }
        let dir = String(cString: made)
        chmod(dir, 0o755)
        directory = dir
        directoryPath = dir
        socketPath = dir + "/nsgroupd.sock"
        // A configuration of its own: the defaults, whatever the host's
        // /etc/nsgroup/nsgroupd.conf says (a smaller limits.groups there
        // would stop `scale` at its 1000 groups), except the per-user counts,
        // raised so that up to 64 concurrent clients of one unprivileged user
        // (create-throughput, enter-throughput) each have a group and a
        // session; root, who makes the groups of the other benchmarks, has
        // no group limit anyway.
        let config = dir + "/nsgroupd.conf"
        let configFD = open(config, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard configFD >= 0 else { throw BenchError("cannot create \(config): \(Errno.current)") }
        let text = Array((Self.configuration + extraConfiguration).utf8)
        let written = text.withUnsafeBytes { write(configFD, $0.baseAddress, $0.count) }
        close(configFD)
        guard written == text.count else { throw BenchError("cannot write \(config): \(Errno.current)") }
        // A cgroup tree of its own, named after its directory, beside any other supervisor's.
        let arguments = [Binaries.nsgroupd, "--socket", socketPath, "--state-dir", dir + "/state", "--config", config,
                         "--cgroup-dir", String(dir.split(separator: "/").last ?? "nsgroup-bench"), "--no-units"]
        var pid: pid_t = 0
        // Its output goes to a log beside its socket, not into the report.
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, dir + "/nsgroupd.log", O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let spawned = withCStringArray(arguments) { argv in posix_spawn(&pid, Binaries.nsgroupd, &actions, nil, argv, environ) }
        guard spawned == 0 else { throw BenchError("cannot start \(Binaries.nsgroupd): \(Errno(rawValue: spawned))") }
        process = pid
        for _ in 0..<500 {
            if (try? UnixSocket.connect(path: socketPath)) != nil { return }
            usleep(10_000)
        }
        throw BenchError("nsgroupd did not start on \(socketPath)")
    }

    /// What a private supervisor is configured with.
    static let configuration = """
        [limits]
        groups-per-user = 128
        sessions-per-user = 256

        """

    /// Where private supervisors keep their state: on a tmpfs, as nsgroupd's
    /// default, /run/nsgroup, is on every systemd machine. Each create
    /// writes a state file with fsync and each destroy removes it; on a disk
    /// that is milliseconds per group that a real installation never pays.
    /// So: /run if it is a tmpfs, else /dev/shm if it is one (this VM's /run
    /// is on its root disk), else /tmp.
    static let defaultParent: String = {
        for candidate in ["/run", "/dev/shm"] where isTmpfs(candidate) { return candidate }
        return "/tmp"
    }()

    static func isTmpfs(_ path: String) -> Bool { cbench_is_tmpfs(path) != 0 }

    /// One line for reports: where the state is, and on what.
    var stateDescription: String {
        guard let directoryPath else { return "state: that of the supervisor at \(socketPath)" }
        return "state directory \(directoryPath)/state (\(Self.isTmpfs(directoryPath) ? "tmpfs" : "not tmpfs: creates and destroys pay for fsync"))"
    }

    func client() throws -> RPCClient {
        try RPCClient(socketPath: socketPath)
    }

    /// The supervisor's pid, when it was started here.
    var pid: pid_t? { process > 0 ? process : nil }

    /// The supervisor's pid, also for one started elsewhere: the pid the
    /// kernel reports for the listening end of a connection (SO_PEERCRED),
    /// if that process runs nsgroupd. Nil when it does not (a socket made by
    /// systemd for socket activation names pid 1).
    var serverPID: pid_t? {
        if let pid { return pid }
        guard let connection = try? UnixSocket.connect(path: socketPath) else { return nil }
        let peer = cbench_peer_pid(connection.rawValue)
        guard peer > 0 else { return nil }
        let exe = (try? ProcFS.readLink("/proc/\(peer)/exe")) ?? ""
        return exe.hasSuffix("/nsgroupd") ? peer : nil
    }

    /// Stops a private supervisor. Groups outlive their supervisor, so any
    /// group still there (a benchmark that failed half-way) is destroyed
    /// first: nothing the benchmark started is left running.
    func stop() {
        if process > 0 {
            let leftOver = GroupOps.destroy(prefix: nil, socketPath: socketPath)
            for failure in leftOver { printError("nsgroup-bench: clean-up: \(failure)") }
            kill(process, SIGTERM)
            var status: Int32 = 0
            waitpid(process, &status, 0)
            process = 0
            // Its cgroup tree, empty now that its groups are destroyed.
            if let directory, let layout = try? CgroupLayout.detect() {
                let name = String(directory.split(separator: "/").last ?? "")
                do throws(CgroupError) {
                    try CgroupTree(layout: layout, subdirectory: name).base.remove()
                } catch {
                    printError("nsgroup-bench: clean-up: \(error)")
                }
            }
        }
        if let directory {
            Directory.removeTree(directory)
            self.directory = nil
        }
    }

    deinit { stop() }
}

/// Median and spread of timings, in milliseconds.
struct Timings {
    private(set) var samples: [Double] = []

    mutating func add(nanoseconds: UInt64) { samples.append(Double(nanoseconds) / 1_000_000) }

    private func percentile(_ p: Double) -> Double {
        let sorted = samples.sorted()
        guard !sorted.isEmpty else { return .nan }
        let rank = p * Double(sorted.count - 1)
        let low = Int(rank.rounded(.down))
        let high = min(low + 1, sorted.count - 1)
        return sorted[low] + (sorted[high] - sorted[low]) * (rank - Double(low))
    }

    var median: Double { percentile(0.5) }
    var p10: Double { percentile(0.1) }
    var p90: Double { percentile(0.9) }
    var mean: Double { samples.reduce(0, +) / Double(max(samples.count, 1)) }
}

/// One timed run of a two-step measurement: the whole of it, and the part before its second step.
struct TwoStepTime {
    var total: UInt64
    var firstStep: UInt64
}

/// Timings of several measurements, interleaved: each runs `warmup` times unmeasured, then
/// `runs` times, the order rotating every run so that none always follows another. Per
/// measurement: the totals, the first steps and the second steps.
func interleaved(_ measures: [() throws -> TwoStepTime], runs: Int, warmup: Int) throws
    -> (totals: [Timings], firstSteps: [Timings], secondSteps: [Timings]) {
    for _ in 0..<warmup {
        try Interrupt.check()
        for measure in measures { _ = try measure() }
    }
    var totals = [Timings](repeating: Timings(), count: measures.count)
    var firstSteps = totals, secondSteps = totals
    for i in 0..<runs {
        try Interrupt.check()
        for k in 0..<measures.count {
            let which = (i + k) % measures.count
            let timed = try measures[which]()
            totals[which].add(nanoseconds: timed.total)
            firstSteps[which].add(nanoseconds: timed.firstStep)
            secondSteps[which].add(nanoseconds: timed.total - timed.firstStep)
        }
    }
    return (totals, firstSteps, secondSteps)
}

/// A table of labelled timings: median, p10, p90 and mean, the labels `width` wide.
func printTimings(_ rows: [(label: String, timings: Timings)], width: Int) {
    print(padded("", width) + padded("median", 11) + padded("p10", 11) + padded("p90", 11) + "mean")
    for (label, t) in rows {
        print(padded(label, width) + padded(formatMilliseconds(t.median), 11) + padded(formatMilliseconds(t.p10), 11)
              + padded(formatMilliseconds(t.p90), 11) + formatMilliseconds(t.mean))
    }
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func formatMilliseconds(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100) ms"
}

func formatRatio(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)"
}

func padded(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}
