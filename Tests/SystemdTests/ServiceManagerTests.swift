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
