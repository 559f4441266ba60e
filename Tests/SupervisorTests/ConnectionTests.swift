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
            onClose: { _ in onClose?() })
        record = { [weak self] id, method, inodes in self?.dispatched.append((id, method, inodes)) }
        onClose = { [weak self] in self?.closed = true }
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
