import Testing
import Glibc
import POSIX
import CPOSIX

/// Files, directories and processes for the tests, written here with plain libc calls so
/// that the module is not checked against its own helpers.
enum Sys {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func errnoText(_ call: String) -> Failure {
        Failure("\(call): \(String(cString: strerror(errno)))")
    }

    /// A new empty directory under /tmp; the caller removes it (`Directory.removeTree`).
    static func temporaryDirectory(_ prefix: String) throws -> String {
        var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw errnoText("mkdtemp") }
        return String(cString: made)
    }

    /// mkdir -p.
    static func makeDirectories(_ path: String) throws {
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST { throw errnoText("mkdir \(current)") }
        }
    }

    /// Writes a whole file, making its directory first.
    static func writeFile(_ path: String, _ text: String) throws {
        try makeDirectories(String(path[..<path.lastIndex(of: "/")!]))
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw errnoText("open \(path)") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw errnoText("write \(path)")
        }
    }

    /// A whole file's text; nil when it cannot be opened.
    static func readFile(_ path: String) -> String? { try? ProcFS.readText(path) }

    static func isDirectory(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFDIR
    }

    static func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }

    /// A pipe with both ends close-on-exec.
    static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard ns_pipe_cloexec(&fds) == 0 else { throw errnoText("pipe2") }
        return (fds[0], fds[1])
    }

    static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) throws -> R) rethrows -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return try body(pointers)
    }

    static let environment = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]

    /// posix_spawn; descriptors not given are /dev/null.
    static func spawn(_ argv: [String], stdin: Int32? = nil, stdout: Int32? = nil, stderr: Int32? = nil) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, source) in [(Int32(0), stdin), (1, stdout), (2, stderr)] {
            if let source {
                posix_spawn_file_actions_adddup2(&actions, source, target)
            } else {
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_RDWR, 0)
            }
        }
        var pid: pid_t = 0
        let status = withCStrings(argv) { args in
            withCStrings(environment) { env in posix_spawn(&pid, argv[0], &actions, nil, args, env) }
        }
        guard status == 0 else { throw Failure("posix_spawn(\(argv[0])): \(String(cString: strerror(status)))") }
        return pid
    }

    /// A shell that runs `script` only once it has read a line from its standard input, so
    /// that it can be moved into a cgroup before it does anything. `release` sends the line.
    struct GatedShell {
        let pid: pid_t
        let gate: Int32
        let errors: Int32?

        init(_ script: String, captureErrors: Bool = false) throws {
            let (gateRead, gateWrite) = try Sys.pipe()
            defer { close(gateRead) }
            var errorEnds: (read: Int32, write: Int32)?
            if captureErrors { errorEnds = try Sys.pipe() }
            defer { if let errorEnds { close(errorEnds.write) } }
            pid = try Sys.spawn(["/bin/sh", "-c", "read line; " + script], stdin: gateRead, stderr: errorEnds?.write)
            gate = gateWrite
            errors = errorEnds?.read
        }

        func release() {
            _ = Glibc.write(gate, "go\n", 3)
            close(gate)
        }
    }

    /// Polls `condition` every 10 ms; throws when it has not held within `seconds`.
    static func waitUntil(_ what: String, seconds: Double = 20, _ condition: () -> Bool) throws {
        let deadline = now() + seconds
        while !condition() {
            guard now() < deadline else { throw Failure("timed out after \(seconds) s waiting until \(what)") }
            usleep(10_000)
        }
    }

    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// Reaps a child, waiting at most `seconds`; its exit code, or 128 + signal. Throws on timeout.
    @discardableResult
    static func reap(_ pid: pid_t, seconds: Double = 20) throws -> Int32 {
        var status: Int32 = 0
        try waitUntil("process \(pid) has ended", seconds: seconds) {
            let result = waitpid(pid, &status, WNOHANG)
            return result == pid || (result < 0 && errno == ECHILD)
        }
        if status & 0x7F == 0 { return (status >> 8) & 0xFF }
        return 128 + (status & 0x7F)
    }

    /// Kills and reaps a child, for clean-up; never waits long.
    static func killAndReap(_ pid: pid_t) {
        guard pid > 0 else { return }
        _ = kill(pid, SIGKILL)
        _ = try? reap(pid, seconds: 5)
    }

    /// Reads what is there until end of file, at most `seconds`; throws on timeout.
    static func readToEnd(_ fd: Int32, seconds: Double = 20) throws -> String {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        let deadline = now() + seconds
        while true {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let remaining = Int32(max(0, (deadline - now()) * 1000))
            let ready = poll(&poller, 1, remaining)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { throw Failure("nothing more arrived on fd \(fd) in \(seconds) s") }
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            result += chunk[0..<n]
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// Every live process whose /proc/PID/cgroup puts it at `path` or below in the unified
    /// hierarchy. Zombies are left out: the kernel takes a process out of its cgroup when it
    /// exits, while /proc keeps showing the cgroup it died in until it is reaped (and this
    /// VM's PID 1 reaps orphans late).
    static func processesInUnifiedCgroup(_ path: String) -> Set<pid_t> {
        var found: Set<pid_t> = []
        for entry in (try? Directory.entries("/proc")) ?? [] {
            guard let pid = pid_t(entry), let text = readFile("/proc/\(pid)/cgroup"),
                  let status = readFile("/proc/\(pid)/status"), !status.contains("\nState:\tZ") else { continue }
            for line in text.split(separator: "\n") where line.hasPrefix("0::") {
                let cgroup = line.dropFirst(3)
                if cgroup == path || cgroup.hasPrefix(path + "/") { found.insert(pid) }
            }
        }
        return found
    }

    /// This process's cgroup in the v1 hierarchy of `controller`, from /proc/self/cgroup.
    static func ownLegacyCgroup(_ controller: String) -> String? {
        for line in (readFile("/proc/self/cgroup") ?? "").split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            if fields.count == 3, fields[1].split(separator: ",").contains(controller[...]) { return String(fields[2]) }
        }
        return nil
    }

    /// A random hexadecimal word for names nothing else uses.
    static func randomName(_ prefix: String) -> String {
        prefix + String(UInt64.random(in: 0...UInt64.max), radix: 16)
    }
}
