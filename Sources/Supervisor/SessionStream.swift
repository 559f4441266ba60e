#if canImport(Glibc)
import Glibc
#endif
import POSIX
import RPC
import Systemd

/// The stdio of a session entered with `"stdio": "stream"` (PROTOCOL.md §8.18), carried
/// on the connection that entered it: what the session writes goes out as `output`
/// notifications, what the client `write`s goes into the session, and `window`
/// notifications say how much more it may send.
///
/// The supervisor holds the other ends: three pipes, or the terminal's master. None of
/// them can block the loop: all are non-blocking, and none is a file a user serves
/// (pipes and a pty are the kernel's own).
///
/// Bounded both ways, and only the session's own connection pays:
/// - input: at most StreamLimits.window bytes held per session; a client that sends more
///   is refused (`write` is answered limit_exceeded and takes nothing);
/// - output: read only while the connection has less than Connection.streamOutputMark
///   unread and its person is under connections.output-per-user; otherwise the stream
///   pauses, the pipe (or terminal) fills and the session blocks in its write, as it
///   would on a terminal nobody reads.
///
/// Owned by its Connection (`streams`), which closes it when it closes: the session then
/// gets end of file on stdin, EPIPE on stdout and stderr, or a hang-up on its terminal,
/// exactly as when a client holding passed descriptors goes away.
final class SessionStream {
    let session: UInt64
    let hasTerminal: Bool
    private weak var connection: Connection?

    /// A descriptor the session writes to, and the stdio number its output is sent as.
    private struct OutputEnd {
        let fd: Int32
        let number: Int32
        var open = true
        /// Once the session has ended: how much of what the end held then is still to go.
        var left: Int?
    }

    private var outputs: [OutputEnd]
    /// Where input goes: the stdin pipe's write end, or the master (then also outputs[0].fd); -1 once closed.
    private var inputFD: Int32
    /// One I/O source per descriptor (the terminal's master has one for both directions).
    private var sources: [Int32: EventSource] = [:]
    /// Input taken from `write` and not yet taken by the session.
    private var pending: [UInt8] = []
    /// Why no more input is taken, once none is. `.eof` stays once the client sent it (a
    /// later `write` is its mistake, not a race with the session), and also means: close
    /// the session's stdin once `pending` is through.
    private var inputEnd: InputEnd?
    /// Waiting for the connection to take its output (Connection.waitForRoom).
    private var paused = false
    /// The session's process ended: what its ends hold now goes out, then `exited`.
    private var exitedLine: [UInt8]?
    private(set) var isClosed = false

    enum InputEnd {
        /// The client sent `eof`.
        case eof
        /// The session closed its stdin, its terminal went away, or it ended.
        case gone
    }

    /// How much more than FIONREAD counts is passed on once the session has ended.
    private static let inFlight = 64 << 10
    /// Reads of at most this much, each an `output` notification.
    private static let chunk = StreamLimits.maxOutputChunk
    /// One buffer for every stream of the process: the loop is single-threaded.
    private nonisolated(unsafe) static let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 8)

    /// Descriptors the stream takes over: the stdin pipe's write end and the read ends of
    /// stdout and stderr, or the terminal's master alone (`stdin` -1, `stderr` -1).
    struct Ends {
        var stdin: Int32
        var stdout: Int32
        var stderr: Int32

        static func terminal(_ master: Int32) -> Ends { Ends(stdin: -1, stdout: master, stderr: -1) }

        func closeAll() {
            for fd in [stdin, stdout, stderr] where fd >= 0 { _ = Glibc.close(fd) }
        }
    }

    /// Takes over `ends` (closing them on failure) and starts relaying. Called once the
    /// `enter` reply has been queued, so that every `output` comes after it.
    init(session: UInt64, ends: Ends, connection: Connection, loop: EventLoop) throws(SystemdError) {
        self.session = session
        self.connection = connection
        hasTerminal = ends.stdin < 0
        inputFD = hasTerminal ? ends.stdout : ends.stdin
        outputs = [OutputEnd(fd: ends.stdout, number: 1)]
        if ends.stderr >= 0 { outputs.append(OutputEnd(fd: ends.stderr, number: 2)) }
        for fd in [ends.stdin, ends.stdout, ends.stderr] where fd >= 0 {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        do {
            for fd in Set([inputFD] + outputs.map(\.fd)) {
                sources[fd] = try loop.addIO(fd: fd, events: []) { [weak self] events in self?.handle(fd, events) }
            }
        } catch {
            for source in sources.values { source.cancel() }
            ends.closeAll()
            throw error
        }
        updateInterest()
    }

    // MARK: Input

    /// Takes `write`'s bytes (and its end of input), or says why not; takes nothing then.
    func write(_ params: WriteParams) throws(RPCError) {
        switch inputEnd {
        case .eof?:
            throw .invalidParams("write: the input of session \(session) is already closed (\"eof\" was sent)")
        case .gone?:
            throw stdinClosed
        case nil:
            break
        }
        // A stdin pipe whose reader has gone while nothing waited for it: found out now, so
        // that this write is refused rather than taken and dropped.
        if !hasTerminal, pending.isEmpty, inputFD >= 0 {
            var ready = pollfd(fd: inputFD, events: 0, revents: 0)
            if poll(&ready, 1, 0) == 1, ready.revents & Int16(POLLERR) != 0 {
                inputGone()
                throw stdinClosed
            }
        }
        if params.eof, hasTerminal {
            throw .invalidParams("write: a terminal has no end of input; send its end-of-file character (^D, \"BA==\") as data")
        }
        guard pending.count + params.data.count <= StreamLimits.window else {
            throw RPCError(.limitExceeded, "write: session \(session) holds \(pending.count) bytes of input not yet taken; \(params.data.count) more would pass its window of \(StreamLimits.window) bytes (wait for \"window\" notifications)")
        }
        pending += params.data
        if params.eof { inputEnd = .eof }
        pumpInput()
    }

    /// A `write` after the session's input went away.
    private var stdinClosed: RPCError {
        RPCError.operationFailed("session \(session) takes no more input: its stdin is closed", step: .writeInput,
                                 errno: Errno(rawValue: EPIPE))
    }

    /// Sets the terminal's size.
    func resize(_ params: ResizeParams) throws(RPCError) {
        guard hasTerminal else { throw .invalidParams("resize: session \(session) has no terminal") }
        guard outputs[0].open else { return }  // the terminal is going: nothing to size
        do {
            try Pty.setWindowSize(outputs[0].fd, rows: params.rows, columns: params.columns)
        } catch {
            throw RPCError.operationFailed("cannot resize the terminal of session \(session)", step: .resizeTerminal, errno: error)
        }
    }

    /// Writes what is pending as far as the session takes it; tells the client how much it took.
    private func pumpInput() {
        var taken = 0
        while !pending.isEmpty, inputFD >= 0 {
            let n = pending.withUnsafeBytes { Glibc.write(inputFD, $0.baseAddress, $0.count) }
            if n > 0 {
                pending.removeFirst(n)
                taken += n
                continue
            }
            if n < 0, errno == EINTR { continue }
            if n < 0, errno == EAGAIN { break }
            inputGone()
            return
        }
        if taken > 0 { send(WindowNotification(session: session, bytes: taken)) }
        if pending.isEmpty, inputEnd == .eof, !hasTerminal, inputFD >= 0 {
            closeInput()
        }
        updateInterest()
    }

    /// The session's input went away (it closed its stdin, or its terminal hung up): what
    /// waits for it is dropped, and the client is told to send no more.
    private func inputGone() {
        // A client that sent eof, or was told already, needs no word of it.
        let told = inputEnd != nil
        if inputEnd == nil { inputEnd = .gone }
        pending = []
        if !hasTerminal { closeInput() }
        if !told { send(WindowNotification(session: session, closed: true)) }
        updateInterest()
    }

    private func closeInput() {
        guard inputFD >= 0, !hasTerminal else { return }
        sources.removeValue(forKey: inputFD)?.cancel()
        _ = Glibc.close(inputFD)
        inputFD = -1
    }

    // MARK: Output

    private func handle(_ fd: Int32, _ events: IOEvents) {
        if fd == inputFD, !pending.isEmpty, !events.isDisjoint(with: [.writable, .error, .hangup]) {
            pumpInput()  // a reader gone shows as EPIPE there
        }
        if isClosed { return }
        if let index = outputs.firstIndex(where: { $0.fd == fd && $0.open }),
           !events.isDisjoint(with: [.readable, .readHangup, .hangup, .error]) {
            pumpOutput(index)
        }
        updateInterest()
    }

    /// Reads what output end `index` holds: one chunk per readiness while the session
    /// runs (the loop comes back for more, level-triggered, after serving the others),
    /// once it has ended what the end held at that moment (`left`).
    private func pumpOutput(_ index: Int) {
        guard let connection, !connection.isClosed else { return }
        repeat {
            if connection.outputCongested {
                paused = true
                connection.waitForRoom(self)
                return
            }
            let fd = outputs[index].fd
            let want = min(Self.chunk, outputs[index].left ?? Self.chunk)
            if want == 0 {
                endOutput(index)
                return
            }
            let n = Glibc.read(fd, Self.buffer.baseAddress, want)
            if n > 0 {
                outputs[index].left? -= n
                connection.send(line: OutputNotification.line(session: session, fd: outputs[index].number,
                                                              data: UnsafeRawBufferPointer(rebasing: Self.buffer[0..<n])))
                continue
            }
            if n < 0, errno == EINTR { continue }
            if n < 0, errno == EAGAIN {
                // Empty for now. Once the session has ended, what a process it left
                // behind writes later is not waited for.
                if exitedLine != nil { endOutput(index) }
                return
            }
            // End of file, or EIO from a master whose every slave is closed.
            endOutput(index)
            return
        } while exitedLine != nil
    }

    private func endOutput(_ index: Int) {
        guard outputs[index].open else { return }
        outputs[index].open = false
        let fd = outputs[index].fd
        // A terminal's master is also its input end: it closes with the stream.
        if !hasTerminal {
            sources.removeValue(forKey: fd)?.cancel()
            _ = Glibc.close(fd)
        }
        send(OutputNotification(session: session, fd: outputs[index].number, eof: true))
        if hasTerminal { inputGone() }
        finishIfEnded()
    }

    /// The connection has room again (Connection.wakeStreams).
    func roomAvailable() {
        guard paused, !isClosed else { return }
        paused = false
        if exitedLine != nil {
            drain()
        } else {
            updateInterest()
        }
    }

    // MARK: The end

    /// The session's process ended: what its ends hold now goes out, then `line` (its
    /// `exited`), and the stream closes.
    func sessionEnded(exited line: [UInt8]) {
        guard !isClosed else { return }
        exitedLine = line
        // What the ends hold now, and no more: a process left behind that keeps writing
        // would otherwise keep this loop reading for as long as the client keeps up. A
        // terminal's last output may still be on its way to the master (the tty's flip
        // buffer), which FIONREAD does not count: a little more is let through.
        for index in outputs.indices where outputs[index].open {
            var held: Int32 = 0
            let counted = ioctl(outputs[index].fd, UInt(FIONREAD), &held) == 0 ? Int(held) : 0
            outputs[index].left = counted + Self.inFlight
        }
        drain()
    }

    private func drain() {
        for index in outputs.indices where outputs[index].open {
            pumpOutput(index)
            if paused || isClosed { return }
        }
        finishIfEnded()
    }

    private func finishIfEnded() {
        guard let line = exitedLine, !isClosed, outputs.allSatisfy({ !$0.open }) else { return }
        connection?.send(line: line)
        close()
        connection?.streamEnded(self)
    }

    /// Closes every end the supervisor holds; what the session had not taken is dropped.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        for source in sources.values { source.cancel() }
        sources = [:]
        var fds = Set(outputs.filter(\.open).map(\.fd))
        if inputFD >= 0 { fds.insert(inputFD) }
        for fd in fds { _ = Glibc.close(fd) }
        inputFD = -1
        for index in outputs.indices { outputs[index].open = false }
        pending = []
    }

    // MARK: Plumbing

    private func send(_ notification: WindowNotification) {
        connection?.send(Response.notification(method: NotificationName.window.rawValue, params: notification.json))
    }

    private func send(_ notification: OutputNotification) {
        connection?.send(Response.notification(method: NotificationName.output.rawValue, params: notification.json))
    }

    /// What each source waits for: output while not paused, the input end while input waits.
    private func updateInterest() {
        guard !isClosed else { return }
        for (fd, source) in sources {
            var events: IOEvents = []
            if !paused, outputs.contains(where: { $0.fd == fd && $0.open }) { events.insert(.readable) }
            if fd == inputFD, !pending.isEmpty { events.insert(.writable) }
            // A descriptor waited on for nothing is switched off: epoll would still report
            // its hang-up or error, level-triggered, again and again. (The stdin pipe's
            // reader going away is noticed at the next write.)
            if events.isEmpty {
                source.isEnabled = false
            } else {
                try? source.setIOEvents(events)
                source.isEnabled = true
            }
        }
    }
}
