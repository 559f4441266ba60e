import Foundation
import Glibc
import Testing

/// Streamed stdio (PROTOCOL.md §8.18) through a client written from protocol/ alone:
/// Fixtures/stream_client.py, run by /usr/bin/python3 as an ordinary user. What it needs
/// of the server is what the document promises; nothing of nsgroup's own code.
@Suite struct StreamClientTests {
    /// The fixture, copied where the test users can read it (the supervisor's directory).
    static func client(_ supervisor: TestSupervisor) throws -> String {
        let source = Products.repositoryRoot + "/Tests/EndToEndTests/Fixtures/stream_client.py"
        let copy = supervisor.directory + "/stream_client.py"
        if !FileManager.default.fileExists(atPath: copy) {
            try FileManager.default.copyItem(atPath: source, toPath: copy)
            chmod(copy, 0o755)
        }
        return copy
    }

    /// A supervisor with group "box" of alice's.
    static func aliceBox() throws -> (TestSupervisor, TestUser) {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let created = try supervisor.nsgroup(["create", "box"], as: alice)
        guard created.status == 0 else { throw HarnessError("create failed: \(created.stderr)") }
        return (supervisor, alice)
    }

    /// Runs `script` with /bin/sh as `user` (stdin /dev/null), bounded; `$CLIENT` is the
    /// fixture and `$SOCK` the socket.
    static func shell(_ supervisor: TestSupervisor, as user: TestUser, _ script: String, timeoutSeconds: Double = 60,
                      sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandResult {
        let client = try client(supervisor)
        return try PolicyTests.runBounded("/usr/bin/setpriv", [
            "--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--",
            "/usr/bin/env", "CLIENT=\(client)", "SOCK=\(supervisor.socketPath)", "/bin/sh", "-c", script,
        ], timeoutSeconds: timeoutSeconds, sourceLocation: sourceLocation)
    }

    /// `count` random bytes in a file of the supervisor's directory, readable by all.
    static func randomFile(_ supervisor: TestSupervisor, _ count: Int) throws -> String {
        let path = supervisor.directory + "/random.bin"
        let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        let bytes = try #require(try random.read(upToCount: count))
        try #require(bytes.count == count)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
        return path
    }

    static func sha256(_ path: String) throws -> String {
        String(try run("/usr/bin/sha256sum", [path]).stdout.prefix(64))
    }

    @Test func twentyMebibytesOfRandomDataComeBackThroughCatUnchanged() throws {
        let (supervisor, alice) = try Self.aliceBox()
        let input = try Self.randomFile(supervisor, 20 << 20)
        let result = try Self.shell(supervisor, as: alice, """
            set -e
            python3 "$CLIENT" "$SOCK" box -- cat < \(input) | sha256sum | cut -c1-64
            """, timeoutSeconds: 120)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == (try Self.sha256(input)) + "\n", "\(result.stderr)")
    }

    @Test func stdoutAndStderrStaySeparateAndTheExitCodeComesThrough() throws {
        let (supervisor, alice) = try Self.aliceBox()
        let separate = try Self.shell(supervisor, as: alice, """
            python3 "$CLIENT" "$SOCK" box -- sh -c 'echo out; echo err >&2; echo out2; exit 3'
            """)
        #expect(separate.status == 3, "\(separate.stderr)")
        #expect(separate.stdout == "out\nout2\n")
        #expect(separate.stderr == "err\n")
        #expect(try Self.shell(supervisor, as: alice, #"python3 "$CLIENT" "$SOCK" box -- true"#).status == 0)
        // A signal N comes back as 128 + N, as a shell reports it.
        let term = try Self.shell(supervisor, as: alice, #"python3 "$CLIENT" "$SOCK" box -- sh -c 'kill -TERM $$'"#)
        #expect(term.status == 128 + SIGTERM, "\(term.stderr)")
        let killed = try Self.shell(supervisor, as: alice, #"python3 "$CLIENT" "$SOCK" box -- sh -c 'kill -KILL $$'"#)
        #expect(killed.status == 128 + SIGKILL, "\(killed.stderr)")
    }

    /// The session stops reading while the client has 20 MiB more to send: `window`
    /// says `closed`, the client stops writing and still gets the rest of the output
    /// and the exit status.
    @Test func aSessionThatClosesItsInputEarlyLetsTheClientFinish() throws {
        let (supervisor, alice) = try Self.aliceBox()
        let input = try Self.randomFile(supervisor, 20 << 20)
        let trace = supervisor.directory + "/trace"
        _ = FileManager.default.createFile(atPath: trace, contents: nil)
        chmod(trace, 0o666)
        // sh keeps its stdin open until `exec 0<&-`; then nothing reads the pipe.
        let result = try Self.shell(supervisor, as: alice, """
            STREAM_CLIENT_TRACE=\(trace) python3 "$CLIENT" "$SOCK" box -- \
                sh -c 'head -c 10 | wc -c; exec 0<&-; sleep 1; echo after; exit 7' < \(input)
            """)
        #expect(result.status == 7, "\(result.stderr)")
        #expect(result.stdout == "10\nafter\n", "\(result.stderr)")
        let events = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n")
        #expect(events == ["window closed", "eof 1", "eof 2", "exited 7 None"] ||
                events == ["window closed", "eof 2", "eof 1", "exited 7 None"], "\(events)")

        // head alone: its end is the session's; the client finishes either way.
        let head = try Self.shell(supervisor, as: alice, """
            python3 "$CLIENT" "$SOCK" box -- head -c 10 < \(input) | wc -c
            """)
        #expect(head.status == 0, "\(head.stderr)")
        #expect(head.stdout == "10\n", "\(head.stderr)")
    }
}
