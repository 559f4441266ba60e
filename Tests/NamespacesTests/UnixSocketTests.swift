import Testing
import Glibc
import Namespaces
import POSIX

/// A connected AF_UNIX stream pair, closed when the value goes away.
private final class SocketPair {
    var a: Int32 = -1
    var b: Int32 = -1

    init() throws {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw Sys.errnoText("socketpair")
        }
        (a, b) = (fds[0], fds[1])
    }

    deinit {
        Sys.closeQuietly(&a)
        Sys.closeQuietly(&b)
    }
}

/// sendmsg with any number of descriptors, written here without CSpawn so
/// that the receiving side can be given more than nsgroup ever sends.
private func sendRaw(_ socket: Int32, _ payload: [UInt8], descriptors: [Int32]) -> Int {
    let header = MemoryLayout<cmsghdr>.size
    let dataLength = descriptors.count * MemoryLayout<Int32>.size
    let space = header + ((dataLength + MemoryLayout<Int>.size - 1) & ~(MemoryLayout<Int>.size - 1))
    var control = [UInt8](repeating: 0, count: space)
    control.withUnsafeMutableBytes { raw in
        var h = cmsghdr()
        h.cmsg_len = header + dataLength
        h.cmsg_level = SOL_SOCKET
        h.cmsg_type = Int32(SCM_RIGHTS)
        raw.storeBytes(of: h, as: cmsghdr.self)
        for (i, fd) in descriptors.enumerated() {
            raw.storeBytes(of: fd, toByteOffset: header + i * MemoryLayout<Int32>.size, as: Int32.self)
        }
    }
    var bytes = payload
    return bytes.withUnsafeMutableBytes { data in
        control.withUnsafeMutableBytes { controlBytes in
            var iov = iovec(iov_base: data.baseAddress, iov_len: data.count)
            return withUnsafeMutablePointer(to: &iov) { iovPointer in
                var message = msghdr()
                message.msg_iov = iovPointer
                message.msg_iovlen = 1
                message.msg_control = controlBytes.baseAddress
                message.msg_controllen = controlBytes.count
                return sendmsg(socket, &message, 0)
            }
        }
    }
}

private func receive(_ socket: Int32, capacity: Int = 4096) throws -> (bytes: [UInt8], received: UnixSocket.Received) {
    var buffer = [UInt8](repeating: 0, count: capacity)
    let received = try buffer.withUnsafeMutableBytes { try UnixSocket.receive(socket, into: $0) }
    return (Array(buffer[0..<received.count]), received)
}

private func send(_ socket: Int32, _ text: String, descriptors: [Int32] = []) throws -> Int {
    try Array(text.utf8).withUnsafeBytes { try UnixSocket.send(socket, $0, descriptors: descriptors) }
}

/// Opens a few distinct files to pass around; closed by the caller.
private func openFiles(_ count: Int) throws -> [Int32] {
    let candidates = ["/dev/null", "/proc/self/status", "/etc/passwd", "/etc/group", "/bin/sh", "/dev/zero", "/proc/version", "/etc/hostname", "/"]
    var fds: [Int32] = []
    for i in 0..<count {
        let fd = open(candidates[i % candidates.count], O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Sys.errnoText("open") }
        fds.append(fd)
    }
    return fds
}

private func sameFile(_ x: Int32, _ y: Int32) -> Bool {
    guard let a = Sys.statFD(x), let b = Sys.statFD(y) else { return false }
    return a.st_ino == b.st_ino && a.st_dev == b.st_dev
}

@Suite("UnixSocket and PeerCredentials")
struct UnixSocketTests {
    @Test func bytesAndDescriptorsCrossASocketPair() throws {
        let pair = try SocketPair()
        let files = try openFiles(3)
        defer { for fd in files { close(fd) } }
        #expect(try send(pair.a, "hello\n", descriptors: files) == 6)
        let (bytes, received) = try receive(pair.b)
        defer { for fd in received.descriptors { close(fd) } }
        #expect(bytes == Array("hello\n".utf8))
        #expect(!received.truncated)
        try #require(received.descriptors.count == 3)
        for (sent, got) in zip(files, received.descriptors) {
            #expect(got != sent, "a new descriptor number in the receiver")
            #expect(sameFile(sent, got), "received fd \(got) is not the file sent as \(sent)")
            #expect(fcntl(got, F_GETFD) & FD_CLOEXEC != 0, "received descriptors are close-on-exec")
        }
    }

    @Test func exactlyTheMaximumArrivesWhole() throws {
        #expect(UnixSocket.maxDescriptors == 8)
        let pair = try SocketPair()
        let files = try openFiles(UnixSocket.maxDescriptors)
        defer { for fd in files { close(fd) } }
        _ = try send(pair.a, "x", descriptors: files)
        let (_, received) = try receive(pair.b)
        defer { for fd in received.descriptors { close(fd) } }
        #expect(received.descriptors.count == 8)
        #expect(!received.truncated)
        for (sent, got) in zip(files, received.descriptors) { #expect(sameFile(sent, got)) }
    }

    @Test func senderRefusesMoreThanTheMaximum() throws {
        let pair = try SocketPair()
        let files = try openFiles(UnixSocket.maxDescriptors + 1)
        defer { for fd in files { close(fd) } }
        #expect(throws: Errno.invalidArgument) { _ = try send(pair.a, "x", descriptors: files) }
    }

    @Test(arguments: [9, 12, 40])
    func moreThanTheMaximumIsTruncated(_ count: Int) throws {
        let pair = try SocketPair()
        let files = try openFiles(count)
        defer { for fd in files { close(fd) } }
        #expect(sendRaw(pair.a, Array("many\n".utf8), descriptors: files) == 5)
        let (bytes, received) = try receive(pair.b)
        defer { for fd in received.descriptors { close(fd) } }
        #expect(bytes == Array("many\n".utf8))
        #expect(received.truncated)
        #expect(received.descriptors.count <= UnixSocket.maxDescriptors)
        // Every one that did arrive is real, open and the file that was sent in its place.
        for (sent, got) in zip(files, received.descriptors) { #expect(sameFile(sent, got)) }
    }

    /// The kernel may glue bytes sent earlier without descriptors in front of
    /// a message that carries some (unix_stream_read_generic only stops
    /// *after* the message with the descriptors). What it does guarantee is
    /// that the descriptors come with the receive holding their message's
    /// first byte, and never with an earlier receive.
    @Test func descriptorsComeWithTheFirstByteOfTheirMessage() throws {
        let pair = try SocketPair()
        let files = try openFiles(2)
        defer { for fd in files { close(fd) } }
        _ = try send(pair.a, "plain")
        _ = try send(pair.a, "with", descriptors: [files[1]])
        _ = try send(pair.a, "after")
        Sys.closeQuietly(&pair.a)
        var stream: [UInt8] = []
        var batches: [(start: Int, end: Int, descriptors: [Int32])] = []
        while true {
            let (bytes, received) = try receive(pair.b)
            if received.count == 0 { break }
            batches.append((stream.count, stream.count + bytes.count, received.descriptors))
            stream += bytes
        }
        defer { for batch in batches { for fd in batch.descriptors { close(fd) } } }
        #expect(stream == Array("plainwithafter".utf8))
        let withStart = "plain".utf8.count
        let carrying = batches.filter { !$0.descriptors.isEmpty }
        #expect(carrying.count == 1)
        if let batch = carrying.first {
            #expect(batch.start <= withStart && withStart < batch.end, "descriptors came with bytes \(batch.start)..<\(batch.end)")
            #expect(batch.descriptors.count == 1)
            #expect(batch.descriptors.first.map { sameFile($0, files[1]) } == true)
        }
    }

    @Test func peerCloseReadsAsZero() throws {
        let pair = try SocketPair()
        _ = try send(pair.a, "last")
        Sys.closeQuietly(&pair.a)
        #expect(try receive(pair.b).bytes == Array("last".utf8))
        let (_, end) = try receive(pair.b)
        #expect(end.count == 0)
        #expect(end.descriptors.isEmpty)
        #expect(!end.truncated)
    }

    @Test func sendingToAClosedPeerIsAnErrorNotASignal() throws {
        let pair = try SocketPair()
        Sys.closeQuietly(&pair.b)
        #expect(throws: Errno(rawValue: EPIPE)) { _ = try send(pair.a, "anyone?") }
    }

    // MARK: listen / connect / accept

    @Test func listenConnectAccept() throws {
        let directory = try Sys.makeTemporaryDirectory("nsg-unit-sock")
        defer { Sys.removeTree(directory) }
        let path = directory + "/s"
        let listener = try UnixSocket.listen(path: path)
        #expect(fcntl(listener.rawValue, F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(listener.rawValue, F_GETFD) & FD_CLOEXEC != 0)
        #expect(Sys.statPath(path).map { $0.st_mode & S_IFMT == S_IFSOCK } == true)

        if try UnixSocket.accept(listener.rawValue) != nil {
            Issue.record("accepted a connection before anyone connected")
        }

        let client = try UnixSocket.connect(path: path)
        #expect(fcntl(client.rawValue, F_GETFL) & O_NONBLOCK == 0, "the client side blocks")
        guard let accepted = try UnixSocket.accept(listener.rawValue) else {
            Issue.record("the connection was not there to accept")
            return
        }
        let server = accepted.rawValue
        #expect(fcntl(server, F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(server, F_GETFD) & FD_CLOEXEC != 0)

        let files = try openFiles(1)
        defer { for fd in files { close(fd) } }
        _ = try send(client.rawValue, "{}\n", descriptors: files)
        #expect(Sys.waitReadable(server))
        let (bytes, received) = try receive(server)
        defer { for fd in received.descriptors { close(fd) } }
        #expect(bytes == Array("{}\n".utf8))
        #expect(received.descriptors.count == 1)
        #expect(received.descriptors.first.map { sameFile($0, files[0]) } == true)

        // The accepted side is non-blocking: an empty socket says EAGAIN.
        #expect(throws: Errno.wouldBlock) { _ = try receive(server) }

        let credentials = try PeerCredentials.of(socket: server)
        #expect(credentials.pid == getpid())
        #expect(credentials.uid == getuid())
        #expect(credentials.gid == getgid())
        // All three stay open until here.
        #expect(listener.rawValue >= 0 && client.rawValue >= 0 && accepted.rawValue >= 0)
    }

    @Test func listenOnAnExistingPathFails() throws {
        let directory = try Sys.makeTemporaryDirectory("nsg-unit-sock")
        defer { Sys.removeTree(directory) }
        let path = directory + "/s"
        let first = try UnixSocket.listen(path: path)
        #expect(throws: Errno(rawValue: EADDRINUSE)) { _ = try UnixSocket.listen(path: path) }
        #expect(first.rawValue >= 0)
    }

    @Test func connectToNothingFails() throws {
        let directory = try Sys.makeTemporaryDirectory("nsg-unit-sock")
        defer { Sys.removeTree(directory) }
        #expect(throws: Errno.noSuchFileOrDirectory) { _ = try UnixSocket.connect(path: directory + "/none") }
        // A file that is not a socket.
        let file = directory + "/file"
        let fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
        close(fd)
        #expect(throws: Errno(rawValue: ECONNREFUSED)) { _ = try UnixSocket.connect(path: file) }
    }

    @Test func pathsThatDoNotFitAreRefused() throws {
        // sun_path holds 108 bytes including the terminating NUL.
        let directory = try Sys.makeTemporaryDirectory("nsg-unit-sock")
        defer { Sys.removeTree(directory) }
        let fits = directory + "/" + String(repeating: "p", count: 107 - directory.utf8.count - 1)
        #expect(fits.utf8.count == 107)
        let listener = try UnixSocket.listen(path: fits)
        let client = try UnixSocket.connect(path: fits)
        #expect(listener.rawValue >= 0 && client.rawValue >= 0)
        let tooLong = fits + "q"
        #expect(throws: Errno(rawValue: ENAMETOOLONG)) { _ = try UnixSocket.listen(path: tooLong) }
        #expect(throws: Errno(rawValue: ENAMETOOLONG)) { _ = try UnixSocket.connect(path: tooLong) }
        #expect(throws: Errno(rawValue: ENAMETOOLONG)) { _ = try UnixSocket.listen(path: "") }
        #expect(throws: Errno(rawValue: ENAMETOOLONG)) { _ = try UnixSocket.connect(path: "a\0b") }
    }

    // MARK: credentials

    @Test func peerCredentialsOfASocketPairAreOurs() throws {
        let pair = try SocketPair()
        let credentials = try PeerCredentials.of(socket: pair.b)
        #expect(credentials.pid == getpid())
        #expect(credentials.uid == getuid())
        #expect(credentials.gid == getgid())
        let count = getgroups(0, nil)
        var groups = [gid_t](repeating: 0, count: Int(max(count, 0)))
        #expect(getgroups(count, &groups) == count)
        #expect(credentials.groups.sorted() == groups.sorted())
        #expect(credentials.isMember(of: getgid()))
        for group in groups { #expect(credentials.isMember(of: group)) }
    }

    @Test func peerCredentialsOfSomethingThatIsNotASocketFail() throws {
        let (readEnd, writeEnd) = try Sys.pipe()
        defer { close(readEnd); close(writeEnd) }
        #expect(throws: Errno(rawValue: ENOTSOCK)) { _ = try PeerCredentials.of(socket: readEnd) }
    }

    @Test func isMember() {
        let credentials = PeerCredentials(pid: 1, uid: 1000, gid: 100, groups: [27, 44])
        #expect(credentials.isMember(of: 100))
        #expect(credentials.isMember(of: 27))
        #expect(credentials.isMember(of: 44))
        #expect(!credentials.isMember(of: 0))
        #expect(!credentials.isMember(of: 1000))
    }
}
