import Foundation
import Glibc
import Testing

/// Streamed stdio (PROTOCOL.md §8.18) attacked: one user's `write` into another's
/// session, a client that floods past its window or never reads, many sessions flooding
/// at once against the supervisor's one thread, a connection that goes away, bad base64,
/// root through an owner's user namespace, and a session that leaves a writer behind.
extension AttackTests {
    /// Helpers the attack scripts share: a raw connection that keeps notifications apart
    /// from replies. Each script prints one JSON line of findings last.
    static let streamPrelude = #"""
        import base64, json, os, select, socket, sys, time

        class Conn:
            def __init__(self, path):
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.s.connect(path)
                self.buf = b""
                self.notes = []
                self.next_id = 100

            def send(self, method, params, with_id=True):
                message = {"jsonrpc": "2.0", "method": method, "params": params}
                if with_id:
                    self.next_id += 1
                    message["id"] = self.next_id
                self.s.sendall(json.dumps(message).encode() + b"\n")
                return message.get("id")

            def line(self, timeout=20):
                deadline = time.time() + timeout
                while b"\n" not in self.buf:
                    left = deadline - time.time()
                    if left <= 0 or not select.select([self.s], [], [], left)[0]:
                        raise SystemExit("timed out waiting for a line")
                    chunk = self.s.recv(1 << 20)
                    if not chunk:
                        raise SystemExit("connection closed")
                    self.buf += chunk
                end = self.buf.index(b"\n")
                line, self.buf = self.buf[:end], self.buf[end + 1:]
                return json.loads(line)

            def call(self, method, params, timeout=20):
                wanted = self.send(method, params)
                while True:
                    message = self.line(timeout)
                    if message.get("id") == wanted:
                        return message
                    self.notes.append(message)

            def note(self, method, timeout=20, **match):
                for i, message in enumerate(self.notes):
                    if message.get("method") == method and all(message["params"].get(k) == v for k, v in match.items()):
                        return self.notes.pop(i)
                while True:
                    message = self.line(timeout)
                    if message.get("method") == method and all(message["params"].get(k) == v for k, v in match.items()):
                        return message
                    self.notes.append(message)

            def enter(self, group, argv, tty=False):
                reply = self.call("enter", {"name": group, "argv": argv, "tty": tty, "stdio": "stream"})
                if "error" in reply:
                    raise SystemExit("enter failed: %r" % reply)
                return reply["result"]

            def output(self, session):
                # Everything the session writes until its exited: {fd: bytes}, exited params.
                got = {1: b"", 2: b""}
                pending, self.notes = self.notes, []
                while True:
                    message = pending.pop(0) if pending else self.line()
                    params = message.get("params", {})
                    if params.get("session") != session:
                        self.notes.append(message)
                        continue
                    if message.get("method") == "output" and "data" in params:
                        got[params["fd"]] += base64.b64decode(params["data"])
                    elif message.get("method") == "exited":
                        return got, params

        def reason(reply):
            return reply.get("error", {}).get("data", {}).get("reason")

        def b64(data):
            return base64.b64encode(data).decode()

        def rss(pid):
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        """#

    /// Runs a prelude script as `user` (nil: root) with `arguments` in sys.argv[1:], bounded,
    /// and returns the JSON object of its last line of output.
    static func streamScript(_ supervisor: TestSupervisor, as user: TestUser?, _ script: String, _ arguments: [String] = [],
                             timeoutSeconds: Double = 60, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let program = streamPrelude + "\n" + script
        let command = ["/usr/bin/python3", "-I", "-c", program, supervisor.socketPath] + arguments
        let result = try PolicyTests.runBounded(
            user == nil ? command[0] : "/usr/bin/setpriv",
            user.map { ["--reuid=\($0.uid)", "--regid=\($0.gid)", "--init-groups", "--"] + command } ?? Array(command.dropFirst()),
            timeoutSeconds: timeoutSeconds, sourceLocation: sourceLocation)
        guard let last = result.stdout.split(separator: "\n").last,
              let object = (try? JSONSerialization.jsonObject(with: Data(last.utf8))) as? [String: Any]
        else { throw HarnessError("the script failed (\(result.status)): \(result.stdout) \(result.stderr)") }
        return object
    }

    /// Starts a prelude script as `user` in the background; its output goes to `log`.
    static func backgroundStreamScript(_ supervisor: TestSupervisor, as user: TestUser, _ script: String,
                                       _ arguments: [String] = [], log: String) throws -> BackgroundProcess {
        try BackgroundProcess("/usr/bin/setpriv", ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--",
                                                   "/usr/bin/python3", "-I", "-c", streamPrelude + "\n" + script,
                                                   supervisor.socketPath] + arguments, log: log)
    }

    /// The supervisor's resident memory in KiB.
    static func residentKiB(_ pid: pid_t) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { throw HarnessError("no VmRSS for pid \(pid)") }
        return kib
    }

    /// How long each of `count` `list`s takes for `user` on one connection, in seconds: the
    /// supervisor's answer alone, without starting a client for each.
    static func listSeconds(_ supervisor: TestSupervisor, as user: TestUser, count: Int = 10,
                            sourceLocation: SourceLocation = #_sourceLocation) throws -> [Double] {
        let outcome = try streamScript(supervisor, as: user, """
            c = Conn(sys.argv[1])
            times = []
            for _ in range(int(sys.argv[2])):
                start = time.time()
                reply = c.call("list", {})
                assert "result" in reply, reply
                times.append(time.time() - start)
                time.sleep(0.05)
            print(json.dumps({"times": times}))
            """, [String(count)], sourceLocation: sourceLocation)
        return try #require(outcome["times"] as? [Double], sourceLocation: sourceLocation)
    }

    /// A supervisor with group "box" of alice's, shared with nobody.
    static func streamBox() throws -> (TestSupervisor, TestUser) {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let created = try supervisor.nsgroup(["create", "box"], as: alice)
        guard created.status == 0 else { throw HarnessError("create failed: \(created.stderr)") }
        return (supervisor, alice)
    }

    /// A directory of the supervisor's that `user`'s scripts write their findings to.
    static func notes(_ supervisor: TestSupervisor, for user: TestUser) throws -> String {
        let path = supervisor.directory + "/notes-" + user.name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard chown(path, user.uid, user.gid) == 0 else { throw HarnessError("chown \(path): \(errno)") }
        return path
    }
}

extension AttackTests {
    /// The attacks on streamed stdio, in a suite of their own (filter: StreamedStdio).
    @Suite struct StreamedStdio {
        // MARK: Crossing

        /// Bob's `write` and `resize` to alice's streamed session, by its number, and alice's
        /// own from a second connection, get not_found like a number nobody has; none of it
        /// reaches her session's stdin.
        @Test func aStreamTakesInputFromItsOwnConnectionOnly() throws {
            let (supervisor, alice) = try AttackTests.streamBox()
            let ready = try AttackTests.notes(supervisor, for: alice) + "/session"
            let go = try AttackTests.notes(supervisor, for: alice) + "/go"
            let holder = try AttackTests.backgroundStreamScript(supervisor, as: alice, """
                c = Conn(sys.argv[1])
                result = c.enter("box", ["cat"])
                with open(sys.argv[2] + ".tmp", "w") as f:
                    f.write(str(result["session"]))
                os.rename(sys.argv[2] + ".tmp", sys.argv[2])
                while not os.path.exists(sys.argv[3]):
                    time.sleep(0.05)
                ok = c.call("write", {"session": result["session"], "data": b64(b"alice\\n"), "eof": True})
                got, exited = c.output(result["session"])
                print(json.dumps({"write": ok.get("result"), "stdout": got[1].decode(), "code": exited["code"]}))
                """, [ready, go], log: supervisor.directory + "/alice.log")
            try waitUntil("alice's session started", timeoutSeconds: 20) { FileManager.default.fileExists(atPath: ready) }
            let session = try #require(Int(try String(contentsOfFile: ready, encoding: .utf8)))
            let evil = Data("evil\n".utf8).base64EncodedString()
            for user in [try TestUser.bob(), alice] {
                for (number, expected) in [(session, session), (session + 1000, session + 1000)] {
                    let write = try PolicyTests.rawError(supervisor, "write", ["session": number, "data": evil, "eof": true], as: user)
                    #expect(write.reason == "not_found", "\(user.name): \(write)")
                    #expect(write.message == "write: this connection streams no session \(expected)")
                    let resize = try PolicyTests.rawError(supervisor, "resize", ["session": number, "rows": 1, "columns": 1], as: user)
                    #expect(resize.reason == "not_found", "\(user.name): \(resize)")
                    #expect(resize.message == "resize: this connection streams no session \(expected)")
                }
            }
            _ = FileManager.default.createFile(atPath: go, contents: nil)
            try waitUntil("alice's client finished", timeoutSeconds: 20) { !holder.isRunning }
            let log = try String(contentsOfFile: supervisor.directory + "/alice.log", encoding: .utf8)
            let outcome = try #require((try? JSONSerialization.jsonObject(with: Data((log.split(separator: "\n").last ?? "").utf8))) as? [String: Any], "\(log)")
            #expect(outcome["stdout"] as? String == "alice\n", "\(log)")
            #expect(outcome["code"] as? Int == 0)
        }

        // MARK: The window

        /// A client that sends past its window has each `write` refused whole (limit_exceeded
        /// with an id, silently without), and the session takes exactly what was accepted.
        /// Notifications far past the window do not grow the supervisor.
        @Test func writesPastTheWindowAreRefusedAndTakeNothing() throws {
            let (supervisor, alice) = try AttackTests.streamBox()
            let outcome = try AttackTests.streamScript(supervisor, as: alice, """
                pid = int(sys.argv[2])
                c = Conn(sys.argv[1])
                # The session reads nothing until SIGUSR1; then counts what it got, to end of file.
                result = c.enter("box", ["sh", "-c", "trap 'wc -c; exit 0' USR1; while :; do sleep 0.05; done"])
                session = result["session"]
                accepted, refusals, reasons = 0, 0, set()
                chunk = b"x" * 16384
                while refusals < 3:
                    reply = c.call("write", {"session": session, "data": b64(chunk)})
                    if "error" in reply:
                        refusals += 1
                        reasons.add(reason(reply))
                    else:
                        accepted += len(chunk)
                # One byte more than a window is refused before it is decoded.
                too_long = reason(c.call("write", {"session": session, "data": b64(b"y" * (result["window"] + 1))}))
                before = rss(pid)
                for _ in range(4000):  # 64 MiB of notifications, none of which fits
                    c.send("write", {"session": session, "data": b64(chunk)}, with_id=False)
                still = reason(c.call("write", {"session": session, "data": b64(b"z")}))
                after = rss(pid)
                eof = c.call("write", {"session": session, "eof": True})
                c.call("signal", {"name": "box", "session": session, "signal": 10})
                got, exited = c.output(session)
                print(json.dumps({"window": result["window"], "accepted": accepted, "reasons": sorted(reasons),
                                  "tooLong": too_long, "still": still, "eof": eof.get("result"),
                                  "counted": int(got[1].decode().strip()), "code": exited["code"],
                                  "before": before, "after": after}))
                """, [String(supervisor.pid)], timeoutSeconds: 120)
            #expect(outcome["window"] as? Int == 32768)
            #expect(outcome["reasons"] as? [String] == ["limit_exceeded"])
            #expect(outcome["tooLong"] as? String == "invalid_params")
            #expect(outcome["still"] as? String == "limit_exceeded")
            #expect(outcome["eof"] as? [String: Any] != nil, "\(outcome)")
            let accepted = try #require(outcome["accepted"] as? Int)
            // The pipe (64 KiB for an ordinary user) and the window, no more.
            #expect(accepted > 0 && accepted <= 65536 + 32768, "\(accepted)")
            #expect(outcome["counted"] as? Int == accepted, "\(outcome)")
            #expect(outcome["code"] as? Int == 0)
            let grown = (outcome["after"] as? Int ?? .max) - (outcome["before"] as? Int ?? 0)
            #expect(grown < 16 << 10, "nsgroupd grew by \(grown) KiB taking 64 MiB of refused writes")
        }

        // MARK: Output nobody reads

        /// A client that never reads while its session writes without end: the session blocks,
        /// the supervisor holds a bounded amount, and another user is answered at once.
        @Test func aClientThatNeverReadsBlocksOnlyItsOwnSession() throws {
            let (supervisor, alice) = try AttackTests.streamBox()
            let baseline = try AttackTests.residentKiB(supervisor.pid)
            let ready = try AttackTests.notes(supervisor, for: alice) + "/pid"
            let sleeper = try AttackTests.backgroundStreamScript(supervisor, as: alice, """
                c = Conn(sys.argv[1])
                result = c.enter("box", ["cat", "/dev/zero"])
                with open(sys.argv[2], "w") as f:
                    f.write(str(result["pid"]))
                time.sleep(600)
                """, [ready], log: supervisor.directory + "/alice.log")
            defer { sleeper.stop(SIGKILL) }
            try waitUntil("the session started", timeoutSeconds: 20) {
                ((try? String(contentsOfFile: ready, encoding: .utf8)).flatMap { Int($0) }) != nil
            }
            let pid = try #require(Int(try String(contentsOfFile: ready, encoding: .utf8)))
            // Blocked: it writes nothing more once the pipe and the socket are full.
            func written() throws -> Int {
                let io = try String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8)
                return Int(io.split(separator: "\n").first { $0.hasPrefix("wchar:") }?.split(separator: " ").last ?? "") ?? -1
            }
            var last = -1
            try waitUntil("cat /dev/zero blocked in its write", timeoutSeconds: 10) {
                let now = try written()
                defer { last = now }
                usleep(200_000)
                return now == last && now > 0
            }
            let total = try written()
            #expect(total < 16 << 20, "the session wrote \(total) bytes to a client that reads nothing")
            let bob = try TestUser.bob()
            let slowest = try AttackTests.listSeconds(supervisor, as: bob).max() ?? 99
            #expect(slowest < 1, "bob's list took \(slowest) s")
            let grown = try AttackTests.residentKiB(supervisor.pid) - baseline
            #expect(grown < 4 << 10, "nsgroupd grew by \(grown) KiB for a client that reads nothing")
        }

        /// Many streamed sessions of one person writing as fast as they can, on several
        /// connections that read all of it: another user's `list` is still answered promptly,
        /// and the supervisor's memory stays bounded.
        @Test func manyFloodingStreamsDoNotStarveOthers() throws {
            let (supervisor, alice) = try AttackTests.streamBox()
            let baseline = try AttackTests.residentKiB(supervisor.pid)
            let counts = try AttackTests.notes(supervisor, for: alice) + "/counts"
            let flooder = try AttackTests.backgroundStreamScript(supervisor, as: alice, """
                conns = [Conn(sys.argv[1]) for _ in range(8)]
                for c in conns:
                    for _ in range(4):
                        c.enter("box", ["cat", "/dev/zero"])
                total = 0
                start = time.time()
                while time.time() - start < 600:
                    for s in select.select([c.s for c in conns], [], [], 1)[0]:
                        total += len(s.recv(1 << 20))
                    with open(sys.argv[2], "w") as f:
                        f.write(str(total))
                """, [counts], log: supervisor.directory + "/alice.log")
            defer { flooder.stop(SIGKILL) }
            func received() -> Int { ((try? String(contentsOfFile: counts, encoding: .utf8)).flatMap { Int($0) }) ?? 0 }
            try waitUntil("the floods are under way", timeoutSeconds: 30) { received() > 64 << 20 }
            let bob = try TestUser.bob()
            let times = try AttackTests.listSeconds(supervisor, as: bob, count: 20)
            #expect(times.max() ?? 99 < 2, "bob's list took \(times) s")
            let grown = try AttackTests.residentKiB(supervisor.pid) - baseline
            #expect(grown < 16 << 10, "nsgroupd grew by \(grown) KiB relaying 32 floods")
        }

        // MARK: The connection goes away

        /// Closing the connection closes the supervisor's ends: the session's stdin reaches end
        /// of file, its next write to stdout breaks (SIGPIPE), a streamed terminal hangs up
        /// (SIGHUP); each is seen through `attach` from a second connection. No descriptor
        /// of the streams stays in nsgroupd.
        @Test func closingTheConnectionEndsTheStreamsAndLeaksNoDescriptor() throws {
            let (supervisor, alice) = try AttackTests.streamBox()
            let before = try settledDescriptorCount(supervisor.pid)
            let outcome = try AttackTests.streamScript(supervisor, as: alice, """
                streamer, watcher = Conn(sys.argv[1]), Conn(sys.argv[1])
                # cat ends only at end of file; then echo writes to a stdout nobody reads.
                piped = streamer.enter("box", ["sh", "-c", "cat; sleep 0.5; echo late; exit 0"])["session"]
                tty = streamer.enter("box", ["sleep", "60"], tty=True)["session"]
                for session in (piped, tty):
                    attached = watcher.call("attach", {"name": "box", "session": session})
                    assert "result" in attached, attached
                streamer.s.close()
                ends = {}
                for session in (piped, tty):
                    ends[str(session)] = watcher.note("exited", timeout=20, session=session)["params"]
                print(json.dumps({"piped": ends[str(piped)], "tty": ends[str(tty)]}))
                """)
            let piped = try #require(outcome["piped"] as? [String: Any])
            #expect(piped["code"] is NSNull && piped["signal"] as? Int == Int(SIGPIPE), "\(piped)")
            let tty = try #require(outcome["tty"] as? [String: Any])
            #expect(tty["code"] is NSNull && tty["signal"] as? Int == Int(SIGHUP), "\(tty)")
            #expect(try settledDescriptorCount(supervisor.pid) == before)
        }

        // MARK: base64

        /// Every spelling but RFC 4648's one is invalid_params, and takes nothing.
        @Test func base64OtherThanTheOneSpellingIsRefused() throws {
            let (supervisor, alice) = try AttackTests.streamBox()
            let bad = ["aGk=aGk=", "aG==aGVs", "aGVsbG9=", "aGl=", "aB==", "aGk", "aGVsbG8", "aGVs bG8=", " aGk=", "aGk=\n",
                       "aGVs\r\nbG8=", "a-_b", "aGk=\u{0}", "=aGk", "====", "aGk==", "YQ=\u{3D}=", "\u{FF}aGk"]
            let outcome = try AttackTests.streamScript(supervisor, as: alice, """
                c = Conn(sys.argv[1])
                session = c.enter("box", ["cat"])["session"]
                reasons = {text: reason(c.call("write", {"session": session, "data": text})) for text in json.loads(sys.argv[2])}
                c.call("write", {"session": session, "data": b64(b"ok"), "eof": True})
                got, exited = c.output(session)
                print(json.dumps({"reasons": reasons, "stdout": got[1].decode("latin-1")}))
                """, [String(decoding: try JSONSerialization.data(withJSONObject: bad), as: UTF8.self)])
            let reasons = try #require(outcome["reasons"] as? [String: Any])
            for text in bad {
                #expect(reasons[text] as? String == "invalid_params", "\(text.debugDescription): \(String(describing: reasons[text]))")
            }
            #expect(outcome["stdout"] as? String == "ok")
        }

        // MARK: Root through the owner's user namespace

        /// Root streams a session in alice's group with `user`: it runs as the namespace's root
        /// (alice on the host), and its stdio are the supervisor's pipes — nothing of root's
        /// (no terminal, no descriptor) is in a process alice may ptrace.
        @Test func rootStreamsIntoTheOwnersUserNamespaceWithTheSupervisorsPipes() throws {
            let supervisor = try TestSupervisor()
            let alice = try TestUser.alice()
            #expect(try supervisor.nsgroup(["create", "lab", "--ns", "user,mnt,pid,uts,ipc"], as: alice).status == 0)
            let outcome = try AttackTests.streamScript(supervisor, as: nil, """
                c = Conn(sys.argv[1])
                result = c.enter("lab", ["sh", "-c", "id -u; readlink /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2; ls /proc/self/fd | wc -l; cat"])
                reply = c.call("write", {"session": result["session"], "data": b64(b"typed by root\\n"), "eof": True})
                got, exited = c.output(result["session"])
                print(json.dumps({"stdout": got[1].decode(), "stderr": got[2].decode(), "code": exited["code"], "pid": result["pid"]}))
                """)
            #expect(outcome["code"] as? Int == 0, "\(outcome)")
            let lines = (outcome["stdout"] as? String ?? "").split(separator: "\n").map(String.init)
            try #require(lines.count == 6, "\(outcome)")
            #expect(lines[0] == "0")  // root inside alice's namespace
            for fd in lines[1...3] { #expect(fd.hasPrefix("pipe:["), "\(fd)") }
            #expect(lines[4] == "4", "descriptors 0-2 and ls's own")
            #expect(lines[5] == "typed by root")
            #expect(outcome["stderr"] as? String == "")
        }

        // MARK: A writer left behind

        /// A session that ends while a process it started keeps writing to its stdout: the
        /// server passes on what the pipe held when it ended, then `eof` and `exited`
        /// (PROTOCOL.md §8.18, "The end of a session"), instead of relaying the writer left
        /// behind for as long as it writes, and the other users are not kept waiting meanwhile.
        @Test func aWriterLeftBehindDoesNotHoldTheStreamOpen() throws {
            let (supervisor, alice) = try AttackTests.streamBox()
            let done = try AttackTests.notes(supervisor, for: alice) + "/done"
            let client = try AttackTests.backgroundStreamScript(supervisor, as: alice, """
                c = Conn(sys.argv[1])
                # Zeros from the writers left behind; the session's last act is "MARK" among them.
                session = c.enter("box", ["sh", "-c", "for i in 1 2 3 4; do cat /dev/zero & done; sleep 0.5; echo MARK; exit 5"])["session"]
                # A reader as fast as it gets: each line looked at only for a byte that is not zero.
                start, exited, after, buf = time.time(), None, None, c.buf
                c.s.setblocking(False)
                while exited is None and time.time() - start < 30:
                    select.select([c.s], [], [], 1)
                    try:
                        buf += c.s.recv(1 << 22)
                    except BlockingIOError:
                        continue
                    lines = buf.split(b"\\n")
                    buf = lines.pop()
                    for line in lines:
                        if b'"method":"exited"' in line:
                            exited = json.loads(line)["params"]
                        elif b'"fd":1,"data":"' in line or b'"data":"' in line:
                            data = line[line.index(b'"data":"') + 8:line.rindex(b'"')]
                            if after is not None:
                                after += len(data) * 3 // 4
                            elif data.translate(None, b"A="):
                                after = 0
                with open(sys.argv[2], "w") as f:
                    f.write(json.dumps({"exited": exited, "seconds": time.time() - start, "afterMark": after}))
                """, [done], log: supervisor.directory + "/alice.log")
            defer { client.stop(SIGKILL) }
            // Meanwhile, the session's end included, bob is answered promptly.
            let times = try AttackTests.listSeconds(supervisor, as: try TestUser.bob(), count: 40)
            #expect(times.max() ?? 99 < 1, "bob's list took \(times) s")
            let log = supervisor.directory + "/alice.log"
            try waitUntil("alice's client finished: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")", timeoutSeconds: 40) {
                FileManager.default.fileExists(atPath: done) && !client.isRunning
            }
            let outcome = try #require((try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: done)))) as? [String: Any])
            // What the pipe held when the session ended (64 KiB), and what was read before the
            // supervisor saw it end, is all that may follow the session's last write. (Before
            // the fix: 0.6 to 37 MB, and bob's list waited up to 2 s.)
            #expect((outcome["afterMark"] as? Int ?? .max) < 256 << 10, "\(outcome)")
            let exited = outcome["exited"] as? [String: Any]
            #expect(exited?["code"] as? Int == 5, "no exited within 30 s: \(outcome)")
            let killed = try supervisor.nsgroup(["destroy", "box"], as: alice)
            #expect(killed.status == 0, "\(killed.stderr)")
        }

        // MARK: Ends closed early

        /// Sessions that close their stdio and keep running leave hung-up pipes and a master
        /// without a slave, which epoll reports again and again: the supervisor must not spin
        /// on them. Input to a stdin that is gone is refused as documented.
        @Test func streamsWhoseSessionsCloseTheirStdioDoNotSpinTheLoop() throws {
            let (supervisor, alice) = try AttackTests.streamBox()
            let outcome = try AttackTests.streamScript(supervisor, as: alice, """
                pid = int(sys.argv[2])
                def ticks():
                    with open("/proc/%d/stat" % pid) as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    return int(fields[11]) + int(fields[12])
                c = Conn(sys.argv[1])
                closed = c.enter("box", ["sh", "-c", "exec <&- >&- 2>&-; sleep 4"])["session"]
                tty = c.enter("box", ["sh", "-c", "exec </dev/null >/dev/null 2>/dev/null; sleep 4"], tty=True)["session"]
                stdin = c.enter("box", ["sh", "-c", "exec <&-; sleep 4"])["session"]
                live = c.enter("box", ["sleep", "4"], tty=True)["session"]
                for session, fds in ((closed, (1, 2)), (tty, (1,))):
                    for fd in fds:
                        c.note("output", session=session, fd=fd, eof=True)
                c.note("window", session=tty, closed=True)
                time.sleep(0.3)
                # The stdin's reader is gone: noticed at the first write, which takes nothing.
                first = c.call("write", {"session": stdin, "data": b64(b"x")})
                window = c.note("window", session=stdin, closed=True)
                again = c.call("write", {"session": stdin, "data": b64(b"x")})
                before = ticks()
                time.sleep(2)
                spent = ticks() - before
                eof_tty = reason(c.call("write", {"session": live, "eof": True}))
                resize_pipe = reason(c.call("resize", {"session": closed, "rows": 5, "columns": 5}))
                ends = [c.note("exited", timeout=20, session=s)["params"]["code"] for s in (closed, tty, stdin, live)]
                print(json.dumps({"spent": spent, "first": first, "again": again, "eofTTY": eof_tty,
                                  "resizePipe": resize_pipe, "ends": ends}))
                """, [String(supervisor.pid)])
            #expect((outcome["spent"] as? Int ?? 999) < 20, "nsgroupd used \(outcome["spent"] ?? "?") ticks in 2 s with idle streams")
            // The first write may be taken into the pipe before its reader is known to be gone.
            let first = outcome["first"] as? [String: Any]
            #expect(first?["result"] != nil || ((first?["error"] as? [String: Any])?["data"] as? [String: Any])?["errno"] as? String == "EPIPE",
                    "\(String(describing: first))")
            let again = try #require((outcome["again"] as? [String: Any])?["error"] as? [String: Any], "\(outcome)")
            #expect((again["data"] as? [String: Any])?["reason"] as? String == "operation_failed")
            #expect((again["data"] as? [String: Any])?["errno"] as? String == "EPIPE")
            #expect(outcome["eofTTY"] as? String == "invalid_params")
            #expect(outcome["resizePipe"] as? String == "invalid_params")
            #expect(outcome["ends"] as? [Int] == [0, 0, 0, 0], "\(outcome)")
        }

        /// What a session writes last, on a terminal too, still comes before its `exited`:
        /// the bound on what is passed on after the end leaves room for it.
        @Test func theLastOutputOfATerminalIsNotLost() throws {
            let (supervisor, alice) = try AttackTests.streamBox()
            let outcome = try AttackTests.streamScript(supervisor, as: alice, """
                c = Conn(sys.argv[1])
                outputs = []
                for tty in (True, False) * 10:
                    session = c.enter("box", ["sh", "-c", "head -c 100000 /dev/zero | tr '\\\\0' x; printf 'last words'"], tty=tty)["session"]
                    got, exited = c.output(session)
                    # Only a summary: a script's output is read once it has ended.
                    outputs.append("%d %s" % (len(got[1]), got[1][-12:].decode()))
                print(json.dumps({"outputs": outputs}))
                """)
            let outputs = try #require(outcome["outputs"] as? [String])
            #expect(outputs.count == 20)
            #expect(outputs == Array(repeating: "100010 xxlast words", count: 20), "\(outputs)")
        }
    }
}
