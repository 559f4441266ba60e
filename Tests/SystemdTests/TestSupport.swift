import Glibc
import POSIX
import Systemd

/// Small helpers shared by the tests.
enum TestSupport {
    /// The exit code a guarded run returns when its safety timeout fired.
    static let timedOut: Int32 = 124

    /// Runs `loop` until something calls `exit(code:)`, or returns `timedOut` after `timeoutMicroseconds`
    /// so that a broken test fails instead of hanging.
    static func runGuarded(_ loop: EventLoop, timeoutMicroseconds: UInt64 = 2_000_000) throws -> Int32 {
        let guardTimer = try loop.addRepeatingTimer(everyMicroseconds: timeoutMicroseconds) { [unowned loop] in
            loop.exit(code: timedOut)
        }
        let code = try loop.run()
        guardTimer.cancel()
        return code
    }

    /// Runs single iterations of `loop` (each waiting at most 10 ms) until `done()` or the time is up.
    static func iterate(_ loop: EventLoop, forMicroseconds total: UInt64, until done: () -> Bool = { false }) throws {
        let end = monotonicMicroseconds() + total
        while !done(), monotonicMicroseconds() < end {
            guard try loop.runOnce(timeoutMicroseconds: 10_000) else { return }
        }
    }

    static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }

    /// A pipe, both ends close-on-exec.
    static func makePipe() -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        let r = pipe(&fds)
        precondition(r == 0, "pipe failed")
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }

    /// A connected AF_UNIX socket pair of the given type, both ends close-on-exec.
    static func makeSocketPair(type: Int32 = Int32(SOCK_STREAM.rawValue)) -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        let r = socketpair(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        precondition(r == 0, "socketpair failed")
        return (fds[0], fds[1])
    }

    @discardableResult
    static func writeString(_ fd: Int32, _ text: String) -> Int {
        Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Reads what is available without blocking (the fd must be non-blocking or have data).
    static func readAvailable(_ fd: Int32, flags: Int32 = Int32(MSG_DONTWAIT)) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, flags) }
        guard n >= 0 else { return nil }
        return Array(buffer[0..<n])
    }

    /// A unique path for a temporary socket.
    static func temporarySocketPath(_ tag: String) -> String {
        "/tmp/nsgroup-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
    }

    /// Binds an AF_UNIX socket of `type` at `path` (close-on-exec); listens if it is a stream socket.
    static func bindUnixSocket(path: String, type: Int32, listen shouldListen: Bool = false) -> Int32 {
        let fd = socket(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        precondition(fd >= 0, "socket failed")
        let r = try? UnixSocket.withAddress(path) { bind(fd, $0, $1) }
        precondition(r == 0, "bind \(path) failed: errno \(errno)")
        if shouldListen { precondition(listen(fd, 4) == 0, "listen failed") }
        return fd
    }
}
