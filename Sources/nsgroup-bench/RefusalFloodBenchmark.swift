#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import POSIX
import RPC

/// A flood of refused requests from one user, with the refusal budget against every refusal written.
struct RefusalFloodBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refusals",
        abstract: "What a flood of refused requests costs nsgroupd and journald: the refusal budget against every refusal written.",
        discussion: """
            Two private supervisors: one with the default [audit] settings (the first 50 refusals \
            of a person per 60 s written one by one, the rest summed up in one refusals-summarized \
            record) and the anchor, with audit.refusals-per-interval = 1000000 (every refusal one \
            by one, as before the budget). Against each in turn, the unprivileged user sends \
            --requests requests of a method that does not exist, pipelined on one connection, and \
            every reply is read and checked. Measured: wall time, CPU time of nsgroupd and of \
            journald (utime + stime from /proc/PID/stat, until journald has every record), and the \
            records written, read back with journalctl once the supervisor has stopped. Exits \
            non-zero unless the anchor wrote one record per request and the budgeted supervisor's \
            records one by one plus its summaries' NSGROUP_HELD_BACK add up to the requests exactly.
            """)

    @Option(help: "Refused requests sent to each supervisor.")
    var requests = 10_000

    @Option(help: "The unprivileged user who sends them (default: nsg-alice, else nobody).")
    var user: String?

    func validate() throws {
        guard requests > 0, requests <= 1_000_000 else { throw ValidationError("--requests in 1...1000000") }
    }

    func run() throws {
        Interrupt.install()
        let outcome = try RefusalFloodRun(requests: requests, user: user).run()
        if !outcome.passed { throw ExitCode.failure }
    }
}

struct RefusalFloodOutcome {
    var passed: Bool
    var rows: [SummaryRow]
}

struct RefusalFloodRun {
    var requests: Int
    var user: String?

    /// The anchor's [audit] section: every refusal one by one (the largest value nsgroupd accepts).
    static let anchorAudit = """
        [audit]
        refusals-per-interval = 1000000

        """

    /// What one flood cost, and what the journal holds of it.
    struct Flood {
        var wallNanoseconds: UInt64 = 0
        var supervisorTicks: UInt64 = 0
        var journaldTicks: UInt64 = 0
        /// request-refused records.
        var refused = 0
        /// refusals-summarized records, and the sum of their NSGROUP_HELD_BACK.
        var summaries = 0
        var heldBack = 0
        /// The supervisor-stopped record arrived: the journal has everything the supervisor wrote.
        var complete = false

        var cpuSeconds: Double { Double(supervisorTicks + journaldTicks) / Double(clockTicksPerSecond) }
        var records: Int { refused + summaries }
    }

    func run() throws -> RefusalFloodOutcome {
        guard geteuid() == 0 else { throw BenchError("run as root: the benchmark starts its own supervisors") }
        let entry = try benchUser(user)
        guard let journald = journaldPID() else { throw BenchError("journald does not run (make journald): the benchmark measures it") }
        let budgeted = try BenchSupervisor(socket: nil)
        defer { budgeted.stop() }
        let anchor = try BenchSupervisor(socket: nil, extraConfiguration: Self.anchorAudit)
        defer { anchor.stop() }

        let state = budgeted.stateDescription
        // The budgeted supervisor first: the anchor's records keep journald busy for a while.
        var floods: [Flood] = []
        for supervisor in [budgeted, anchor] {
            try Interrupt.check()
            floods.append(try flood(supervisor, as: entry, journald: journald))
        }
        let ours = floods[0], theirs = floods[1]

        print("nsgroup-bench refusals: \(requests) requests {\"jsonrpc\":\"2.0\",\"id\":N,\"method\":\"nope\"} pipelined on one "
              + "connection by \(entry.name) (uid \(entry.uid)), every reply read, against two private supervisors in turn")
        print("budgeted: the default [audit] settings (refusals-per-interval = 50, refusal-interval = 60 s); "
              + "anchor: refusals-per-interval = 1000000 (every refusal written one by one)")
        print("CPU time: utime + stime from /proc/PID/stat (\(clockTicksPerSecond) ticks/s), from the first request until journald "
              + "has every record one by one; journald is pid \(journald)")
        print(state)
        print("")
        print(padded("", 12) + padded("wall", 12) + padded("nsgroupd CPU", 14) + padded("journald CPU", 14) + padded("both", 10)
              + padded("request-refused", 17) + padded("summaries", 11) + "held back")
        for (label, flood) in [("budgeted", ours), ("anchor", theirs)] {
            print(padded(label, 12) + padded(formatMilliseconds(Double(flood.wallNanoseconds) / 1e6), 12)
                  + padded(formatTicks(flood.supervisorTicks), 14) + padded(formatTicks(flood.journaldTicks), 14)
                  + padded(formatFixed(flood.cpuSeconds, 2) + " s", 10) + padded(String(flood.refused), 17)
                  + padded(String(flood.summaries), 11) + String(flood.heldBack))
        }
        let cpuRatio = ours.cpuSeconds / theirs.cpuSeconds
        let recordRatio = Double(ours.records) / Double(theirs.records)
        let wallRatio = Double(ours.wallNanoseconds) / Double(theirs.wallNanoseconds)
        print("")
        print("ratio (nsgroupd + journald CPU) budgeted / anchor: \(formatFixed(cpuRatio, 3))   (\(formatFixed(ours.cpuSeconds, 2)) s "
              + "against \(formatFixed(theirs.cpuSeconds, 2)) s; one tick is \(formatFixed(1 / Double(clockTicksPerSecond), 2)) s)")
        print("ratio records budgeted / anchor: \(formatFixed(recordRatio, 4))   (request-refused and refusals-summarized: "
              + "\(ours.records) against \(theirs.records))")
        print("ratio wall budgeted / anchor: \(formatFixed(wallRatio, 3))")

        let checks = [
            // A reply missing or not as expected stopped the run before this (flood throws).
            Check(name: "every request answered", passed: true,
                  detail: "\(requests) replies from each supervisor, in order, each a method_not_found error for its request's id"),
            Check(name: "budgeted: records one by one + NSGROUP_HELD_BACK == requests",
                  passed: ours.complete && ours.refused + ours.heldBack == requests,
                  detail: "\(ours.refused) + \(ours.heldBack) = \(ours.refused + ours.heldBack) of \(requests), "
                      + "in \(ours.summaries) refusals-summarized record(s)" + (ours.complete ? "" : "; the supervisor-stopped record never arrived")),
            Check(name: "anchor: every refusal written one by one",
                  passed: theirs.complete && theirs.refused == requests && theirs.heldBack == 0,
                  detail: "\(theirs.refused) request-refused records of \(requests), \(theirs.heldBack) held back"
                      + (theirs.complete ? "" : "; the supervisor-stopped record never arrived")),
        ]
        print("")
        for check in checks { print(check.line) }
        let failed = checks.filter { $0.passed == false }.count
        print(failed == 0 ? "refusals: PASS (\(checks.count) checks)" : "refusals: FAIL (\(failed) of \(checks.count) checks failed)")
        let what = "\(requests) refused requests pipelined by one user"
        return RefusalFloodOutcome(passed: failed == 0, rows: [
            SummaryRow(figure: "nsgroupd + journald CPU for \(what), refusal budget (default) vs every refusal written",
                       ours: formatFixed(ours.cpuSeconds, 2) + " s", anchor: formatFixed(theirs.cpuSeconds, 2) + " s",
                       ratio: cpuRatio, goal: "-", met: nil),
            SummaryRow(figure: "journal records for the same, budget vs every refusal written", ours: String(ours.records),
                       anchor: String(theirs.records), ratio: recordRatio, goal: "-", met: nil),
            SummaryRow(figure: "wall time of the same, budget vs every refusal written", ours: formatMilliseconds(Double(ours.wallNanoseconds) / 1e6),
                       anchor: formatMilliseconds(Double(theirs.wallNanoseconds) / 1e6), ratio: wallRatio, goal: "-", met: nil),
        ])
    }

    /// One flood against `supervisor`, which is stopped afterwards (so that it writes the
    /// summaries of the intervals still running), and what the journal then holds of it.
    private func flood(_ supervisor: BenchSupervisor, as entry: UserEntry, journald: pid_t) throws -> Flood {
        guard let pid = supervisor.pid else { throw BenchError("no private supervisor") }
        let socket = try userConnection(to: supervisor.socketPath, as: entry)
        defer { close(socket) }
        // One accepted request first: the connection is identified and ready before anything is measured.
        try PipelinedExchange(socket: socket, lines: [RawRequest.version], expecting: { reply, _ in
            reply.starts(with: RawRequest.resultPrefix) ? nil : "version: " + String(decoding: reply, as: UTF8.self)
        }).run()

        var result = Flood()
        let lines = (1...requests).map { Array(#"{"jsonrpc":"2.0","id":\#($0),"method":"nope"}"#.utf8) + [0x0A] }
        let supervisorBefore = try cpuTicks(pid), journaldBefore = try cpuTicks(journald)
        let start = monotonicNanoseconds()
        try PipelinedExchange(socket: socket, lines: lines, expecting: Self.refusal).run()
        result.wallNanoseconds = monotonicNanoseconds() - start
        // journald takes the records at its own pace: its CPU time counts until it has them all.
        _ = waitForJournal(supervisor.socketPath) { journal, previous in
            journal.refused >= requests || (journal.refused > 0 && previous?.refused == journal.refused)
        }
        result.supervisorTicks = try cpuTicks(pid) - supervisorBefore
        result.journaldTicks = try cpuTicks(journald) - journaldBefore

        supervisor.stop()
        let journal = waitForJournal(supervisor.socketPath) { journal, _ in journal.complete }
        result.refused = journal.refused
        result.summaries = journal.summaries
        result.heldBack = journal.heldBack
        result.complete = journal.complete
        return result
    }

    /// The reply every request of the flood must get: an error for its own id, method_not_found.
    private static func refusal(_ reply: ArraySlice<UInt8>, _ id: Int) -> String? {
        let prefix = Array(#"{"jsonrpc":"2.0","id":\#(id),"error":"#.utf8)
        let reason = Array("\"method_not_found\"".utf8)
        if reply.starts(with: prefix), contains(reply, reason) { return nil }
        return "request \(id): " + String(decoding: reply.prefix(300), as: UTF8.self)
    }

    /// What the journal holds of the supervisor on `socketPath`.
    struct JournalCount: Equatable {
        var refused = 0
        var summaries = 0
        var heldBack = 0
        var complete = false
    }

    /// Reads the journal every 200 ms until `done(now, previous)` (previous: the reading
    /// before) or 30 s have passed; returns the last reading.
    private func waitForJournal(_ socketPath: String, until done: (JournalCount, JournalCount?) -> Bool) -> JournalCount {
        let deadline = monotonicNanoseconds() + 30_000_000_000
        var previous: JournalCount?
        while true {
            let now = journalCount(socketPath)
            if done(now, previous) || monotonicNanoseconds() >= deadline || Interrupt.requested { return now }
            previous = now
            usleep(200_000)
        }
    }

    private func journalCount(_ socketPath: String) -> JournalCount {
        let refused = AuditIDs.requestRefused, summarized = AuditIDs.refusalsSummarized, stopped = AuditIDs.supervisorStopped
        let output = (try? capturedOutput("/usr/bin/journalctl", [
            "journalctl", "-o", "json", "--no-pager", "--all", "--output-fields=MESSAGE_ID,NSGROUP_HELD_BACK",
            "NSGROUP_SOCKET=\(socketPath)", "MESSAGE_ID=\(refused)", "MESSAGE_ID=\(summarized)", "MESSAGE_ID=\(stopped)",
        ])) ?? []
        var count = JournalCount()
        for line in output.split(separator: 0x0A) {
            let id = jsonField(line, "MESSAGE_ID")
            if id == refused {
                count.refused += 1
            } else if id == summarized {
                count.summaries += 1
                count.heldBack += jsonField(line, "NSGROUP_HELD_BACK").flatMap { Int($0) } ?? 0
            } else if id == stopped {
                count.complete = true
            }
        }
        return count
    }
}

/// The MESSAGE_IDs the benchmark counts (Sources/Supervisor/AuditEvent.swift).
enum AuditIDs {
    static let requestRefused = "fb4a6796baef4e3dbb39c97742b74373"
    static let refusalsSummarized = "85644b5a9a0d46749b6c88b3747e5af7"
    static let supervisorStopped = "c96c7b056b8c4d3da88ec4ad30d73aa4"
}

/// Request lines sent on one connection as fast as the socket takes them while the replies
/// are read, one per line and in order; each reply is checked by `expecting(reply, id)` (id:
/// the line's number from 1; nil: as expected). Throws at the first reply not as expected,
/// if the supervisor closes the connection, or if it answers nothing for 30 s.
struct PipelinedExchange {
    var socket: Int32
    var lines: [[UInt8]]
    var expecting: (ArraySlice<UInt8>, Int) -> String?

    func run() throws {
        let bytes = lines.flatMap { $0 }
        let flags = fcntl(socket, F_GETFL)
        guard flags >= 0, fcntl(socket, F_SETFL, flags | O_NONBLOCK) == 0 else { throw BenchError("fcntl: \(Errno.current)") }
        defer { _ = fcntl(socket, F_SETFL, flags) }
        var sent = 0, answered = 0
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while answered < lines.count {
            try Interrupt.check()
            var events = Int16(POLLIN)
            if sent < bytes.count { events |= Int16(POLLOUT) }
            var descriptor = pollfd(fd: socket, events: events, revents: 0)
            let ready = poll(&descriptor, 1, 30_000)
            if ready < 0 {
                if errno == EINTR { continue }
                throw BenchError("poll: \(Errno.current)")
            }
            if ready == 0 { throw BenchError("no reply for 30 s after \(answered) of \(lines.count)") }
            if descriptor.revents & Int16(POLLOUT) != 0 {
                let n = bytes.withUnsafeBytes { send(socket, $0.baseAddress! + sent, min($0.count - sent, 1 << 16), Int32(MSG_NOSIGNAL)) }
                if n > 0 {
                    sent += n
                } else if errno != EAGAIN && errno != EINTR {
                    throw BenchError("send after \(answered) replies: \(Errno.current)")
                }
            }
            guard descriptor.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw BenchError("recv after \(answered) replies: \(Errno.current)")
            }
            if n == 0 { throw BenchError("the supervisor closed the connection after \(answered) of \(lines.count) replies") }
            pending += chunk[0..<n]
            var lineStart = pending.startIndex
            while let newline = pending[lineStart...].firstIndex(of: 0x0A) {
                answered += 1
                if let wrong = expecting(pending[lineStart..<newline], answered) { throw BenchError("unexpected reply: \(wrong)") }
                lineStart = newline + 1
            }
            pending.removeSubrange(..<lineStart)
        }
    }
}

/// Connects to `path` as `user` although the benchmark runs as root: the kernel takes a
/// connection's credentials (SO_PEERCRED, SO_PEERGROUPS) from the effective ids and groups at
/// connect(2), so those are the user's for that call, and root's again before it returns.
func userConnection(to path: String, as user: UserEntry) throws -> Int32 {
    var saved = [gid_t](repeating: 0, count: Int(getgroups(0, nil)))
    guard getgroups(Int32(saved.count), &saved) == saved.count else { throw BenchError("getgroups: \(Errno.current)") }
    let groups = UserDatabase.groupList(uid: user.uid, primary: user.gid)
    guard setgroups(groups.count, groups) == 0 else { throw BenchError("setgroups: \(Errno.current)") }
    defer {
        // Root again, or nothing after this could be trusted.
        guard seteuid(0) == 0, setegid(0) == 0, setgroups(saved.count, saved) == 0 else {
            fatalError("nsgroup-bench: cannot become root again: \(Errno.current)")
        }
    }
    guard setegid(user.gid) == 0, seteuid(user.uid) == 0 else { throw BenchError("cannot act as \(user.name): \(Errno.current)") }
    do {
        return try UnixSocket.connect(path: path).release()
    } catch {
        throw BenchError("cannot connect to \(path) as \(user.name): \(error)")
    }
}

/// Clock ticks per second, the unit of /proc/PID/stat's times.
let clockTicksPerSecond = UInt64(max(sysconf(Int32(_SC_CLK_TCK)), 1))

/// utime + stime of `pid` (fields 14 and 15 of /proc/PID/stat), in clock ticks: every thread's,
/// those that have ended included.
func cpuTicks(_ pid: pid_t) throws -> UInt64 {
    let stat: String
    do {
        stat = try ProcFS.readText("/proc/\(pid)/stat")
    } catch {
        throw BenchError("cannot read /proc/\(pid)/stat: \(error)")
    }
    // After the command's closing parenthesis: field 3 (state) first, so utime and stime are the 12th and 13th.
    guard let close = stat.lastIndex(of: ")") else { throw BenchError("/proc/\(pid)/stat: no command") }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else {
        throw BenchError("/proc/\(pid)/stat: no utime and stime")
    }
    return user + system
}

func formatTicks(_ ticks: UInt64) -> String {
    formatFixed(Double(ticks) / Double(clockTicksPerSecond), 2) + " s"
}

/// The value of the string field `key` in one line of `journalctl -o json` (nil when the line
/// has none, or it is not a plain string: a blob or an array of values).
private func jsonField(_ line: ArraySlice<UInt8>, _ key: String) -> String? {
    let quoted = Array("\"\(key)\"".utf8)
    guard var i = firstRange(of: quoted, in: line)?.upperBound else { return nil }
    while i < line.endIndex, line[i] == 0x20 || line[i] == UInt8(ascii: ":") { i += 1 }
    guard i < line.endIndex, line[i] == UInt8(ascii: "\"") else { return nil }
    let start = i + 1
    guard let end = line[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
    return String(decoding: line[start..<end], as: UTF8.self)
}

private func contains(_ bytes: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
    firstRange(of: needle, in: bytes) != nil
}

private func firstRange(of needle: [UInt8], in bytes: ArraySlice<UInt8>) -> Range<Int>? {
    guard !needle.isEmpty, bytes.count >= needle.count else { return nil }
    var i = bytes.startIndex
    while i <= bytes.endIndex - needle.count {
        if bytes[i] == needle[0], bytes[i..<(i + needle.count)].elementsEqual(needle) { return i..<(i + needle.count) }
        i += 1
    }
    return nil
}

/// Runs `path` with `arguments` (argv[0] included) to its end and returns what it wrote to
/// stdout (stderr goes to /dev/null). Throws if it could not start or did not exit 0.
func capturedOutput(_ path: String, _ arguments: [String]) throws -> [UInt8] {
    var ends: [Int32] = [0, 0]
    guard pipe(&ends) == 0 else { throw BenchError("pipe: \(Errno.current)") }
    // Neither end in the program's other children; the write end reaches this one as its stdout.
    for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
    let reader = FileDescriptor(adopting: ends[0])
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, ends[1], 1)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    var pid: pid_t = 0
    let spawned = withCStringArray(arguments) { argv in posix_spawn(&pid, path, &actions, nil, argv, environ) }
    close(ends[1])
    guard spawned == 0 else { throw BenchError("cannot start \(path): \(Errno(rawValue: spawned))") }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(reader.rawValue, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        output += chunk[0..<n]
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    guard status == 0 else { throw BenchError("\(arguments.joined(separator: " ")) failed (wait status \(status))") }
    return output
}
