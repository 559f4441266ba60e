import Testing
import Glibc
@testable import Supervisor
import POSIX
import RPC
import Systemd

// MARK: - Configuration

@Suite("Limits: the [connections] keys that bound one person")
struct ConnectionLimitKeyTests {
    private let path = "/etc/nsgroup/nsgroupd.conf"

    @Test func defaultsFollowMaxAndMaxLine() throws {
        let defaults = Policy.defaults()
        #expect(defaults.reservedConnections == 16)
        #expect(defaults.bufferBudget == 4 << 20)
        // Unset, the reservation scales with max (a tiny max reserves nothing) and the
        // budget never falls below one line.
        let small = try PolicyFile.parse("[connections]\nmax = 4\nmax-line = 8388608\n", path: path)
        #expect(small.reservedConnections == 0)
        #expect(small.bufferBudget == 8 << 20)
    }

    @Test func theKeysAreRead() throws {
        let policy = try PolicyFile.parse("[connections]\nmax = 100\nreserved-for-admins = 10\nbuffer-per-user = 2097152\n", path: path)
        #expect(policy.reservedConnections == 10)
        #expect(policy.bufferBudget == 2 << 20)
        // Policies compare by what they enforce: the documented default written out is the default.
        #expect(try PolicyFile.parse("[connections]\nreserved-for-admins = 16\nbuffer-per-user = 4194304\n", path: path) == Policy.defaults())
        #expect(try PolicyFile.parse("[connections]\nreserved-for-admins = 15\n", path: path) != Policy.defaults())
    }

    @Test(arguments: [
        ("[connections]\nmax = 8\nreserved-for-admins = 8\n", 3,
         "connections.reserved-for-admins (8) must be less than connections.max (8): nobody else could connect"),
        ("[connections]\nreserved-for-admins = 9\n[connections]\nmax = 9\n", 2,
         "connections.reserved-for-admins (9) must be less than connections.max (9): nobody else could connect"),
        ("[connections]\nbuffer-per-user = 65536\n", 2,
         "connections.buffer-per-user (65536) must be at least connections.max-line (1048576): one request line would not fit"),
        ("[connections]\nbuffer-per-user = 1000\n", 2,
         #"connections.buffer-per-user: "1000" is not a whole number from 1024 to 1073741824"#),
    ])
    func inconsistentValuesAreRefused(_ text: String, _ line: Int, _ message: String) throws {
        do throws(SupervisorError) {
            let policy = try PolicyFile.parse(text, path: path)
            Issue.record("accepted as \(policy)")
        } catch {
            #expect(error.kind == .configuration(path: path, line: line))
            #expect(error.message == message)
        }
    }
}

// MARK: - Subordinate uids

@Suite("Limits: subordinate uids are charged to the owner of their range")
struct SubordinateOwnersTests {
    private func writeFile(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ScratchError("open \(path)") }
        defer { close(fd) }
        _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    @Test func rangesMapToTheirOwnersByNameOrNumber() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path + "/subuid"
        let root = try #require(UserDatabase.user(uid: 0))
        let daemon = try #require(UserDatabase.user(named: "daemon"))
        try writeFile(path, """
            daemon:100000:65536
            # a comment, and junk
            nobody-such-user-here:200000:10
            0:300000:100
            \(daemon.uid):100100:5
            bad:line
            daemon:1:0
            """)
        let owners = SubordinateOwners(path: path)
        #expect(owners.owner(of: 100_000) == .init(uid: daemon.uid, name: "daemon"))
        #expect(owners.owner(of: 165_535) == .init(uid: daemon.uid, name: "daemon"))
        #expect(owners.owner(of: 165_536) == nil)
        #expect(owners.owner(of: 99_999) == nil)
        #expect(owners.owner(of: 200_005) == nil, "an owner nobody resolves charges nobody")
        #expect(owners.owner(of: 300_050) == .init(uid: 0, name: root.name))
        #expect(owners.owner(of: 0) == nil, "root is never charged to anyone")
        #expect(owners.chargedUID(100_007) == daemon.uid)
        #expect(owners.chargedUID(1234) == 1234)
    }

    @Test func aRangeCoveringItsOwnersUIDDoesNotReassignTheOwner() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path + "/subuid"
        let daemon = try #require(UserDatabase.user(named: "daemon"))
        try writeFile(path, "daemon:\(daemon.uid):10\n")
        let owners = SubordinateOwners(path: path)
        #expect(owners.owner(of: daemon.uid) == nil)
        #expect(owners.owner(of: daemon.uid + 1)?.uid == daemon.uid)
    }

    @Test func theFileIsReadAgainWhenItChangesOrOnReload() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path + "/subuid"
        let owners = SubordinateOwners(path: path)  // missing: nobody has ranges
        #expect(owners.owner(of: 100_000) == nil)
        try writeFile(path, "daemon:100000:10\n")
        #expect(owners.owner(of: 100_000) == nil, "not re-read until asked")
        owners.refreshIfChanged()
        #expect(owners.owner(of: 100_000)?.name == "daemon")
        // A rename over it (as shadow-utils writes it) is seen too.
        try writeFile(path + ".new", "bin:100000:10\n")
        #expect(rename(path + ".new", path) == 0)
        owners.refreshIfChanged()
        #expect(owners.owner(of: 100_000)?.name == "bin")
        unlink(path)
        owners.reload()
        #expect(owners.owner(of: 100_000) == nil)
    }
}

// MARK: - Connections

/// A Connection on a socket pair, with its own ConnectionInput and a budget check.
private final class BudgetHarness {
    let loop: EventLoop
    var client: Int32
    let connection: Connection
    var closed = false
    var refusedAt: Int?

    init(input: ConnectionInput, uid: uid_t, budget: Int, dispatched: @escaping (String) -> Void = { _ in }) throws {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw ScratchError("socketpair")
        }
        client = fds[0]
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        loop = try EventLoop()
        var onClose: (() -> Void)?
        var onRefuse: ((Int) -> Void)?
        connection = Connection(
            id: 1, socket: FileDescriptor(adopting: fds[1]),
            peer: PeerCredentials(pid: getpid(), uid: uid, gid: 0, groups: []),
            maxLineLength: 1 << 16, input: input, chargedUID: 4242,
            budgetCheck: { _, held in
                guard held > budget else { return nil }
                onRefuse?(held)
                return RPCError(.limitExceeded, "over")
            },
            dispatch: { _, request, _, descriptors in
                descriptors.closeAll()
                dispatched(request.method)
                return .result(.object([:]))
            },
            onClose: { _ in onClose?() })
        onClose = { [weak self] in self?.closed = true }
        onRefuse = { [weak self] held in self?.refusedAt = held }
        try connection.start(on: loop)
    }

    deinit {
        connection.close()
        if client >= 0 { close(client) }
    }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(client, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { return }
            offset += n
        }
    }

    func spin(_ rounds: Int = 20) throws {
        for _ in 0..<rounds { _ = try loop.runOnce(timeoutMicroseconds: 2_000) }
    }
}

@Suite("Limits: buffered request bytes are charged to the person, and unfinished lines time out")
struct ConnectionBudgetTests {
    @Test func unfinishedBytesAreChargedAcrossConnectionsAndGivenBackOnClose() throws {
        let input = ConnectionInput()
        let one = try BudgetHarness(input: input, uid: 100_001, budget: 100_000)
        let two = try BudgetHarness(input: input, uid: 100_002, budget: 100_000)
        one.send(Array(repeating: UInt8(ascii: "a"), count: 40_000))
        try one.spin()
        two.send(Array(repeating: UInt8(ascii: "b"), count: 40_000))
        try two.spin()
        #expect(input.heldBytes[4242] == 80_000, "both connections charge the one person")
        #expect(one.connection.bufferedRequestBytes == 40_000)
        // Finishing a line gives its bytes back.
        one.send(Array("\n".utf8))
        try one.spin()
        #expect(input.heldBytes[4242] == 40_000)
        // Going over the budget closes the connection that went over, and drops its bytes.
        two.send(Array(repeating: UInt8(ascii: "b"), count: 61_000))
        try two.spin(60)
        #expect(two.refusedAt.map { $0 > 100_000 } == true)
        #expect(two.closed)
        #expect(input.heldBytes[4242] == nil)
        #expect(!one.closed)
    }

    @Test func aLineUnfinishedForTheTimeoutIsStalledWhateverTheConnectionIs() throws {
        let input = ConnectionInput()
        let harness = try BudgetHarness(input: input, uid: 1000, budget: 1 << 20)
        let now = monotonicSeconds()
        #expect(!harness.connection.hasStalledLine(now: now + 100, timeout: 1), "nothing unfinished")
        harness.send(Array(#"{"jsonrpc":"2.0","id":1,"method":"list"}"#.utf8) + [0x0A] + Array(#"{"jsonrpc":"#.utf8))
        try harness.spin()
        #expect(!harness.connection.hasStalledLine(now: monotonicSeconds(), timeout: 1))
        #expect(harness.connection.hasStalledLine(now: monotonicSeconds() + 1.5, timeout: 1))
        // Its end arrives: nothing is unfinished any more.
        harness.send(Array(#""2.0","id":2,"method":"list"}"#.utf8) + [0x0A])
        try harness.spin()
        #expect(!harness.connection.hasStalledLine(now: monotonicSeconds() + 100, timeout: 1))
    }

    /// Two connections on two loops on two threads, as two supervisors in one test
    /// process: each must get exactly its own bytes (the receive buffer was one static
    /// shared by all).
    @Test func connectionsOnTwoLoopsDoNotShareAReceiveBuffer() async throws {
        let lines = 2_000
        func run(_ marker: UInt8) throws -> Int {
            var wrong = 0
            var seen = 0
            let harness = try BudgetHarness(input: ConnectionInput(), uid: 1000, budget: 64 << 20) { method in
                seen += 1
                if method != String(repeating: String(UnicodeScalar(marker)), count: 1000) { wrong += 1 }
            }
            let line = Array(#"{"jsonrpc":"2.0","id":1,"method":""#.utf8) + [UInt8](repeating: marker, count: 1000)
                + Array(#""}"#.utf8) + [0x0A]
            var sent = 0
            while seen < lines {
                if sent < lines { harness.send(line); sent += 1 }
                _ = try harness.loop.runOnce(timeoutMicroseconds: 1_000)
            }
            return wrong
        }
        async let a = Task.detached { try run(UInt8(ascii: "a")) }.value
        async let b = Task.detached { try run(UInt8(ascii: "b")) }.value
        let (wrongA, wrongB) = try await (a, b)
        #expect(wrongA == 0 && wrongB == 0)
    }
}
