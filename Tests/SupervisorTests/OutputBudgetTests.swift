import Testing
import Glibc
@testable import Supervisor
import POSIX
import RPC
import Systemd

/// Connections of several people sharing one ConnectionInput (as a supervisor's
/// do), each on a real socket pair, driven by a real sd-event loop. Every
/// request is answered with a reply of about `replySize` bytes.
private final class PeopleHarness {
    let loop: EventLoop
    let input = ConnectionInput()
    var clients: [UInt64: Int32] = [:]
    var connections: [UInt64: Connection] = [:]
    var dispatched: [UInt64: Int] = [:]
    var closed: Set<UInt64> = []
    private var nextID: UInt64 = 1
    let reply: JSONValue

    init(budget: Int, replySize: Int = 1000) throws {
        loop = try EventLoop()
        input.setOutputBudget(budget)
        reply = .string(String(repeating: "x", count: replySize))
    }

    deinit {
        for connection in connections.values { connection.close() }
        for fd in clients.values { close(fd) }
    }

    /// Opens a connection charged to `uid`; the supervisor's end gets a small
    /// send buffer, so that replies pile up in the connection rather than the kernel.
    @discardableResult
    func open(as uid: uid_t) throws -> UInt64 {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw ScratchError("socketpair: \(String(cString: strerror(errno)))")
        }
        var size: Int32 = 4096
        _ = setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        let id = nextID
        nextID += 1
        let reply = self.reply
        let connection = Connection(
            id: id, socket: FileDescriptor(adopting: fds[1]),
            peer: PeerCredentials(pid: getpid(), uid: uid, gid: getgid(), groups: []),
            maxLineLength: 1 << 16, input: input, chargedUID: uid,
            dispatch: { [weak self] connection, _, _, descriptors in
                descriptors.closeAll()
                self?.dispatched[connection.id, default: 0] += 1
                return .result(reply)
            },
            onClose: { [weak self] connection in self?.closed.insert(connection.id) })
        try connection.start(on: loop)
        clients[id] = fds[0]
        connections[id] = connection
        return id
    }

    /// Sends `count` version requests on connection `id`, all at once.
    func send(_ count: Int, on id: UInt64) throws {
        let line = #"{"jsonrpc":"2.0","id":1,"method":"version"}"# + "\n"
        let bytes = Array(String(repeating: line, count: count).utf8)
        let sent = bytes.withUnsafeBytes { write(clients[id]!, $0.baseAddress, $0.count) }
        #expect(sent == bytes.count)
    }

    /// Reads whatever the client end of `id` has; returns the byte count.
    @discardableResult
    func drain(_ id: UInt64) -> Int {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var total = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(clients[id]!, $0.baseAddress, $0.count) }
            if n <= 0 { return total }
            total += n
        }
    }

    /// Runs the loop until `done` or until nothing has happened for a while.
    func run(until done: () -> Bool = { false }, maxIdle: Int = 20) throws {
        var idle = 0
        while !done(), idle < maxIdle {
            let before = progress
            _ = try loop.runOnce(timeoutMicroseconds: 10_000)
            idle = progress == before ? idle + 1 : 0
        }
    }

    var totalDispatched: Int { dispatched.values.reduce(0, +) }

    /// What changes when the loop gets something done.
    private var progress: [Int] {
        [totalDispatched, closed.count, input.unreadBytes.values.reduce(0, +), input.heldBytes.values.reduce(0, +)]
    }
}

@Suite("Limits: unread replies are bounded per person (connections.output-per-user)")
struct OutputBudgetTests {
    private let alice: uid_t = 61001
    private let bob: uid_t = 61002

    @Test func aPersonsConnectionsStopAtTheBudgetAndResumeWhenRead() throws {
        let budget = 64 << 10
        let harness = try PeopleHarness(budget: budget)
        let ids = try (0..<8).map { _ in try harness.open(as: alice) }
        for id in ids { try harness.send(100, on: id) }
        try harness.run()
        let unread = harness.input.unreadBytes[alice, default: 0]
        // Each of the 8 connections may overshoot by one reply, no more.
        #expect(unread >= budget)
        #expect(unread <= budget + 8 * 1100, "alice has \(unread) bytes unread, budget \(budget)")
        #expect(harness.totalDispatched < 800, "every request was handled: nothing held back")
        #expect(harness.input.isHeldBack(alice))
        #expect(harness.input.heldBackCount > 0)
        // A connection of hers that holds replies and takes none for write-timeout is
        // closed (connections.write-timeout), though under its own 1 MiB: one that
        // never reads cannot hold her others back for ever.
        let later = monotonicSeconds() + 100
        #expect(ids.contains { harness.connections[$0]!.queuedOutputBytes > 0 && harness.connections[$0]!.isStuckWriting(now: later, timeout: 45) })
        #expect(ids.allSatisfy { harness.connections[$0]!.queuedOutputBytes < Connection.maxQueuedOutput })
        // Lines we hold back are neither stalled nor idle.
        #expect(!ids.contains { harness.connections[$0]!.hasStalledLine(now: later, timeout: 45) })
        #expect(!ids.contains { harness.connections[$0]!.isIdle(now: later, timeout: 45) })

        // Someone else is served all the same.
        let other = try harness.open(as: bob)
        try harness.send(3, on: other)
        try harness.run(until: { harness.dispatched[other, default: 0] == 3 })
        #expect(harness.dispatched[other] == 3)
        var got = 0
        try harness.run(until: {
            got += harness.drain(other)
            return got >= 3 * 1000
        })
        #expect(got >= 3 * 1000, "bob got \(got) bytes of replies")

        // Alice reads: every connection of hers, held back or not, gets through all its requests.
        try harness.run(until: {
            for id in ids { harness.drain(id) }
            return ids.allSatisfy { harness.dispatched[$0, default: 0] == 100 }
        }, maxIdle: 200)
        for id in ids { #expect(harness.dispatched[id, default: 0] == 100, "connection \(id) was left held back") }
        try harness.run(until: {
            for id in ids { harness.drain(id) }
            return harness.input.unreadBytes[alice] == nil
        })
        #expect(harness.input.unreadBytes[alice] == nil)
        #expect(!harness.input.isHeldBack(alice))
        #expect(harness.input.heldBackCount == 0)
    }

    /// However a connection ends (its client hangs up, or the supervisor closes it), what it
    /// held is no longer charged: after many connections come and go the person owes nothing.
    @Test func closingConnectionsReturnsThePersonsChargeToZero() throws {
        let harness = try PeopleHarness(budget: 16 << 10)
        for round in 0..<5 {
            var ids: [UInt64] = []
            for _ in 0..<40 { ids.append(try harness.open(as: alice)) }
            for (index, id) in ids.enumerated() {
                try harness.send(20, on: id)
                // Some also leave half a line.
                if index % 3 == 0 {
                    _ = write(harness.clients[id]!, "{\"jsonrpc\"", 10)
                }
            }
            try harness.run()
            #expect(harness.input.isHeldBack(alice), "round \(round): the budget was never reached")
            for (index, id) in ids.enumerated() {
                if index % 2 == 0 {
                    close(harness.clients.removeValue(forKey: id)!)
                } else {
                    harness.connections[id]!.close()
                }
            }
            try harness.run(until: { ids.allSatisfy { harness.closed.contains($0) } })
            #expect(ids.allSatisfy { harness.closed.contains($0) })
            for id in ids {
                harness.connections[id] = nil
                if let fd = harness.clients.removeValue(forKey: id) { close(fd) }
            }
            #expect(harness.input.unreadBytes.isEmpty, "round \(round): \(harness.input.unreadBytes) still charged")
            #expect(harness.input.heldBytes.isEmpty, "round \(round): \(harness.input.heldBytes) of requests still charged")
            #expect(!harness.input.isHeldBack(alice))
            #expect(harness.input.heldBackCount == 0)
        }
    }

    @Test func theBudgetIsReadAndCanBeRaisedOnReload() throws {
        let path = "/etc/nsgroup/nsgroupd.conf"
        #expect(Policy.defaults().outputPerUser == 4 << 20)
        #expect(try PolicyFile.parse("[connections]\noutput-per-user = 4194304\n", path: path) == Policy.defaults())
        #expect(try PolicyFile.parse("[connections]\noutput-per-user = 1048576\n", path: path).outputPerUser == 1 << 20)
        do throws(SupervisorError) {
            let policy = try PolicyFile.parse("[connections]\noutput-per-user = 100\n", path: path)
            Issue.record("accepted as \(policy)")
        } catch {
            #expect(error.message == #"connections.output-per-user: "100" is not a whole number from 1024 to 1073741824"#)
        }

        // A person held back is let go at once when the budget is raised past what they hold.
        let harness = try PeopleHarness(budget: 16 << 10)
        let id = try harness.open(as: alice)
        let second = try harness.open(as: alice)
        try harness.send(40, on: id)
        try harness.send(40, on: second)
        try harness.run()
        #expect(harness.input.isHeldBack(alice))
        let before = harness.totalDispatched
        harness.input.setOutputBudget(1 << 20)
        #expect(!harness.input.isHeldBack(alice))
        try harness.run(until: { harness.totalDispatched > before })
        #expect(harness.totalDispatched > before, "raising the budget did not resume alice's connections")
    }
}
