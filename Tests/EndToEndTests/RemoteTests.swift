import Foundation
import Glibc
import Testing

/// `nsgroup --host`: every command against another host's nsgroupd through a real OpenSSH
/// server (SSHServer, on 127.0.0.1) and `nsgroup bridge` there, as the user ssh logs in as.
/// "The other host" is this machine: the bridge relays to a TestSupervisor.
@Suite("Other hosts: nsgroup --host through a real sshd")
struct RemoteTests {
    /// One sshd, one supervisor, and the environment that points nsgroup's ssh at them.
    final class Remote: @unchecked Sendable {
        let server: SSHServer
        let supervisor: TestSupervisor
        let user: TestUser

        init(user: TestUser, config: String = "") throws {
            self.user = user
            supervisor = try TestSupervisor(config: config)
            server = try SSHServer.start(users: [user])
        }

        /// What `--host` takes for this user: "nsg-alice@127.0.0.1:PORT".
        var host: String { "\(user.name)@\(server.host)" }

        /// The environment nsgroup runs in: its ssh is the server's client command for the
        /// user (their key, the server's host key known), and the remote command is this
        /// build's nsgroup bridge to the test supervisor.
        func environment(wrongHostKey: Bool = false) -> [String: String] {
            var environment = ProcessInfo.processInfo.environment
            for name in ["NSGROUP_SOCKET", "NSGROUP_HOST"] { environment[name] = nil }
            let ssh = wrongHostKey ? server.sshCommandWithWrongHostKey(for: user) : server.sshCommand(for: user)
            environment["NSGROUP_SSH_COMMAND"] = ssh.joined(separator: " ")
            environment["NSGROUP_REMOTE_COMMAND"] = "\(Products.nsgroup) bridge --socket \(supervisor.socketPath)"
            return environment
        }

        /// `nsgroup ARGUMENTS` as the user, with the environment above.
        @discardableResult
        func nsgroup(_ arguments: [String], wrongHostKey: Bool = false) throws -> CommandResult {
            try run(Products.nsgroup, arguments, as: user, environment: environment(wrongHostKey: wrongHostKey))
        }

        /// A shell command line as the user, with the environment above (for pipes).
        func shell(_ script: String) throws -> CommandResult {
            try run("/bin/sh", ["-c", script], as: user, environment: environment())
        }
    }

    @Test func createListInspectAndDestroyOnTheOtherHost() throws {
        let remote = try Remote(user: try TestUser.alice())
        let created = try remote.nsgroup(["--host", remote.host, "create", "far"])
        #expect(created.status == 0, "\(created.stderr)")
        // The supervisor there saw the user ssh logged in as: the group is hers.
        let local = try remote.supervisor.nsgroup(["inspect", "far", "--json"], as: remote.user)
        #expect(local.status == 0 && local.stdout.contains("\"ownerName\":\"nsg-alice\""), "\(local.stdout) \(local.stderr)")
        let listed = try remote.nsgroup(["--host", remote.host, "list", "-q"])
        #expect(listed.status == 0 && listed.stdout == "far\n", "\(listed.stdout) \(listed.stderr)")
        // NSGROUP_HOST does what --host does.
        var environment = remote.environment()
        environment["NSGROUP_HOST"] = remote.host
        let inspected = try run(Products.nsgroup, ["inspect", "far", "--json"], as: remote.user, environment: environment)
        #expect(inspected.status == 0 && inspected.stdout.contains("\"name\":\"far\""), "\(inspected.stderr)")
        let destroyed = try remote.nsgroup(["--host", remote.host, "destroy", "far"])
        #expect(destroyed.status == 0, "\(destroyed.stderr)")
        #expect(try remote.supervisor.nsgroup(["list", "-q"]).stdout == "")
        // An error from there names the host.
        let missing = try remote.nsgroup(["--host", remote.host, "inspect", "far"])
        #expect(missing.status == 125)
        #expect(missing.stderr == "nsgroup: \(remote.host): no group named \"far\"\n", "\(missing.stderr)")
    }

    @Test func aScriptedEnterStreams20MiBEachWayAndPassesExitStatusesOn() throws {
        let remote = try Remote(user: try TestUser.alice())
        #expect(try remote.nsgroup(["--host", remote.host, "create", "pipe"]).status == 0)
        let input = remote.supervisor.directory + "/input"
        #expect(try run("/bin/sh", ["-c", "head -c 20971520 /dev/urandom > \(input) && chmod 0644 \(input)"]).status == 0)
        let expected = try run("/usr/bin/sha256sum", [input]).stdout.prefix(64)
        let nsgroup = "\(Products.nsgroup) --host \(remote.host)"
        // In: 20 MiB on the client's stdin reach the command whole.
        let into = try remote.shell("\(nsgroup) enter pipe -- sha256sum < \(input)")
        #expect(into.status == 0, "\(into.stderr)")
        #expect(into.stdout.prefix(64) == expected)
        // Out: 20 MiB the command writes reach the client's stdout whole.
        let out = try remote.shell("\(nsgroup) enter pipe -- cat \(input) | sha256sum")
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout.prefix(64) == expected)
        // Exit codes as locally: the command's own, 128+N for a signal, 127 for no such command.
        #expect(try remote.nsgroup(["--host", remote.host, "enter", "pipe", "--", "sh", "-c", "exit 7"]).status == 7)
        #expect(try remote.nsgroup(["--host", remote.host, "enter", "pipe", "--", "sh", "-c", "kill -9 $$"]).status == 137)
        let absent = try remote.nsgroup(["--host", remote.host, "enter", "pipe", "--", "no-such-command"])
        #expect(absent.status == 127, "\(absent.stderr)")
        #expect(absent.stderr.hasPrefix("nsgroup: \(remote.host): "), "\(absent.stderr)")
    }

    /// A signal to the client reaches the command on the other host, as locally: the client
    /// passes it on (the protocol's `signal`), and the command's end is its exit status.
    @Test func aSignalToTheClientReachesTheCommandThere() throws {
        let remote = try Remote(user: try TestUser.alice())
        #expect(try remote.nsgroup(["--host", remote.host, "create", "sig"]).status == 0)
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        client.arguments = ["--reuid=\(remote.user.uid)", "--regid=\(remote.user.gid)", "--init-groups", "--",
                            Products.nsgroup, "--host", remote.host, "enter", "sig", "--", "sleep", "3001"]
        client.environment = remote.environment()
        client.standardInput = FileHandle.nullDevice
        try client.run()
        try waitUntil("the sleep to run there", timeoutSeconds: 10) {
            (try? run("/usr/bin/pgrep", ["-u", "\(remote.user.uid)", "-f", "^sleep 3001$"]).status) == 0
        }
        kill(client.processIdentifier, SIGTERM)
        client.waitUntilExit()
        #expect(client.terminationStatus == 128 + SIGTERM)
        try waitUntil("the sleep to end", timeoutSeconds: 5) {
            (try? run("/usr/bin/pgrep", ["-u", "\(remote.user.uid)", "-f", "^sleep 3001$"]).status) == 1
        }
    }

    /// cp streams its archive through the connection, as enter does: a directory in and out
    /// again, byte for byte, and the other host's refusal for a path that is not there.
    @Test func cpCopiesInAndOutThroughTheConnection() throws {
        let remote = try Remote(user: try TestUser.alice())
        #expect(try remote.nsgroup(["--host", remote.host, "create", "files", "--private-tmp"]).status == 0)
        let source = remote.supervisor.directory + "/from-alice"
        let back = remote.supervisor.directory + "/back"
        #expect(try run("/bin/sh", ["-c", """
            mkdir -p \(source)/tree/sub \(back) && echo small > \(source)/tree/sub/note && \
            head -c 3000000 /dev/urandom > \(source)/tree/big && chown -R \(remote.user.uid) \(source) \(back)
            """]).status == 0)
        let into = try remote.nsgroup(["--host", remote.host, "cp", source + "/tree", "files:/tmp/"])
        #expect(into.status == 0, "\(into.stderr)")
        let inside = try remote.nsgroup(["--host", remote.host, "enter", "files", "--", "cat", "/tmp/tree/sub/note"])
        #expect(inside.stdout == "small\n", "\(inside.stderr)")
        let out = try remote.nsgroup(["--host", remote.host, "cp", "files:/tmp/tree", back + "/"])
        #expect(out.status == 0, "\(out.stderr)")
        #expect(try run("/usr/bin/cmp", [source + "/tree/big", back + "/tree/big"]).status == 0)
        let missing = try remote.nsgroup(["--host", remote.host, "cp", "files:/tmp/absent", back + "/"])
        #expect(missing.status == 125)
        #expect(missing.stderr.hasPrefix("nsgroup: \(remote.host): cp: "), "\(missing.stderr)")
    }

    /// Ctrl-Z and Ctrl-C at a terminal go to the whole foreground process group, ssh
    /// included: ssh must leave them to nsgroup, which passes them on to the command there.
    /// Ctrl-Z stops the command and then nsgroup itself, as a shell's job stops (were ssh
    /// stopped instead, nsgroup would wait for it forever); Ctrl-C then ends the command (130).
    @Test func ctrlZAndCtrlCReachTheCommandNotSSH() throws {
        let remote = try Remote(user: try TestUser.alice())
        #expect(try remote.nsgroup(["--host", remote.host, "create", "intr"]).status == 0)
        let script = """
            import os, signal, subprocess, sys, time
            job = subprocess.Popen(sys.argv[1:], start_new_session=True, stdin=subprocess.DEVNULL)
            def state():
                with open(f"/proc/{job.pid}/stat") as stat:
                    return stat.read().rsplit(")", 1)[1].split()[0]
            deadline = time.time() + 10
            while subprocess.run(["pgrep", "-u", str(os.getuid()), "-f", "^sleep 3002$"], stdout=subprocess.DEVNULL).returncode != 0:
                if time.time() > deadline:
                    print("the command never ran"); sys.exit(2)
                time.sleep(0.05)
            os.killpg(job.pid, signal.SIGTSTP)
            deadline = time.time() + 5
            while state() != "T" and time.time() < deadline:
                time.sleep(0.05)
            print(state())
            os.killpg(job.pid, signal.SIGCONT)
            time.sleep(0.3)
            os.killpg(job.pid, signal.SIGINT)
            try:
                print(job.wait(timeout=20))
            except subprocess.TimeoutExpired:
                print("still running"); os.killpg(job.pid, signal.SIGKILL)
            """
        let result = try run("/usr/bin/python3", ["-c", script, Products.nsgroup, "--host", remote.host, "enter", "intr", "--", "sleep", "3002"],
                             as: remote.user, environment: remote.environment())
        #expect(result.stdout == "T\n130\n", "\(result.stdout) \(result.stderr)")
    }

    /// cp reads the messages of both tars while the archive flows: thousands of files tar
    /// cannot read make far more than a pipe holds, and the copy still ends (with tar's words).
    @Test func cpWithManyMessagesDoesNotWaitForever() throws {
        let remote = try Remote(user: try TestUser.alice())
        #expect(try remote.nsgroup(["--host", remote.host, "create", "noisy", "--private-tmp"]).status == 0)
        let made = try remote.nsgroup(["--host", remote.host, "enter", "noisy", "--", "sh", "-c",
                                       "mkdir /tmp/many && cd /tmp/many && for i in $(seq 4000); do : > file-$i; chmod 000 file-$i; done"])
        #expect(made.status == 0, "\(made.stderr)")
        let back = remote.supervisor.directory + "/noisy-back"
        #expect(try run("/bin/sh", ["-c", "mkdir -p \(back) && chown \(remote.user.uid) \(back)"]).status == 0)
        let copied = try run("/usr/bin/timeout", ["-k", "10", "120", Products.nsgroup, "--host", remote.host, "cp", "noisy:/tmp/many", back + "/"],
                             as: remote.user, environment: remote.environment())
        #expect(copied.status == 125, "cp ended with \(copied.status): \(copied.stderr.prefix(300))")
        #expect(copied.stderr.contains("Permission denied"), "\(copied.stderr.prefix(300))")
    }

    /// ssh gets nothing of the user's forwardings (agent, X11, ports, local commands): a host
    /// must not reach back through them; and a fleet's ssh asks nothing (BatchMode).
    @Test func sshIsToldNotToForwardAnything() throws {
        let remote = try Remote(user: try TestUser.alice())
        let log = remote.supervisor.directory + "/ssh-arguments"
        let wrapper = remote.supervisor.directory + "/logging-ssh"
        let ssh = remote.server.sshCommand(for: remote.user).joined(separator: " ")
        #expect(FileManager.default.createFile(atPath: wrapper, contents: Data("#!/bin/sh\necho \"$*\" >> \(log)\nexec \(ssh) \"$@\"\n".utf8),
                                               attributes: [.posixPermissions: 0o755]))
        #expect(try run("/bin/sh", ["-c", ": > \(log) && chown \(remote.user.uid) \(log)"]).status == 0)
        var environment = remote.environment()
        environment["NSGROUP_SSH_COMMAND"] = wrapper
        #expect(try run(Products.nsgroup, ["--host", remote.host, "list"], as: remote.user, environment: environment).status == 0)
        #expect(try run(Products.nsgroup, ["--host", remote.host, "--host", remote.host, "list"], as: remote.user, environment: environment).status == 0)
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        for line in lines {
            #expect(line.hasPrefix("-T -a -x -o ClearAllForwardings=yes -o PermitLocalCommand=no "), "\(line)")
        }
        #expect(lines.count == 3 && !lines[0].contains("BatchMode") && lines[1].contains("-o BatchMode=yes") && lines[2].contains("-o BatchMode=yes"))
    }

    @Test func theFleetViewListsEveryHostAndReportsAnUnreachableOne() throws {
        let remote = try Remote(user: try TestUser.alice())
        #expect(try remote.nsgroup(["--host", remote.host, "create", "near"]).status == 0)
        // Port 1 on 127.0.0.1: nothing listens, ssh is refused at once.
        let unreachable = "\(remote.user.name)@127.0.0.1:1"
        let listed = try remote.nsgroup(["--host", remote.host, "--host", unreachable, "list"])
        #expect(listed.status == 125)
        let lines = listed.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("HOST") == true, "\(listed.stdout)")
        #expect(lines.contains { $0.hasPrefix(remote.host) && $0.contains(" near ") }, "\(listed.stdout)")
        #expect(listed.stderr.hasPrefix("nsgroup: \(unreachable): "), "\(listed.stderr)")
        #expect(listed.stderr.contains("Connection refused"), "\(listed.stderr)")
        // --json: one object per host, the unreachable one with its error.
        let json = try remote.nsgroup(["--host", remote.host, "--host", unreachable, "list", "--json"])
        #expect(json.status == 125)
        let hosts = try #require((try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])?["hosts"] as? [[String: Any]])
        #expect(hosts.count == 2)
        #expect(hosts.first?["host"] as? String == remote.host)
        #expect(((hosts.first?["groups"] as? [[String: Any]])?.first?["name"] as? String) == "near")
        #expect(hosts.last?["host"] as? String == unreachable)
        #expect(((hosts.last?["error"] as? [String: Any])?["reason"] as? String) == "unavailable")
        // The hosts file: "local" is this machine's socket.
        let config = remote.supervisor.directory + "/config-\(remote.user.name)"
        #expect(try run("/bin/sh", ["-c", "mkdir -p \(config)/nsgroup && printf '# fleet\\n%s\\nlocal\\n' \(remote.host) > \(config)/nsgroup/hosts && chown -R \(remote.user.uid) \(config)"]).status == 0)
        var environment = remote.environment()
        environment["XDG_CONFIG_HOME"] = config
        environment["NSGROUP_SOCKET"] = remote.supervisor.socketPath
        let fleet = try run(Products.nsgroup, ["list", "--fleet", "-q"], as: remote.user, environment: environment)
        #expect(fleet.status == 0, "\(fleet.stderr)")
        #expect(fleet.stdout == "\(remote.host) near\nlocal near\n", "\(fleet.stdout)")
    }

    @Test func aWrongHostKeyIsRefusedAndNothingIsDone() throws {
        let remote = try Remote(user: try TestUser.alice())
        let refused = try remote.nsgroup(["--host", remote.host, "create", "spoofed"], wrongHostKey: true)
        #expect(refused.status == 125)
        #expect(refused.stderr.hasPrefix("nsgroup: \(remote.host): "), "\(refused.stderr)")
        #expect(refused.stderr.contains("Host key verification failed"), "\(refused.stderr)")
        #expect(try remote.supervisor.nsgroup(["list", "-q"]).stdout == "")
    }

    @Test func aUserTheOtherHostRefusesGetsItsReason() throws {
        // Only nsg-bob may create groups there.
        let remote = try Remote(user: try TestUser.alice(), config: "[access]\ncreate = nsg-bob\n")
        let refused = try remote.nsgroup(["--host", remote.host, "create", "nope"])
        #expect(refused.status == 125)
        #expect(refused.stderr.hasPrefix("nsgroup: \(remote.host): "), "\(refused.stderr)")
        // The supervisor's own words, as it says them locally.
        let local = try remote.supervisor.nsgroup(["create", "nope"], as: remote.user)
        #expect(local.status == 125)
        #expect(refused.stderr == local.stderr.replacingOccurrences(of: "nsgroup: ", with: "nsgroup: \(remote.host): "))
        let json = try remote.nsgroup(["--host", remote.host, "create", "nope", "--json"])
        #expect(json.stderr.contains("\"reason\":\"permission_denied\""), "\(json.stderr)")
        #expect(json.stderr.contains("\"host\":\"\(remote.host)\""), "\(json.stderr)")
    }

    /// Another host is another party: what its supervisor (or whoever answers there) sends
    /// must not reach the user's terminal as control sequences (a title, a cleared screen,
    /// a fake prompt), in a table or an error. JSON stays exact.
    @Test func whatAHostileHostSendsCannotDriveTheTerminal() throws {
        let remote = try Remote(user: try TestUser.alice())
        // Answers every request with a group list whose name and owner carry escapes, or
        // an error whose message does.
        let script = remote.supervisor.directory + "/hostile-bridge"
        let listed = #"{"jsonrpc":"2.0","id":1,"result":{"groups":[{"name":"x\u001b]0;pwned\u0007\nforged  row","owner":1,"ownerName":"\u001b[2Jroot\u0085","namespaces":{},"holder":1,"created":"2026-01-01T00:00:00Z","tmpfs":[],"members":[],"limits":{},"frozen":false,"sessions":[]}]}}"#
        // enter: a session, then its end with an exit code no process can have.
        let entered = #"{"jsonrpc":"2.0","id":1,"result":{"session":7,"pid":1,"window":32768}}"# + "\n"
            + #"{"jsonrpc":"2.0","method":"exited","params":{"session":7,"code":256,"signal":null}}"#
        let refused = #"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"no\u001b[31m such\u009b group","data":{"reason":"not_found"}}}"#
        let text = "#!/bin/sh\nread request\ncase \"$request\" in *'\"list\"'*) cat <<'EOF'\n\(listed)\nEOF\n;; "
            + "*'\"enter\"'*) cat <<'EOF'\n\(entered)\nEOF\nsleep 1;; *) cat <<'EOF'\n\(refused)\nEOF\n;; esac\n"
        #expect(FileManager.default.createFile(atPath: script, contents: Data(text.utf8), attributes: [.posixPermissions: 0o755]))
        var environment = remote.environment()
        environment["NSGROUP_REMOTE_COMMAND"] = script
        let list = try run(Products.nsgroup, ["--host", remote.host, "list"], as: remote.user, environment: environment)
        #expect(list.status == 0, "\(list.stderr)")
        #expect(!list.stdout.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x07 }, "\(list.stdout.debugDescription)")
        #expect(list.stdout.contains(#"x\x1b]0;pwned\x07\x0aforged  row"#), "\(list.stdout.debugDescription)")
        // A name cannot make a row of its own: the header and one row.
        #expect(list.stdout.split(separator: "\n").count == 2, "\(list.stdout.debugDescription)")
        let error = try run(Products.nsgroup, ["--host", remote.host, "inspect", "x"], as: remote.user, environment: environment)
        #expect(error.status == 125)
        #expect(!error.stderr.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x9b }, "\(error.stderr.debugDescription)")
        #expect(error.stderr == #"nsgroup: \#(remote.host): no\x1b[31m such\u{9b} group"# + "\n", "\(error.stderr.debugDescription)")
        // --json keeps every character, escaped as JSON escapes them.
        let json = try run(Products.nsgroup, ["--host", remote.host, "list", "--json"], as: remote.user, environment: environment)
        #expect(json.stdout.contains(#"x\u001b]0;pwned\u0007"#), "\(json.stdout)")
        #expect((try? JSONSerialization.jsonObject(with: Data(json.stdout.utf8))) != nil, "not JSON: \(json.stdout.debugDescription)")
        // An exit status out of range is refused, not passed on (256 would be 0 to a shell).
        let enter = try run(Products.nsgroup, ["--host", remote.host, "enter", "x", "--", "true"], as: remote.user, environment: environment)
        #expect(enter.status == 125, "\(enter.stderr)")
        #expect(enter.stderr.contains("malformed exited notification"), "\(enter.stderr)")
    }

    @Test func theBridgeRelaysOnlyToThisMachine() throws {
        let supervisor = try TestSupervisor()
        // It takes no --host: a bridge is the other end of one.
        let looped = try run(Products.nsgroup, ["bridge", "--host", "somewhere"])
        #expect(looped.status == 64, "\(looped.stderr)")
        // Its caller is whoever runs it: a request on stdin is answered on stdout.
        let request = #"{"jsonrpc":"2.0","id":1,"method":"version"}"# + "\n"
        let answered = try run(Products.nsgroup, ["bridge", "--socket", supervisor.socketPath], as: try TestUser.bob(),
                               stdin: Data(request.utf8))
        #expect(answered.status == 0, "\(answered.stderr)")
        #expect(answered.stdout.hasPrefix(#"{"jsonrpc":"2.0","id":1,"result":"#), "\(answered.stdout)")
        // No supervisor: the error is the bridge's, on stderr, as ssh carries it back.
        let none = try run(Products.nsgroup, ["bridge", "--socket", supervisor.directory + "/absent.sock"], stdin: Data())
        #expect(none.status == 125)
        #expect(none.stderr.hasPrefix("nsgroup: cannot reach nsgroupd at \(supervisor.directory)/absent.sock"), "\(none.stderr)")
    }
}
