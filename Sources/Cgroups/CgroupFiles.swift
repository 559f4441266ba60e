#if canImport(Glibc)
import Glibc
#endif
import CPOSIX
import POSIX

/// The file operations of this module, on cgroupfs or on a fake tree standing for it in tests.
///
/// Every path is resolved without following a symlink in any component (openat2(2) with
/// RESOLVE_NO_SYMLINKS; before Linux 5.6, open(2) with O_NOFOLLOW, which guards the last
/// component only), every descriptor is close-on-exec, a value goes to the kernel in one
/// write(2) (cgroupfs takes a value per write: two writes would be two values), and a file is
/// read to its end.
enum CgroupFiles {
    /// openat2(AT_FDCWD, path, flags | O_CLOEXEC | O_NOFOLLOW, RESOLVE_NO_SYMLINKS).
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(Errno) -> FileDescriptor {
        let all = flags | O_CLOEXEC | O_NOFOLLOW
        // openat2 refuses a mode without O_CREAT.
        let fd = ns_openat2(AT_FDCWD, path, all, flags & O_CREAT != 0 ? UInt32(mode) : 0, NS_RESOLVE_NO_SYMLINKS)
        if fd >= 0 { return FileDescriptor(adopting: fd) }
        let error = Errno.current
        guard error.rawValue == ENOSYS else { throw error }
        return try FileDescriptor.open(path, all, mode: mode)
    }

    /// Opens the directory that holds `path`'s last component (O_PATH) and hands it to `body`
    /// with that component: mkdirat and unlinkat then never follow a symlink on the way.
    private static func inParent<R>(of path: String, _ body: (Int32, String) -> R) throws(Errno) -> R {
        guard let slash = path.lastIndex(of: "/") else { throw Errno.invalidArgument }
        let parent = slash == path.startIndex ? "/" : String(path[..<slash])
        let name = String(path[path.index(after: slash)...])
        let directory = try open(parent, NS_O_PATH | O_DIRECTORY)
        return body(directory.rawValue, name)
    }

    /// mkdir(2) with mode 0755; a directory already there is fine (EEXIST).
    static func makeDirectory(_ path: String) throws(Errno) {
        let result = try inParent(of: path) { parent, name in mkdirat(parent, name, 0o755) }
        if result < 0, errno != EEXIST { throw Errno.current }
    }

    /// rmdir(2); a directory already gone is fine (ENOENT). A cgroup that still has
    /// processes or children fails with EBUSY.
    static func removeDirectory(_ path: String) throws(Errno) {
        let result: Int32
        do {
            result = try inParent(of: path) { parent, name in unlinkat(parent, name, AT_REMOVEDIR) }
        } catch {
            if error.rawValue == ENOENT { return }
            throw error
        }
        if result < 0, errno != ENOENT { throw Errno.current }
    }

    /// Writes `value` in one write(2). `creating` is for fake trees only (plain files that
    /// may not exist yet, truncated first): cgroupfs has every file it knows already, and
    /// answers O_CREAT for one it does not know with EACCES rather than ENOENT.
    static func write(_ value: String, to path: String, creating: Bool) throws(Errno) {
        let fd = try open(path, O_WRONLY | (creating ? O_CREAT | O_TRUNC : 0), mode: 0o644)
        var text = value
        while true {
            let written = text.withUTF8 { bytes in Glibc.write(fd.rawValue, bytes.baseAddress, bytes.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw Errno.current
            }
            // Kernfs takes a whole value (up to a page) at once; anything less is a failure.
            if written != text.utf8.count { throw Errno(rawValue: EIO) }
            return
        }
    }

    /// The capacity of `withContents`: every file read through it is far smaller (cpu.stat,
    /// memory.events, cgroup.events are a few hundred bytes).
    static let smallFileCapacity = 4096

    /// Reads a small file to its end into a buffer on the stack and gives `body` its bytes;
    /// nil when the file cannot be opened or read, or does not fit.
    static func withContents<R>(_ path: String, _ body: (UnsafeRawBufferPointer) -> R?) -> R? {
        guard let fd = try? open(path, O_RDONLY) else { return nil }
        return withUnsafeTemporaryAllocation(byteCount: smallFileCapacity, alignment: 1) { buffer -> R? in
            var filled = 0
            while true {
                guard filled < buffer.count else { return nil }
                let rest = UnsafeMutableRawBufferPointer(rebasing: buffer[filled...])
                guard let count = try? fd.read(into: rest) else { return nil }
                if count == 0 { break }
                filled += count
            }
            return body(UnsafeRawBufferPointer(rebasing: buffer[..<filled]))
        }
    }

    /// A small file's text; nil when unreadable.
    static func text(_ path: String) -> String? {
        withContents(path) { String(decoding: $0, as: UTF8.self) }
    }

    /// A file of any size (cgroup.procs of a busy cgroup), read to its end.
    static func readAll(_ path: String) throws(Errno) -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        return try fd.readAll(limit: 1 << 26)
    }

    /// Whether `path` is a directory (reached without symlinks).
    static func isDirectory(_ path: String) -> Bool {
        (try? open(path, NS_O_PATH | O_DIRECTORY)) != nil
    }

    /// The names of the subdirectories of `path` (readdir's d_type; lstat for a file system
    /// that does not fill it in), without "." and "..".
    static func subdirectories(_ path: String) throws(Errno) -> [String] {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        // fdopendir takes the descriptor over: closedir closes it.
        guard let directory = fdopendir(fd.rawValue) else { throw Errno.current }
        _ = fd.release()
        defer { closedir(directory) }
        let descriptor = dirfd(directory)
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            switch Int(entry.pointee.d_type) {
            case DT_DIR:
                names.append(name)
            case DT_UNKNOWN:
                var status = stat()
                if fstatat(descriptor, name, &status, AT_SYMLINK_NOFOLLOW) == 0, status.st_mode & S_IFMT == S_IFDIR {
                    names.append(name)
                }
            default:
                break
            }
        }
        return names
    }
}

/// Numbers in cgroup files, parsed from the bytes without building strings.
enum CgroupValue: Equatable {
    case number(UInt64)
    /// "max" (v2), or -1 (v1).
    case unlimited

    /// The first word of `bytes`: digits, "max" or "-1"; nil for anything else.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> CgroupValue? {
        parse(bytes, from: 0)
    }

    static func parse(_ bytes: UnsafeRawBufferPointer, from start: Int) -> CgroupValue? {
        var index = start
        if index + 3 <= bytes.count, bytes[index] == UInt8(ascii: "m"), bytes[index + 1] == UInt8(ascii: "a"),
           bytes[index + 2] == UInt8(ascii: "x") {
            return .unlimited
        }
        if index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "-"), bytes[index + 1] == UInt8(ascii: "1") {
            return .unlimited
        }
        var value: UInt64 = 0
        var digits = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt64(bytes[index] - UInt8(ascii: "0")))
            if overflow1 || overflow2 { return nil }
            value = sum
            digits += 1
            index += 1
        }
        return digits > 0 ? .number(value) : nil
    }

    /// The value on the line "KEY VALUE" of a flat keyed file (cpu.stat, memory.events,
    /// cgroup.events, memory.oom_control, pids.events).
    static func keyed(_ key: String, in bytes: UnsafeRawBufferPointer) -> CgroupValue? {
        var lineStart = 0
        while lineStart < bytes.count {
            var lineEnd = lineStart
            while lineEnd < bytes.count, bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            var matches = true
            var index = lineStart
            for byte in key.utf8 {
                guard index < lineEnd, bytes[index] == byte else { matches = false; break }
                index += 1
            }
            if matches, index < lineEnd, bytes[index] == UInt8(ascii: " ") {
                return parse(UnsafeRawBufferPointer(rebasing: bytes[..<lineEnd]), from: index + 1)
            }
            lineStart = lineEnd + 1
        }
        return nil
    }
}

extension CgroupFiles {
    /// The number a one-value file holds; `.unlimited` for "max" or -1.
    static func value(_ path: String) -> CgroupValue? {
        withContents(path) { CgroupValue.parse($0) }
    }

    /// The value of KEY in a flat keyed file.
    static func value(_ key: String, in path: String) -> CgroupValue? {
        withContents(path) { CgroupValue.keyed(key, in: $0) }
    }

    /// A plain count or size: nil for "max" and for anything unreadable.
    static func number(_ path: String) -> UInt64? {
        if case .number(let value) = value(path) { return value }
        return nil
    }

    static func number(_ key: String, in path: String) -> UInt64? {
        if case .number(let value) = value(key, in: path) { return value }
        return nil
    }
}
