#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import POSIX
import RPC

/// `nsgroup bridge`: the protocol on stdin and stdout, relayed to this machine's supervisor,
/// as systemd-stdio-bridge relays D-Bus. It is what `nsgroup --host HOST` runs on HOST
/// through ssh: the supervisor sees the bridge's credentials (SO_PEERCRED), so the caller is
/// the user ssh logged in as, with no trust of its own here. Bytes go through as they are;
/// descriptors cannot cross ssh, and any the supervisor passes are closed here (a remote
/// `enter` streams its stdio instead).
struct Bridge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bridge",
        abstract: "Relay the protocol between stdin/stdout and this machine's nsgroupd (what --host runs through ssh).")

    @OptionGroup var global: GlobalOptions

    func run() {
        guard global.host.isEmpty else {
            fail("bridge relays to this machine's nsgroupd; it takes no --host", reason: CLIReason.usage, code: ExitStatus.usage)
        }
        signal(SIGPIPE, SIG_IGN)
        let path = global.socketPath
        let socket: FileDescriptor
        do {
            socket = try UnixSocket.connect(path: path)
        } catch {
            fail("cannot reach nsgroupd at \(path): \(error)", reason: CLIReason.unavailable)
        }
        Self.relay(input: 0, output: 1, socket: socket.rawValue)
    }

    /// Copies input to the socket and the socket to output until the supervisor closes the
    /// connection (or output goes away). End of input is passed on as a half close, so that
    /// replies still on their way arrive.
    static func relay(input: Int32, output: Int32, socket: Int32) {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var inputOpen = true
        while true {
            var fds = [pollfd(fd: socket, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: inputOpen ? input : -1, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                return
            }
            if fds[1].revents != 0 {
                let count = read(input, &buffer, buffer.count)
                if count > 0 {
                    guard buffer.withUnsafeBytes({ writeAll(socket, UnsafeRawBufferPointer(rebasing: $0[..<count])) }) else { return }
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    inputOpen = false
                    shutdown(socket, Int32(SHUT_WR))
                }
            }
            if fds[0].revents != 0 {
                let received: UnixSocket.Received
                do throws(Errno) {
                    received = try buffer.withMutableBytes { (raw) throws(Errno) -> UnixSocket.Received in
                        try UnixSocket.receive(socket, into: raw)
                    }
                } catch {
                    if error.rawValue == EINTR || error.rawValue == EAGAIN { continue }
                    return
                }
                for fd in received.descriptors { close(fd) }
                guard received.count > 0 else { return }
                guard buffer.withUnsafeBytes({ writeAll(output, UnsafeRawBufferPointer(rebasing: $0[..<received.count])) }) else { return }
            }
        }
    }
}
