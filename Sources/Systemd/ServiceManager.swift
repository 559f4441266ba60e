import CSystemd
import Glibc

/// sd_notify and friends, for running as a `Type=notify` service.
///
/// All of these read the environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `LISTEN_FDS`, …) and do
/// nothing when it is not set, so they are harmless outside systemd.
public enum ServiceManager {
    /// Sends `state` (newline-separated `KEY=value` assignments) to the service manager
    /// (`sd_notify(0, …)`). Returns true if a message was sent; false when `NOTIFY_SOCKET` is unset or
    /// sending failed.
    @discardableResult
    public static func notify(_ state: String) -> Bool {
        sd_notify(0, state) > 0
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
