import Foundation
import Glibc
import Testing

/// `nsgroup enter --stream`: the session's stdio carried on the connection (PROTOCOL.md
/// §8.18), no descriptor passed either way. The server refuses descriptors beside an enter
/// with `"stdio": "stream"`, so every enter these tests see succeed passed none. The
/// interactive shell on a streamed terminal is EnterTests.interactiveShellOnARealTerminal.
@Suite struct StreamTests {
    /// A supervisor, a group of alice's and a directory she may write in.
    func aliceGroup(_ name: String = "box") throws -> (TestSupervisor, TestUser, String) {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let created = try supervisor.nsgroup(["create", name], as: alice)
        guard created.status == 0 else { throw HarnessError("create failed: \(created.stderr)") }
        let work = supervisor.directory + "/alice"
        guard mkdir(work, 0o700) == 0, chown(work, alice.uid, alice.gid) == 0 else { throw HarnessError("mkdir \(work)") }
        return (supervisor, alice, work)
    }

    func client(_ supervisor: TestSupervisor) -> String {
        "\(Products.nsgroup) --socket \(supervisor.socketPath)"
    }

    @Test func twentyMiBGoThroughAStreamedSessionAndBackWithItsExitCode() throws {
        let (supervisor, alice, work) = try aliceGroup()
        let script = """
            cd \(work) && head -c 20971520 /dev/urandom > in \
            && \(client(supervisor)) enter --stream box -- sh -c 'cat; echo to-stderr >&2; exit 3' < in > out 2> err; \
            echo $? > status
            """
        let result = try run("/bin/sh", ["-c", script], as: alice)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try String(contentsOfFile: work + "/status", encoding: .utf8) == "3\n")
        #expect(try String(contentsOfFile: work + "/err", encoding: .utf8) == "to-stderr\n")
        let sizes = try run("/usr/bin/stat", ["-c", "%s", work + "/in", work + "/out"]).stdout
        #expect(sizes == "20971520\n20971520\n")
        #expect(try run("/usr/bin/cmp", [work + "/in", work + "/out"]).status == 0, "what came back is what went in")
        // The enter is journalled as streamed.
        let record = try JournalTests().one(supervisor, "sessionStarted", ["NSGROUP_CALLER_UID=\(alice.uid)", "NSGROUP_NAME=box"])
        #expect(record["NSGROUP_STDIO"] == "stream")
    }

    @Test func outputWaitsForASlowReaderAndNothingIsLost() throws {
        let (supervisor, alice, _) = try aliceGroup()
        // 32 MiB written at once, read by a reader that first sleeps: the session blocks
        // on its full pipe meanwhile (the server reads only while the client keeps up).
        let script = "\(client(supervisor)) enter --stream box -- head -c 33554432 /dev/zero | (sleep 2; wc -c)"
        let result = try run("/bin/sh", ["-c", script], as: alice)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "33554432")
    }

    @Test func exitStatusesAndSignalsComeBackAsLocally() throws {
        let (supervisor, alice, _) = try aliceGroup()
        let ok = try supervisor.nsgroup(["enter", "--stream", "box", "--", "true"], as: alice)
        #expect(ok.status == 0, "\(ok.stderr)")
        let killed = try supervisor.nsgroup(["enter", "--stream", "box", "--", "sh", "-c", "kill -TERM $$"], as: alice)
        #expect(killed.status == 128 + SIGTERM)
        let missing = try supervisor.nsgroup(["enter", "--stream", "box", "--", "/nonexistent"], as: alice)
        #expect(missing.status == 127)
        // Input that ends early, and a session that stops reading before it ends.
        let upper = try supervisor.nsgroup(["enter", "--stream", "box", "--", "tr", "a-z", "A-Z"], as: alice,
                                           stdin: Data("streamed\n".utf8))
        #expect(upper.stdout == "STREAMED\n")
        let head = try run("/bin/sh", ["-c", "head -c 1048576 /dev/zero | tr '\\0' a | \(client(supervisor)) enter --stream box -- head -c 5"],
                           as: alice)
        #expect(head.status == 0, "\(head.stderr)")
        #expect(head.stdout == "aaaaa")
    }

    @Test func aRestartEndsTheStreamButNotTheSession() throws {
        let (supervisor, alice, work) = try aliceGroup()
        // The session notes each line it reads and carries on after its stdin ends.
        let script = "{ \(client(supervisor)) enter --stream box -- sh -c 'while read l; do echo \"$l\" >> \(work)/seen; done; sleep 2; echo survived > \(work)/after' 2> \(work)/err; echo $? > \(work)/status; }"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=\(alice.uid)", "--regid=\(alice.gid)", "--init-groups", "--", "/bin/sh", "-c",
                             "(echo one; sleep 30) | \(script)"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        try waitUntil("the session to read its first line") {
            (try? String(contentsOfFile: work + "/seen", encoding: .utf8)) == "one\n"
        }
        supervisor.stop(signal: SIGTERM)
        try supervisor.start()
        // The supervisor closed its end of the session's stdin: the loop ends, the session goes on.
        try waitUntil("the session to run on without its stdio", timeoutSeconds: 10) {
            (try? String(contentsOfFile: work + "/after", encoding: .utf8)) == "survived\n"
        }
        // The client said what happened and learnt the exit status from the restarted server.
        try waitUntil("the client to end", timeoutSeconds: 10) { FileManager.default.fileExists(atPath: work + "/status") }
        let err = try String(contentsOfFile: work + "/err", encoding: .utf8)
        #expect(err.contains("streamed stdio ended with it"), "\(err)")
        #expect(try String(contentsOfFile: work + "/status", encoding: .utf8) == "125\n")
        process.terminate()
    }
}
