#if canImport(Glibc)
import Glibc
#endif

/// The caller's terminal in raw mode for an interactive session, restored on
/// every way out (`restore()` is idempotent; the caller calls it before exiting,
/// signals included, since they arrive through a signalfd).
final class RawTerminal {
    private let fd: Int32
    private var saved = termios()
    private var active = false

    /// Puts `fd` in raw mode if it is a terminal; otherwise does nothing.
    init(fd: Int32) {
        self.fd = fd
        guard isatty(fd) == 1, tcgetattr(fd, &saved) == 0 else { return }
        var raw = saved
        cfmakeraw(&raw)
        if tcsetattr(fd, TCSANOW, &raw) == 0 { active = true }
    }

    func restore() {
        guard active else { return }
        active = false
        var original = saved
        _ = tcsetattr(fd, TCSANOW, &original)
    }

    deinit {
        restore()
    }
}

/// Writes all of `bytes` to a blocking descriptor; false if it failed.
@discardableResult
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if n < 0 {
            if errno == EINTR { continue }
            if errno == EAGAIN {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, -1)
                continue
            }
            return false
        }
        offset += n
    }
    return true
}
