import Client
import Foundation
import Glibc
import POSIX
import RPC
import Testing

/// What one person can spend: subordinate uids charged to their owner, reserved
/// connection slots for administrators, unfinished lines on subscribed connections,
/// the buffered-bytes budget, and argv/env caps and truncation.
extension AttackTests {
    // MARK: Charging subordinate uids to their owner

    /// The first uid of `user`'s range in /etc/subuid.
    fileprivate static func subordinateStart(of user: TestUser) throws -> uid_t {
        let text = try String(contentsOfFile: "/etc/subuid", encoding: .utf8)
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":").map(String.init)
            if fields.count == 3, fields[0] == user.name || fields[0] == String(user.uid), let start = uid_t(fields[1]) {
                return start
            }
        }
        throw HarnessError("\(user.name) has no range in /etc/subuid")
    }

    /// Runs the CLI as a bare uid/gid with no supplementary groups: what root inside
    /// the owner's user namespace is to the socket when it switches to a mapped id.
    fileprivate static func nsgroupAsID(_ supervisor: TestSupervisor, uid: uid_t, _ arguments: [String]) throws -> CommandResult {
        try run("/usr/bin/setpriv", ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "--",
                                     Products.nsgroup, "--socket", supervisor.socketPath] + arguments)
    }

    @Test func groupsCreatedFromSubordinateUIDsCountAgainstTheirOwner() throws {
        // Three groups on the machine: one person, however many ids she has, cannot take them all.
        let supervisor = try TestSupervisor(config: "[limits]\ngroups-per-user = 2\nsessions-per-user = 1\ngroups = 3\n")
        let alice = try TestUser.alice()
        let start = try Self.subordinateStart(of: alice)
        let own = try supervisor.nsgroup(["create", "own"], as: alice)
        #expect(own.status == 0, "\(own.stderr)")
        let first = try Self.nsgroupAsID(supervisor, uid: start + 1, ["create", "sub1"])
        #expect(first.status == 0, "\(first.stderr)")
        // The third group of the same person is refused, whichever of her ids asks, and
        // the refusal names her.
        let second = try Self.nsgroupAsID(supervisor, uid: start + 2, ["create", "sub2"])
        #expect(second.status == 125)
        #expect(second.stderr == "nsgroup: uid \(start + 2) is a subordinate uid of \(alice.name) (uid \(alice.uid)), who owns 2 groups, the most allowed (limits.groups-per-user = 2)\n")
        let raw = try Self.rawErrorAsID(supervisor, "create", ["name": "sub2"], uid: start + 2)
        #expect(raw.reason == "limit_exceeded")
        #expect(try supervisor.groupNames().sorted() == ["own", "sub1"])
        // Someone else is not charged for her, and finds the last place on the machine free.
        let bobs = try supervisor.nsgroup(["create", "bobs"], as: try TestUser.bob())
        #expect(bobs.status == 0, "\(bobs.stderr)")

        // Sessions: one running for alice, so none for her subordinate uids either.
        let session = try supervisor.startEnter("own", ["sleep", "20"], as: alice)
        defer { session.terminate() }
        #expect(eventually(timeoutSeconds: 10) { PolicyTests.sessionCount(supervisor, "own") == 1 })
        let entered = try Self.nsgroupAsID(supervisor, uid: start + 1, ["enter", "sub1", "--", "true"])
        #expect(entered.status != 0)
        #expect(entered.stderr.contains("is a subordinate uid of \(alice.name) (uid \(alice.uid)), who has 1 session running, the most allowed (limits.sessions-per-user = 1)"), "\(entered.stderr)")

        // The journal names the person behind the id.
        let query = { () throws -> [[String: String]] in
            let result = try run("/usr/bin/journalctl", ["-o", "json", "--no-pager", "--all",
                                                         "NSGROUP_SOCKET=\(supervisor.socketPath)",
                                                         "NSGROUP_CALLER_UID=\(start + 2)", "NSGROUP_OPERATION=create"])
            return result.stdout.split(separator: "\n").compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
            }.map { $0.compactMapValues { $0 as? String } }
        }
        var records: [[String: String]] = []
        #expect(eventually(timeoutSeconds: 10) { records = (try? query()) ?? []; return !records.isEmpty })
        #expect(records.first?["NSGROUP_CALLER_SUBUID_OWNER"] == String(alice.uid))
        #expect(records.first?["NSGROUP_CALLER_SUBUID_OWNER_NAME"] == alice.name)
        #expect(records.first?["NSGROUP_RESULT"] == "limit_exceeded")
    }

    /// A python3 client run as root that connects with other credentials (seteuid and
    /// setgroups around connect(2): SO_PEERCRED and SO_PEERGROUPS are taken there) and
    /// reports for each connection what the server said first.
    fileprivate static let connectAs = """
        import os, socket, sys, json
        path = sys.argv[1]
        held = []
        for spec in sys.argv[2:]:
            uid, gid, groups = spec.split(":")
            uid, gid = int(uid), int(gid)
            os.setgroups([int(g) for g in groups.split(",") if g])
            os.setegid(gid); os.seteuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            os.seteuid(0); os.setegid(0); os.setgroups([])
            try:
                s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"version"}\\n')
            except OSError:
                pass  # refused and closed already: its one line is waiting
            s.settimeout(10)
            reply = b""
            try:
                while not reply.endswith(b"\\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
            except OSError:
                pass
            message = json.loads(reply) if reply else None
            if message and "error" in message:
                print("refused " + message["error"]["message"])
            else:
                print("served")
            held.append(s)
        """

    @Test func connectionsAreChargedToTheOwnerAndSlotsAreKeptForAdmins() throws {
        let supervisor = try TestSupervisor(config: "[connections]\nmax = 8\nper-user = 3\nreserved-for-admins = 2\n")
        _ = try settledDescriptorCount(supervisor.pid)
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        let dave = try TestUser.dave()
        let carol = try TestUser.carol()
        let start = try Self.subordinateStart(of: alice)
        guard let adminGID = UserDatabase.groupID(named: "nsgroup-admin") else { throw HarnessError("no nsgroup-admin group") }
        let specs = [
            "\(alice.uid):\(alice.gid):", "\(alice.uid):\(alice.gid):", "\(start + 1):\(start + 1):",
            "\(start + 2):\(start + 2):",  // her fourth: over connections.per-user
            "\(bob.uid):\(bob.gid):", "\(bob.uid):\(bob.gid):", "\(bob.uid):\(bob.gid):",  // six open now
            "\(dave.uid):\(dave.gid):",  // max - reserved reached: only root and admins now
            "\(carol.uid):\(carol.gid):\(adminGID)",
            "0:0:",
            "0:0:",  // over connections.max
        ]
        let result = try run("/usr/bin/python3", ["-I", "-c", Self.connectAs, supervisor.socketPath] + specs)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == specs.count, "\(result.stdout) \(result.stderr)")
        guard lines.count == specs.count else { return }
        #expect(lines[0] == "served" && lines[1] == "served" && lines[2] == "served")
        #expect(lines[3] == "refused uid \(start + 2) is a subordinate uid of \(alice.name) (uid \(alice.uid)), who has 3 connections open, the most allowed (connections.per-user = 3)")
        #expect(lines[4...6].allSatisfy { $0 == "served" })
        #expect(lines[7] == "refused nsgroupd serves at most 6 connections at once for users other than root and members of nsgroup-admin (connections.max = 8, connections.reserved-for-admins = 2); try again later")
        #expect(lines[8] == "served", "an admin still gets in")
        #expect(lines[9] == "served", "root still gets in")
        #expect(lines[10] == "refused nsgroupd serves at most 8 connections at once (connections.max); try again later")
    }

    // MARK: Unfinished lines and the buffered-bytes budget

    /// Connects as root, subscribes, and reads the reply.
    fileprivate static func subscribedSocket(_ supervisor: TestSupervisor) throws -> FileDescriptor {
        let socket = try UnixSocket.connect(path: supervisor.socketPath)
        let request = Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"subscribe\"}\n".utf8)
        try request.withBytes { (raw) throws(Errno) in _ = try UnixSocket.send(socket.rawValue, raw) }
        var byte: UInt8 = 0
        while read(socket.rawValue, &byte, 1) == 1, byte != 0x0A {}
        return socket
    }

    /// Whether the server closes this connection before `deadline` (events it sends are read and dropped).
    fileprivate static func closedBefore(_ socket: Int32, deadline: Date) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while Date() < deadline {
            var pfd = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let wait = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
            if poll(&pfd, 1, wait) <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(socket, $0.baseAddress, $0.count) }
            if n <= 0 { return true }
        }
        return false
    }

    @Test func unfinishedLinesTimeOutEvenOnSubscribedConnections() throws {
        let supervisor = try TestSupervisor(config: "[connections]\nidle-timeout = 2\n")
        let baseline = try settledDescriptorCount(supervisor.pid)
        let watcher = try Self.subscribedSocket(supervisor)  // subscribed, nothing unfinished: stays
        // 20 subscribers, each with 100 KiB of a line that never ends: 2000 KiB that only
        // the timeout gives back (it is under the default 4 MiB budget of buffered bytes,
        // and under the 1 MiB line limit for each connection).
        let count = 20
        let unfinished = 100 << 10
        #expect(count * unfinished < 4 << 20 && unfinished < 1 << 20)
        var held: [Int32] = []
        defer { for fd in held { close(fd) } }
        for _ in 0..<count {
            let socket = try Self.subscribedSocket(supervisor).release()
            let partial = Array("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"list\",\"params\":{\"x\":\"".utf8)
                + [UInt8](repeating: UInt8(ascii: "a"), count: unfinished)
            try partial.withBytes { (raw) throws(Errno) in
                var offset = 0
                while offset < raw.count { offset += try UnixSocket.send(socket, UnsafeRawBufferPointer(rebasing: raw[offset...])) }
            }
            held.append(socket)
        }
        // Events keep flowing to them meanwhile: that is no progress on their lines.
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "busy"], as: alice).status == 0)
        let started = Date()
        let deadline = started.addingTimeInterval(2 + 8)
        for socket in held {
            #expect(Self.closedBefore(socket, deadline: deadline), "a subscribed connection kept its unfinished line")
        }
        #expect(Date().timeIntervalSince(started) >= 0.5, "not closed before the timeout")
        // The subscriber with nothing unfinished is still there and still gets events.
        #expect(try supervisor.nsgroup(["destroy", "busy"], as: alice).status == 0)
        #expect(!Self.closedBefore(watcher.rawValue, deadline: Date().addingTimeInterval(1)))
        // Every descriptor (and the buffered bytes with them) came back: only the watcher's is left.
        #expect(eventually(timeoutSeconds: 10) { (try? ProcFS.openDescriptorCount(pid: supervisor.pid)) == baseline + 1 })
    }

    /// A python3 client run as root: holds several connections, each with an unfinished
    /// line of `size` bytes, under the credentials given, then reports what the last got.
    fileprivate static let holdUnfinished = """
        import os, socket, sys, time
        path, size = sys.argv[1], int(sys.argv[2])
        held = []
        def connect(uid, gid):
            os.setegid(gid); os.seteuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            os.seteuid(0); os.setegid(0)
            return s
        for spec in sys.argv[3:]:
            uid, gid = (int(x) for x in spec.split(":"))
            s = connect(uid, gid)
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"version","params":{"x":"' + b"a" * size)
            held.append(s)
            time.sleep(0.3)  # read by the supervisor before the next one comes
        last = held[-1]
        last.settimeout(10)
        try:
            reply = last.recv(65536)
            print(reply.decode().strip())
            print("closed" if last.recv(65536) == b"" else "open")
        except socket.timeout:
            print("no reply")
        for s in held[:-1]:
            s.setblocking(False)
            try:
                print("closed" if s.recv(1) == b"" else "data")
            except BlockingIOError:
                print("open")
        # Another person is not charged for her.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        os.setegid(int(os.environ["OTHER_GID"])); os.seteuid(int(os.environ["OTHER_UID"]))
        s.connect(path)
        os.seteuid(0); os.setegid(0)
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"version","params":{"x":"' + b"a" * size + b'"}}\\n')
        s.settimeout(10)
        print(s.recv(65536).decode().strip())
        """

    @Test func bufferedBytesHaveABudgetPerPerson() throws {
        let supervisor = try TestSupervisor(config: "[connections]\nmax-line = 65536\nbuffer-per-user = 262144\n")
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        let start = try Self.subordinateStart(of: alice)
        // Four of alice's connections hold 4 × 60,000 bytes; a fifth, from one of her
        // subordinate uids, passes the 262,144 bytes she may have buffered.
        let specs = Array(repeating: "\(alice.uid):\(alice.gid)", count: 4) + ["\(start + 7):\(start + 7)"]
        let result = try run("/usr/bin/python3", ["-I", "-c", Self.holdUnfinished, supervisor.socketPath, "60000"] + specs,
                             environment: ["OTHER_UID": String(bob.uid), "OTHER_GID": String(bob.gid)])
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 7, "\(result.stdout) \(result.stderr)")
        guard lines.count == 7 else { return }
        let refusal = try JSONParser.parse(Array(lines[0].utf8))
        #expect(refusal["id"] == .null)
        #expect(refusal["error"]?["data"]?["reason"] == .string("limit_exceeded"))
        #expect(refusal["error"]?["message"]?.stringValue?.hasPrefix("uid \(start + 7) is a subordinate uid of \(alice.name) (uid \(alice.uid)), who has ") == true, "\(lines[0])")
        #expect(refusal["error"]?["message"]?.stringValue?.hasSuffix(" bytes of unfinished requests buffered across all connections, more than allowed (connections.buffer-per-user = 262144); closing the connection") == true, "\(lines[0])")
        #expect(lines[1] == "closed")
        #expect(lines[2...5].allSatisfy { $0 == "open" }, "her other connections are not touched")
        #expect(lines[6].contains("\"result\"") || lines[6].contains("invalid_params"), "bob is served: \(lines[6])")
        #expect(!lines[6].contains("limit_exceeded"))
    }

    // MARK: argv

    /// Three descriptors on /dev/null (stdin, stdout, stderr of a scripted enter); the caller closes them.
    fileprivate static func nullDescriptors() -> [Int32] {
        (0..<3).map { _ in open("/dev/null", O_RDWR | O_CLOEXEC) }
    }

    @Test func aHugeArgvIsRefusedAndWatchersStayConnected() throws {
        let supervisor = try TestSupervisor()
        let watcher = try RPCClient(socketPath: supervisor.socketPath)
        _ = try watcher.call("subscribe")
        let client = try RPCClient(socketPath: supervisor.socketPath)
        _ = try client.call("create", CreateParams(name: "wide", namespaces: ["uts"]).json)
        let stdio = Self.nullDescriptors()
        defer { for fd in stdio { close(fd) } }
        // ~800 KB of arguments: under the 1 MiB line, over the argv cap.
        let argv = ["/bin/true"] + Array(repeating: String(repeating: "a", count: 100_000), count: 8)
        let error = serverError { () throws(ClientError) in try client.call("enter", EnterParams(name: "wide", argv: argv, tty: false).json,
                                                  descriptors: stdio) }
        #expect(error?.reason == .invalidParams)
        #expect(error?.message == "enter: \"argv\" holds 800018 bytes (each argument counted with its terminating NUL), more than the 131072 allowed")
        // Root's watcher was not disconnected by anything.
        #expect((try? watcher.call("version")) != nil, "the watcher was disconnected")
        // Too many arguments, and too much environment, are refused the same way.
        let many = serverError { () throws(ClientError) in try client.call("enter", EnterParams(name: "wide", argv: ["/bin/true"] + Array(repeating: "x", count: 1024), tty: false).json,
                                                 descriptors: stdio) }
        #expect(many?.message == "enter: \"argv\" has 1025 arguments, more than the 1024 allowed")
        let env = (0..<129).map { ("V\($0)", "1") }
        let manyVariables = serverError { () throws(ClientError) in try client.call("enter", EnterParams(name: "wide", argv: ["/bin/true"], env: env, tty: false).json,
                                                          descriptors: stdio) }
        #expect(manyVariables?.message == "enter: \"env\" has 129 variables, more than the 128 allowed")
        let bigVariable = serverError { () throws(ClientError) in try client.call("enter", EnterParams(name: "wide", argv: ["/bin/true"], env: [("BIG", String(repeating: "b", count: 40_000))], tty: false).json,
                                                        descriptors: stdio) }
        #expect(bigVariable?.message == "enter: \"env\" holds 40005 bytes (each NAME=value counted with its terminating NUL), more than the 32768 allowed")
    }

    @Test func eventsAndStateFilesCarryATruncatedArgv() throws {
        let supervisor = try TestSupervisor()
        let watcher = try RPCClient(socketPath: supervisor.socketPath)
        _ = try watcher.call("subscribe")
        let client = try RPCClient(socketPath: supervisor.socketPath)
        _ = try client.call("create", CreateParams(name: "long", namespaces: ["uts"]).json)
        let stdio = Self.nullDescriptors()
        defer { for fd in stdio { close(fd) } }
        // 1000 arguments of 100 bytes: within the caps, and 100 KB the old events and
        // state file carried whole; one argument with a two-byte character across the cut.
        let split = "a" + String(repeating: "é", count: 500)
        let argv = ["/bin/sh", "-c", "sleep 30", split] + (4..<1000).map { String(format: "%03d", $0) + String(repeating: "x", count: 97) }
        let entered = try client.call("enter", EnterParams(name: "long", argv: argv, tty: false).json, descriptors: stdio)
        let session = entered.result["session"]?.int64Value ?? 0
        var started: JSONValue?
        while let event = try watcher.nextNotification() {
            if event.params["type"] == .string("session-started") { started = event.params; break }
        }
        let shown = started?["argv"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(shown.count == 16)
        #expect(Array(shown.prefix(3)) == ["/bin/sh", "-c", "sleep 30"])
        #expect(shown[3] == "a" + String(repeating: "é", count: 127), "cut at 256 bytes on a character boundary")
        #expect(shown.allSatisfy { $0.utf8.count <= 256 })
        #expect(started?["argvTruncated"] == .bool(true))
        // The state file stays small although it is rewritten on every session change.
        let statePath = supervisor.stateDirectory + "/groups/long.json"
        let size = (try? FileManager.default.attributesOfItem(atPath: statePath)[.size] as? Int) ?? Int.max
        #expect(size < 8192, "state file is \(size) bytes")
        // The end of the session is reported the same way; the watcher is still there.
        _ = try client.call("signal", SignalParams(name: "long", session: UInt64(session), signal: SIGKILL).json)
        var ended: JSONValue?
        while let event = try watcher.nextNotification() {
            if event.params["type"] == .string("session-ended") { ended = event.params; break }
        }
        #expect(ended?["argv"]?.arrayValue?.count == 16)
        #expect(ended?["argvTruncated"] == .bool(true))
        #expect((try? watcher.call("version")) != nil, "the watcher was disconnected")
        // A short argv is carried whole, without the flag.
        _ = try client.call("enter", EnterParams(name: "long", argv: ["/bin/true", "one"], tty: false).json, descriptors: stdio)
        var short: JSONValue?
        while let event = try watcher.nextNotification() {
            if event.params["type"] == .string("session-started") { short = event.params; break }
        }
        #expect(short?["argv"] == .array([.string("/bin/true"), .string("one")]))
        #expect(short?["argvTruncated"] == nil)
    }

    /// PolicyTests.rawError, sent as a bare uid (gid the same, no supplementary groups).
    fileprivate static func rawErrorAsID(_ supervisor: TestSupervisor, _ method: String, _ params: [String: Any],
                                         uid: uid_t) throws -> (reason: String?, message: String?) {
        let request: [String: Any] = ["jsonrpc": "2.0", "id": 1, "method": method, "params": params]
        var line = try JSONSerialization.data(withJSONObject: request)
        line.append(UInt8(ascii: "\n"))
        let result = try run("/usr/bin/setpriv", ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "--",
                                                  "/usr/bin/python3", "-I", "-c", PolicyTests.rawClient, supervisor.socketPath], stdin: line)
        guard result.status == 0,
              let reply = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any]
        else { throw HarnessError("raw \(method) failed: \(result.stdout) \(result.stderr)") }
        let error = reply["error"] as? [String: Any]
        return ((error?["data"] as? [String: Any])?["reason"] as? String, error?["message"] as? String)
    }
}
