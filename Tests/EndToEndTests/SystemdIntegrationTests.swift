import Foundation
import Glibc
import POSIX
import Supervisor
import Testing

/// nsgroupd as a systemd service, with systemd's own tools: sd_notify to a
/// NOTIFY_SOCKET the test listens on, and socket activation by
/// systemd-socket-activate.
@Suite struct SystemdIntegrationTests {
    /// A datagram socket standing in for the service manager's notify socket.
    final class NotifyListener {
        let path: String
        let fd: Int32

        init(path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let bound = try UnixSocket.withAddress(path) { bind(fd, $0, $1) }
            guard bound == 0 else { throw HarnessError("bind \(path): \(Errno.current)") }
        }

        deinit { close(fd) }

        /// Messages received within `seconds`, until one contains `text` (or time runs out).
        func messages(until text: String, seconds: Double = 10) -> [String] {
            var received: [String] = []
            let deadline = Date().addingTimeInterval(seconds)
            var buffer = [UInt8](repeating: 0, count: 4096)
            while Date() < deadline {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 50) > 0 else { continue }
                let n = recv(fd, &buffer, buffer.count, 0)
                guard n > 0 else { continue }
                received.append(String(decoding: buffer[0..<n], as: UTF8.self))
                if received.last!.contains(text) { break }
            }
            return received
        }
    }

    @Test func readinessStatusWatchdogAndStopping() throws {
        let supervisor = try TestSupervisor(start: false)
        let listener = try NotifyListener(path: supervisor.directory + "/notify.sock")
        try supervisor.start(environment: ["NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "200000"])
        let ready = listener.messages(until: "READY=1")
        #expect(ready.last?.contains("READY=1") == true, "\(ready)")
        #expect(ready.last?.contains("STATUS=Serving 0 group") == true, "\(ready)")

        #expect(try supervisor.nsgroup(["create", "notified"]).status == 0)
        let status = listener.messages(until: "STATUS=Serving 1 group")
        #expect(status.contains { $0.contains("STATUS=Serving 1 group on \(supervisor.socketPath)") }, "\(status)")

        // The loop pings the watchdog well within WATCHDOG_USEC.
        let pings = listener.messages(until: "never", seconds: 1).filter { $0.contains("WATCHDOG=1") }
        #expect(pings.count >= 2, "\(pings.count) watchdog pings in a second")

        kill(supervisor.pid, SIGTERM)
        let stopping = listener.messages(until: "STOPPING=1")
        #expect(stopping.last?.contains("STOPPING=1") == true, "\(stopping)")
        supervisor.stop()
        // Groups were re-adopted before readiness: the next start says so at once.
        try supervisor.start(environment: ["NOTIFY_SOCKET": listener.path])
        let again = listener.messages(until: "READY=1")
        #expect(again.last?.contains("STATUS=Serving 1 group") == true, "\(again)")
    }

    @Test func socketActivationBySystemdSocketActivate() throws {
        let supervisor = try TestSupervisor(start: false)
        let activator = try BackgroundProcess("/usr/bin/systemd-socket-activate",
                                              ["--listen=\(supervisor.socketPath)", Products.nsgroupd] + supervisor.arguments,
                                              log: supervisor.logPath)
        defer {
            if activator.isRunning {
                _ = try? supervisor.nsgroup(["destroy", "activated"])
                activator.stop(SIGKILL)
            }
        }
        #expect(eventually { FileManager.default.fileExists(atPath: supervisor.socketPath) }, "systemd-socket-activate listens")
        chmod(supervisor.socketPath, 0o666)

        // The first connection starts nsgroupd on the socket it was handed.
        let version = try supervisor.nsgroup(["version"])
        #expect(version.status == 0, "\(version.stderr) \(supervisor.log_)")
        #expect(try supervisor.nsgroup(["create", "activated"], as: try TestUser.alice()).status == 0)
        #expect(try supervisor.groupNames() == ["activated"])
        #expect(supervisor.log_.contains("listening on \(supervisor.socketPath)"))
        try JournalTests.requireJournald()
        #expect(eventually {
            let started = try? run("/usr/bin/journalctl", ["-o", "cat", "--no-pager", "NSGROUP_SOCKET=\(supervisor.socketPath)",
                                                            "MESSAGE_ID=\(AuditEvent.supervisorStarted.messageID)"])
            return started?.stdout.contains("(socket from systemd)") == true
        }, "the supervisor says it took systemd's socket")

        // nsgroupd replaced systemd-socket-activate in the same process; stopping it
        // leaves the socket, which belongs to whoever passed it, in place.
        #expect(try supervisor.nsgroup(["destroy", "activated"]).status == 0)
        activator.stop(SIGTERM)
        #expect(FileManager.default.fileExists(atPath: supervisor.socketPath), "an activated socket is not removed")
    }
}
