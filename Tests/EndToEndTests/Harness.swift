import Client
import Foundation
import Glibc
import Namespaces
import POSIX
import RPC
import Testing

/// Where the built products live: next to the test bundle.
enum Products {
    static let directory: String = {
        let exe = (try? ProcFS.readLink("/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }()

    static func path(_ name: String) -> String { directory + "/" + name }
    static var nsgroupd: String { path("nsgroupd") }
    static var nsgroup: String { path("nsgroup") }
    static var holder: String { path("nsgroup-holder") }

    /// The repository root (for protocol/examples).
    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
}

/// An unprivileged account the tests act as; `make check` creates them.
struct TestUser: Sendable {
    let name: String
    let uid: uid_t
    let gid: gid_t

    static func named(_ name: String) throws -> TestUser {
        guard let entry = UserDatabase.user(named: name) else {
            throw HarnessError("test user \(name) does not exist: run `make check`, which creates it")
        }
        return TestUser(name: name, uid: entry.uid, gid: entry.gid)
    }

    static func alice() throws -> TestUser { try named("nsg-alice") }
    static func bob() throws -> TestUser { try named("nsg-bob") }
    /// In the admin group nsgroup-admin.
    static func carol() throws -> TestUser { try named("nsg-carol") }
    static func dave() throws -> TestUser { try named("nsg-dave") }
    /// In the Unix group nsg-friends.
    static func erin() throws -> TestUser { try named("nsg-erin") }
    /// Has no range in /etc/subuid or /etc/subgid.
    static func frank() throws -> TestUser { try named("nsg-frank") }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The outcome of running a command.
struct CommandResult: Sendable {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs a program to completion, optionally as another user (through
/// setpriv, with that user's own groups), feeding `stdin`.
@discardableResult
func run(_ executable: String, _ arguments: [String], as user: TestUser? = nil, stdin: Data? = nil,
         environment: [String: String]? = nil) throws -> CommandResult {
    let process = Process()
    if let user {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--", executable] + arguments
    } else {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
    }
    if let environment { process.environment = environment }
    let out = Pipe()
    let err = Pipe()
    let input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    // Drain both pipes concurrently so a chatty child cannot block on a full pipe.
    nonisolated(unsafe) var errData = Data()
    let errReader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
    errReader.start()
    if let stdin { input.fileHandleForWriting.write(stdin) }
    try? input.fileHandleForWriting.close()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while errReader.isExecuting { usleep(1000) }
    return CommandResult(status: process.terminationStatus,
                         stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// A real nsgroupd on a private socket and state directory, stopped (and its
/// groups destroyed) when the test lets go of it.
final class TestSupervisor: @unchecked Sendable {
    let directory: String
    let socketPath: String
    let stateDirectory: String
    let logPath: String
    private(set) var process: Process?

    /// Set in the supervisor's environment, to show that nothing of it leaks into entered processes.
    static let environmentMarker = "NSGROUPD_TEST_MARKER=must-not-leak"

    /// The configuration file this supervisor reads (empty: the defaults,
    /// never the host's /etc/nsgroup/nsgroupd.conf).
    var configPath: String { directory + "/nsgroupd.conf" }

    /// How the supervisor sees journald. Anything but `.running` runs it in a
    /// mount namespace of its own, so only it loses the journal while the
    /// tests beside it keep theirs.
    enum Journal: Sendable {
        case running
        /// /run/systemd/journal is an empty tmpfs: the socket is gone.
        case absent
        /// The socket is there but nothing listens: what a stopped journald leaves.
        case refusing
    }

    let journal: Journal

    /// A command nsgroupd runs under (`setpriv --bounding-set=…`), its
    /// program and arguments before nsgroupd's own; empty for none.
    let wrapper: [String]

    init(start: Bool = true, config: String = "", journal: Journal = .running, extraArguments: [String] = [],
         wrapper: [String] = []) throws {
        self.journal = journal
        self.wrapper = wrapper
        var template = Array("/tmp/nsg-e2e-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw HarnessError("mkdtemp: \(Errno.current)") }
        directory = String(cString: made)
        chmod(directory, 0o755)  // other users reach the socket through it
        socketPath = directory + "/nsgroupd.sock"
        stateDirectory = directory + "/state"
        logPath = directory + "/nsgroupd.log"
        _ = FileManager.default.createFile(atPath: directory + "/nsgroupd.conf", contents: Data(config.utf8))
        if start { try self.start(extraArguments: extraArguments) }
    }

    deinit {
        stop(destroyGroups: true)
        CgroupCleanup.remove(cgroupDirectory)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Each test supervisor has a cgroup tree of its own below the test's
    /// cgroup, named after its directory: "nsg-e2e-XXXXXX".
    var cgroupDirectory: String { String(directory.split(separator: "/").last!) }

    /// Its tree in the unified hierarchy, e.g. "/nsg-e2e-AbC123" (the test runs in the root cgroup).
    var cgroupBase: String { CgroupCleanup.ownUnified.appendingPathComponent(cgroupDirectory) }

    var arguments: [String] {
        // Its groups stay in its own tree even on a machine whose init is systemd: the tests
        // look at that tree, and a test's group must never be a unit beside the machine's own.
        ["--socket", socketPath, "--state-dir", stateDirectory, "--config", configPath, "--cgroup-dir", cgroupDirectory, "--no-units"]
    }

    /// Starts nsgroupd (again: the same socket, state and log) with extra
    /// arguments and environment variables.
    func start(extraArguments: [String] = [], environment extra: [String: String] = [:]) throws {
        let process = Process()
        if journal != .running {
            let dead = directory + "/dead-journal.sock"
            let prepare = journal == .absent
                ? "mount -t tmpfs tmpfs /run/systemd/journal"
                : "python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).bind(sys.argv[1])' \(dead) && mount --bind \(dead) /run/systemd/journal/socket"
            process.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
            process.arguments = ["--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                                 "\(prepare) && exec \"$0\" \"$@\"",
                                 Products.nsgroupd] + arguments + extraArguments
        } else if let program = wrapper.first {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = wrapper.dropFirst() + [Products.nsgroupd] + arguments + extraArguments
        } else {
            process.executableURL = URL(fileURLWithPath: Products.nsgroupd)
            process.arguments = arguments + extraArguments
        }
        var environment = ProcessInfo.processInfo.environment
        environment["NSGROUPD_TEST_MARKER"] = "must-not-leak"
        environment.merge(extra) { $1 }
        process.environment = environment
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let log = FileHandle(forWritingAtPath: logPath)
        log?.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        // Ready when it accepts a connection.
        for _ in 0..<500 {
            if (try? UnixSocket.connect(path: socketPath)) != nil { return }
            if !process.isRunning { break }
            usleep(10_000)
        }
        throw HarnessError("nsgroupd did not start: \(log_)")
    }

    /// What nsgroupd wrote to stdout and stderr.
    var log_: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    var pid: pid_t { process?.processIdentifier ?? 0 }

    /// SIGTERM (or another signal) and wait for it to exit.
    func stop(signal: Int32 = SIGTERM, destroyGroups: Bool = false) {
        guard let process, process.isRunning else { return }
        if destroyGroups, let names = try? groupNames() {
            for name in names { _ = try? nsgroup(["destroy", name]) }
        }
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        self.process = nil
    }

    /// Runs the real CLI against this supervisor.
    @discardableResult
    func nsgroup(_ arguments: [String], as user: TestUser? = nil, stdin: Data? = nil) throws -> CommandResult {
        try run(Products.nsgroup, ["--socket", socketPath] + arguments, as: user, stdin: stdin)
    }

    /// Starts `nsgroup enter NAME -- COMMAND` in the background, as `user`,
    /// with stdin on /dev/null; the caller waits for it or terminates it.
    func startEnter(_ name: String, _ command: [String], as user: TestUser) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--",
                             Products.nsgroup, "--socket", socketPath, "enter", name, "--"] + command
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Names of all groups, as root sees them.
    func groupNames() throws -> [String] {
        let result = try nsgroup(["list", "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let groups = object?["groups"] as? [[String: Any]] ?? []
        return groups.compactMap { $0["name"] as? String }
    }

    /// `inspect --json` as a dictionary.
    func inspect(_ name: String) throws -> [String: Any] {
        let result = try nsgroup(["inspect", name, "--json"])
        guard result.status == 0,
              let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        else { throw HarnessError("inspect \(name) failed: \(result.stderr)") }
        return object
    }

    func holderPID(_ name: String) throws -> pid_t {
        guard let pid = try inspect(name)["holder"] as? Int else { throw HarnessError("no holder pid") }
        return pid_t(pid)
    }
}

/// The inode in /proc/PID/ns/KIND (or any ns-like link).
func namespaceInode(_ path: String) throws -> UInt64 {
    let target = try ProcFS.readLink(path)
    guard let id = NamespaceID(target) else { throw HarnessError("not a namespace link: \(target)") }
    return id.inode
}

/// Now, in the clock ticks since boot that /proc/PID/stat counts start times in.
func ticksSinceBoot() throws -> UInt64 {
    let uptime = try String(contentsOfFile: "/proc/uptime", encoding: .utf8).split(separator: " ").first.flatMap { Double($0) }
    guard let uptime else { throw HarnessError("cannot read /proc/uptime") }
    return UInt64(uptime * Double(sysconf(Int32(_SC_CLK_TCK)))) + 1
}

/// Every process whose /proc/PID/ns/ENTRY has this inode and that started
/// no later than `startedBy` (clock ticks since boot, as ProcFS.startTime).
/// The kernel reuses a freed namespace's inode number for the next
/// namespace made, possibly by a test running beside this one; a process
/// started after the namespace was gone cannot have been in it.
func processes(inNamespace kind: String, inode: UInt64, startedBy: UInt64 = .max) -> [pid_t] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap { pid_t($0) }.filter { pid in
        guard let started = try? ProcFS.startTime(pid: pid), started <= startedBy else { return false }
        for entry in [kind, kind + "_for_children"] {
            if let target = try? ProcFS.readLink("/proc/\(pid)/ns/\(entry)"),
               NamespaceID(target)?.inode == inode { return true }
        }
        return false
    }
}

/// Processes running nsgroup-holder for a group of this name.
func holderProcesses(named name: String) -> [pid_t] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap { pid_t($0) }.filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return args.count >= 2 && args[0].hasSuffix("nsgroup-holder") && args[1] == name
    }
}

/// Waits (bounded) for a condition that becomes true asynchronously, and
/// says whether it did. Its result must be asserted (`#expect(eventually
/// { … })`); a caller whose next steps depend on the condition uses
/// `waitUntil`, which fails the test on a timeout.
func eventually(timeoutSeconds: Double = 5, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeoutSeconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(10_000)
    }
    return try condition()
}

/// Waits (bounded) for a condition; a timeout fails the test at the
/// caller's line, naming `what` was awaited, and throws so that nothing
/// after it runs on a false premise.
func waitUntil(_ what: @autoclosure () -> String, timeoutSeconds: Double = 5,
               sourceLocation: SourceLocation = #_sourceLocation, _ condition: () throws -> Bool) throws {
    let met = try eventually(timeoutSeconds: timeoutSeconds, condition)
    try #require(met, "timed out after \(timeoutSeconds) s waiting for \(what())", sourceLocation: sourceLocation)
}

/// The server's error for a call that should fail, or nil (recorded as an
/// issue) when it succeeded or failed some other way.
func serverError<T>(_ body: () throws(ClientError) -> T, sourceLocation: SourceLocation = #_sourceLocation) -> RPCError? {
    let outcome: Result<T, ClientError> = Result { () throws(ClientError) -> T in try body() }
    switch outcome {
    case .success:
        Issue.record("the call succeeded", sourceLocation: sourceLocation)
        return nil
    case .failure(.server(let error)):
        return error
    case .failure(let other):
        Issue.record("the call failed without a server error: \(other)", sourceLocation: sourceLocation)
        return nil
    }
}

/// A long-running child started with posix_spawn rather than Foundation's
/// Process: with an empty signal mask (a Process child inherits the test
/// runner's blocked signals), output appended to a log, and waited for with
/// waitpid by this object alone.
final class BackgroundProcess: @unchecked Sendable {
    let pid: pid_t
    private var status: Int32?

    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], log: String) throws {
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        var argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv + envp { free(p) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, &attributes, &argv, &envp)
        guard result == 0 else { throw HarnessError("posix_spawn \(executable): \(Errno(rawValue: result))") }
        pid = child
    }

    var isRunning: Bool {
        if status != nil { return false }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid { status = raw }
        return status == nil
    }

    /// Signals it and waits for it to end.
    func stop(_ signal: Int32 = SIGTERM) {
        guard isRunning else { return }
        kill(pid, signal)
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        status = raw
    }

    deinit { stop(SIGKILL) }
}

/// The supervisor's open descriptor count once it has stopped changing
/// (the same in five samples 20 ms apart): connections of clients that have
/// just exited may still be closing. A count still changing after 4 s fails
/// the test rather than pass off a passing value as the settled one.
func settledDescriptorCount(_ pid: pid_t, sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
    var last = try ProcFS.openDescriptorCount(pid: pid)
    var steady = 0
    for _ in 0..<200 where steady < 5 {
        usleep(20_000)
        let now = try ProcFS.openDescriptorCount(pid: pid)
        steady = now == last ? steady + 1 : 0
        last = now
    }
    try #require(steady >= 5, "the descriptor count of pid \(pid) did not settle within 4 s (last \(last))",
                 sourceLocation: sourceLocation)
    return last
}

/// Removes a test supervisor's cgroup tree from every hierarchy once it has
/// stopped: whatever still runs there is killed first (cgroup.kill), then the
/// directories go, deepest first.
enum CgroupCleanup {
    static let unifiedMount = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/unified/cgroup.procs")
        ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup"

    /// This process's cgroup in a hierarchy: "0::" for the unified one, else the line naming the controller.
    static func own(_ controller: String?) -> String {
        let text = (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let matches = controller.map { parts[1].split(separator: ",").contains(Substring($0)) } ?? (parts[0] == "0")
            if matches { return String(parts[2]) }
        }
        return "/"
    }

    static var ownUnified: String { own(nil) }

    /// Every directory that holds the tree named `name`: unified, and each v1 controller nsgroupd uses.
    static func directories(_ name: String) -> [String] {
        var result = [unifiedMount + ownUnified.appendingPathComponent(name)]
        for controller in ["memory", "pids", "cpu"] where FileManager.default.fileExists(atPath: "/sys/fs/cgroup/\(controller)/cgroup.procs") {
            result.append("/sys/fs/cgroup/\(controller)" + own(controller).appendingPathComponent(name))
        }
        return result
    }

    static func remove(_ name: String) {
        let dirs = directories(name)
        guard FileManager.default.fileExists(atPath: dirs[0]) else { return }
        _ = try? run("/bin/sh", ["-c", "echo 1 > \"$1/cgroup.kill\" 2>/dev/null; for i in 1 2 3 4 5 6 7 8 9 10; do ok=1; for d in \"$@\"; do [ -d \"$d\" ] && { find \"$d\" -depth -type d -exec rmdir {} + 2>/dev/null || ok=0; }; done; [ $ok = 1 ] && break; sleep 0.1; done", "sh"] + dirs)
    }
}

extension String {
    /// "/a" + "b" → "/a/b"; "/" + "b" → "/b".
    func appendingPathComponent(_ component: String) -> String {
        hasSuffix("/") ? self + component : self + "/" + component
    }
}
