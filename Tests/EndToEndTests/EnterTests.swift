import Client
import Foundation
import Glibc
import POSIX
import RPC
import Testing

/// `nsgroup enter`: processes inside a group as exactly their caller.
@Suite struct EnterTests {
    /// A supervisor with one group owned by alice (created by alice).
    func aliceGroup(_ name: String = "box", extra: [String] = []) throws -> (TestSupervisor, TestUser) {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let created = try supervisor.nsgroup(["create", name] + extra, as: alice)
        guard created.status == 0 else { throw HarnessError("create failed: \(created.stderr)") }
        return (supervisor, alice)
    }

    func statusFields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    @Test func theProcessIsExactlyTheUnprivilegedCaller() throws {
        let (supervisor, alice) = try aliceGroup()
        let result = try supervisor.nsgroup(["enter", "box", "--", "cat", "/proc/self/status"], as: alice)
        #expect(result.status == 0, "\(result.stderr)")
        let status = statusFields(result.stdout)
        #expect(status["Uid"] == "\(alice.uid)\t\(alice.uid)\t\(alice.uid)\t\(alice.uid)")
        #expect(status["Gid"] == "\(alice.gid)\t\(alice.gid)\t\(alice.gid)\t\(alice.gid)")
        let expectedGroups = try run("/usr/bin/id", ["-G", alice.name]).stdout
            .split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init).sorted()
        let groups = (status["Groups"] ?? "").split(separator: " ").map(String.init).sorted()
        #expect(groups == expectedGroups)
        for cap in ["CapEff", "CapPrm", "CapAmb", "CapInh"] {
            #expect(status[cap] == "0000000000000000", "\(cap)")
        }
        #expect(status["NoNewPrivs"] == "1")
    }

    @Test func rootStaysRoot() throws {
        let supervisor = try TestSupervisor()
        #expect(try supervisor.nsgroup(["create", "rootbox"]).status == 0)
        let result = try supervisor.nsgroup(["enter", "rootbox", "--", "cat", "/proc/self/status"])
        let status = statusFields(result.stdout)
        #expect(status["Uid"] == "0\t0\t0\t0")
        #expect(status["CapEff"] != "0000000000000000")
        #expect(status["NoNewPrivs"] == "1")
    }

    @Test func onlyStandardDescriptorsAndACleanEnvironmentSurvive() throws {
        let (supervisor, alice) = try aliceGroup()
        let fds = try supervisor.nsgroup(["enter", "box", "--", "ls", "/proc/self/fd"], as: alice)
        // ls opens one descriptor of its own to list the directory.
        #expect(fds.stdout.split(separator: "\n") == ["0", "1", "2", "3"], "\(fds.stdout)")
        let env = try supervisor.nsgroup(["enter", "box", "--env", "EXTRA=yes", "--", "env"], as: alice)
        let variables = Set(env.stdout.split(separator: "\n").map(String.init))
        #expect(variables.contains("USER=\(alice.name)"))
        #expect(variables.contains("LOGNAME=\(alice.name)"))
        #expect(variables.contains("HOME=/home/\(alice.name)"))
        #expect(variables.contains("SHELL=/bin/bash"))
        #expect(variables.contains("PATH=/usr/local/bin:/usr/bin:/bin"))
        #expect(variables.contains("EXTRA=yes"))
        // The supervisor does carry the marker, so its absence inside means something.
        let supervisorEnvironment = try #require(FileManager.default.contents(atPath: "/proc/\(supervisor.pid)/environ"))
        #expect(supervisorEnvironment.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            .contains(TestSupervisor.environmentMarker))
        #expect(!variables.contains(TestSupervisor.environmentMarker), "the supervisor's environment leaked")
        #expect(variables.count == 6, "\(variables)")
    }

    @Test func theProcessIsInEveryNamespaceOfTheGroup() throws {
        let (supervisor, alice) = try aliceGroup()
        let namespaces = try #require(try supervisor.inspect("box")["namespaces"] as? [String: String])
        let script = namespaces.keys.sorted().map { "readlink /proc/self/ns/\($0)" }.joined(separator: "; ")
        let result = try supervisor.nsgroup(["enter", "box", "--", "sh", "-c", script], as: alice)
        #expect(result.stdout.split(separator: "\n").map(String.init) == namespaces.keys.sorted().map { namespaces[$0]! })
    }

    @Test func twoEntersShareTheGroup() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        // Without a user namespace a tmpfs covers only a directory of one's own.
        let mine = supervisor.directory + "/alice"
        try AttackTests.makeDirectory(mine, mode: 0o755, owner: alice)
        let created = try supervisor.nsgroup(["create", "shared", "--tmpfs", mine], as: alice)
        try #require(created.status == 0, "\(created.stderr)")
        let write = try supervisor.nsgroup(["enter", "shared", "--", "sh", "-c", "echo written-inside > \(mine)/note"], as: alice)
        #expect(write.status == 0, "\(write.stderr)")
        #expect(try supervisor.nsgroup(["enter", "shared", "--", "cat", "\(mine)/note"], as: alice).stdout == "written-inside\n")
        #expect(!FileManager.default.fileExists(atPath: "\(mine)/note"), "the tmpfs is the group's, not the host's")
        #expect(try supervisor.nsgroup(["enter", "shared", "--", "hostname"], as: alice).stdout == "shared\n")

        // A long-running session and a second enter see each other; the holder is PID 1.
        let sleeper = try supervisor.startEnter("shared", ["sleep", "300"], as: alice)
        defer { if sleeper.isRunning { sleeper.terminate(); sleeper.waitUntilExit() } }
        #expect(eventually { ((try? supervisor.inspect("shared")["sessions"] as? [Any])??.count ?? 0) == 1 })
        let ps = try supervisor.nsgroup(["enter", "shared", "--", "ps", "-eo", "pid=,args="], as: alice)
        let rows = ps.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(rows.first?.hasPrefix("1 nsgroup-holder shared") == true, "\(rows)")
        #expect(rows.contains { $0.hasSuffix("sleep 300") }, "\(rows)")
        #expect(rows.contains { $0.hasSuffix("ps -eo pid=,args=") }, "\(rows)")

        // inspect lists the running session.
        let sessions = try #require(try supervisor.inspect("shared")["sessions"] as? [[String: Any]])
        #expect(sessions.count == 1)
        #expect(sessions.first?["argv"] as? [String] == ["sleep", "300"])
        #expect(sessions.first?["uid"] as? Int == Int(alice.uid))
        #expect(sessions.first?["tty"] as? Bool == false)
        #expect((sessions.first?["started"] as? String).flatMap(Timestamp.parse) != nil)
        let sessionPID = try #require(sessions.first?["pid"] as? Int)
        #expect(try ProcFS.statusField(pid: pid_t(sessionPID), "Uid")?.hasPrefix("\(alice.uid)") == true)

        // Ctrl-C reaches the command through the client, which exits like a shell would.
        kill(sleeper.processIdentifier, SIGINT)
        sleeper.waitUntilExit()
        #expect(sleeper.terminationStatus == 128 + SIGINT)
        #expect(eventually { ((try? supervisor.inspect("shared")["sessions"] as? [Any])??.count ?? 1) == 0 })
    }

    @Test(arguments: [0, 1, 7, 255])
    func exitCodesRoundTrip(_ code: Int) throws {
        let (supervisor, alice) = try aliceGroup()
        let result = try supervisor.nsgroup(["enter", "box", "--", "sh", "-c", "exit \(code)"], as: alice)
        #expect(result.status == Int32(code))
    }

    @Test func aSignalDeathIsReportedLikeAShellDoes() throws {
        let (supervisor, alice) = try aliceGroup()
        #expect(try supervisor.nsgroup(["enter", "box", "--", "sh", "-c", "kill -KILL $$"], as: alice).status == 128 + 9)
        #expect(try supervisor.nsgroup(["enter", "box", "--", "sh", "-c", "kill -TERM $$"], as: alice).status == 128 + 15)
    }

    @Test func stdioBehavesLikeRunningTheCommandDirectly() throws {
        let (supervisor, alice) = try aliceGroup()
        let echoed = try supervisor.nsgroup(["enter", "box", "--", "cat"], as: alice, stdin: Data("hi\n".utf8))
        #expect(echoed.status == 0)
        #expect(echoed.stdout == "hi\n")
        let split = try supervisor.nsgroup(["enter", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 3"], as: alice)
        #expect(split.stdout == "out\n")
        #expect(split.stderr == "err\n")
        #expect(split.status == 3)
        // EOF on stdin reaches the process: wc ends and counts.
        let counted = try supervisor.nsgroup(["enter", "box", "--", "wc", "-l"], as: alice, stdin: Data("a\nb\nc\n".utf8))
        #expect(counted.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "3")
    }

    @Test func fiftyMebibytesStreamThroughIntact() throws {
        let (supervisor, alice) = try aliceGroup()
        let input = supervisor.directory + "/in"
        let output = supervisor.directory + "/out"
        let script = "head -c 52428800 /dev/urandom > \(input) && chmod 644 \(input) && " +
            "setpriv --reuid=\(alice.uid) --regid=\(alice.gid) --init-groups -- " +
            "\(Products.nsgroup) --socket \(supervisor.socketPath) enter box -- cat < \(input) > \(output)"
        let result = try run("/bin/sh", ["-c", script])
        #expect(result.status == 0, "\(result.stderr)")
        let sums = try run("/usr/bin/sha256sum", [input, output]).stdout.split(separator: "\n").map { $0.prefix(64) }
        #expect(sums.count == 2 && sums[0] == sums[1])
        let size = try FileManager.default.attributesOfItem(atPath: output)[.size] as? Int
        #expect(size == 52_428_800)
    }

    @Test func defaultsAreTheLoginShellAndTheHomeDirectory() throws {
        let (supervisor, alice) = try aliceGroup()
        let script = "echo $0; pwd; shopt -q login_shell && echo login\n"
        let result = try supervisor.nsgroup(["enter", "-T", "box"], as: alice, stdin: Data(script.utf8))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "-bash\n/home/\(alice.name)\nlogin\n")
        let elsewhere = try supervisor.nsgroup(["enter", "box", "--cwd", "/tmp", "--", "pwd"], as: alice)
        #expect(elsewhere.stdout == "/tmp\n")
        let missing = try supervisor.nsgroup(["enter", "box", "--cwd", "/nonexistent", "--", "pwd"], as: alice)
        #expect(missing.status == 125)
        #expect(missing.stderr == "nsgroup: cannot enter group \"box\": chdir(/nonexistent): No such file or directory\n")
        // A directory the caller may not enter is refused, though root could.
        let forbidden = try supervisor.nsgroup(["enter", "box", "--cwd", "/root", "--", "pwd"], as: alice)
        #expect(forbidden.stderr == "nsgroup: cannot enter group \"box\": chdir(/root): Permission denied\n")
    }

    @Test func aFailingStepIsNamedWithItsErrno() throws {
        let (supervisor, alice) = try aliceGroup()
        let result = try supervisor.nsgroup(["enter", "box", "--", "/nonexistent/program"], as: alice)
        #expect(result.status == 127)
        #expect(result.stderr == "nsgroup: cannot enter group \"box\": execve(/nonexistent/program): No such file or directory\n")
        let searched = try supervisor.nsgroup(["enter", "box", "--", "no-such-command-anywhere"], as: alice)
        #expect(searched.stderr == "nsgroup: cannot enter group \"box\": execve(no-such-command-anywhere): No such file or directory\n")
        #expect(try supervisor.inspect("box")["sessions"] as? [Any] != nil)
        #expect((try supervisor.inspect("box")["sessions"] as? [Any])?.isEmpty == true)
    }

    @Test func refusals() throws {
        let (supervisor, _) = try aliceGroup()
        let bob = try TestUser.bob()

        // Scripted mode without descriptors, and interactive mode with some;
        // the supervisor's descriptors come back to where they were (this
        // client's connection is the only one open while they are counted).
        let client = try RPCClient(socketPath: supervisor.socketPath)
        let noDescriptors = serverError { () throws(ClientError) in try client.call("enter", EnterParams(name: "box", argv: ["true"], tty: false).json) }
        #expect(noDescriptors?.reason == .invalidParams)
        #expect(noDescriptors?.message.contains("exactly 3 file descriptors") == true)
        let baseline = try settledDescriptorCount(supervisor.pid)
        let withDescriptors = serverError { () throws(ClientError) in
            try client.call("enter", EnterParams(name: "box", argv: ["true"], tty: true).json, descriptors: [0, 1, 2])
        }
        #expect(withDescriptors?.reason == .invalidParams)
        #expect(try ProcFS.openDescriptorCount(pid: supervisor.pid) == baseline)

        let stranger = try supervisor.nsgroup(["enter", "box", "--", "true"], as: bob)
        #expect(stranger.status == 125)
        #expect(stranger.stderr == "nsgroup: no group named \"box\"\n", "a stranger learns nothing of a group he may not see")
        let missing = try supervisor.nsgroup(["enter", "nothere", "--", "true"], as: bob)
        #expect(missing.stderr == "nsgroup: no group named \"nothere\"\n")
    }

    @Test func destroyEndsTheGroupsSessions() throws {
        let (supervisor, alice) = try aliceGroup()
        let sleeper = try supervisor.startEnter("box", ["sleep", "300"], as: alice)
        #expect(eventually { ((try? supervisor.inspect("box")["sessions"] as? [Any])??.count ?? 0) == 1 })
        #expect(try supervisor.nsgroup(["destroy", "box"], as: alice).status == 0)
        sleeper.waitUntilExit()
        // nsgroup ended it, not the command: 125 (the client says "group NAME was destroyed").
        #expect(sleeper.terminationStatus == 125)
    }

    @Test func destroyEndsSessionsOfAGroupWithoutAPidNamespace() throws {
        let (supervisor, alice) = try aliceGroup("flat", extra: ["--ns", "uts,net"])
        let sleeper = try supervisor.startEnter("flat", ["sleep", "300"], as: alice)
        #expect(eventually { ((try? supervisor.inspect("flat")["sessions"] as? [Any])??.count ?? 0) == 1 })
        #expect(try supervisor.nsgroup(["destroy", "flat"], as: alice).status == 0)
        sleeper.waitUntilExit()
        // nsgroup ended it, not the command: 125 (the client says "group NAME was destroyed").
        #expect(sleeper.terminationStatus == 125)
    }

    /// With the pty master passed to the client, and with the terminal streamed on the
    /// connection (`--stream`, PROTOCOL.md §8.18): the same shell, size, Ctrl-C and exit.
    /// How the client reaches the session: passing its terminal, streaming it, or from
    /// "another host" through a real sshd (`--host`, RemoteTests), which streams too.
    @Test(arguments: ["descriptors", "streamed", "remote"]) func interactiveShellOnARealTerminal(mode: String) throws {
        let (supervisor, alice) = try aliceGroup("term")
        let marker = supervisor.directory + "/done"
        let before = supervisor.directory + "/stty-before"
        let after = supervisor.directory + "/stty-after"
        let server = mode == "remote" ? try SSHServer.start(users: [alice]) : nil
        let setpriv = "setpriv --reuid=\(alice.uid) --regid=\(alice.gid) --init-groups --"
        let client: String
        if let server {
            client = "env NSGROUP_SSH_COMMAND='\(server.sshCommand(for: alice).joined(separator: " "))' "
                + "NSGROUP_REMOTE_COMMAND='\(Products.nsgroup) bridge --socket \(supervisor.socketPath)' "
                + "\(setpriv) \(Products.nsgroup) --host \(alice.name)@\(server.host) enter term"
        } else {
            client = "\(setpriv) \(Products.nsgroup) --socket \(supervisor.socketPath) enter \(mode == "streamed" ? "--stream " : "")term"
        }
        let tmux = try Tmux(command: "bash --norc --noprofile")
        try tmux.sendKeys("PS1='outer$ '; stty -g > \(before); \(client); echo \"client-exit=$?\"; stty -g > \(after); touch \(marker)")
        try tmux.waitFor("@term:")  // the login shell's prompt, user@host inside the group
        try tmux.sendKeys("tty; echo inside-$((6*7))")
        let screen = try tmux.waitFor(line: "inside-42")
        #expect(Tmux.lines(screen).contains { $0.hasPrefix("/dev/pts/") }, "tty names a pty: \(screen)")
        // The session's terminal starts with the client's size (rows, columns)...
        try tmux.sendKeys("stty size")
        try tmux.waitFor(line: "30 100")
        // ...and follows it: the client passes a new size on when SIGWINCH
        // reaches it, so ask again until it has (or the wait fails).
        try tmux.resize(width: 120, height: 40)
        try tmux.sendKeys("stty size")
        try tmux.waitFor(line: "40 120", retry: { try tmux.sendKeys("stty size") })
        // Ctrl-C is a byte on the terminal: the line discipline inside interrupts the job.
        try tmux.sendKeys("sleep 300; echo not-interrupted")
        try waitUntil("the sleep to run") {
            (try? run("/usr/bin/pgrep", ["-u", "\(alice.uid)", "-x", "sleep"]).status) == 0
        }
        try run("/usr/bin/tmux", ["-L", tmux.server, "send-keys", "-t", "t", "C-c"])
        try tmux.sendKeys("echo status-$?")
        try tmux.waitFor(line: "status-130")
        #expect(!Tmux.lines(try tmux.screen()).contains("not-interrupted"), "the interrupted job went on")
        try tmux.sendKeys("exit 3")
        try tmux.waitFor(line: "client-exit=3")
        try waitUntil("the outer shell to run on after the client (\(marker))") { FileManager.default.fileExists(atPath: marker) }
        let saved = try String(contentsOfFile: before, encoding: .utf8)
        let restored = try String(contentsOfFile: after, encoding: .utf8)
        #expect(saved == restored, "the outer terminal is restored")
        #expect(((try supervisor.inspect("term")["sessions"] as? [Any])?.isEmpty) == true)
        withExtendedLifetime(server) {}
    }
}

/// What an entered process does not inherit from the supervisor besides
/// its identity: its session keyring and its raised descriptor limit.
@Suite struct EnterInheritanceTests {
    /// Prints the serial of the calling process's session keyring (keyctl(2)
    /// KEYCTL_GET_KEYRING_ID for KEY_SPEC_SESSION_KEYRING, creating none).
    static let keyringScript = """
        import ctypes, os
        number = {"x86_64": 250, "aarch64": 219}[os.uname().machine]
        libc = ctypes.CDLL(None, use_errno=True)
        print(libc.syscall(number, 0, ctypes.c_long(-3), 0))
        """

    @Test func aSessionHasASessionKeyringOfItsOwn() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "keys"], as: alice).status == 0)
        // The supervisor was started by this test process and shares its session keyring.
        let supervisors = try run("/usr/bin/python3", ["-c", Self.keyringScript]).stdout
        let inside = try supervisor.nsgroup(["enter", "keys", "--", "python3", "-c", Self.keyringScript], as: alice)
        #expect(inside.status == 0, "\(inside.stderr)")
        #expect(Int(supervisors.trimmingCharacters(in: .whitespacesAndNewlines)).map { $0 > 0 } == true)
        #expect(Int(inside.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).map { $0 > 0 } == true)
        #expect(inside.stdout != supervisors, "the session possesses the supervisor's session keyring")
        let asRoot = try supervisor.nsgroup(["enter", "keys", "--", "python3", "-c", Self.keyringScript])
        #expect(asRoot.stdout != supervisors)
    }

    @Test func aSessionGetsTheOrdinaryDescriptorLimitBack() throws {
        let supervisor = try TestSupervisor()
        #expect(try supervisor.nsgroup(["create", "limits"]).status == 0)
        func softLimit(_ limits: String) -> String? {
            limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }?
                .split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.map(String.init)
        }
        func hardLimit(_ limits: String) -> String? {
            limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }?
                .split(separator: " ", omittingEmptySubsequences: true).dropFirst(4).first.map(String.init)
        }
        let ours = try String(contentsOfFile: "/proc/self/limits", encoding: .utf8)
        let daemon = try String(contentsOfFile: "/proc/\(supervisor.pid)/limits", encoding: .utf8)
        #expect(softLimit(daemon) == hardLimit(daemon), "the supervisor raised its own soft limit")
        let inside = try supervisor.nsgroup(["enter", "limits", "--", "cat", "/proc/self/limits"]).stdout
        #expect(softLimit(inside) == softLimit(ours), "sessions get the limit the supervisor started with")
    }
}
