import Testing
import Glibc
import Namespaces
import POSIX
import CPOSIX

// MARK: - Helpers shared by the Namespaces tests

/// Real processes, pipes and files for the tests. Nothing here is a stand-in
/// for the kernel: it only starts programs and reads what /proc says.
enum Sys {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func errnoText(_ call: String) -> Failure {
        Failure("\(call): \(String(cString: strerror(errno)))")
    }

    /// readlink(2), written here so that the tests do not check ProcFS against itself.
    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buffer, buffer.count)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The nsgroup-holder the build put next to the test bundle.
    static func holderPath() throws -> String {
        let exe = try #require(readLink("/proc/self/exe"), "cannot resolve /proc/self/exe")
        var directory = String(exe[..<(exe.lastIndex(of: "/") ?? exe.startIndex)])
        for _ in 0..<4 {
            let candidate = directory + "/nsgroup-holder"
            var st = stat()
            if stat(candidate, &st) == 0, st.st_mode & S_IFMT == S_IFREG, access(candidate, X_OK) == 0 {
                return candidate
            }
            guard let slash = directory.lastIndex(of: "/"), slash != directory.startIndex else { break }
            directory = String(directory[..<slash])
        }
        throw Failure("nsgroup-holder not found near \(exe); build it with `swift build --build-tests`")
    }

    /// A pipe with both ends close-on-exec, so children only get what they are given.
    static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard Glibc.pipe(&fds) == 0 else { throw errnoText("pipe") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }

    static func closeQuietly(_ fd: inout Int32) {
        if fd >= 0 { _ = close(fd) }
        fd = -1
    }

    static func write(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
    }

    /// Waits until `fd` is readable. The limit only keeps a broken test from
    /// hanging the whole run; nothing is asserted about how long it took.
    static func waitReadable(_ fd: Int32, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let r = poll(&p, 1, 60_000)
            if r < 0 && errno == EINTR { continue }
            if r == 0 { Issue.record("nothing arrived on fd \(fd) for a minute", sourceLocation: sourceLocation) }
            return r > 0
        }
    }

    /// Reads until end of file.
    static func readAll(_ fd: Int32, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while waitReadable(fd, sourceLocation: sourceLocation) {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            result += chunk[0..<n]
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// Reads until the bytes read so far end with `marker` (or end of file).
    /// Compared as bytes: as Characters, "\r\n" would never match "\n".
    static func readUntil(_ fd: Int32, contains marker: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        var result: [UInt8] = []
        var byte: UInt8 = 0
        let wanted = Array(marker.utf8)
        while !result.ends(with: wanted), waitReadable(fd, sourceLocation: sourceLocation) {
            let n = Glibc.read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            result.append(byte)
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// Runs `body` with a NULL-terminated C array of copies of `strings`.
    static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) throws -> R) rethrows -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return try body(pointers)
    }

    /// Starts a program with posix_spawn (no Swift runs in the child).
    /// Descriptors not given are /dev/null.
    static func spawn(_ argv: [String], stdin: Int32? = nil, stdout: Int32? = nil, stderr: Int32? = nil,
                      environment: [String] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]) throws -> pid_t {
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
            withCStrings(environment) { env in
                posix_spawn(&pid, argv[0], &actions, nil, args, env)
            }
        }
        guard status == 0 else { throw Failure("posix_spawn(\(argv[0])): \(String(cString: strerror(status)))") }
        return pid
    }

    /// waitpid(2) for one child; the exit code, or 128 + signal.
    @discardableResult
    static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        if status & 0x7F == 0 { return (status >> 8) & 0xFF }
        return 128 + (status & 0x7F)
    }

    static func killAndWait(_ pid: pid_t) {
        guard pid > 0 else { return }
        _ = kill(pid, SIGKILL)
        wait(pid)
    }

    /// Runs a program to its end and returns its exit status and standard output.
    static func run(_ argv: [String]) throws -> (status: Int32, output: String) {
        var (readEnd, writeEnd) = try pipe()
        defer { closeQuietly(&readEnd); closeQuietly(&writeEnd) }
        let pid = try spawn(argv, stdout: writeEnd)
        closeQuietly(&writeEnd)
        let output = readAll(readEnd)
        return (wait(pid), output)
    }

    /// The entries of a /proc/PID/fd-like directory (without . and ..).
    static func directoryEntries(_ path: String) -> [String]? { try? Directory.entries(path) }

    /// A small text file (such as one under /proc), read here with open/read.
    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            result += chunk[0..<n]
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// One "Key:" line of /proc/PID/status, as text after the tab.
    static func statusLine(_ pid: pid_t, _ key: String) -> String? {
        guard let text = readFile("/proc/\(pid)/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            return String(line.dropFirst(key.count + 1).drop(while: { $0 == "\t" || $0 == " " }))
        }
        return nil
    }

    /// Processes whose argv is exactly `nsgroup-holder NAME ...`.
    static func holderProcesses(named name: String) -> [pid_t] {
        var found: [pid_t] = []
        for entry in directoryEntries("/proc") ?? [] {
            guard let pid = pid_t(entry), let cmdline = readFile("/proc/\(entry)/cmdline") else { continue }
            let argv = cmdline.split(separator: "\0", omittingEmptySubsequences: false)
            if argv.count >= 2, argv[0].hasSuffix("nsgroup-holder"), argv[1] == name {
                found.append(pid)
            }
        }
        return found
    }

    /// Waits until `pid` sleeps in sigwaitinfo (its wait channel is
    /// do_sigtimedwait): the holder's main loop. False if it never gets there.
    static func waitUntilWaitingForSignals(_ pid: pid_t) -> Bool {
        for _ in 0..<60_000 {
            let wchan = readFile("/proc/\(pid)/wchan") ?? ""
            if wchan.hasPrefix("do_sigtimedwait") { return true }
            if wchan.isEmpty && readFile("/proc/\(pid)/stat") == nil { return false }
            usleep(1000)
        }
        return false
    }

    static func uniqueName(_ prefix: String) -> String {
        "\(prefix)-\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
    }

    /// A fresh directory under /tmp, removed (with what is left in it) by `removeTree`.
    static func makeTemporaryDirectory(_ prefix: String = "nsg-unit") throws -> String {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw errnoText("mkdtemp")
        }
        return String(cString: made)
    }

    /// rm -r without following symlinks.
    static func removeTree(_ path: String) { Directory.removeTree(path) }

    static func statPath(_ path: String) -> stat? {
        var st = stat()
        return stat(path, &st) == 0 ? st : nil
    }

    static func statFD(_ fd: Int32) -> stat? {
        var st = stat()
        return fstat(fd, &st) == 0 ? st : nil
    }

    /// A descriptor without close-on-exec, numbered 200 or above: what a
    /// careless parent would leak into its children.
    static func inheritableDescriptor() throws -> Int32 {
        let fd = open("/dev/null", O_RDONLY)
        guard fd >= 0 else { throw errnoText("open(/dev/null)") }
        defer { close(fd) }
        let high = fcntl(fd, F_DUPFD, 200)
        guard high >= 0 else { throw errnoText("fcntl(F_DUPFD)") }
        return high
    }

    static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        _ = gethostname(&buffer, buffer.count - 1)
        let name = buffer.prefix { $0 != 0 }.map { UInt8(truncatingIfNeeded: $0) }
        return String(decoding: name, as: UTF8.self)
    }
}

extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && self[(count - suffix.count)...].elementsEqual(suffix)
    }
}

/// Holders and sessions started for a test, always stopped again.
enum Groups {
    static func stop(_ pidfd: borrowing Pidfd) {
        try? pidfd.signal(SIGKILL)
        _ = try? pidfd.reap(block: true)
    }

    /// Spawns a holder for `spec`, runs `body`, then kills and reaps the holder whatever happened.
    static func withHolder<R>(_ spec: HolderSpec, _ body: (borrowing SpawnedHolder) throws -> R) throws -> R {
        let spawner = try HolderSpawner(executablePath: Sys.holderPath())
        let holder = try spawner.spawn(spec)
        defer { stop(holder.pidfd) }
        return try body(holder)
    }

    static func session(_ argv: [String], executable: String? = nil, uid: uid_t = 65534, gid: gid_t = 65534, groups: [gid_t] = [],
                        cwd: String = "/", cwdFallback: Bool = false,
                        environment: [String] = ["PATH=/usr/bin:/bin", "HOME=/", "USER=nobody"],
                        searchPath: String = "/usr/sbin:/usr/bin:/sbin:/bin", controllingTerminal: Bool = false) -> SessionSpec {
        SessionSpec(uid: uid, gid: gid, groups: groups, cwd: cwd, cwdFallback: cwdFallback,
                    executable: executable ?? argv[0], argv: argv, environment: environment, searchPath: searchPath, controllingTerminal: controllingTerminal)
    }
}

/// Three pipes for a session's stdio; the test keeps the far ends.
final class StdioPipes {
    var stdinRead: Int32, stdinWrite: Int32
    var stdoutRead: Int32, stdoutWrite: Int32
    var stderrRead: Int32, stderrWrite: Int32

    init() throws {
        (stdinRead, stdinWrite) = try Sys.pipe()
        (stdoutRead, stdoutWrite) = try Sys.pipe()
        (stderrRead, stderrWrite) = try Sys.pipe()
    }

    var childEnds: (Int32, Int32, Int32) { (stdinRead, stdoutWrite, stderrWrite) }

    /// Closes what the child got, so that reads see end of file once it is gone.
    func closeChildEnds() {
        Sys.closeQuietly(&stdinRead)
        Sys.closeQuietly(&stdoutWrite)
        Sys.closeQuietly(&stderrWrite)
    }

    deinit {
        for var fd in [stdinRead, stdinWrite, stdoutRead, stdoutWrite, stderrRead, stderrWrite] {
            Sys.closeQuietly(&fd)
        }
    }
}

/// SessionLaunch run to its end, blocking: what the tests of the spawn path want (nsgroupd
/// itself never waits; see Supervisor's Launches). Returns the session's pidfd once it has
/// exec'd; throws the launch's failure after reaping what it started.
enum SessionSpawner {
    static func spawn(_ spec: SessionSpec, namespaces: borrowing NamespaceFiles, stdio: (Int32, Int32, Int32),
                      terminal: TerminalRequest? = nil, timeoutMilliseconds: Int32 = 20_000) throws(SpawnError) -> Pidfd {
        let launch = try SessionLaunch.start(spec, namespaces: namespaces, stdio: stdio, terminal: terminal)
        var state = launch.advance()
        while case .running = state {
            var fds = pollfd(fd: launch.channel.rawValue, events: Int16(POLLIN), revents: 0)
            if poll(&fds, 1, timeoutMilliseconds) == 0 {
                state = launch.timeOut(after: Int(timeoutMilliseconds / 1000))
                break
            }
            state = launch.advance()
        }
        if let first = launch.takeFirstChild() { _ = try? first.reap(block: true) }
        switch state {
        case .started:
            return launch.takeSession()!
        case .failed(let error):
            if let session = launch.takeSession() {
                try? session.signal(SIGKILL)
                _ = try? session.reap(block: true)
            }
            throw error
        case .running:
            preconditionFailure("the loop above ends only when the launch has")
        }
    }
}

/// A running holder, as `HolderSpawner.spawn` below hands it over: the test owns its pidfd.
struct SpawnedHolder: ~Copyable {
    let pidfd: Pidfd
    /// The process start time (clock ticks since boot).
    let startTime: UInt64
    /// The group's namespaces, as the kernel names them.
    let namespaces: [NamespaceID]

    var pid: pid_t { pidfd.pid }

    /// Hands the pidfd on.
    consuming func takePidfd() -> Pidfd { pidfd }
}

extension HolderSpawner {
    /// HolderLaunch run to its end, blocking, with `commit` called where nsgroupd records
    /// the group (nsgroupd itself never waits; see Supervisor's CreateHandler). On failure
    /// the holder is killed and reaped before the error is thrown.
    func spawn(_ spec: HolderSpec, timeoutMilliseconds: Int32 = 20_000,
               commit: (_ pid: pid_t, _ startTime: UInt64, _ namespaces: [NamespaceID]) throws(Errno) -> Void = { _, _, _ in }
    ) throws(SpawnError) -> SpawnedHolder {
        let launch = try start(spec)
        var identity: (startTime: UInt64, namespaces: [NamespaceID])?
        var state = launch.advance()
        while true {
            switch state {
            case .running:
                var fds = pollfd(fd: launch.status.rawValue, events: Int16(POLLIN), revents: 0)
                if poll(&fds, 1, timeoutMilliseconds) == 0 {
                    state = launch.fail(SpawnError(step: .waitingForHolder, errno: .timedOut))
                } else {
                    state = launch.advance()
                }
            case .cloned(let startTime, let namespaces):
                identity = (startTime, namespaces)
                do throws(Errno) { try commit(launch.pid, startTime, namespaces) } catch {
                    state = launch.fail(SpawnError(step: .recordHolder, errno: error))
                    continue
                }
                do throws(SpawnError) { try launch.proceed() } catch {
                    state = launch.fail(error)
                    continue
                }
                state = launch.advance()
            case .ready:
                let pidfd = launch.takePidfd()!
                return SpawnedHolder(pidfd: pidfd, startTime: identity!.startTime, namespaces: identity!.namespaces)
            case .failed(let error):
                launch.kill()
                if let pidfd = launch.takePidfd() { _ = try? pidfd.reap(block: true) }
                throw error
            }
        }
    }
}
