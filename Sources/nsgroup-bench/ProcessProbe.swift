#if canImport(Glibc)
import Glibc
#endif
import POSIX

/// What the benchmark watches of the supervisor: open descriptors, resident
/// memory and threads, read from /proc.
struct ProcessSample: Sendable {
    var descriptors: Int
    var residentKiB: Int
    var threads: Int
}

/// Facts about processes, read from /proc (the benchmark never traces the
/// supervisor: it reads what the kernel already keeps).
enum ProcessProbe {
    static func sample(_ pid: pid_t) throws -> ProcessSample {
        let threads = try ProcFS.statusField(pid: pid, "Threads").flatMap { Int($0) } ?? 0
        return ProcessSample(descriptors: try ProcFS.openDescriptorCount(pid: pid),
                             residentKiB: try ProcFS.residentKiB(pid: pid), threads: threads)
    }

    /// Time the process has spent on a CPU, in nanoseconds: the first field
    /// of /proc/PID/task/TID/schedstat, summed over its threads. Unlike the
    /// tick counts of /proc/PID/stat it is exact to the nanosecond.
    static func cpuNanoseconds(_ pid: pid_t) throws -> UInt64 {
        var total: UInt64 = 0
        for task in try Directory.entries("/proc/\(pid)/task") {
            guard let text = try? ProcFS.readText("/proc/\(pid)/task/\(task)/schedstat"),
                  let first = text.split(separator: " ").first, let ns = UInt64(first)
            else { continue }
            total += ns
        }
        return total
    }

    /// Field 4 of /proc/PID/stat.
    static func parentPID(_ pid: pid_t) -> pid_t? {
        guard let stat = try? ProcFS.readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? pid_t(fields[1]) : nil
    }

    /// The process's argv, from /proc/PID/cmdline (empty when it is gone).
    static func commandLine(_ pid: pid_t) -> [String] {
        guard let text = try? ProcFS.readText("/proc/\(pid)/cmdline") else { return [] }
        return text.split(separator: "\0", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    static func isAlive(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

    static func allProcesses() -> [pid_t] {
        ((try? Directory.entries("/proc")) ?? []).compactMap { pid_t($0) }
    }

    /// Holder processes the supervisor `supervisor` started: its children
    /// whose program is nsgroup-holder. (Holders taken back after a restart
    /// are not children; the benchmark's supervisors never restart.)
    static func holders(childrenOf supervisor: pid_t) -> [pid_t] {
        allProcesses().filter { pid in
            guard parentPID(pid) == supervisor else { return false }
            return commandLine(pid).first?.hasSuffix("nsgroup-holder") == true
        }
    }

    /// The descriptor count once it has stopped changing (connections just
    /// closed by clients may still be closing on the supervisor's side), or
    /// as soon as it equals `target`. Bounded: at most about `timeoutSeconds`.
    static func settledDescriptorCount(_ pid: pid_t, target: Int? = nil, timeoutSeconds: Double = 5) throws -> Int {
        let deadline = monotonicNanoseconds() + UInt64(timeoutSeconds * 1e9)
        var last = try ProcFS.openDescriptorCount(pid: pid)
        var steady = 0
        while monotonicNanoseconds() < deadline {
            if let target, last == target { return last }
            if target == nil, steady >= 10 { return last }
            usleep(20_000)
            let now = try ProcFS.openDescriptorCount(pid: pid)
            steady = now == last ? steady + 1 : 0
            last = now
        }
        return last
    }
}
