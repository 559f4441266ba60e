import POSIX

/// The machine's memory as /proc/meminfo's MemTotal gives it: what a percentage in
/// nsgroupd.conf's memory limits is a share of. Read when the file is parsed (at start
/// and on SIGHUP), not kept.
enum MachineMemory {
    /// MemTotal in bytes; nil when /proc/meminfo cannot be read or has no such line.
    static func total() -> UInt64? {
        guard let text = try? ProcFS.readText("/proc/meminfo", limit: 64 << 10) else { return nil }
        return total(meminfo: text)
    }

    /// MemTotal of a /proc/meminfo text, whose line reads "MemTotal:       24684084 kB".
    static func total(meminfo text: String) -> UInt64? {
        for line in text.split(separator: "\n") where line.hasPrefix("MemTotal:") {
            let fields = line.dropFirst("MemTotal:".count).split(separator: " ")
            guard fields.count == 2, fields[1] == "kB", let kibibytes = UInt64(fields[0]) else { return nil }
            let (bytes, overflow) = kibibytes.multipliedReportingOverflow(by: 1024)
            return overflow ? nil : bytes
        }
        return nil
    }

    /// `percent` (1 to 100) of `total` bytes, rounded down to a whole MiB: the kernel would
    /// round it down to a page anyway, and refusals then show it as "12052m".
    static func share(_ percent: UInt64, of total: UInt64) -> UInt64 {
        // total / 100 first, so that no size of memory overflows.
        let bytes = total / 100 * percent + total % 100 * percent / 100
        return bytes & ~((1 << 20) - 1)
    }
}
