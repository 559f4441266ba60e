import Glibc
import Testing
import Systemd

/// Everything that reads the service manager's environment variables. The environment is
/// process-global, so these tests run one at a time and restore every variable they touch.
@Suite("Service manager", .serialized)
struct ServiceManagerTests {
    /// Sets (or, for nil, unsets) environment variables around `body`, then restores them.
    static func withEnvironment<T>(_ values: [String: String?], _ body: () throws -> T) rethrows -> T {
        var saved: [String: String?] = [:]
        for (name, value) in values {
            saved[name] = getenv(name).map { String(cString: $0) }
            if let value { setenv(name, value, 1) } else { unsetenv(name) }
        }
        defer {
            for (name, value) in saved {
                if let value { setenv(name, value, 1) } else { unsetenv(name) }
            }
        }
        return try body()
    }

    /// A bound AF_UNIX datagram socket playing the service manager's notify socket.
    struct NotifySocket: ~Copyable {
        let path = TestSupport.temporarySocketPath("notify")
        let fd: Int32

        init() {
            fd = TestSupport.bindUnixSocket(path: path, type: Int32(SOCK_DGRAM.rawValue))
        }

        deinit {
            close(fd)
            unlink(path)
        }

        /// The next datagram, waiting at most `timeoutMilliseconds`.
        func receive(timeoutMilliseconds: Int32 = 0) -> String? {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, timeoutMilliseconds) == 1,
                  let bytes = TestSupport.readAvailable(fd) else { return nil }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    @Test func notifyWithoutSocketSendsNothing() {
        Self.withEnvironment(["NOTIFY_SOCKET": nil]) {
            #expect(ServiceManager.notify("READY=1") == false)
        }
    }

    @Test func readyStatusAndStoppingReachTheNotifySocket() {
        let socket = NotifySocket()
        Self.withEnvironment(["NOTIFY_SOCKET": socket.path]) {
            ServiceManager.ready(status: "serving 3 groups")
            #expect(socket.receive() == "READY=1\nSTATUS=serving 3 groups")
            ServiceManager.status("reloading\nconfiguration")
            #expect(socket.receive() == "STATUS=reloading configuration", "a newline cannot split the status")
            ServiceManager.stopping()
            #expect(socket.receive() == "STOPPING=1")
            #expect(ServiceManager.notify("EXTEND_TIMEOUT_USEC=1000000"))
            #expect(socket.receive() == "EXTEND_TIMEOUT_USEC=1000000")
            #expect(socket.receive() == nil)
        }
    }

    /// NOTIFY_SOCKET may name a socket in the abstract namespace ("@name"), as systemd's own does.
    @Test func anAbstractNotifySocketIsReached() throws {
        let name = "nsgroup-test-notify-\(getpid())"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = [UInt8(0)] + Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        try #require(bound == 0)
        Self.withEnvironment(["NOTIFY_SOCKET": "@" + name]) {
            #expect(ServiceManager.notify("READY=1"))
        }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        #expect(n > 0 && String(decoding: buffer[0..<max(n, 0)], as: UTF8.self) == "READY=1")
    }

    /// A manager that does not read its queue never holds the caller up: the loop pings the
    /// watchdog from its only thread. sd_notify blocks there (unix_wait_for_peer).
    @Test func aFullNotifyQueueDropsTheMessageAtOnce() {
        let socket = NotifySocket()
        Self.withEnvironment(["NOTIFY_SOCKET": socket.path]) {
            let start = monotonicNanoseconds()
            var sent = 0
            for _ in 0..<2000 where ServiceManager.notify("WATCHDOG=1") { sent += 1 }
            let seconds = Double(monotonicNanoseconds() - start) / 1e9
            #expect(sent < 2000, "the queue never filled: \(sent) sent")
            #expect(seconds < 2, "2000 notifications to a full queue took \(seconds) s")
        }
    }

    @Test func watchdogInterval() {
        Self.withEnvironment(["WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) {
            #expect(ServiceManager.watchdogIntervalMicroseconds() == nil)
        }
        Self.withEnvironment(["WATCHDOG_USEC": "20000", "WATCHDOG_PID": String(getpid())]) {
            #expect(ServiceManager.watchdogIntervalMicroseconds() == 20_000)
        }
        Self.withEnvironment(["WATCHDOG_USEC": "20000", "WATCHDOG_PID": "1"]) {
            #expect(ServiceManager.watchdogIntervalMicroseconds() == nil, "meant for another process")
        }
    }

    @Test func eventLoopPingsTheWatchdog() throws {
        let socket = NotifySocket()
        try Self.withEnvironment([
            "NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "20000", "WATCHDOG_PID": String(getpid()),
        ]) {
            let loop = try EventLoop()
            #expect(try loop.enableWatchdog())
            #expect(socket.receive() == "WATCHDOG=1", "the first ping is sent at once")
            // Then about every half period while the loop runs.
            var pings = 0
            try TestSupport.iterate(loop, forMicroseconds: 100_000) {
                if socket.receive() == "WATCHDOG=1" { pings += 1 }
                return pings >= 2
            }
            #expect(pings >= 2)
        }
    }

    @Test func eventLoopWatchdogOffWithoutEnvironment() throws {
        try Self.withEnvironment(["WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) {
            let loop = try EventLoop()
            #expect(try loop.enableWatchdog() == false)
        }
    }

    @Test func noListenFileDescriptorsWithoutActivation() {
        Self.withEnvironment(["LISTEN_FDS": nil, "LISTEN_PID": nil]) {
            #expect(ServiceManager.listenFileDescriptors() == [])
        }
        Self.withEnvironment(["LISTEN_FDS": "1", "LISTEN_PID": "1"]) {
            #expect(ServiceManager.listenFileDescriptors() == [], "meant for another process")
        }
    }

    /// Socket activation passes fds 3, 4, …; we cannot move our sockets to fd 3 in a test process
    /// full of other descriptors, so LISTEN_FDS is set to cover every fd from 3 up to the listening
    /// socket. Only listening AF_UNIX stream sockets may come back.
    @Test func listenFileDescriptorsPicksListeningUnixStreamSockets() {
        let (pairA, pairB) = TestSupport.makeSocketPair()  // stream, but not listening
        let datagramPath = TestSupport.temporarySocketPath("dgram")
        let datagram = TestSupport.bindUnixSocket(path: datagramPath, type: Int32(SOCK_DGRAM.rawValue))
        let listenPath = TestSupport.temporarySocketPath("listen")
        let listener = TestSupport.bindUnixSocket(path: listenPath, type: Int32(SOCK_STREAM.rawValue), listen: true)
        defer {
            for fd in [pairA, pairB, datagram, listener] { close(fd) }
            unlink(datagramPath)
            unlink(listenPath)
        }
        let highest = max(pairA, pairB, datagram, listener)
        let fds = Self.withEnvironment(["LISTEN_FDS": String(highest - 2), "LISTEN_PID": String(getpid())]) {
            let fds = ServiceManager.listenFileDescriptors()
            #expect(getenv("LISTEN_FDS") == nil, "sd_listen_fds(1) unsets the variables")
            #expect(getenv("LISTEN_PID") == nil)
            return fds
        }
        #expect(fds.contains(listener))
        #expect(!fds.contains(pairA))
        #expect(!fds.contains(pairB))
        #expect(!fds.contains(datagram))
        #expect(fds.allSatisfy { $0 >= 3 && $0 <= highest })
        #expect(fcntl(listener, F_GETFD) & FD_CLOEXEC != 0)
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
private func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
