#if canImport(Glibc)
import Glibc
#endif
import Namespaces
import RPC
import Systemd

/// One client connection: reads request lines (with any descriptors sent
/// beside them), hands each to the supervisor in order, and writes replies
/// and notifications without ever blocking the loop.
///
/// Requests are answered in the order they arrive. While one waits for a
/// deferred reply (destroy waits for the holder to be reaped), the connection
/// stops reading, so a client cannot pile up unbounded work.
///
/// The bytes of requests not yet handled are charged to the connection's
/// person (its peer uid, or the owner of the subordinate range it lies in)
/// in the ConnectionInput all connections of one supervisor share; past the
/// budget the connection gets one limit_exceeded and is closed.
final class Connection {
    typealias Dispatch = (Connection, Request, ReceivedDescriptors, _ truncated: Bool) -> Reply
    /// The error to close the connection with when its person's buffered bytes (given) are over budget, else nil.
    typealias BudgetCheck = (Connection, _ held: Int) -> RPCError?

    let id: UInt64
    let socket: FileDescriptor
    let peer: PeerCredentials
    /// Whom per-user limits count this connection against: the peer's uid, or
    /// the owner of the subordinate range it lies in.
    let chargedUID: uid_t
    private let input: ConnectionInput
    private let budgetCheck: BudgetCheck?
    /// Bytes of this connection's framer charged to chargedUID in `input`.
    private var chargedBytes = 0
    /// Since when (monotonic seconds) a request line has been unfinished, if one is.
    private var unfinishedSince: Double?
    private var framer: LineFramer
    private var outbox: [Outgoing] = []
    private var source: EventSource?
    private let dispatch: Dispatch
    private let onClose: (Connection) -> Void
    /// The id of the request whose reply is deferred, if any.
    private var waiting: RequestID??
    private var inputClosed = false
    private var closeWhenFlushed = false
    private(set) var isClosed = false

    /// Past this much unsent output the connection stops reading requests
    /// until the client has read its replies: a client that never reads
    /// cannot make the supervisor buffer without bound.
    static let maxQueuedOutput = 1 << 20
    private var queuedBytes = 0
    /// When a request line last completed or a reply byte last left (monotonic seconds).
    private var lastProgress = monotonicSeconds()
    /// When a reply byte last left, while replies are waiting.
    private var lastWrite = monotonicSeconds()

    private struct Outgoing {
        var bytes: [UInt8]
        var sent = 0
        var descriptors: ReceivedDescriptors?
    }

    init(id: UInt64, socket: consuming FileDescriptor, peer: PeerCredentials, maxLineLength: Int,
         input: ConnectionInput = ConnectionInput(), chargedUID: uid_t? = nil, budgetCheck: BudgetCheck? = nil,
         dispatch: @escaping Dispatch, onClose: @escaping (Connection) -> Void) {
        self.id = id
        self.socket = socket
        self.peer = peer
        self.chargedUID = chargedUID ?? peer.uid
        self.input = input
        self.budgetCheck = budgetCheck
        self.framer = LineFramer(maxLineLength: maxLineLength)
        self.dispatch = dispatch
        self.onClose = onClose
    }

    func start(on loop: EventLoop) throws(SystemdError) {
        source = try loop.addIO(fd: socket.rawValue, events: [.readable, .readHangup]) { [weak self] events in
            self?.handle(events)
        }
    }

    // MARK: Events

    /// Whether the next buffered request may be handled now.
    private var canProcess: Bool {
        !isClosed && waiting == nil && !closeWhenFlushed && queuedBytes < Self.maxQueuedOutput
    }

    /// Accepted read-only requests not yet written to the journal (Supervisor.recordReads).
    var reads = ReadTally()

    /// Descriptors a connection may have in flight for lines not yet complete.
    static let maxHeldDescriptors = 64

    private var isReading: Bool { canProcess && !inputClosed }

    private func handle(_ events: IOEvents) {
        if events.contains(.writable) { flush() }
        if isClosed { return }
        if canProcess, framer.hasCompleteFrame {
            processLines()  // lines that waited while the client was not reading its replies
        }
        if isReading && !events.isDisjoint(with: [.readable, .readHangup, .hangup, .error]) {
            readAvailable()
            processLines()
        } else if !events.isDisjoint(with: [.hangup, .error]) {
            // The peer is gone entirely: nothing we write can arrive.
            close()
            return
        }
        finishIfDone()
    }

    private func readAvailable() {
        let receiveBuffer = input.receiveBuffer
        // A bounded number of reads per wake-up keeps one busy client from
        // starving the others; level-triggered epoll brings us back.
        for _ in 0..<16 {
            let received: UnixSocket.Received
            do {
                received = try UnixSocket.receive(socket.rawValue, into: receiveBuffer)
            } catch {
                if error == .wouldBlock { return }
                close()
                return
            }
            if received.count == 0 {
                for fd in received.descriptors { _ = Glibc.close(fd) }
                inputClosed = true
                return
            }
            framer.append(UnsafeRawBufferPointer(rebasing: receiveBuffer[0..<received.count]),
                          descriptors: received.descriptors, truncated: received.truncated)
            let held = updateCharge()
            if let budgetCheck, let refusal = budgetCheck(self, held) {
                // What is buffered is dropped at once (it is what the budget is
                // about); the one error line goes out, then the connection closes.
                for fd in framer.takeAllDescriptors() { _ = Glibc.close(fd) }
                framer = LineFramer(maxLineLength: framer.maxLineLength)
                updateCharge()
                send(Response.error(id: .null, refusal))
                closeWhenFlushed = true
                return
            }
            if framer.heldDescriptorCount > Self.maxHeldDescriptors {
                // Descriptors sent ahead of lines that never end would pin supervisor fds
                // without bound; no request takes more than three.
                for fd in framer.takeAllDescriptors() { _ = Glibc.close(fd) }
                send(Response.error(id: .null, RPCError(.limitExceeded,
                    "more than \(Self.maxHeldDescriptors) descriptors sent ahead of their request line; closing the connection")))
                closeWhenFlushed = true
                return
            }
            if framer.pendingByteCount > framer.maxLineLength { return }
            // A short read most likely drained the socket: rather than pay a recvmsg for
            // EAGAIN, go back to the loop, which (level-triggered) wakes us if more is there.
            if received.count < receiveBuffer.count { return }
        }
    }

    private func processLines() {
        while canProcess, let frame = framer.next() {
            switch frame {
            case .tooLong:
                send(Response.error(id: .null, RPCError(.lineTooLong,
                    "request line longer than \(framer.maxLineLength) bytes; closing the connection")))
                closeWhenFlushed = true
                for fd in framer.takeAllDescriptors() { _ = Glibc.close(fd) }
            case .line(let line):
                lastProgress = monotonicSeconds()
                unfinishedSince = nil  // whatever follows the line started now at the earliest
                handle(line)
            }
        }
        updateCharge()
        updateInterest()
    }

    /// Brings the charge for this connection's buffered request bytes up to
    /// date, and when the unfinished line began; returns what its person now
    /// holds across all their connections.
    @discardableResult
    private func updateCharge() -> Int {
        let pending = framer.pendingByteCount
        if pending == 0 {
            unfinishedSince = nil
        } else if unfinishedSince == nil {
            unfinishedSince = monotonicSeconds()
        }
        let held = input.charge(chargedUID, pending - chargedBytes)
        chargedBytes = pending
        return held
    }

    /// Bytes of requests this connection holds that are not yet handled.
    var bufferedRequestBytes: Int { chargedBytes }

    private func handle(_ line: LineFramer.Line) {
        let descriptors = ReceivedDescriptors(line.descriptors)
        // Blank lines (a person typing into socat) are skipped, not errors.
        if line.bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }
        let request: Request
        do {
            request = try Request.decode(line: line.bytes)
        } catch {
            // A well-formed notification with bad params is still a notification: no reply.
            if !error.isNotification { send(Response.error(id: error.id, error.error)) }
            return
        }
        let outcome = dispatch(self, request, descriptors, line.descriptorsTruncated)
        if case .deferred = outcome {
            waiting = .some(request.id)
        } else {
            reply(to: request, outcome)
        }
    }

    private func reply(to request: Request, _ outcome: Reply) {
        guard let id = request.id else { return }  // notifications are never answered
        switch outcome {
        case .result(let value, let descriptors, let notifications):
            send(Response.result(id: id, value), descriptors: descriptors)
            for notification in notifications { send(notification) }
        case .error(let error):
            send(Response.error(id: id, error))
        case .deferred:
            break
        }
    }

    /// Completes the deferred request and resumes reading.
    func complete(_ outcome: PendingReply) {
        guard case .some(let id) = waiting else { return }
        waiting = nil
        if isClosed { return }
        if let id {
            switch outcome {
            case .result(let value): send(Response.result(id: id, value))
            case .error(let error): send(Response.error(id: id, error))
            }
        }
        processLines()
        finishIfDone()
    }

    // MARK: Output

    /// Replies and notifications written but not yet taken by the client.
    var queuedOutputBytes: Int { queuedBytes }

    /// Idle: no request completed and no reply taken for `timeout` seconds,
    /// and no reply of its own pending (a deferred destroy waits for the kernel).
    func isIdle(now: Double, timeout: Int) -> Bool {
        waiting == nil && now - lastProgress >= Double(timeout)
    }

    /// Stalled: part of a request line has waited for its end for `timeout`
    /// seconds. This closes subscribers and connections with sessions too:
    /// neither needs to keep half a line for long, and each such line pins up
    /// to connections.max-line bytes of the supervisor. Lines held back by us
    /// (a deferred reply, unread replies) do not count.
    func hasStalledLine(now: Double, timeout: Int) -> Bool {
        guard let since = unfinishedSince, waiting == nil, queuedBytes < Self.maxQueuedOutput,
              !framer.hasCompleteFrame else { return false }
        return now - since >= Double(timeout)
    }

    /// Stuck: over the output cap and no reply byte taken for `timeout` seconds.
    func isStuckWriting(now: Double, timeout: Int) -> Bool {
        queuedBytes >= Self.maxQueuedOutput && now - lastWrite >= Double(timeout)
    }

    /// Queues one line, with descriptors to pass beside its first byte.
    func send(_ message: JSONValue, descriptors: ReceivedDescriptors? = nil) {
        guard !isClosed else { return }
        if outbox.isEmpty { lastWrite = monotonicSeconds() }
        let line = message.line
        queuedBytes += line.count
        outbox.append(Outgoing(bytes: line, descriptors: descriptors))
        flush()
    }

    private func flush() {
        while !isClosed, !outbox.isEmpty {
            let sent: Int
            do {
                sent = try outbox[0].bytes.withBytes { (raw) throws(Errno) -> Int in
                    let rest = UnsafeRawBufferPointer(rebasing: raw[outbox[0].sent...])
                    let fds = outbox[0].sent == 0 ? (outbox[0].descriptors?.rawValues ?? []) : []
                    return try UnixSocket.send(socket.rawValue, rest, descriptors: fds)
                }
            } catch {
                if error == .wouldBlock { break }
                close()
                return
            }
            outbox[0].descriptors = nil  // sent with the first byte; our copies close here
            outbox[0].sent += sent
            queuedBytes -= sent
            lastProgress = monotonicSeconds()
            lastWrite = lastProgress
            if outbox[0].sent == outbox[0].bytes.count { outbox.removeFirst() }
        }
        updateInterest()
    }

    /// Reading is off while a reply is deferred or after end of input, so
    /// level-triggered readiness cannot spin the loop; EPOLLHUP still arrives.
    private func updateInterest() {
        guard !isClosed, let source else { return }
        var events: IOEvents = isReading ? [.readable, .readHangup] : []
        if !outbox.isEmpty { events.insert(.writable) }
        try? source.setIOEvents(events)
    }

    private func finishIfDone() {
        guard !isClosed, outbox.isEmpty, waiting == nil else { return }
        if closeWhenFlushed || inputClosed { close() }
    }

    /// Closes the connection now; queued output is dropped.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        source?.cancel()
        source = nil
        outbox.removeAll()
        for fd in framer.takeAllDescriptors() { _ = Glibc.close(fd) }
        framer = LineFramer(maxLineLength: framer.maxLineLength)
        updateCharge()
        onClose(self)
    }
}

/// What the connections of one supervisor share for reading: a receive
/// buffer (the loop is single-threaded, so one per supervisor suffices; a
/// static one would be shared by every supervisor in a process, such as a
/// test runner's) and the bytes of unfinished requests each person holds
/// across all their connections.
final class ConnectionInput {
    let receiveBuffer: UnsafeMutableRawBufferPointer
    private(set) var heldBytes: [uid_t: Int] = [:]

    init(bufferSize: Int = 1 << 16) {
        receiveBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 8)
    }

    deinit { receiveBuffer.deallocate() }

    /// Adds `delta` bytes to what `uid` holds; returns the new total.
    @discardableResult
    func charge(_ uid: uid_t, _ delta: Int) -> Int {
        let total = heldBytes[uid, default: 0] + delta
        heldBytes[uid] = total > 0 ? total : nil
        return max(total, 0)
    }
}
