import Client
import Foundation
import Glibc
import Namespaces
import RPC
import Testing

/// What one person can spend: argv/env caps and truncation.
extension AttackTests {
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
}
