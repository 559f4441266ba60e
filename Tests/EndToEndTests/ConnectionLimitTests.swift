import Client
import Foundation
import Glibc
import POSIX
import RPC
import Testing

/// What a hostile or broken client meets: connection caps, the line limit,
/// timeouts for stalled and non-reading clients, and numbers out of range.
@Suite struct ConnectionLimitTests {
    /// Reads lines until the server closes the connection (or `limit` lines came).
    func linesUntilClosed(_ client: RPCClient, limit: Int = 100_000) -> (lines: [JSONValue], closed: Bool) {
        var lines: [JSONValue] = []
        while lines.count < limit {
            do {
                let line = try client.readLine()
                lines.append((try? JSONParser.parse(line.bytes)) ?? .null)
            } catch {
                return (lines, true)
            }
        }
        return (lines, false)
    }

    @Test func connectionsOverTheCapsGetOneErrorAndAreClosed() throws {
        let supervisor = try TestSupervisor(config: "[connections]\nmax = 4\nper-user = 3\n")
        // The harness's own readiness probes must have been closed first.
        _ = try settledDescriptorCount(supervisor.pid)
        // Three of root's connections are served...
        let held = try (0..<3).map { _ in try RPCClient(socketPath: supervisor.socketPath) }
        for client in held { #expect(try client.call("version").result["protocol"]?.int64Value == 1) }
        // ...a fourth of root's is refused with one line, then closed.
        let refused = try RPCClient(socketPath: supervisor.socketPath)
        let answer = linesUntilClosed(refused)
        #expect(answer.closed)
        #expect(answer.lines.count == 1)
        #expect(answer.lines.first?["error"]?["data"]?["reason"] == .string("limit_exceeded"))
        #expect(answer.lines.first?["error"]?["message"] == .string("uid 0 has 3 connections open, the most allowed (connections.per-user = 3)"))
        #expect(answer.lines.first?["id"] == .null)
        // Another user still gets the fourth place; the fifth connection in all is refused.
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["list"], as: alice).status == 0)
        let aliceHeld = try run("/usr/bin/setpriv", ["--reuid=\(alice.uid)", "--regid=\(alice.gid)", "--clear-groups", "/usr/bin/python3", "-c", """
            import socket, sys
            held = socket.socket(socket.AF_UNIX); held.connect(sys.argv[1])
            extra = socket.socket(socket.AF_UNIX); extra.connect(sys.argv[1])
            print(extra.makefile().readline().strip())
            """, supervisor.socketPath])
        #expect(aliceHeld.stdout.contains("nsgroupd serves at most 4 connections at once (connections.max)"), "\(aliceHeld.stdout) \(aliceHeld.stderr)")
        // Those already connected are not disturbed.
        for client in held { #expect(try client.call("list").result["groups"]?.arrayValue != nil) }
    }

    @Test func theLineLimitComesFromTheConfiguration() throws {
        let supervisor = try TestSupervisor(config: "[connections]\nmax-line = 1024\n")
        let client = try RPCClient(socketPath: supervisor.socketPath)
        let name = String(repeating: "a", count: 2000)
        try client.sendLine(Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"inspect\",\"params\":{\"name\":\"\(name)\"}}\n".utf8))
        let answer = linesUntilClosed(client)
        #expect(answer.closed)
        #expect(answer.lines.first?["error"]?["data"]?["reason"] == .string("line_too_long"))
        #expect(answer.lines.first?["error"]?["message"] == .string("request line longer than 1024 bytes; closing the connection"))
    }

    @Test func aStalledHalfLineIsClosedButASessionsConnectionIsNot() throws {
        let supervisor = try TestSupervisor(config: "[connections]\nidle-timeout = 1\n")
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "patient"], as: alice).status == 0)
        // A command that runs longer than the idle timeout keeps its connection.
        let session = try supervisor.startEnter("patient", ["sleep", "3"], as: alice)
        // Half a line, then nothing.
        let stalled = try RPCClient(socketPath: supervisor.socketPath)
        try stalled.sendLine(Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"meth".utf8))
        let started = Date()
        let answer = linesUntilClosed(stalled)
        #expect(answer.closed && answer.lines.isEmpty)
        #expect(Date().timeIntervalSince(started) < 10, "closed after the idle timeout, not much later")
        // An idle connection with nothing pending goes the same way.
        let idle = try RPCClient(socketPath: supervisor.socketPath)
        _ = try idle.call("version")
        #expect(linesUntilClosed(idle).closed)
        // The session's client was never timed out: it gets the real exit status.
        session.waitUntilExit()
        #expect(session.terminationStatus == 0)
    }

    @Test func aClientThatNeverReadsItsRepliesIsClosed() throws {
        let supervisor = try TestSupervisor(config: "[connections]\nwrite-timeout = 1\nidle-timeout = 60\n")
        let steady = try RPCClient(socketPath: supervisor.socketPath)
        _ = try steady.call("version")
        let baseline = try settledDescriptorCount(supervisor.pid)
        // Far more replies than the socket buffers and the 1 MiB queue hold,
        // written without ever reading, for a few seconds.
        let greedy = try UnixSocket.connect(path: supervisor.socketPath)
        try greedy.setNonBlocking()
        var lines: [UInt8] = []
        for i in 0..<30_000 { lines += Array("{\"jsonrpc\":\"2.0\",\"id\":\(i),\"method\":\"version\"}\n".utf8) }
        var offset = 0
        let until = Date().addingTimeInterval(4)
        while Date() < until {
            if offset < lines.count {
                let n = lines.withUnsafeBytes { raw in
                    send(greedy.rawValue, raw.baseAddress! + offset, min(65_536, raw.count - offset), Int32(MSG_NOSIGNAL))
                }
                if n > 0 { offset += n; continue }
                if n < 0 && errno != EAGAIN { break }  // closed on us
            }
            usleep(50_000)
        }
        // Reading now finds the connection closed (end of file, or a reset:
        // it went with our requests unread) before all replies came.
        try greedy.setNonBlocking(false)
        var replies = 0
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(greedy.rawValue, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            replies += buffer[0..<n].filter { $0 == 0x0A }.count
        }
        #expect(replies < 30_000, "\(replies) replies: the connection should have been closed")
        #expect(eventually(timeoutSeconds: 30) { (try? ProcFS.openDescriptorCount(pid: supervisor.pid)) == baseline })
        // Everyone else is still served. (Whether the dropped queue's memory
        // went back is not measured here.)
        #expect(try steady.call("version").result["protocol"]?.int64Value == 1)
    }

    /// Over connections.output-per-user, every connection of the person waits, even
    /// one with nothing unread of its own; the one that never reads is closed after
    /// write-timeout, and the one that waited is answered then, without asking again.
    @Test func aPersonOverTheOutputBudgetWaitsUntilTheNonReaderIsClosed() throws {
        let supervisor = try TestSupervisor(config: "[connections]\noutput-per-user = 65536\nwrite-timeout = 2\nidle-timeout = 60\n")
        let waiter = try RPCClient(socketPath: supervisor.socketPath)
        _ = try waiter.call("version")
        // Far more replies than the socket holds, and more than 64 KiB besides; never read.
        let hog = try RPCClient(socketPath: supervisor.socketPath)
        var lines: [UInt8] = []
        for i in 0..<3000 { lines += Array("{\"jsonrpc\":\"2.0\",\"id\":\(i),\"method\":\"version\"}\n".utf8) }
        try hog.sendLine(lines)
        usleep(300_000)
        let clock = ContinuousClock()
        let start = clock.now
        let reply = try waiter.call("version")
        let waited = clock.now - start
        #expect(reply.result["protocol"]?.int64Value == 1)
        #expect(waited > .milliseconds(900), "answered after \(waited): root's connections were not held back")
        #expect(waited < .seconds(15), "answered only after \(waited)")
        // The hog was closed before all its replies came.
        let (got, closed) = linesUntilClosed(hog)
        #expect(closed)
        #expect(got.count < 3000, "\(got.count) replies: the hog should have been closed")
    }

    @Test func numbersOutOfRangeAreInvalidParams() throws {
        let supervisor = try TestSupervisor()
        let client = try RPCClient(socketPath: supervisor.socketPath)
        for params in [#"{"name":"x","session":1e400,"signal":1}"#, #"{"name":"x","session":99999999999999999999,"signal":1}"#,
                       #"{"name":"x","session":1,"signal":65}"#, #"{"name":"x","session":-1,"signal":9}"#,
                       #"{"name":"x","session":1.5,"signal":9}"#] {
            try client.sendLine(Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"signal\",\"params\":\(params)}\n".utf8))
            let reply = try JSONParser.parse(try client.readLine().bytes)
            #expect(reply["error"]?["data"]?["reason"] == .string("invalid_params"), "\(params)")
        }
        let rows = try JSONParser.parse(Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"enter\",\"params\":{\"name\":\"x\",\"tty\":true,\"rows\":70000}}".utf8))
        try client.sendLine(rows.line)
        #expect(try JSONParser.parse(try client.readLine().bytes)["error"]?["data"]?["reason"] == .string("invalid_params"))
    }
}
