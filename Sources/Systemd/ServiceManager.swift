import CSystemd
import Glibc
import POSIX

/// sd_notify and friends, for running as a `Type=notify` service.
///
/// All of these read the environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `LISTEN_FDS`, …) and do
/// nothing when it is not set, so they are harmless outside systemd.
public enum ServiceManager {
    /// Sends `state` (newline-separated `KEY=value` assignments) to the service manager: one
    /// datagram to `NOTIFY_SOCKET` (a path, or "@name" in the abstract namespace), as sd_notify
    /// does, but never waiting: sd_notify's send blocks while the manager's queue is full, and
    /// this runs on the loop (watchdog pings, STATUS= on every group change). A message that does
    /// not fit is dropped; the next ping or status replaces it. Returns true if it was sent; false
    /// when `NOTIFY_SOCKET` is unset or sending failed.
    @discardableResult
    public static func notify(_ state: String) -> Bool {
        guard let raw = getenv("NOTIFY_SOCKET") else { return false }
        let path = String(cString: raw)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(state.utf8)
        let sent = try? UnixSocket.withAddress(path, abstract: true) { address, length in
            bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT), address, length) }
        }
        return sent == bytes.count
    }

    /// `READY=1` with a status line: startup is complete.
    public static func ready(status: String) {
        notify("READY=1\nSTATUS=\(oneLine(status))")
    }

    /// `STATUS=…`: free-form text shown by `systemctl status`.
    public static func status(_ text: String) {
        notify("STATUS=\(oneLine(text))")
    }

    /// `STOPPING=1`: shutdown has begun.
    public static func stopping() {
        notify("STOPPING=1")
    }

    /// The watchdog period the service manager expects pings within, if it enabled one for this
    /// process (`sd_watchdog_enabled(0, &usec)`). See also `EventLoop.enableWatchdog()`.
    public static func watchdogIntervalMicroseconds() -> UInt64? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return usec
    }

    /// Listening sockets handed over by socket activation (`sd_listen_fds(1)`, which also unsets
    /// `LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES` and marks the descriptors close-on-exec): only the
    /// `AF_UNIX` `SOCK_STREAM` listening ones (`sd_is_socket_unix`). Empty if none. Other passed
    /// descriptors are left open and untouched.
    public static func listenFileDescriptors() -> [Int32] {
        let count = sd_listen_fds(1)
        guard count > 0 else { return [] }
        let first = Int32(SD_LISTEN_FDS_START)
        return (first..<(first + count)).filter { fd in
            sd_is_socket_unix(fd, Int32(SOCK_STREAM.rawValue), 1, nil, 0) > 0
        }
    }

    /// The notify protocol is line-based: a newline inside a status would start a new assignment.
    private static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }
}
