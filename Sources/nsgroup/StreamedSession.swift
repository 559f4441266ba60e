#if canImport(Glibc)
import Glibc
#endif
import Client
import POSIX
import RPC

/// `enter --stream`: the session's stdio carried on the connection (PROTOCOL.md §8.18),
/// with no descriptor passed either way. Our stdin goes out in `write` notifications, as
/// far as the session's input window allows; `output` notifications go to our stdout and
/// stderr; `window` notifications give back room. With a terminal, ours is raw and its
/// size follows ours (`resize`); without one, the signals a terminal or job controller
/// sends us are passed on as in the descriptor mode.
final class StreamedSession {
    private let client: RPCClient
    private let params: EnterParams
    private var buffer = [UInt8](repeating: 0, count: StreamLimits.maxOutputChunk)
    /// How much more input the server takes now.
    private var credit = 0
    private var stdinOpen = true
    /// Whether the screen's cursor is at the start of a line (for a message after the session).
    private var atLineStart = true
    /// Where the session's stdin comes from and its stdout and stderr go: ours, or (cp) pipes.
    private let stdio: (input: Int32, output: Int32, error: Int32)
    /// How the session ended, once it has (nil when the stream was lost first).
    private(set) var exited: ExitedNotification?
    /// Descriptors of the caller's to watch while the session runs, and what to do with
    /// those that are readable (cp reads its pipes of messages, so that no writer blocks).
    var alsoWatch: (descriptors: () -> [pollfd], readable: ([pollfd]) -> Void)?

    init(client: RPCClient, params: EnterParams, stdio: (input: Int32, output: Int32, error: Int32) = (0, 1, 2)) {
        self.client = client
        self.params = params
        self.stdio = stdio
    }

    func run(group: String) throws(ClientError) -> Int32 {
        let tty = params.tty
        let signals: SignalDescriptor
        do {
            signals = try SignalDescriptor(tty ? [SIGWINCH, SIGINT, SIGTERM, SIGHUP, SIGQUIT]
                                               : [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGCONT])
        } catch { throw .io(error) }
        // Our stdout or stderr going away must end us with an error, not a SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        let reply = try client.call("enter", params.json)
        let session: EnterResult
        do { session = try EnterResult(json: reply.result) } catch { throw .protocolViolation(error.message) }
        guard let window = session.window else {
            throw .protocolViolation("the reply to a streamed enter gave no input window")
        }
        credit = window
        let terminal = tty ? RawTerminal(fd: 0) : nil
        defer { terminal?.restore() }
        if tty, let size = Pty.windowSize(0) {
            try client.notify("resize", ResizeParams(session: session.session, rows: size.rows, columns: size.columns).json)
        }
        do throws(ClientError) {
            while true {
                // What the connection already holds first: poll(2) would not show it.
                // (and the notifications a `signal` call kept while it waited for its reply).
                while client.hasBufferedInput {
                    if let exited = try next(session: session.session) { return finish(exited, terminal, group: group) }
                }
                var fds = [pollfd(fd: client.descriptor, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: signals.rawValue, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: stdinOpen && credit > 0 ? stdio.input : -1, events: Int16(POLLIN), revents: 0)]
                    + (alsoWatch?.descriptors() ?? [])
                if poll(&fds, nfds_t(fds.count), -1) < 0 { continue }
                if fds.count > 3 { alsoWatch?.readable(Array(fds[3...])) }
                if fds[1].revents != 0, let signal = signals.next() {
                    if signal == SIGWINCH {
                        if let size = Pty.windowSize(0) {
                            try client.notify("resize", ResizeParams(session: session.session, rows: size.rows, columns: size.columns).json)
                        }
                    } else if tty {
                        // Closing the connection hangs up the session's terminal, as a terminal that goes away does.
                        terminal?.restore()
                        return ExitStatus.signaled(signal)
                    } else {
                        Enter.forward(signal, to: session.session, of: params.name, over: client)
                    }
                }
                if fds[2].revents != 0 { try sendInput(session: session.session) }
                if fds[0].revents != 0, let exited = try next(session: session.session) {
                    return finish(exited, terminal, group: group)
                }
            }
        } catch .disconnected {
            terminal?.restore()
            // The stream ended with the connection: the session lost its stdio. Ask a
            // restarted supervisor how it ended.
            printError("lost the connection to nsgroupd; session \(session.session)'s streamed stdio ended with it", reason: CLIReason.disconnected)
            switch Enter.reattach(client.endpoint, name: params.name, session: session.session) {
            case .ended(let status)?: return status
            case .attached(let again)?:
                if let exited = try? Enter.takeExited(again, session: session.session, wait: true) {
                    return Enter.report(exited, group: group)
                }
                return ExitStatus.failure
            case nil: return ExitStatus.failure
            }
        }
    }

    /// Reads what our stdin has, as much as the window takes, and sends it.
    private func sendInput(session: UInt64) throws(ClientError) {
        let count = min(credit, buffer.count)
        let n = buffer.withUnsafeMutableBytes { read(stdio.input, $0.baseAddress, count) }
        if n > 0 {
            credit -= n
            try client.notify("write", WriteParams(session: session, data: Array(buffer[0..<n])).json)
        } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
            stdinOpen = false
            // A terminal has no end of input: say it as a terminal would (^D).
            try client.notify("write", (params.tty ? WriteParams(session: session, data: [4])
                                                   : WriteParams(session: session, eof: true)).json)
        }
    }

    /// Handles the next notification from the server; the `exited` of our session ends the loop.
    private func next(session: UInt64) throws(ClientError) -> ExitedNotification? {
        guard let (method, params) = try client.nextNotification() else { throw .disconnected }
        do throws(RPCError) {
            switch NotificationName(rawValue: method) {
            case .output?:
                let output = try OutputNotification(json: params)
                guard output.session == session, !output.data.isEmpty else { return nil }
                output.data.withUnsafeBytes { _ = writeAll(output.fd == 1 ? stdio.output : stdio.error, $0) }
                if output.fd == 1 { atLineStart = output.data.last == UInt8(ascii: "\n") }
            case .window?:
                let window = try WindowNotification(json: params)
                guard window.session == session else { return nil }
                if window.closed { stdinOpen = false } else { credit += window.bytes }
            case .exited?:
                let exited = try ExitedNotification(json: params)
                if exited.session == session { return exited }
            case .event?, nil:
                break
            }
        } catch {
            throw .protocolViolation(error.message)
        }
        return nil
    }

    private func finish(_ exited: ExitedNotification, _ terminal: RawTerminal?, group: String) -> Int32 {
        self.exited = exited
        terminal?.restore()
        if params.tty, exited.endedBy != nil, !atLineStart { writeLine("") }
        return Enter.report(exited, group: group)
    }
}
