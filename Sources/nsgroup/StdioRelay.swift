#if canImport(Glibc)
import Glibc
#endif
import Client
import POSIX

/// Our stdin, stdout and stderr carried through three pipes of our own, for a session that
/// may not hold our descriptors: root entering a group through its owner's user namespace
/// runs as a process the owner could take descriptors from (PROTOCOL.md 8.6). The session
/// gets the pipes' far ends; we copy between them and our own descriptors until it exits.
final class StdioRelay {
    /// The ends the session gets, in order stdin, stdout, stderr; closed here once sent.
    private(set) var sessionEnds: [Int32]
    /// The write end of the session's stdin, -1 once our stdin has ended.
    private var toSession: Int32
    /// What our stdin gave that the session has not taken yet.
    private var pending: [UInt8] = []
    private var stdinOpen = true
    /// The read ends of the session's stdout and stderr (-1 at end of file), and where each goes.
    private var fromSession: [(fd: Int32, target: Int32)]

    init() throws(ClientError) {
        var ends: [[Int32]] = []
        for _ in 0..<3 {
            var pair: [Int32] = [0, 0]
            guard pipe(&pair) == 0 else { throw .io(Errno.current) }
            for fd in pair { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            ends.append(pair)
        }
        sessionEnds = [ends[0][0], ends[1][1], ends[2][1]]
        toSession = ends[0][1]
        fromSession = [(ends[1][0], 1), (ends[2][0], 2)]
        for fd in [toSession, fromSession[0].fd, fromSession[1].fd] {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        // A session that stops reading its stdin must not kill us with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
    }

    /// After the enter request went out: only the session holds these now.
    func closeSessionEnds() {
        for fd in sessionEnds { close(fd) }
        sessionEnds = []
    }

    /// What to poll for: our stdin while nothing waits for the session, the session's
    /// stdin pipe while something does, and its output pipes.
    var pollDescriptors: [pollfd] {
        var fds: [pollfd] = []
        if toSession >= 0 {
            fds.append(pending.isEmpty
                ? pollfd(fd: stdinOpen ? 0 : -1, events: Int16(POLLIN), revents: 0)
                : pollfd(fd: toSession, events: Int16(POLLOUT), revents: 0))
        }
        for source in fromSession where source.fd >= 0 {
            fds.append(pollfd(fd: source.fd, events: Int16(POLLIN), revents: 0))
        }
        return fds
    }

    /// Moves what the poll said is ready.
    func handle(_ ready: [pollfd]) {
        for entry in ready where entry.revents != 0 {
            if entry.fd == 0 {
                readStdin()
            } else if entry.fd == toSession {
                writePending()
            } else if let index = fromSession.firstIndex(where: { $0.fd == entry.fd }) {
                copyOut(index, untilEmpty: false)
            }
        }
    }

    /// Once the session has exited: what its pipes still hold, without waiting for a
    /// child it left behind to close them.
    func drain() {
        for index in fromSession.indices { copyOut(index, untilEmpty: true) }
    }

    private func readStdin() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, $0.count) }
        if count > 0 {
            pending = Array(buffer[0..<count])
            writePending()
        } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
            stdinOpen = false
            close(toSession)
            toSession = -1
        }
    }

    private func writePending() {
        let written = pending.withUnsafeBytes { Glibc.write(toSession, $0.baseAddress, $0.count) }
        if written > 0 {
            pending.removeFirst(written)
        } else if written < 0, errno != EAGAIN, errno != EINTR {
            // The session closed its stdin: nothing more goes there.
            pending = []
            stdinOpen = false
            close(toSession)
            toSession = -1
        }
        if !pending.isEmpty || stdinOpen { return }
        if toSession >= 0 { close(toSession); toSession = -1 }
    }

    private func copyOut(_ index: Int, untilEmpty: Bool) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while fromSession[index].fd >= 0 {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fromSession[index].fd, $0.baseAddress, $0.count) }
            if count > 0 {
                writeAll(fromSession[index].target, buffer[0..<count])
                if !untilEmpty { return }
            } else if count < 0 && (errno == EAGAIN || errno == EINTR) {
                return
            } else {
                close(fromSession[index].fd)
                fromSession[index].fd = -1
            }
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) {
        var rest = bytes
        while !rest.isEmpty {
            let written = rest.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                return  // our own stdout is gone: drop the output, as a closed pipe would
            }
            rest = rest.dropFirst(written)
        }
    }
}
