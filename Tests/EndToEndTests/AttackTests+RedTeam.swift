import Foundation
import Glibc
import POSIX
import Testing

/// Red-team findings against the trust boundary of 549d3d8: each test replays an attack
/// that works on that code and asserts the outcome the README's rule promises ("a session
/// never runs with more privilege than whoever controls the files it can execute").
extension AttackTests {
    /// Root enters alice's user-namespace group with a command. Were the session given root's
    /// own stdin, stdout and stderr (here stdout is a root-only 0600 log; from a shell it is
    /// root's terminal), alice, root in her own namespace, could take one from it
    /// (pidfd_getfd) and keep it after root's command returned: read root's terminal, or
    /// the file itself. Root's descriptors must not be handed to a process the owner
    /// controls: the session holds pipes the CLI relays, and what alice can take is a pipe
    /// whose bytes reach root's file only while root's command runs, as its output would.
    @Test func theOwnerCannotTakeTheDescriptorsRootEntersWith() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let created = try supervisor.nsgroup(["create", "fdtrap", "--ns", "user,mnt"], as: alice)
        try #require(created.status == 0, "\(created.stderr)")
        let log = supervisor.directory + "/root-only.log"
        try Self.writeFile(log, "root's log\n", mode: 0o600)

        let root = try BackgroundProcess("/bin/sh", ["-c", "exec \"$0\" --socket \"$1\" enter fdtrap -- sleep 30 >>\"$2\"",
                                                     Products.nsgroup, supervisor.socketPath, log],
                                         log: supervisor.directory + "/root-enter.log")
        defer { root.stop() }
        let pid = try Self.onlySession(supervisor, "fdtrap", "pid")

        let steal = """
            import ctypes, os, sys
            libc = ctypes.CDLL(None, use_errno=True)
            pidfd = libc.syscall(434, int(sys.argv[1]), 0)
            fd = libc.syscall(438, pidfd, 1, 0) if pidfd >= 0 else -1
            if fd < 0:
                print("DENIED", ctypes.get_errno())
                sys.exit(0)
            print(os.readlink("/proc/self/fd/%d" % fd))
            """
        // What the session holds: three pipes, none of them root's file or terminal.
        for fd in 0..<3 {
            let target = try ProcFS.readLink("/proc/\(pid)/fd/\(fd)")
            #expect(target.hasPrefix("pipe:["), "root's session holds \(target) as fd \(fd)")
        }
        let attempt = try supervisor.nsgroup(["enter", "fdtrap", "--", "/usr/bin/python3", "-I", "-c", steal, String(pid)], as: alice)
        #expect(attempt.stdout.hasPrefix("pipe:["), "alice took root's own descriptor from root's session: \(attempt.stdout) \(attempt.stderr)")
        #expect(!attempt.stdout.contains(log))
    }

    /// An admin is not root. Entering root's own user-namespace group (uid map `0 0 1`) as
    /// "root inside" would make the admin host uid 0 with every capability over root-owned
    /// files: /etc/shadow (0640 root:shadow) readable, /etc/sudoers writable. She is refused
    /// unless she trusts the owner, and then enters as herself.
    @Test func anAdminDoesNotBecomeHostRootThroughRootsUserNamespace() throws {
        let supervisor = try TestSupervisor()
        let created = try supervisor.nsgroup(["create", "rootns", "--ns", "user,mnt,pid"])
        try #require(created.status == 0, "\(created.stderr)")
        let carol = try TestUser.carol()
        // Control: on the host carol cannot read /etc/shadow.
        let host = try run("/bin/sh", ["-c", "head -c 1 /etc/shadow >/dev/null 2>&1 && echo READ || echo DENIED"], as: carol)
        try #require(host.stdout == "DENIED\n")

        let refused = try supervisor.nsgroup(["enter", "rootns", "--", "true"], as: carol)
        #expect(refused.status == 125, "an admin entered root's user-namespace group without trusting root")
        let probe = try supervisor.nsgroup(["enter", "rootns", "--trust-owner", "--", "sh", "-c",
                                            "head -c 1 /etc/shadow >/dev/null 2>&1 && echo READ || echo DENIED"], as: carol)
        try #require(probe.status == 0, "\(probe.stderr)")
        #expect(probe.stdout == "DENIED\n", "an admin read /etc/shadow as host uid 0 inside root's user namespace")
    }

    /// /srv is a default tmpfs-path, but root keeps programs there. alice puts a tmpfs over a
    /// root-owned directory below it, plants a program of the same name, and root, entering
    /// her group as itself (no user namespace), runs her file as uid 0.
    @Test func aTmpfsCannotCoverADirectoryOfRootsBelowATmpfsPath() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let tools = "/srv/nsg-red-\(getpid())"
        try Self.makeDirectory(tools, mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: tools) }
        try Self.writeFile(tools + "/backup.sh", "#!/bin/sh\necho root-backup\n", mode: 0o755)

        let created = try supervisor.nsgroup(["create", "cover", "--ns", "mnt,uts,ipc,pid", "--tmpfs", tools + ":mode=0755"], as: alice)
        if created.status == 0 {
            let planted = try supervisor.nsgroup(["enter", "cover", "--", "sh", "-c",
                                                  "printf '#!/bin/sh\\nid -u\\n' >\(tools)/backup.sh && chmod 755 \(tools)/backup.sh"], as: alice)
            try #require(planted.status == 0, "\(planted.stderr)")
            let ran = try supervisor.nsgroup(["enter", "cover", "--", tools + "/backup.sh"])
            #expect(ran.stdout == "root-backup\n", "root ran alice's planted \(tools)/backup.sh: \(ran.stdout)")
        }
        #expect(created.status != 0, "alice put a tmpfs over root's directory \(tools)")
    }

    /// A session keeps its caller's loginuid, and the kernel lets a process whose loginuid is
    /// unset set it to anything. alice (loginuid 1001) stalls the loop with a lease on her
    /// own program, connects from a process that is gone before the supervisor accepts,
    /// and enters on that connection: her session's loginuid is unset instead of hers, and
    /// it can make itself anyone's (here root's, 0) in the audit log.
    @Test func aSessionCannotShedItsCallersLoginuid() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let created = try supervisor.nsgroup(["create", "audit", "--ns", "mnt,uts"], as: alice)
        try #require(created.status == 0, "\(created.stderr)")
        let mine = supervisor.directory + "/alice"
        try Self.makeDirectory(mine, mode: 0o755, owner: alice)

        let script = """
            import fcntl, json, os, signal, socket, sys, time
            path, group, prog = sys.argv[1], sys.argv[2], sys.argv[3]
            signal.signal(signal.SIGIO, signal.SIG_IGN)
            def send(s, params, fds):
                line = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "enter", "params": params}).encode() + b"\\n"
                socket.send_fds(s, [line], fds)
            with open(prog, "w") as f:
                f.write("#!/bin/sh\\nexit 0\\n")
            os.chmod(prog, 0o755)
            devnull = os.open("/dev/null", os.O_RDWR)
            lease = os.open(prog, os.O_RDONLY)
            fcntl.fcntl(lease, 1024, fcntl.F_WRLCK)  # F_SETLEASE
            blocker = socket.socket(socket.AF_UNIX)
            blocker.connect(path)
            send(blocker, {"name": group, "argv": [prog], "tty": False}, [devnull] * 3)
            time.sleep(0.5)
            here, there = socket.socketpair()
            child = os.fork()
            if child == 0:
                s = socket.socket(socket.AF_UNIX)
                s.connect(path)
                socket.send_fds(there, [b"x"], [s.fileno()])
                os._exit(0)
            _, fds, _, _ = socket.recv_fds(here, 1, 1)
            os.waitpid(child, 0)
            conn = socket.socket(fileno=fds[0])
            fcntl.fcntl(lease, 1024, fcntl.F_UNLCK)
            os.close(lease)
            r, w = os.pipe()
            send(conn, {"name": group, "argv": ["/bin/sh", "-c", "cat /proc/self/loginuid; echo; echo 0 >/proc/self/loginuid 2>/dev/null && cat /proc/self/loginuid"], "tty": False}, [devnull, w, w])
            os.close(w)
            reply = b""
            while not reply.endswith(b"\\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                reply += chunk
            answer = json.loads(reply.split(b"\\n")[0])
            if "error" in answer:
                print("REFUSED", answer["error"].get("data", {}).get("reason"))
                sys.exit(0)
            out = b""
            while True:
                chunk = os.read(r, 4096)
                if not chunk:
                    break
                out += chunk
            sys.stdout.write(out.decode())
            """
        let command = "echo \(alice.uid) > /proc/self/loginuid && exec /usr/bin/setpriv --reuid=\(alice.uid) --regid=\(alice.gid) --init-groups -- "
            + "/usr/bin/python3 -I -c \"$0\" \(supervisor.socketPath) audit \(mine)/prog"
        let result = try run("/bin/sh", ["-c", command, script])
        try #require(result.status == 0, "\(result.stdout) \(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        // The process that connected is gone, so its loginuid cannot be verified: the
        // supervisor refuses to start the session (PROTOCOL.md §4, §8.6) rather than start it
        // with none. A session that did start would have to carry alice's.
        #expect(lines.first == "REFUSED permission_denied", "an enter from a connection whose peer is gone was not refused: \(lines)")
        if lines.first?.hasPrefix("REFUSED") != true {
            #expect(lines.first == String(alice.uid), "the session's loginuid was \(lines.first ?? "?"), not alice's")
        }
        #expect(!lines.dropFirst().contains("0"), "alice's session made root's loginuid its own: \(lines)")
    }
}

extension AttackTests {
    /// Unfinished requests are budgeted per person (connections.buffer-per-user), but replies
    /// are not: every connection may queue 1 MiB of replies its client never reads. One
    /// ordinary user with 64 connections that pipeline `version` and never read makes the
    /// supervisor hold 64 MiB for her (with the default per-user 1024, a gigabyte).
    @Test func unreadRepliesAreBoundedPerPerson() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        _ = try supervisor.nsgroup(["version"])
        let before = try ProcFS.residentKiB(pid: supervisor.pid)
        let script = """
            import errno, socket, sys, time
            line = b'{"jsonrpc":"2.0","id":1,"method":"version"}\\n'
            payload = line * 6000
            conns = []
            for _ in range(64):
                s = socket.socket(socket.AF_UNIX)
                s.connect(sys.argv[1])
                s.setblocking(False)
                conns.append([s, 0])
            deadline = time.time() + 8
            while time.time() < deadline and any(off < len(payload) for _, off in conns):
                for c in conns:
                    if c[1] >= len(payload):
                        continue
                    try:
                        c[1] += c[0].send(payload[c[1]:c[1] + 65536])
                    except BlockingIOError:
                        pass
                time.sleep(0.01)
            print("READY", flush=True)
            time.sleep(30)
            """
        let log = supervisor.directory + "/greedy.log"
        let greedy = try BackgroundProcess("/usr/bin/setpriv", ["--reuid=\(alice.uid)", "--regid=\(alice.gid)", "--init-groups", "--",
                                                               "/usr/bin/python3", "-I", "-c", script, supervisor.socketPath], log: log)
        defer { greedy.stop(SIGKILL) }
        try #require(eventually(timeoutSeconds: 15) { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("READY") })
        usleep(1_000_000)
        let after = try ProcFS.residentKiB(pid: supervisor.pid)
        #expect(after - before < 24 * 1024, "one user's unread replies grew the supervisor by \((after - before) / 1024) MiB (connections.buffer-per-user and connections.output-per-user are 4 MiB)")
        // Holding alice's connections back delays nobody else.
        let bob = try TestUser.bob()
        var served: CommandResult?
        let waited = try ContinuousClock().measure { served = try supervisor.nsgroup(["version"], as: bob) }
        #expect(served?.status == 0, "\(served?.stderr ?? "")")
        #expect(waited < .seconds(5), "bob waited \(waited) behind alice's unread replies")
    }

    /// A session is a login of its caller's: the caller's resource limits (pam_limits'
    /// nproc, nofile, …) come along. The supervisor's own (root's) must not.
    @Test func aSessionKeepsItsCallersResourceLimits() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        try #require(try supervisor.nsgroup(["create", "limited", "--ns", "mnt,uts"], as: alice).status == 0)
        let command = "exec /usr/bin/prlimit --nofile=256:256 --nproc=200:200 -- /usr/bin/setpriv --reuid=\(alice.uid) --regid=\(alice.gid) --init-groups -- "
            + "\(Products.nsgroup) --socket \(supervisor.socketPath) enter limited -- sh -c 'grep -E \"^Max (processes|open files)\" /proc/self/limits'"
        let result = try run("/bin/sh", ["-c", command])
        try #require(result.status == 0, "\(result.stderr)")
        func hard(_ name: String) -> UInt64? {
            guard let line = result.stdout.split(separator: "\n").first(where: { $0.hasPrefix(name) }) else { return nil }
            let fields = line.dropFirst(name.count).split(separator: " ")
            return fields.count >= 2 ? UInt64(fields[1]) ?? UInt64.max : nil
        }
        #expect((hard("Max processes") ?? .max) <= 200, "the session's nproc limit: \(result.stdout)")
        #expect((hard("Max open files") ?? .max) <= 256, "the session's nofile limit: \(result.stdout)")
    }
}

extension AttackTests {
    /// A tmpfs size may be a percentage of memory, with up to 12 digits. Turned into bytes
    /// (memory / 100 * percent) a large one overflows 64 bits, and Swift traps: any user
    /// allowed to create (everyone, by default) kills the root supervisor with one request.
    @Test func aHugeTmpfsPercentageIsRefusedNotACrash() throws {
        let supervisor = try TestSupervisor()
        let bob = try TestUser.bob()
        let refused = try supervisor.nsgroup(["create", "boom", "--ns", "mnt", "--tmpfs", "/tmp:size=999999999999%"], as: bob)
        #expect(refused.status == 125)
        #expect(refused.stderr.contains("limits.tmpfs-size"), "\(refused.stderr)")
        #expect(supervisor.process?.isRunning == true, "nsgroupd died: \(supervisor.log_.suffix(500))")
        #expect(try supervisor.nsgroup(["version"]).status == 0)
    }
}

extension AttackTests {
    /// A session creates files with its caller's umask, as the command run directly
    /// would: a user who keeps their files private (umask 077) must not find the
    /// files a session made readable by everyone (nsgroupd's 022).
    @Test(arguments: ["077", "027", "002"])
    func aSessionTakesItsCallersUmask(_ mask: String) throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        try #require(try supervisor.nsgroup(["create", "masked", "--ns", "mnt,uts"], as: alice).status == 0)
        let file = "/tmp/nsg-umask-\(getpid())-\(mask)"
        defer { unlink(file) }
        let command = "umask \(mask) && exec /usr/bin/setpriv --reuid=\(alice.uid) --regid=\(alice.gid) --init-groups -- "
            + "\(Products.nsgroup) --socket \(supervisor.socketPath) enter masked -- sh -c 'umask; : > \(file); stat -c %a \(file)'"
        let result = try run("/bin/sh", ["-c", command])
        let expectedMode = String(0o666 & ~Int(mask, radix: 8)!, radix: 8)
        #expect(result.status == 0 && result.stdout == "0\(mask)\n\(expectedMode)\n", "\(result.stdout) \(result.stderr)")
    }
}
