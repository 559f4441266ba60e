import Testing
import Glibc
@testable import Supervisor
import POSIX
import RPC
import Systemd

/// A Connection on one end of a real socket pair, driven by a real sd-event loop.
private final class ConnectionHarness {
    let loop: EventLoop
    var client: Int32
    let connection: Connection
    /// Each dispatched request: its id and the descriptors that came with it (inode of each).
    var dispatched: [(id: RequestID?, method: String, inodes: [UInt64])] = []
    /// The reason of each line the connection reported as not a request (refuseLine).
    var refusedLines: [ErrorReason] = []
    var closed = false

    init() throws {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw ScratchError("socketpair: \(String(cString: strerror(errno)))")
        }
        client = fds[0]
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        loop = try EventLoop()
        var record: ((RequestID?, String, [UInt64]) -> Void)?
        var onClose: (() -> Void)?
        var refused: ((ErrorReason) -> Void)?
        connection = Connection(
            id: 1, socket: FileDescriptor(adopting: fds[1]),
            peer: PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid(), groups: []),
            maxLineLength: 1 << 16,
            dispatch: { _, request, _, descriptors in
                let inodes = descriptors.rawValues.map { fd -> UInt64 in
                    var st = stat()
                    return fstat(fd, &st) == 0 ? UInt64(st.st_ino) : 0
                }
                record?(request.id, request.method, inodes)
                descriptors.closeAll()
                return .result(.object([:]))
            },
            refuseLine: { _, error in refused?(error.reason) },
            onClose: { _ in onClose?() })
        record = { [weak self] id, method, inodes in self?.dispatched.append((id, method, inodes)) }
        onClose = { [weak self] in self?.closed = true }
        refused = { [weak self] reason in self?.refusedLines.append(reason) }
        try connection.start(on: loop)
    }

    deinit {
        connection.close()
        if client >= 0 { close(client) }
    }

    func send(_ line: String, descriptors: [Int32] = []) throws {
        let sent = try Array(line.utf8).withUnsafeBytes { try UnixSocket.send(client, $0, descriptors: descriptors) }
        #expect(sent == line.utf8.count)
    }

    /// Runs the loop until `count` requests were dispatched (or it stops making progress).
    func run(untilDispatched count: Int) throws {
        var idle = 0
        while dispatched.count < count, !closed, idle < 6000 {
            let before = dispatched.count
            _ = try loop.runOnce(timeoutMicroseconds: 10_000)
            idle = dispatched.count == before ? idle + 1 : 0
        }
    }
}

private func inode(_ fd: Int32) -> UInt64 {
    var st = stat()
    return fstat(fd, &st) == 0 ? UInt64(st.st_ino) : 0
}

@Suite("Connection: descriptors reach the request that carried them")
struct ConnectionDescriptorTests {
    @Test func requestsAreDispatchedInOrderWithTheirDescriptors() throws {
        let harness = try ConnectionHarness()
        let file = open("/etc/passwd", O_RDONLY | O_CLOEXEC)
        try #require(file >= 0)
        defer { close(file) }
        // One at a time: the connection reads each before the next is sent.
        try harness.send(#"{"jsonrpc":"2.0","id":1,"method":"list"}"# + "\n")
        try harness.run(untilDispatched: 1)
        try harness.send(#"{"jsonrpc":"2.0","id":2,"method":"enter","params":{"name":"g","tty":false}}"# + "\n", descriptors: [file, file, file])
        try harness.run(untilDispatched: 2)
        #expect(harness.dispatched.map(\.id) == [.number(JSONNumber(1)), .number(JSONNumber(2))])
        #expect(harness.dispatched.map(\.inodes) == [[], Array(repeating: inode(file), count: 3)])
    }

    /// A client that pipelines: a request without descriptors, then (in its own
    /// sendmsg holding exactly that line, as the protocol asks) one
    /// with. The supervisor reads both in one receive; the kernel hands the
    /// descriptors over with that receive. They belong to the second request.
    @Test func pipelinedRequestKeepsItsDescriptors() throws {
        let harness = try ConnectionHarness()
        let file = open("/etc/passwd", O_RDONLY | O_CLOEXEC)
        try #require(file >= 0)
        defer { close(file) }
        try harness.send(#"{"jsonrpc":"2.0","id":1,"method":"list"}"# + "\n")
        try harness.send(#"{"jsonrpc":"2.0","id":2,"method":"enter","params":{"name":"g","tty":false}}"# + "\n", descriptors: [file, file, file])
        try harness.run(untilDispatched: 2)
        #expect(harness.dispatched.map(\.id) == [.number(JSONNumber(1)), .number(JSONNumber(2))])
        #expect(harness.dispatched.first?.inodes == [], "the descriptors went to request 1, which did not carry them")
        #expect(harness.dispatched.last?.inodes == Array(repeating: inode(file), count: 3), "request 2 lost the descriptors it carried")
    }
}

@Suite("Connection: lines that are not requests are reported for the journal")
struct ConnectionLineRefusalTests {
    @Test func undecodableLinesAreReportedAndRequestsAreNot() throws {
        let harness = try ConnectionHarness()
        try harness.send("{not json\n")
        try harness.send("[1,2]\n")
        try harness.send(#"{"jsonrpc":"1.0","id":7,"method":"list"}"# + "\n")
        try harness.send(#"{"jsonrpc":"2.0","method":"list","params":[1]}"# + "\n")  // a notification: not answered
        try harness.send("  \t\n")  // blank: neither answered nor refused
        try harness.send(#"{"jsonrpc":"2.0","id":1,"method":"nope"}"# + "\n")  // a request: dispatched, not a line refusal
        try harness.run(untilDispatched: 1)
        #expect(harness.refusedLines == [.parseError, .invalidRequest, .invalidRequest, .invalidParams])
        #expect(harness.dispatched.map(\.method) == ["nope"])
    }

    @Test func aLineTooLongIsReported() throws {
        let harness = try ConnectionHarness()
        let long = [UInt8](repeating: UInt8(ascii: "x"), count: (1 << 16) + 100)
        // Sent as far as the socket takes it, while the loop reads.
        var sent = 0
        var turns = 0
        while !harness.closed, harness.refusedLines.isEmpty, turns < 3000 {
            if sent < long.count {
                let n = long[sent...].withUnsafeBytes {
                    Glibc.send(harness.client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                }
                if n > 0 { sent += n }
            }
            _ = try harness.loop.runOnce(timeoutMicroseconds: 10_000)
            turns += 1
        }
        #expect(harness.refusedLines == [.lineTooLong])
    }
}
