#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Client
import POSIX
import RPC

struct Enter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enter",
        abstract: "Run a shell or a command inside a group, as yourself.",
        discussion: """
            Without a command and with a terminal on stdin, starts your login shell on a new \
            terminal inside the group (as with -t). With a command, runs it on your own \
            stdin, stdout and stderr, like running it directly; nsgroup exits with its exit \
            status (128+N when signal N ended it). In that mode Ctrl-C, SIGTERM, SIGHUP and \
            SIGQUIT are passed on to the command, and Ctrl-Z stops the command and what it \
            started (fg or bg continues them), as if it were a local child. A session that \
            ends because its group was destroyed says so ("nsgroup: group G was destroyed"). \
            Exit status: the command's own; 127 when it is not found, 126 when it cannot be \
            executed, 125 when nsgroup or nsgroupd failed or ended the session.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The group's name.", completion: Completion.groupName)
    var name: String

    @Flag(name: [.customShort("t"), .customLong("tty")], help: "Use a new terminal inside the group.")
    var tty = false

    @Flag(name: [.customShort("T"), .customLong("no-tty")], help: "Never use a terminal: pass stdin, stdout and stderr.")
    var noTTY = false

    @Option(help: ArgumentHelp("Directory inside the group to start in (default: your home, else /).", valueName: "dir"))
    var cwd: String?

    @Option(name: .customLong("env"), help: ArgumentHelp("Add KEY=VALUE to the environment. Repeatable.", valueName: "KEY=VALUE"))
    var environment: [String] = []

    @Flag(name: .customLong("trust-owner"), help: ArgumentHelp(
        "Enter a group with a user namespace that someone else owns.",
        discussion: "Its owner is root inside it and controls every file you would run there, so a session of yours in it runs the owner's code with your rights. Only for owners you trust with your account."))
    var trustOwner = false

    @Flag(help: "Report nsgroup's own errors as JSON on stderr; the command's stdin, stdout and stderr stay its own.")
    var json = false

    @Flag(help: ArgumentHelp(
        "Carry the session's stdin, stdout and stderr (or its terminal) on the connection to nsgroupd.",
        discussion: "Instead of passing descriptors: what a client on another machine, or one that cannot pass descriptors, does (protocol \"stdio\": \"stream\"). The session behaves the same; it loses its stdio if nsgroupd restarts."))
    var stream = false

    // Everything from the first word after NAME on is the command's, options
    // included, as with `ip netns exec` and `nsenter` (`enter lab id -u`):
    // `withTerminator` puts the `--` there before parsing. enter's own options
    // go before NAME or between it and the command.
    @Argument(parsing: .postTerminator, help: ArgumentHelp(
        "The command and its arguments, options included (a -- before it is optional).", valueName: "command"))
    var command: [String] = []

    /// enter's options that take a separate value (`--cwd DIR`): the words
    /// `withTerminator` skips. Keep in step with the options above.
    static let optionsWithValues: Set<String> = ["--socket", "--host", "--cwd", "--env"]

    /// The command line (after `enter`) with a `--` before the command, when
    /// there is a command and no `--` before it. (swift-argument-parser's
    /// `.captureForPassthrough` would do this but loses `--socket`, which the
    /// root command declares too.)
    static func withTerminator(_ arguments: [String]) -> [String] {
        var index = arguments.startIndex
        var sawName = false
        while index < arguments.endIndex {
            let word = arguments[index]
            if word == "--" { return arguments }
            if word.hasPrefix("-") && word != "-" {
                index += optionsWithValues.contains(word) ? 2 : 1
                continue
            }
            if sawName {
                var result = arguments
                result.insert("--", at: index)
                return result
            }
            sawName = true
            index += 1
        }
        return arguments
    }

    func validate() throws {
        if tty && noTTY { throw ValidationError("-t and -T contradict each other") }
        for entry in environment {
            guard let equals = entry.firstIndex(of: "=") else { throw ValidationError("--env takes KEY=VALUE, not \"\(entry)\"") }
            guard isEnvironmentName(entry[..<equals]) else {
                throw ValidationError("--env: \"\(entry[..<equals])\" is not a variable name (letters, digits and '_', not starting with a digit)")
            }
        }
    }

    func run() {
        let interactive = noTTY ? false : (tty || (isatty(0) == 1 && command.isEmpty))
        var env: [(String, String)] = environment.map { entry in
            let equals = entry.firstIndex(of: "=")!
            return (String(entry[..<equals]), String(entry[entry.index(after: equals)...]))
        }
        if interactive, !env.contains(where: { $0.0 == "TERM" }), let term = getenv("TERM") {
            env.append(("TERM", String(cString: term)))
        }
        let size = interactive ? (Pty.windowSize(0) ?? Pty.windowSize(1)) : nil
        // Descriptors cannot cross ssh: on another host the session's stdio is streamed.
        let streamed = stream || global.isRemote
        let params = EnterParams(name: name, argv: command.isEmpty ? nil : command, cwd: cwd, env: env,
                                 tty: interactive, rows: size?.rows, columns: size?.columns, trustOwner: trustOwner,
                                 stdio: streamed ? .stream : .descriptors)
        let status = withClient(global) { client throws(ClientError) -> Int32 in
            if streamed { return try StreamedSession(client: client, params: params).run(group: name) }
            return interactive ? try runInteractive(client, params) : try runScripted(client, params)
        }
        Glibc.exit(status)
    }

    /// The command gets our stdio as its own; we only wait for its exit and
    /// pass on the signals a terminal or a job controller sends us. If the
    /// supervisor restarts meanwhile, we reconnect and attach to the session
    /// again; the command itself never notices. Where the supervisor will not
    /// hand our descriptors to the session (root entering through someone else's
    /// user namespace), it gets pipes and we relay.
    private func runScripted(_ first: RPCClient, _ params: EnterParams) throws(ClientError) -> Int32 {
        let signals: SignalDescriptor
        do {
            signals = try SignalDescriptor([SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGCONT])
        } catch { throw .io(error) }
        var client = first
        var relay: StdioRelay?
        let reply: RPCClient.Reply
        do {
            reply = try client.call("enter", params.json, descriptors: [0, 1, 2])
        } catch .server(let error) where error.details["needs"]?.stringValue == "pipes" {
            let pipes = try StdioRelay()
            reply = try client.call("enter", params.json, descriptors: pipes.sessionEnds)
            pipes.closeSessionEnds()
            relay = pipes
        }
        let session: EnterResult
        do { session = try EnterResult(json: reply.result) } catch { throw .protocolViolation(error.message) }
        func finish(_ exited: ExitedNotification) -> Int32 {
            relay?.drain()
            return report(exited)
        }
        while true {
            do throws(ClientError) {
                if let exited = try Self.takeExited(client, session: session.session, wait: false) {
                    return finish(exited)
                }
                var fds = [pollfd(fd: client.descriptor, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: signals.rawValue, events: Int16(POLLIN), revents: 0)]
                    + (relay?.pollDescriptors ?? [])
                if poll(&fds, nfds_t(fds.count), -1) < 0 { continue }
                relay?.handle(Array(fds.dropFirst(2)))
                if fds[1].revents != 0, let signal = signals.next() {
                    Self.forward(signal, to: session.session, of: params.name, over: client)
                    continue
                }
                if fds[0].revents != 0, let exited = try Self.takeExited(client, session: session.session, wait: true) {
                    return finish(exited)
                }
            } catch .disconnected {
                guard let again = Self.reattach(client.endpoint, name: params.name, session: session.session) else {
                    printError("lost the connection to nsgroupd; session \(session.session) (pid \(session.pid)) may still be running")
                    return ExitStatus.failure
                }
                if case .ended(let status) = again { return status }
                if case .attached(let reconnected) = again { client = reconnected }
            }
        }
    }

    /// Passes a signal sent to us on to the session; one that has just ended answers
    /// not_found, which is fine. The supervisor sends a job-control signal to the session's
    /// whole process group. Ctrl-Z: a program that catches SIGTSTP has it now; but the
    /// session leads a session of its own, an orphaned process group, where the kernel
    /// drops the default stop of SIGTSTP: SIGSTOP stops it. Then we stop as a local child
    /// would, so that the shell takes its terminal back; its `fg` or `bg` sends us SIGCONT,
    /// which we pass on to the session.
    static func forward(_ signal: Int32, to session: UInt64, of name: String, over client: RPCClient) {
        func send(_ signal: Int32) {
            _ = try? client.call("signal", SignalParams(name: name, session: session, signal: signal).json)
        }
        send(signal)
        if [SIGTSTP, SIGTTIN, SIGTTOU].contains(signal) {
            send(SIGSTOP)
            kill(getpid(), SIGSTOP)
        }
    }

    enum Reattachment {
        case attached(RPCClient)
        case ended(Int32)
    }

    /// After the connection dropped (the supervisor stopped or restarted):
    /// connect again for up to reconnectSeconds and attach to the session. nil when
    /// no supervisor came back.
    static func reattach(_ endpoint: Endpoint, name: String, session: UInt64) -> Reattachment? {
        reconnecting(endpoint) { client in
            do throws(ClientError) {
                _ = try client.call("attach", AttachParams(name: name, session: session).json)
                return .attached(client)
            } catch .server(let error) where error.reason == .notFound {
                printError("nsgroupd restarted and no longer knows session \(session); its exit status is unknown", reason: CLIReason.statusUnknown)
                return .ended(ExitStatus.failure)
            } catch {
                return nil
            }
        }
    }

    /// The status to exit with; an unknown one (a session an earlier
    /// supervisor started) is said so and reported as 125.
    private func report(_ exited: ExitedNotification) -> Int32 { Self.report(exited, group: name) }

    /// The same for a session in group `name` (cp's sessions too).
    static func report(_ exited: ExitedNotification, group name: String) -> Int32 {
        // The session went down with its group: nsgroup ended it, not the command.
        switch exited.endedBy {
        case .destroy?:
            printError("group \(name) was destroyed", reason: CLIReason.groupEnded)
            return ExitStatus.failure
        case .expired?:
            printError("group \(name) expired and was destroyed", reason: CLIReason.groupEnded)
            return ExitStatus.failure
        case .holderDied?:
            printError("group \(name) ended: its holder died", reason: CLIReason.groupEnded)
            return ExitStatus.failure
        case nil:
            break
        }
        if exited.code == nil && exited.signal == nil {
            printError("nsgroupd restarted while session \(exited.session) ran; its exit status is unknown", reason: CLIReason.statusUnknown)
            return ExitStatus.failure
        }
        return exited.shellStatus
    }

    /// Raw mode on our terminal, bytes pumped both ways through the pty
    /// master the supervisor passed back, window size forwarded on SIGWINCH.
    private func runInteractive(_ client: RPCClient, _ params: EnterParams) throws(ClientError) -> Int32 {
        let signals: SignalDescriptor
        do { signals = try SignalDescriptor([SIGWINCH, SIGINT, SIGTERM, SIGHUP, SIGQUIT]) } catch { throw .io(error) }
        let reply = try client.call("enter", params.json)
        let session: EnterResult
        do { session = try EnterResult(json: reply.result) } catch { throw .protocolViolation(error.message) }
        guard let master = reply.descriptors.take(0) else {
            throw .protocolViolation("the reply to an interactive enter carried no terminal")
        }
        let terminal = RawTerminal(fd: 0)
        defer { terminal.restore() }
        if let size = Pty.windowSize(0) { try? Pty.setWindowSize(master.rawValue, rows: size.rows, columns: size.columns) }

        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var stdinOpen = true
        var masterOpen = true
        var connected = true
        var result: ExitedNotification?
        // Whether the screen's cursor is at the start of a line, so that a message after
        // the session does not glue itself to its last prompt.
        var atLineStart = true
        while result == nil {
            if connected, let exited = try Self.takeExited(client, session: session.session, wait: false) {
                result = exited
                break
            }
            if !masterOpen && !connected { break }
            var fds = [pollfd(fd: stdinOpen && masterOpen ? 0 : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: masterOpen ? master.rawValue : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: connected ? client.descriptor : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: signals.rawValue, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 4, -1) < 0 { continue }
            if fds[3].revents != 0, let signal = signals.next() {
                if signal == SIGWINCH {
                    if let size = Pty.windowSize(0) { try? Pty.setWindowSize(master.rawValue, rows: size.rows, columns: size.columns) }
                } else {
                    // Closing the master hangs up the session, as a terminal that goes away does.
                    terminal.restore()
                    return ExitStatus.signaled(signal)
                }
            }
            if fds[1].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(master.rawValue, $0.baseAddress, $0.count) }
                if n > 0 {
                    buffer.withUnsafeBytes { _ = writeAll(1, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                    atLineStart = buffer[n - 1] == UInt8(ascii: "\n")
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    masterOpen = false  // EIO: every slave is closed, the session is over
                }
            }
            if fds[0].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n > 0 {
                    buffer.withUnsafeBytes { _ = writeAll(master.rawValue, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    stdinOpen = false
                    // Input that is not a terminal ended: say end-of-file to the session (^D).
                    var eof: UInt8 = 4
                    _ = write(master.rawValue, &eof, 1)
                }
            }
            if fds[2].revents != 0 {
                do {
                    if let exited = try Self.takeExited(client, session: session.session, wait: true) { result = exited }
                } catch .disconnected {
                    connected = false
                }
            }
        }
        // Whatever the session wrote before it ended still reaches the screen.
        if masterOpen, let last = drain(master.rawValue, into: &buffer) { atLineStart = last == UInt8(ascii: "\n") }
        terminal.restore()
        if let result {
            if result.endedBy != nil && !atLineStart { writeLine("") }
            return report(result)
        }
        // The supervisor went away while the terminal kept working: ask a
        // restarted one how the session ended.
        switch Self.reattach(client.endpoint, name: params.name, session: session.session) {
        case .ended(let status)?:
            return status
        case .attached(let reconnected)?:
            if let exited = try? Self.takeExited(reconnected, session: session.session, wait: true) { return report(exited) }
            printError("lost the connection to nsgroupd; the session's exit status is unknown", reason: CLIReason.disconnected)
            return ExitStatus.failure
        case nil:
            printError("lost the connection to nsgroupd; the session's exit status is unknown", reason: CLIReason.disconnected)
            return ExitStatus.failure
        }
    }

    /// Copies what `fd` still holds to stdout; returns the last byte copied, if any.
    @discardableResult
    private func drain(_ fd: Int32, into buffer: inout [UInt8]) -> UInt8? {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        var last: UInt8?
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { return last }
            buffer.withUnsafeBytes { _ = writeAll(1, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            last = buffer[n - 1]
        }
    }

    /// The `exited` notification for our session, if one is buffered (or,
    /// with `wait`, the next message is one).
    static func takeExited(_ client: RPCClient, session: UInt64, wait: Bool) throws(ClientError) -> ExitedNotification? {
        guard wait || client.hasBufferedInput else { return nil }
        guard let (method, params) = try client.nextNotification() else { throw .disconnected }
        guard method == NotificationName.exited.rawValue, let exited = try? ExitedNotification(json: params),
              exited.session == session
        else { return nil }
        return exited
    }
}
