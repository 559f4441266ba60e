import Client
import Foundation
import Glibc
import POSIX
import RPC
import Testing

/// What a session is made of, and what the supervisor touches while making one: every path
/// resolved with the caller's rights, nothing inside a group opened before it is checked,
/// and the caller's identity (supplementary groups, loginuid) kept.
extension AttackTests {
    /// A fresh directory under /tmp, mode 0755 and owned by root, for the files of one attack.
    static func spawnAttackDirectory() throws -> String {
        var template = Array("/tmp/nsg-att-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw HarnessError("mkdtemp: \(Errno.current)") }
        let path = String(cString: made)
        chmod(path, 0o755)
        return path
    }

    /// mkdir with an owner and a mode (chmod after, so the umask does not matter).
    static func makeDirectory(_ path: String, mode: mode_t, owner: TestUser? = nil) throws {
        guard mkdir(path, mode) == 0 else { throw HarnessError("mkdir \(path): \(Errno.current)") }
        chmod(path, mode)
        if let owner { chown(path, owner.uid, owner.gid) }
    }

    static func writeFile(_ path: String, _ text: String, mode: mode_t, uid: uid_t = 0, gid: gid_t = 0) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
            throw HarnessError("cannot write \(path)")
        }
        chmod(path, mode)
        chown(path, uid, gid)
    }

    /// One request sent as `user` over a connection of its own (python3 does the socket),
    /// and the response line as JSON.
    static func rawCall(_ supervisor: TestSupervisor, as user: TestUser, _ method: String, _ params: String) throws -> [String: Any] {
        let script = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sys.argv[1])
            s.sendall(sys.argv[2].encode() + b"\\n")
            print(s.makefile().readline(), end="")
            """
        let line = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\(method)\",\"params\":\(params)}"
        let result = try run("/usr/bin/python3", ["-c", script, supervisor.socketPath, line], as: user)
        guard let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw HarnessError("no response to \(method): \(result.stdout) \(result.stderr)")
        }
        return object
    }

    // MARK: --cwd

    /// `--cwd` below a directory the caller may not search: the session must not start
    /// there (the directory is entered with the caller's rights, every component checked),
    /// whether that directory is another user's or root's.
    @Test func cwdBelowADirectoryTheCallerCannotSearchIsRefused() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        let base = try Self.spawnAttackDirectory()
        defer { Directory.removeTree(base) }
        // alice's 0700 directory with a world-readable subdirectory and file below it.
        try Self.makeDirectory(base + "/alice", mode: 0o700, owner: alice)
        try Self.makeDirectory(base + "/alice/sub", mode: 0o755, owner: alice)
        try Self.writeFile(base + "/alice/sub/notes.txt", "alice-secret\n", mode: 0o644, uid: alice.uid, gid: alice.gid)
        // The same below a directory of root's.
        try Self.makeDirectory(base + "/root", mode: 0o700)
        try Self.makeDirectory(base + "/root/sub", mode: 0o755)
        try Self.writeFile(base + "/root/sub/notes.txt", "root-secret\n", mode: 0o644)
        // And one bob may reach, to show the command itself works.
        try Self.makeDirectory(base + "/open", mode: 0o755)
        try Self.writeFile(base + "/open/notes.txt", "open-notes\n", mode: 0o644)

        let created = try supervisor.nsgroup(["create", "bobbox"], as: bob)
        try #require(created.status == 0, "\(created.stderr)")
        let allowed = try supervisor.nsgroup(["enter", "bobbox", "--cwd", base + "/open", "--", "cat", "notes.txt"], as: bob)
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(allowed.stdout == "open-notes\n")

        for directory in [base + "/alice/sub", base + "/root/sub"] {
            let result = try supervisor.nsgroup(["enter", "bobbox", "--cwd", directory, "--", "cat", "notes.txt"], as: bob)
            #expect(result.status != 0, "bob read a file below \(directory): \(result.stdout)")
            #expect(!result.stdout.contains("secret"), "\(result.stdout)")
            #expect(result.stderr.contains("chdir(\(directory)): \(String(cString: strerror(EACCES)))"), "\(result.stderr)")
        }
    }

    // MARK: ptmx

    /// The owner of a user-namespace group bind-mounts a FIFO over /dev/pts/ptmx inside it.
    /// An interactive enter must fail at once without the supervisor opening the FIFO (a
    /// reader blocked in open(2) on it stays blocked), and the supervisor keeps answering.
    @Test func ptmxReplacedByAFIFOIsNotOpenedByTheSupervisor() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let base = try Self.spawnAttackDirectory()
        defer { Directory.removeTree(base) }
        try Self.makeDirectory(base + "/alice", mode: 0o755, owner: alice)
        let fifo = base + "/alice/fifo"

        let created = try supervisor.nsgroup(["create", "ptybox", "--ns", "user,mnt,pid,uts,ipc"], as: alice)
        try #require(created.status == 0, "\(created.stderr)")
        let planted = try supervisor.nsgroup(["enter", "ptybox", "--", "/bin/sh", "-c",
                                              "mkfifo \(fifo) && mount --bind \(fifo) /dev/pts/ptmx && echo planted"], as: alice)
        try #require(planted.stdout == "planted\n", "\(planted.stderr)")

        // A reader waits in open(2) for a writer: any open of the FIFO for writing lets it through.
        let reader = try BackgroundProcess("/bin/cat", [fifo], log: base + "/reader.log")
        defer { reader.stop(SIGKILL) }
        let waiting = eventually(timeoutSeconds: 10) {
            let wchan = (try? String(contentsOfFile: "/proc/\(reader.pid)/wchan", encoding: .utf8)) ?? ""
            return wchan.contains("fifo") || wchan.contains("wait_for_partner")
        }
        try #require(waiting, "the reader never blocked opening the FIFO")

        let client = try RPCClient(socketPath: supervisor.socketPath)
        let started = Date()
        let error = serverError { () throws(ClientError) in
            try client.call("enter", EnterParams(name: "ptybox", argv: ["true"], tty: true).json)
        }
        #expect(Date().timeIntervalSince(started) < 5, "the enter took \(Date().timeIntervalSince(started)) s")
        #expect(error?.reason == .operationFailed, "\(String(describing: error))")
        #expect(error?.message.contains("/dev/pts/ptmx") == true, "\(String(describing: error))")

        // Had the supervisor opened the FIFO, the reader would have got past open and ended.
        usleep(300_000)
        #expect(reader.isRunning, "the supervisor opened the FIFO planted over /dev/pts/ptmx")
        let list = try supervisor.nsgroup(["list"])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("ptybox"))
    }

    // MARK: identity

    /// loginuid is the kernel's audit identity of a login; a session must carry its
    /// caller's, not the supervisor's (unset, under systemd).
    @Test func sessionCarriesTheCallersLoginuid() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let created = try supervisor.nsgroup(["create", "audited"], as: alice)
        try #require(created.status == 0, "\(created.stderr)")
        // As root: give the client's process a loginuid, then become alice (loginuid survives setuid).
        let script = "echo 1234 > /proc/self/loginuid && exec /usr/bin/setpriv --reuid=\(alice.uid) --regid=\(alice.gid) --init-groups -- "
            + "\(Products.nsgroup) --socket \(supervisor.socketPath) enter audited -- cat /proc/self/loginuid"
        let result = try run("/bin/sh", ["-c", script])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "1234", "the session's loginuid: \(result.stdout)")
    }

    /// The owner entering her own user-namespace group keeps her supplementary groups: a
    /// file that one of her groups is denied (0604 root:nsg-friends) stays unreadable to her.
    @Test func ownerKeepsHerSupplementaryGroupsInHerUserNamespace() throws {
        let supervisor = try TestSupervisor()
        let erin = try TestUser.erin()
        let friends = try #require(getgrnam("nsg-friends")).pointee.gr_gid
        let base = try Self.spawnAttackDirectory()
        defer { Directory.removeTree(base) }
        let banned = base + "/banned"
        try Self.writeFile(banned, "for-everyone-but-friends\n", mode: 0o604, uid: 0, gid: friends)
        // On the host erin may not read it: she is in nsg-friends.
        #expect(try run("/bin/cat", [banned], as: erin).status != 0)

        let created = try supervisor.nsgroup(["create", "erinbox", "--ns", "user,mnt,pid,uts,ipc"], as: erin)
        try #require(created.status == 0, "\(created.stderr)")
        let read = try supervisor.nsgroup(["enter", "erinbox", "--", "cat", banned], as: erin)
        #expect(read.status != 0, "the owner read a file her group is denied: \(read.stdout)")
        #expect(!read.stdout.contains("for-everyone"))

        // Both her groups are there (nsg-friends is not mapped inside: it shows as the overflow gid).
        let status = try supervisor.nsgroup(["enter", "erinbox", "--", "grep", "^Groups:", "/proc/self/status"], as: erin)
        let groups = status.stdout.dropFirst("Groups:".count).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        let expected = try run("/usr/bin/id", ["-G", erin.name]).stdout.split(whereSeparator: { $0 == " " || $0 == "\n" })
        #expect(groups.count == expected.count, "inside: \(status.stdout) outside: \(expected)")
        #expect(groups.contains("65534"), "\(status.stdout)")
    }

    // MARK: tmpfs

    /// `--tmpfs` below another user's 0700 directory: the holder must resolve the path with
    /// the caller's rights, so a present and an absent name fail alike (no existence oracle).
    @Test func tmpfsPathsAreResolvedAsTheCaller() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        let base = try Self.spawnAttackDirectory()
        defer { Directory.removeTree(base) }
        try Self.makeDirectory(base + "/private", mode: 0o700, owner: alice)
        try Self.makeDirectory(base + "/private/x", mode: 0o755, owner: alice)

        var outcomes: [(reason: String?, message: String)] = []
        for (name, path) in [("g1", base + "/private/x"), ("g2", base + "/private/nothere")] {
            let response = try Self.rawCall(supervisor, as: bob, "create",
                                            "{\"name\":\"\(name)\",\"namespaces\":[\"mnt\",\"uts\"],\"tmpfs\":[\"\(path)\"]}")
            let error = response["error"] as? [String: Any]
            #expect(error != nil, "bob mounted a tmpfs at \(path), below alice's 0700 directory: \(response)")
            let reason = (error?["data"] as? [String: Any])?["reason"] as? String
            let message = (error?["message"] as? String ?? "").replacingOccurrences(of: path, with: "PATH")
                .replacingOccurrences(of: name, with: "NAME")
            outcomes.append((reason, message))
        }
        #expect(outcomes[0].reason == outcomes[1].reason, "\(outcomes)")
        #expect(outcomes[0].message == outcomes[1].message, "\(outcomes)")
        #expect(outcomes[0].message.contains(String(cString: strerror(EACCES))), "\(outcomes)")
    }
}
