import Foundation
import Glibc
import POSIX
import Synchronization
import Testing

/// The supervisor never waits on a user (issue 13): an enter whose program sits
/// on a file its owner can stall delays nobody else, is answered at
/// limits.spawn-timeout, and leaves nothing behind; concurrent enters keep their
/// own stdio, exit codes and limits.
@Suite struct NoWaitingTests {
    /// A program file with a write lease on it, held by a python3 process that
    /// ignores the lease-break signal: exec'ing it (open for reading) waits for
    /// the lease to be given up, /proc/sys/fs/lease-break-time seconds (45 by
    /// default). The waiting process can be killed.
    final class LeasedProgram {
        let path: String
        private let holder: BackgroundProcess

        init(in directory: String) throws {
            path = directory + "/stalls-on-exec"
            try FileManager.default.copyItem(atPath: "/bin/true", toPath: path)
            chmod(path, 0o755)
            let log = directory + "/lease.log"
            holder = try BackgroundProcess("/usr/bin/python3", ["-c", """
                import fcntl, os, signal, sys, time
                signal.signal(signal.SIGIO, signal.SIG_IGN)
                fd = os.open(sys.argv[1], os.O_RDONLY)
                fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
                print("held", flush=True)
                time.sleep(600)
                """, path], log: log)
            try waitUntil("python3 holds a write lease on \(path)") {
                ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("held")
            }
        }

        /// Gives the lease up.
        func release() { holder.stop() }

        deinit { release() }
    }

    /// Reads a notify socket on a thread of its own as datagrams come (so that
    /// its small queue never fills), noting when each WATCHDOG=1 arrived.
    final class PingRecorder: @unchecked Sendable {
        private let fd: Int32
        private let pings = Mutex<[Date]>([])
        private let stopped = Mutex(false)
        private var thread: Thread?

        init(_ listener: SystemdIntegrationTests.NotifyListener) {
            fd = listener.fd
            let thread = Thread { [unowned self] in
                var buffer = [UInt8](repeating: 0, count: 4096)
                while !self.stopped.withLock({ $0 }) {
                    var p = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
                    guard poll(&p, 1, 20) > 0 else { continue }
                    let n = recv(self.fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                    if n > 0, String(decoding: buffer[0..<n], as: UTF8.self).contains("WATCHDOG=1") {
                        self.pings.withLock { $0.append(Date()) }
                    }
                }
            }
            self.thread = thread
            thread.start()
        }

        /// Stops reading; the pings noted between `from` and `to`.
        func stop(from: Date, to: Date) -> [Date] {
            stopped.withLock { $0 = true }
            while thread?.isFinished == false { usleep(5_000) }
            return pings.withLock { $0 }.filter { $0 >= from && $0 <= to }
        }
    }

    /// Runs `body(0..<count)` on `count` threads at once (concurrentPerform would run
    /// only as many at a time as there are cores) and returns when all are done.
    static func atOnce(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let done = DispatchGroup()
        let threads = (0..<count).map { n in
            done.enter()
            return Thread { body(n); done.leave() }
        }
        for thread in threads { thread.start() }
        done.wait()
    }

    /// Children of `parent` running as `uid` (the session of a launch drops to
    /// the caller's uid before it execs), zombies included.
    static func children(of parent: pid_t, uid: uid_t) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { pid_t($0) }.filter { pid in
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
            let fields = Dictionary(status.split(separator: "\n").compactMap { line -> (String, String)? in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }, uniquingKeysWith: { a, _ in a })
            return fields["PPid"] == String(parent) && fields["Uid"]?.split(separator: "\t").first == Substring(String(uid))
        }
    }

    @Test func aStalledProgramDelaysNobodyElseAndIsAnsweredAtTheSpawnTimeout() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor(start: false, config: "[limits]\nspawn-timeout = 3\n")
        let notify = try SystemdIntegrationTests.NotifyListener(path: supervisor.directory + "/notify.sock")
        try supervisor.start(environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"])
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "stall"], as: alice).status == 0)
        let program = try LeasedProgram(in: supervisor.directory)
        let recorder = PingRecorder(notify)

        let enter = try supervisor.startEnter("stall", [program.path], as: alice)
        let started = Date()
        // The launch is stuck in execve: its session is a child of nsgroupd running as alice.
        try waitUntil("the session waits on the lease", timeoutSeconds: 5) {
            !Self.children(of: supervisor.pid, uid: alice.uid).isEmpty
        }
        // Meanwhile everyone else is served at once, root and alice herself.
        var slowest = 0.0
        while Date().timeIntervalSince(started) < 2.5 {
            var before = Date()
            let list = try supervisor.nsgroup(["list"])
            slowest = max(slowest, Date().timeIntervalSince(before))
            before = Date()
            let inspect = try supervisor.nsgroup(["inspect", "stall"], as: alice)
            slowest = max(slowest, Date().timeIntervalSince(before))
            #expect(list.status == 0 && inspect.status == 0, "\(list.stderr)\(inspect.stderr)")
        }
        #expect(slowest < 1, "a request took \(slowest) s while one enter was stalled")

        enter.waitUntilExit()
        let answered = Date().timeIntervalSince(started)
        #expect(enter.terminationStatus != 0)
        #expect(answered >= 2.5 && answered < 10, "the stalled enter was answered after \(answered) s (spawn-timeout = 3)")
        // The killed session is gone (it was killable in the lease wait) and reaped.
        #expect(eventually(timeoutSeconds: 5) { Self.children(of: supervisor.pid, uid: alice.uid).isEmpty },
                "\(Self.children(of: supervisor.pid, uid: alice.uid))")
        let refused = try JournalTests().one(supervisor, "requestRefused", ["NSGROUP_OPERATION=enter", "NSGROUP_NAME=stall"])
        #expect(refused["NSGROUP_RESULT"] == "operation_failed")
        #expect(refused["MESSAGE"]?.contains("waiting 3 s for the session to start") == true, "\(refused)")
        #expect(try (supervisor.inspect("stall")["sessions"] as? [Any])?.isEmpty == true)

        // The loop fed the watchdog throughout: every 0.2 s for WATCHDOG_USEC = 0.4 s, never
        // more than half a second apart.
        let pings = recorder.stop(from: started, to: started.addingTimeInterval(answered))
        let gaps = zip([started] + pings, pings + [started.addingTimeInterval(answered)]).map { $1.timeIntervalSince($0) }
        #expect(pings.count >= Int(answered / 0.4), "\(pings.count) watchdog pings in \(answered) s")
        #expect((gaps.max() ?? 0) < 0.5, "the watchdog went \(gaps.max() ?? 0) s without a ping")

        // With the lease gone, the same program runs.
        program.release()
        #expect(try supervisor.nsgroup(["enter", "stall", "--", program.path], as: alice).status == 0)
    }

    @Test func aClientThatGoesAwayTakesItsLaunchWithIt() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "left"], as: alice).status == 0)
        let baseline = try settledDescriptorCount(supervisor.pid)
        let program = try LeasedProgram(in: supervisor.directory)

        let enter = try supervisor.startEnter("left", [program.path], as: alice)
        try waitUntil("the session waits on the lease", timeoutSeconds: 5) {
            !Self.children(of: supervisor.pid, uid: alice.uid).isEmpty
        }
        kill(enter.processIdentifier, SIGKILL)
        enter.waitUntilExit()
        // The supervisor kills the launch at once (not at spawn-timeout, 30 s) and reaps it.
        #expect(eventually(timeoutSeconds: 5) { Self.children(of: supervisor.pid, uid: alice.uid).isEmpty },
                "\(Self.children(of: supervisor.pid, uid: alice.uid))")
        #expect(try settledDescriptorCount(supervisor.pid) == baseline)
        #expect(try (supervisor.inspect("left")["sessions"] as? [Any])?.isEmpty == true)
        let state = try String(contentsOfFile: supervisor.stateDirectory + "/groups/left.json", encoding: .utf8)
        #expect(state.contains("\"sessions\":[]"), "\(state)")
    }

    /// An enter under way into a group that is destroyed ends with the group: nothing may
    /// start, and so keep the namespaces of a group that is gone, after its destroy.
    @Test func destroyEndsTheEntersUnderWay() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "doomed", "--ns", "mnt,uts,ipc,net"], as: alice).status == 0)
        let program = try LeasedProgram(in: supervisor.directory)
        let enter = try supervisor.startEnter("doomed", [program.path], as: alice)
        try waitUntil("the session waits on the lease", timeoutSeconds: 5) {
            !Self.children(of: supervisor.pid, uid: alice.uid).isEmpty
        }
        #expect(try supervisor.nsgroup(["destroy", "doomed"], as: alice).status == 0)
        let destroyed = Date()
        enter.waitUntilExit()
        // Answered at once (not at spawn-timeout, 30 s), and nothing of it runs.
        #expect(Date().timeIntervalSince(destroyed) < 5)
        #expect(enter.terminationStatus != 0)
        #expect(eventually(timeoutSeconds: 5) { Self.children(of: supervisor.pid, uid: alice.uid).isEmpty },
                "\(Self.children(of: supervisor.pid, uid: alice.uid))")
        program.release()
    }

    @Test func thirtyTwoConcurrentEntersKeepTheirOwnStdioAndExitCodes() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "busy"], as: alice).status == 0)
        let results = Mutex<[Int: CommandResult]>([:])
        Self.atOnce(32) { n in
            let result = try? supervisor.nsgroup(["enter", "busy", "--", "sh", "-c", "echo out-\(n); echo err-\(n) >&2; exit \(n + 1)"],
                                                 as: alice)
            if let result { results.withLock { $0[n] = result } }
        }
        let all = results.withLock { $0 }
        #expect(all.count == 32)
        for (n, result) in all.sorted(by: { $0.key < $1.key }) {
            #expect(result.stdout == "out-\(n)\n", "enter \(n) printed \(result.stdout.debugDescription)")
            #expect(result.stderr == "err-\(n)\n", "enter \(n) wrote \(result.stderr.debugDescription)")
            #expect(result.status == Int32(n + 1), "enter \(n) exited \(result.status)")
        }
    }

    @Test func concurrentEntersCannotPassTheSessionLimitTogether() throws {
        let supervisor = try TestSupervisor(config: "[limits]\nsessions-per-user = 3\n")
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "capped"], as: alice).status == 0)
        let results = Mutex<[CommandResult]>([])
        Self.atOnce(8) { _ in
            if let result = try? supervisor.nsgroup(["enter", "capped", "--", "sleep", "3"], as: alice) {
                results.withLock { $0.append(result) }
            }
        }
        let all = results.withLock { $0 }
        #expect(all.count == 8)
        #expect(all.filter { $0.status == 0 }.count == 3, "\(all.map(\.stderr))")
        #expect(all.filter { $0.stderr.contains("limits.sessions-per-user = 3") }.count == 5, "\(all.map(\.stderr))")
    }

    @Test func concurrentCreatesCannotPassTheGroupLimitOrShareAName() throws {
        let supervisor = try TestSupervisor(config: "[limits]\ngroups-per-user = 3\n")
        let alice = try TestUser.alice()
        let distinct = Mutex<[CommandResult]>([])
        Self.atOnce(8) { n in
            if let result = try? supervisor.nsgroup(["create", "many-\(n)"], as: alice) {
                distinct.withLock { $0.append(result) }
            }
        }
        let created = distinct.withLock { $0 }
        #expect(created.filter { $0.status == 0 }.count == 3, "\(created.map(\.stderr))")
        #expect(created.filter { $0.stderr.contains("limits.groups-per-user = 3") }.count == 5, "\(created.map(\.stderr))")

        let same = Mutex<[CommandResult]>([])
        Self.atOnce(6) { _ in
            if let result = try? supervisor.nsgroup(["create", "one-name"]) { same.withLock { $0.append(result) } }
        }
        let results = same.withLock { $0 }
        #expect(results.filter { $0.status == 0 }.count == 1, "\(results.map(\.stderr))")
        #expect(results.filter { $0.stderr.contains("a group named \"one-name\" already exists") }.count == 5,
                "\(results.map(\.stderr))")
    }
}
