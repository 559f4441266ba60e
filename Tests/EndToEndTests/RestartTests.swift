import Client
import Foundation
import Glibc
import POSIX
import RPC
import Supervisor
import Testing

/// Groups are long-running: they outlive supervisor restarts and crashes,
/// and a supervisor killed in the middle of create or destroy leaves either
/// a complete group or nothing.
@Suite struct RestartTests {
    /// A process's identity that survives nothing but itself.
    struct ProcessIdentity: Equatable {
        let pid: pid_t
        let startTime: UInt64

        init(_ pid: pid_t) throws {
            self.pid = pid
            startTime = try ProcFS.startTime(pid: pid)
        }

        var isAlive: Bool { (try? ProcFS.startTime(pid: pid)) == startTime && (try? ProcFS.statusField(pid: pid, "State"))?.hasPrefix("Z") == false }
    }

    func sessions(_ supervisor: TestSupervisor, _ name: String) throws -> [[String: Any]] {
        try supervisor.inspect(name)["sessions"] as? [[String: Any]] ?? []
    }

    func restart(_ supervisor: TestSupervisor, crash: Bool) throws {
        supervisor.stop(signal: crash ? SIGKILL : SIGTERM)
        try supervisor.start()
    }

    @Test(arguments: [false, true])
    func groupsAndSessionsSurviveARestart(crash: Bool) throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        // Without a user namespace a tmpfs covers only a directory of one's own.
        let mine = supervisor.directory + "/alice"
        try AttackTests.makeDirectory(mine, mode: 0o755, owner: alice)
        #expect(try supervisor.nsgroup(["create", "lasting", "--tmpfs", mine], as: alice).status == 0)
        let holder = try ProcessIdentity(try supervisor.holderPID("lasting"))
        let namespacesBefore = try #require(try supervisor.inspect("lasting")["namespaces"] as? [String: String])

        // A scripted session whose client stays connected across the restart.
        let scripted = try supervisor.startEnter("lasting", ["sleep", "300"], as: alice)
        defer { if scripted.isRunning { scripted.terminate(); scripted.waitUntilExit() } }
        // An interactive one on a real terminal.
        let tmux = try Tmux(command: "setpriv --reuid=\(alice.uid) --regid=\(alice.gid) --init-groups -- \(Products.nsgroup) --socket \(supervisor.socketPath) enter lasting; echo client-exit=$?; sleep 60")
        try tmux.waitFor("@lasting:")
        #expect(eventually { ((try? sessions(supervisor, "lasting"))?.count ?? 0) == 2 })
        let before = try sessions(supervisor, "lasting")
        let sessionProcesses = try before.map { try ProcessIdentity(pid_t(try #require($0["pid"] as? Int))) }

        try restart(supervisor, crash: crash)

        // Everything is listed again, with the same holder and namespaces.
        #expect(try supervisor.groupNames() == ["lasting"])
        #expect(try supervisor.holderPID("lasting") == holder.pid)
        #expect(holder.isAlive)
        #expect(try supervisor.inspect("lasting")["namespaces"] as? [String: String] == namespacesBefore)
        let after = try sessions(supervisor, "lasting")
        #expect(after.compactMap { $0["session"] as? Int }.sorted() == before.compactMap { $0["session"] as? Int }.sorted())
        for process in sessionProcesses { #expect(process.isAlive, "session \(process.pid) died in the restart") }

        // Still enterable, and the tmpfs is still the group's.
        #expect(try supervisor.nsgroup(["enter", "lasting", "--", "sh", "-c", "echo kept > \(mine)/f; cat \(mine)/f"], as: alice).stdout == "kept\n")
        // The interactive session still answers on its terminal.
        try tmux.sendKeys("echo still-$((40+2))")
        try tmux.waitFor(line: "still-42")
        // Its exit status cannot be known any more (init reaps it now): the client says so.
        try tmux.sendKeys("exit 3")
        let screen = try tmux.waitFor("client-exit=")
        #expect(screen.contains("exit status is unknown"), "\(screen)")
        #expect(screen.contains("client-exit=125"), "\(screen)")

        // The scripted client reattached: ending the process ends it, reporting an unknown status.
        #expect(scripted.isRunning)
        let sleeper = try #require(sessionProcesses.first { p in
            (try? String(contentsOfFile: "/proc/\(p.pid)/cmdline", encoding: .utf8))?.hasPrefix("sleep") == true
        })
        kill(sleeper.pid, SIGTERM)
        scripted.waitUntilExit()
        #expect(scripted.terminationStatus == 125)
        #expect(eventually { ((try? sessions(supervisor, "lasting"))?.count ?? 1) == 0 })

        #expect(try supervisor.nsgroup(["destroy", "lasting"], as: alice).status == 0)
        #expect(!holder.isAlive)
    }

    @Test func aGroupOutlivesTenRestartsAndCrashes() throws {
        let supervisor = try TestSupervisor()
        #expect(try supervisor.nsgroup(["create", "enduring", "--member", "nsg-alice"]).status == 0)
        let holder = try ProcessIdentity(try supervisor.holderPID("enduring"))
        let session = try supervisor.startEnter("enduring", ["sleep", "300"], as: try TestUser.alice())
        defer { if session.isRunning { session.terminate(); session.waitUntilExit() } }
        #expect(eventually { ((try? sessions(supervisor, "enduring"))?.count ?? 0) == 1 })
        let sessionPID = pid_t(try #require(try sessions(supervisor, "enduring").first?["pid"] as? Int))
        let sessionProcess = try ProcessIdentity(sessionPID)
        for round in 0..<10 {
            try restart(supervisor, crash: round % 2 == 1)
            #expect(try supervisor.groupNames() == ["enduring"], "round \(round)")
            #expect(try supervisor.holderPID("enduring") == holder.pid, "round \(round)")
            #expect(holder.isAlive && sessionProcess.isAlive, "round \(round)")
            #expect(try sessions(supervisor, "enduring").count == 1, "round \(round)")
            #expect(try supervisor.nsgroup(["enter", "enduring", "--", "hostname"]).stdout == "enduring\n", "round \(round)")
        }
        #expect(try supervisor.nsgroup(["destroy", "enduring"]).status == 0)
        #expect(!holder.isAlive && !sessionProcess.isAlive)
        session.waitUntilExit()
    }

    @Test func aSessionThatEndsWhileTheSupervisorIsDownIsRecorded() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "quiet"], as: alice).status == 0)
        let client = try supervisor.startEnter("quiet", ["sleep", "300"], as: alice)
        #expect(eventually { ((try? sessions(supervisor, "quiet"))?.count ?? 0) == 1 })
        let pid = pid_t(try #require(try sessions(supervisor, "quiet").first?["pid"] as? Int))
        supervisor.stop()
        kill(pid, SIGKILL)
        client.terminate()
        client.waitUntilExit()
        try supervisor.start()
        #expect(try sessions(supervisor, "quiet").isEmpty)
        // journald may show the record a little after it was sent.
        #expect(try eventually(timeoutSeconds: 10) {
            try !run("/usr/bin/journalctl", ["-o", "json", "--no-pager", "NSGROUP_SOCKET=\(supervisor.socketPath)",
                                             "NSGROUP_RESULT=ended_while_down", "NSGROUP_SESSION_PID=\(pid)"]).stdout.isEmpty
        }, "no record says the session ended while the supervisor was down")
    }

    /// After a crash at each step of create and destroy, the next start
    /// leaves either the whole group or nothing: no stray holder, no state
    /// file, no mount.
    @Test(arguments: ["create-cloned", "create-recorded", "create-started", "destroy-killed", "destroy-reaped"])
    func aCrashAtAnyStepLeavesAWholeGroupOrNothing(_ point: String) throws {
        let supervisor = try TestSupervisor(start: false)
        let name = "crash-" + point
        let mountPoint = supervisor.directory + "/mnt"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
        let destroying = point.hasPrefix("destroy")
        if destroying {
            try supervisor.start()
            #expect(try supervisor.nsgroup(["create", name, "--tmpfs", mountPoint]).status == 0)
            supervisor.stop()
        }
        try supervisor.start(environment: ["NSGROUPD_TEST_CRASH_AT": point])
        let result = try supervisor.nsgroup(destroying ? ["destroy", name] : ["create", name, "--tmpfs", mountPoint])
        #expect(result.status != 0, "the supervisor should have been killed at \(point)")
        #expect(result.stderr.contains("nsgroupd closed the connection"), "\(result.stderr)")
        #expect(eventually { supervisor.process?.isRunning == false })
        supervisor.stop()
        try supervisor.start()

        let names = try supervisor.groupNames()
        let files = try FileManager.default.contentsOfDirectory(atPath: supervisor.stateDirectory + "/groups")
        let holders = holderProcessesNamed(prefix: name)
        if point == "create-started" {
            // The holder was set up: the group is complete and usable.
            #expect(names == [name])
            #expect(files == [name + ".json"])
            #expect(holders.count == 1)
            #expect(try supervisor.nsgroup(["enter", name, "--", "hostname"]).stdout == name + "\n")
        } else {
            #expect(eventually { holderProcessesNamed(prefix: name).isEmpty }, "a stray holder is left")
            #expect(names.isEmpty)
            #expect(files.isEmpty, "\(files)")
        }
        // No mount reached the host, whatever happened.
        let hostMounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(!hostMounts.contains(" \(mountPoint) "))
    }

    @Test func forgedStateFilesAreRefusedAndLogged() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let groups = supervisor.stateDirectory + "/groups"
        supervisor.stop()
        // A process that is not a holder, to forge a record pointing at it.
        let bystander = Process()
        bystander.executableURL = URL(fileURLWithPath: "/bin/sleep")
        bystander.arguments = ["300"]
        try bystander.run()
        // SIGKILL: a child of the test runner inherits its blocked signals, SIGTERM among them.
        defer { kill(bystander.processIdentifier, SIGKILL); bystander.waitUntilExit() }
        let ours = try namespaceInode("/proc/self/ns/uts")
        func record(_ name: String, pid: pid_t, startTime: UInt64) -> String {
            #"{"version":1,"name":"\#(name)","owner":0,"ownerName":"root","namespaces":["uts:[\#(ours)]"],"holderPID":\#(pid),"holderStartTime":\#(startTime),"created":1795000000,"tmpfs":[],"members":[],"sessions":[]}"#
        }
        let startTime = try ProcFS.startTime(pid: bystander.processIdentifier)
        func write(_ file: String, _ text: String, mode: mode_t = 0o600) throws {
            let path = groups + "/" + file
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            chmod(path, mode)
        }
        // A symlink to a file that must survive.
        let target = supervisor.directory + "/precious"
        try "precious\n".write(toFile: target, atomically: false, encoding: .utf8)
        #expect(symlink(target, groups + "/linked.json") == 0)
        try write("writable.json", record("writable", pid: bystander.processIdentifier, startTime: startTime), mode: 0o666)
        try write("truncated.json", String(record("truncated", pid: 2, startTime: 1).prefix(60)))
        try write("renamed.json", record("other-name", pid: 2, startTime: 1))
        try write("foreign.json", record("foreign", pid: bystander.processIdentifier, startTime: startTime + 1))
        try write("pretender.json", record("pretender", pid: bystander.processIdentifier, startTime: startTime))
        try write("owned.json", record("owned", pid: 2, startTime: 1))
        chown(groups + "/owned.json", try TestUser.alice().uid, 0)
        // A group whose holder ended while no supervisor ran: stale, nobody's doing.
        let ended = Process()
        ended.executableURL = URL(fileURLWithPath: "/bin/true")
        try ended.run()
        ended.waitUntilExit()
        try write("gone.json", record("gone", pid: ended.processIdentifier, startTime: 1))

        try supervisor.start()
        #expect(try supervisor.groupNames().isEmpty, "nothing forged is taken back")
        #expect(try FileManager.default.contentsOfDirectory(atPath: groups).isEmpty, "every refused record is removed")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "precious\n", "the symlink's target is untouched")
        #expect(bystander.isRunning, "a process a forged record points at is never signalled")

        let expected = ["linked": "symlink", "writable": "writable", "truncated": "malformed", "renamed": "malformed",
                        "foreign": "mismatch", "pretender": "mismatch", "owned": "not_root", "gone": "holder_gone"]
        // A refused state file is an integrity problem (error); a live process that is not the
        // holder may be a reused pid or a forgery (warning); a holder gone is stale (notice).
        let priorities = ["linked": 3, "writable": 3, "truncated": 3, "renamed": 3, "owned": 3,
                          "foreign": 4, "pretender": 4, "gone": 5]
        for (name, reason) in expected {
            var found = ""
            try waitUntil("a group-dropped record for \(name)", timeoutSeconds: 10) {
                found = try run("/usr/bin/journalctl", ["-o", "json", "--no-pager", "NSGROUP_SOCKET=\(supervisor.socketPath)",
                                                        "MESSAGE_ID=\(AuditEvent.groupDropped.messageID)", "NSGROUP_NAME=\(name)"]).stdout
                return !found.isEmpty
            }
            #expect(found.contains("\"NSGROUP_REASON\":\"\(reason)\""), "\(name): \(found)")
            #expect(found.contains("\"PRIORITY\":\"\(priorities[name]!)\""), "\(name): \(found)")
        }
    }

    @Test func aHolderKilledFromOutsideIsNoticedAtOnce() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "victim", "--ns", "uts,net"], as: alice).status == 0)
        let session = try supervisor.startEnter("victim", ["sleep", "300"], as: alice)
        #expect(eventually { ((try? sessions(supervisor, "victim"))?.count ?? 0) == 1 })
        kill(try supervisor.holderPID("victim"), SIGKILL)
        #expect(eventually(timeoutSeconds: 1) { (try? supervisor.groupNames())?.isEmpty == true },
                "the group is gone within a second")
        // Its session (no pid namespace to take it down) is ended too.
        session.waitUntilExit()
        // Its group ended it ("group victim ended: its holder died"): 125, not the SIGKILL.
        #expect(session.terminationStatus == 125)
        #expect(!FileManager.default.fileExists(atPath: supervisor.stateDirectory + "/groups/victim.json"))
    }
}
