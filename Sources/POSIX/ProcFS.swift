#if canImport(Glibc)
import Glibc
#endif

/// Reading facts about processes out of /proc.
public enum ProcFS {
    /// readlink(2) of a path, as a String.
    public static func readLink(_ path: String) throws(Errno) -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buffer, buffer.count - 1)
        if n < 0 { throw Errno.current }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A small /proc file's text.
    public static func readText(_ path: String, limit: Int = 1 << 20) throws(Errno) -> String {
        let fd = try FileDescriptor.open(path, O_RDONLY)
        return String(decoding: try fd.readAll(limit: limit), as: UTF8.self)
    }

    /// The process's start time in clock ticks since boot: field 22 of
    /// /proc/PID/stat. With the pid it identifies one process for good, since
    /// a reused pid comes with a later start time.
    public static func startTime(pid: pid_t) throws(Errno) -> UInt64 {
        let stat = try readText("/proc/\(pid)/stat")
        // The command name (field 2) is in parentheses and may contain spaces
        // and parentheses of its own: count fields after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { throw Errno(rawValue: EINVAL) }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state), so field 22 is fields[19].
        guard fields.count > 19, let ticks = UInt64(fields[19]) else { throw Errno(rawValue: EINVAL) }
        return ticks
    }

    /// Every resource limit of the process, in resource order (RLIMIT_CPU …), from
    /// /proc/PID/limits, which anyone may read: the kernel writes a header, then one line per
    /// resource, its name padded to 25 columns, then the soft and hard limits ("unlimited" or
    /// a number), each padded to 20.
    public static func resourceLimits(pid: pid_t) throws(Errno) -> [ResourceLimit] {
        let lines = try readText("/proc/\(pid)/limits", limit: 8192).split(separator: "\n").dropFirst()
        var limits: [ResourceLimit] = []
        for line in lines {
            let values = line.utf8.dropFirst(26).split(separator: UInt8(ascii: " "))
            func value(_ index: Int) -> UInt64? {
                guard values.count > index else { return nil }
                let text = String(decoding: values[index], as: UTF8.self)
                return text == "unlimited" ? UInt64.max : UInt64(text)
            }
            guard let soft = value(0), let hard = value(1) else { throw Errno(rawValue: EINVAL) }
            limits.append(ResourceLimit(soft: soft, hard: hard))
        }
        return limits
    }

    /// The value of one "Key:\tvalue" line of /proc/PID/status.
    public static func statusField(pid: pid_t, _ key: String) throws(Errno) -> String? {
        let text = try readText("/proc/\(pid)/status")
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            return line.dropFirst(key.count + 1).trimmed
        }
        return nil
    }

    /// The numbers on the Groups: line of /proc/PID/status: the supplementary groups.
    public static func supplementaryGroups(pid: pid_t) throws(Errno) -> [gid_t] {
        guard let line = try statusField(pid: pid, "Groups") else { throw Errno(rawValue: EINVAL) }
        return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { gid_t($0) }
    }

    /// Resident set size in KiB (VmRSS of /proc/PID/status): what the benchmark and the
    /// end-to-end tests watch of a supervisor.
    public static func residentKiB(pid: pid_t) throws(Errno) -> Int {
        guard let value = try statusField(pid: pid, "VmRSS"),
              let kib = Int(value.split(separator: " ").first ?? "")
        else { throw Errno(rawValue: EINVAL) }
        return kib
    }

    /// How many descriptors the process has open.
    public static func openDescriptorCount(pid: pid_t) throws(Errno) -> Int {
        guard let dir = opendir("/proc/\(pid)/fd") else { throw Errno.current }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
        }
        return count
    }
}
