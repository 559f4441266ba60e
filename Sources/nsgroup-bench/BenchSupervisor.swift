#if canImport(Glibc)
import Glibc
#endif
import Client
import Namespaces
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

    /// Connects to `socket`, or starts a private nsgroupd when it is nil.
    init(socket: String?) throws {
        if let socket {
            socketPath = socket
            return
        }
        var template = Array("/tmp/nsgroup-bench-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchError("mkdtemp: \(Errno.current)") }
        let dir = String(cString: made)
        chmod(dir, 0o755)
        directory = dir
        socketPath = dir + "/nsgroupd.sock"
        let arguments = [Binaries.nsgroupd, "--socket", socketPath, "--state-dir", dir + "/state"]
        var pid: pid_t = 0
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        // Its output goes to a log beside its socket, not into the report.
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, dir + "/nsgroupd.log", O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let spawned = posix_spawn(&pid, Binaries.nsgroupd, &actions, nil, &argv, environ)
        guard spawned == 0 else { throw BenchError("cannot start \(Binaries.nsgroupd): \(Errno(rawValue: spawned))") }
        process = pid
        for _ in 0..<500 {
            if (try? UnixSocket.connect(path: socketPath)) != nil { return }
            usleep(10_000)
        }
        throw BenchError("nsgroupd did not start on \(socketPath)")
    }

    func client() throws -> RPCClient {
        try RPCClient(socketPath: socketPath)
    }

    /// The supervisor's pid, when it was started here.
    var pid: pid_t? { process > 0 ? process : nil }

    /// Stops a private supervisor (its groups should be destroyed first).
    func stop() {
        if process > 0 {
            kill(process, SIGTERM)
            var status: Int32 = 0
            waitpid(process, &status, 0)
            process = 0
        }
        if let directory {
            _ = ProgramRunnerShim.removeTree(directory)
            self.directory = nil
        }
    }

    deinit { stop() }
}

enum ProgramRunnerShim {
    static func removeTree(_ path: String) -> Int32 {
        (try? ProgramRunner.run("/bin/rm", ["rm", "-rf", path])) ?? -1
    }
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
