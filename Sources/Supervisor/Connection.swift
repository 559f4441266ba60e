#if canImport(Glibc)
import Glibc
#endif
import Namespaces
import POSIX
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
///
/// Replies and notifications queued and not yet taken by the client are
/// charged to the same person (ConnectionInput.chargeOutput). While a person
/// is over connections.output-per-user, none of their connections reads or
/// handles requests; they resume once the person's unread output falls below
/// three quarters of it (ConnectionInput wakes them).
///
/// Who the peer is in the user database (`identity`) is looked up off the
/// loop when the connection is accepted (Listener, NameService); until the
/// answer is there (or has timed out), the connection reads nothing.
final class Connection {
    /// Hands a routed request to the supervisor: the call, or why it was refused before any handler.
    typealias Dispatch = (Connection, Request, Result<Call, RPCError>, ReceivedDescriptors) -> Reply
    /// The error to close the connection with when its person's buffered bytes (given) are over budget, else nil.
    typealias BudgetCheck = (Connection, _ held: Int) -> RPCError?
    /// Told of a line that is not a request (undecodable, or too long), with the error it was
    /// answered with (or, a notification, would have been): for its journal record.
    typealias LineRefusal = (Connection, RPCError) -> Void

    let id: UInt64
    private let socket: FileDescriptor
    let peer: PeerCredentials
    /// Whom per-user limits count this connection against: the peer's uid, or
    /// the owner of the subordinate range it lies in.
    let chargedUID: uid_t
    /// The peer's passwd entry (name, home, shell), looked up once at accept.
    /// Until `identify` is called it holds the fallbacks (the uid in digits, /, /bin/sh).
    private(set) var identity: CallerIdentity
    /// Set by `awaitIdentity`: nothing is read until `identify`.
    private var awaitingIdentity = false
    private let input: ConnectionInput
    private let budgetCheck: BudgetCheck?
    /// Bytes of this connection's framer charged to chargedUID in `input`.
    private var chargedBytes = 0
    /// Since when (monotonic seconds) a request line has been unfinished, if one is.
    private var unfinishedSince: Double?
    private var framer: LineFramer
    private var outbox: [Outgoing] = []
    private var source: EventSource?
    /// The events `source` was last set to wait for.
    private var interest: IOEvents = [.readable, .readHangup]
    private let dispatch: Dispatch
    private let refuseLine: LineRefusal?
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
    /// Past this much unsent output a streamed session's output waits (SessionStream):
    /// the session blocks on its full pipe rather than the supervisor buffering for it.
    static let streamOutputMark = 64 << 10

    /// The streamed sessions of this connection, by session number.
    private(set) var streams: [UInt64: SessionStream] = [:]
    /// Streams paused until the client has read enough (`waitForRoom`).
    private var waitingForRoom: [ObjectIdentifier: SessionStream] = [:]
    /// Wakes those streams from the loop, not from inside whichever send made room.
    private var wakeSource: EventSource?
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
         dispatch: @escaping Dispatch, refuseLine: LineRefusal? = nil, onClose: @escaping (Connection) -> Void) {
        self.id = id
        self.socket = socket
        self.peer = peer
        self.chargedUID = chargedUID ?? peer.uid
        self.identity = CallerIdentity(uid: peer.uid, entry: nil)
        self.input = input
        self.budgetCheck = budgetCheck
        self.framer = LineFramer(maxLineLength: maxLineLength)
        self.dispatch = dispatch
        self.refuseLine = refuseLine
        self.onClose = onClose
    }

    /// The loop the connection runs on (nil before `start`).
    var loop: EventLoop? { input.loop }

    func start(on loop: EventLoop) throws(SystemdError) {
        if input.loop == nil { input.loop = loop }
        interest = isReading ? [.readable, .readHangup] : []
        source = try loop.addIO(fd: socket.rawValue, events: interest) { [weak self] events in
            self?.handle(events)
        }
    }

    /// Called before `start` when the peer's identity is being looked up:
    /// the connection reads nothing until `identify`.
    func awaitIdentity() {
        awaitingIdentity = true
    }

    /// The peer's identity is known (or its lookup timed out: then `entry`
    /// is nil and the fallbacks apply); the connection starts reading.
    func identify(_ identity: CallerIdentity) {
        self.identity = identity
        guard awaitingIdentity else { return }
        awaitingIdentity = false
        source?.isEnabled = true
        resume()
    }

    // MARK: Events

    /// Whether the next buffered request may be handled now.
    private var canProcess: Bool {
        !isClosed && !awaitingIdentity && waiting == nil && !closeWhenFlushed && queuedBytes < Self.maxQueuedOutput
            && !input.isHeldBack(chargedUID)
    }

    /// Held back only because its person's unread output is over budget: the
    /// connection would read (or handle buffered lines) otherwise.
    private var isHeldBackByPerson: Bool {
        !isClosed && !awaitingIdentity && waiting == nil && !closeWhenFlushed && queuedBytes < Self.maxQueuedOutput
            && input.isHeldBack(chargedUID) && (!inputClosed || framer.hasCompleteFrame)
    }

    /// Descriptors a connection may have in flight for lines not yet complete.
    static let maxHeldDescriptors = 64

    private var isReading: Bool { canProcess && !inputClosed }

    private func handle(_ events: IOEvents) {
        if events.contains(.writable) { flush() }
        if isClosed { return }
        if awaitingIdentity {
            // A client that sent its request and hung up is still answered as
            // far as it can be: its lines are read once the identity is known.
            // Until then the level-triggered hang-up must not spin the loop.
            if !events.isDisjoint(with: [.hangup, .error]) { source?.isEnabled = false }
            return
        }
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
        // Readiness that arrived while the person went over budget (through
        // another connection) must not spin the level-triggered loop.
        updateInterest()
        finishIfDone()
    }

    /// Called by ConnectionInput when this connection's person is back under
    /// budget: handles the lines that waited and reads again.
    func resume() {
        guard !isClosed else { return }
        scheduleWake()
        if canProcess, framer.hasCompleteFrame {
            processLines()
        } else {
            updateInterest()
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
                dropBuffered()
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
                let error = RPCError(.lineTooLong, "request line longer than \(framer.maxLineLength) bytes; closing the connection")
                refuseLine?(self, error)
                send(Response.error(id: .null, error))
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
        let request: Request
        let routed: Result<Call, RPCError>
        switch Routed.route(line.bytes, descriptors: descriptors.count, truncated: line.descriptorsTruncated,
                            maxDescriptors: UnixSocket.maxDescriptors) {
        case .blank:
            return
        case .undecodable(let failure):
            // A well-formed notification with bad params is still a notification: no reply.
            refuseLine?(self, failure.error)
            if !failure.isNotification { send(Response.error(id: failure.id, failure.error)) }
            return
        case .refused(let refused, let error):
            descriptors.closeAll()
            (request, routed) = (refused, .failure(error))
        case .call(let accepted, let call):
            (request, routed) = (accepted, .success(call))
        }
        let outcome = dispatch(self, request, routed, descriptors)
        if case .deferred = outcome {
            waiting = .some(request.id)
        } else {
            reply(to: request, outcome)
        }
    }

    /// The completion of the deferred request, which closing the connection cancels.
    private weak var pending: Completion?

    /// Called by RequestContext.later: the request being handled is answered later.
    func awaitCompletion(_ completion: Completion) {
        pending = completion
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

    /// Completes the deferred request (through its Completion) and resumes reading.
    /// Descriptors of a reply that is not sent close with it (ReceivedDescriptors).
    func complete(_ outcome: Reply) {
        guard case .some(let id) = waiting else { return }
        waiting = nil
        pending = nil
        if isClosed { return }
        reply(to: Request(id: id, method: "", params: nil), outcome)
        processLines()
        finishIfDone()
    }

    // MARK: What handlers may do to a connection

    /// Prepares the connection to carry events (subscribe): a small kernel
    /// send buffer, so that the supervisor's cap on unread events
    /// (connections.subscriber-buffer), not the socket's own couple of hundred
    /// KiB, decides when a subscriber is too slow.
    func becomeSubscriber() {
        var size: Int32 = 32 << 10
        _ = setsockopt(socket.rawValue, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    /// The audit loginuid and resource limits of the process that connected,
    /// or nil when that process cannot be verified (gone, or its socket handed on).
    func connectingProcess() -> PeerProcess? {
        PeerProcess.read(socket.rawValue, pid: peer.pid)
    }

    // MARK: Output

    /// Replies and notifications written but not yet taken by the client.
    var queuedOutputBytes: Int { queuedBytes }

    // MARK: Streamed sessions

    /// Whether a streamed session's output must wait: the client has not taken the last
    /// streamOutputMark bytes, or its person is over connections.output-per-user.
    var outputCongested: Bool {
        queuedBytes >= Self.streamOutputMark || input.isHeldBack(chargedUID)
    }

    func addStream(_ stream: SessionStream) {
        streams[stream.session] = stream
    }

    /// A stream that has sent its `exited`.
    func streamEnded(_ stream: SessionStream) {
        if streams[stream.session] === stream { streams[stream.session] = nil }
        waitingForRoom[ObjectIdentifier(stream)] = nil
    }

    /// `stream` is told (`roomAvailable`) once the output is no longer congested.
    func waitForRoom(_ stream: SessionStream) {
        waitingForRoom[ObjectIdentifier(stream)] = stream
        // Over the person's budget, ConnectionInput resumes this connection when they are under it.
        if input.isHeldBack(chargedUID) { input.holdBack(self) }
    }

    private func scheduleWake() {
        guard !waitingForRoom.isEmpty, !isClosed, !outputCongested else { return }
        if let wakeSource {
            wakeSource.isEnabled = true
        } else if let loop, let source = try? loop.addDefer({ [weak self] in self?.wakeStreams() }) {
            wakeSource = source
        } else {
            wakeStreams()
        }
    }

    private func wakeStreams() {
        guard !isClosed, !outputCongested else { return }
        let waiting = waitingForRoom
        waitingForRoom = [:]
        for stream in waiting.values { stream.roomAvailable() }
    }

    /// Idle: no request completed and no reply taken for `timeout` seconds,
    /// and no reply of its own pending (a deferred destroy waits for the kernel).
    /// Nor is one held back while its person's connections hold too many
    /// unread replies: its requests may wait unread in the socket, and it goes
    /// on when the person reads (or their non-reader is closed, write-timeout).
    func isIdle(now: Double, timeout: Int) -> Bool {
        !awaitingIdentity && waiting == nil && !isHeldBackByPerson && now - lastProgress >= Double(timeout)
    }

    /// Stalled: part of a request line has waited for its end for `timeout`
    /// seconds. This closes subscribers and connections with sessions too:
    /// neither needs to keep half a line for long, and each such line pins up
    /// to connections.max-line bytes of the supervisor. Lines held back by us
    /// (a deferred reply, unread replies) do not count.
    func hasStalledLine(now: Double, timeout: Int) -> Bool {
        guard let since = unfinishedSince, waiting == nil, queuedBytes < Self.maxQueuedOutput,
              !input.isHeldBack(chargedUID), !framer.hasCompleteFrame else { return false }
        return now - since >= Double(timeout)
    }

    /// Stuck: replies waiting, either over the connection's own output cap or
    /// while its person is over connections.output-per-user, and no byte of
    /// them taken for `timeout` seconds. The second keeps one connection that
    /// never reads (a subscriber's included) from holding its person's other
    /// connections back for ever.
    func isStuckWriting(now: Double, timeout: Int) -> Bool {
        queuedBytes > 0 && (queuedBytes >= Self.maxQueuedOutput || input.isHeldBack(chargedUID))
            && now - lastWrite >= Double(timeout)
    }

    /// Queues one line, with descriptors to pass beside its first byte.
    func send(_ message: JSONValue, descriptors: ReceivedDescriptors? = nil) {
        send(line: message.line, descriptors: descriptors)
    }

    /// Queues one line already serialized (with its newline): the events' ring keeps them so.
    func send(line: [UInt8], descriptors: ReceivedDescriptors? = nil) {
        guard !isClosed else { return }
        if outbox.isEmpty { lastWrite = monotonicSeconds() }
        queuedBytes += line.count
        input.chargeOutput(chargedUID, line.count)
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
            input.chargeOutput(chargedUID, -sent)
            lastProgress = monotonicSeconds()
            lastWrite = lastProgress
            if outbox[0].sent == outbox[0].bytes.count { outbox.removeFirst() }
        }
        scheduleWake()
        updateInterest()
    }

    /// Reading is off while a reply is deferred or after end of input, so
    /// level-triggered readiness cannot spin the loop; EPOLLHUP still arrives.
    /// While its person is over budget, the connection is listed with
    /// ConnectionInput to be resumed.
    private func updateInterest() {
        guard !isClosed, let source else { return }
        var events: IOEvents = isReading ? [.readable, .readHangup] : []
        if !outbox.isEmpty { events.insert(.writable) }
        if isHeldBackByPerson { input.holdBack(self) }
        guard events != interest else { return }
        interest = events
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
        input.chargeOutput(chargedUID, -queuedBytes)
        queuedBytes = 0
        input.release(self)
        dropBuffered()
        // The supervisor's ends of streamed sessions: their stdin reaches end of file, their
        // output pipes break, their terminals hang up, as with a client's own descriptors.
        for stream in streams.values { stream.close() }
        streams = [:]
        waitingForRoom = [:]
        wakeSource?.cancel()
        wakeSource = nil
        onClose(self)
        pending?.cancel()
    }

    /// Forgets every request byte and descriptor not yet handled, and their charge.
    private func dropBuffered() {
        for fd in framer.takeAllDescriptors() { _ = Glibc.close(fd) }
        framer = LineFramer(maxLineLength: framer.maxLineLength)
        updateCharge()
    }
}

/// What the connections of one supervisor share: a receive buffer (the loop
/// is single-threaded, so one per supervisor suffices; a static one would be
/// shared by every supervisor in a process, such as a test runner's), the
/// bytes of unfinished requests each person holds across all their
/// connections, and the bytes of replies and notifications queued for each
/// person and not yet read (with the connections held back while a person is
/// over connections.output-per-user).
final class ConnectionInput {
    let receiveBuffer: UnsafeMutableRawBufferPointer
    private(set) var heldBytes: [uid_t: Int] = [:]
    /// Bytes of replies and notifications queued on each person's connections, not yet taken.
    private(set) var unreadBytes: [uid_t: Int] = [:]
    /// The most unread output a person may have before their connections stop reading requests.
    private(set) var outputBudget = Int.max
    /// People who reached outputBudget and have not yet fallen below resumeMark.
    private(set) var overBudget: Set<uid_t> = []
    /// Connections waiting for their person to fall below resumeMark.
    private var heldBack: [uid_t: [ObjectIdentifier: WeakHeld]] = [:]
    /// People back under budget whose held-back connections are yet to be resumed.
    private var toResume: Set<uid_t> = []
    private var resumeSource: EventSource?
    /// The loop the connections run on (set by the first Connection.start).
    var loop: EventLoop?

    private struct WeakHeld { weak var connection: Connection? }

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

    /// Over budget, a person's connections are resumed once their unread
    /// output is below this: three quarters of the budget, so that waking
    /// them all is paid for by at least a quarter of the budget read.
    var resumeMark: Int { outputBudget - outputBudget / 4 }

    /// Whether `uid`'s connections must not read or handle requests now.
    func isHeldBack(_ uid: uid_t) -> Bool { overBudget.contains(uid) }

    /// Adds `delta` bytes to `uid`'s unread output (replies, notifications).
    func chargeOutput(_ uid: uid_t, _ delta: Int) {
        guard delta != 0 else { return }
        let total = unreadBytes[uid, default: 0] + delta
        unreadBytes[uid] = total > 0 ? total : nil
        update(uid, total)
    }

    /// Sets connections.output-per-user (at start and on reload).
    func setOutputBudget(_ budget: Int) {
        outputBudget = budget
        for uid in Set(unreadBytes.keys).union(overBudget) { update(uid, unreadBytes[uid, default: 0]) }
    }

    private func update(_ uid: uid_t, _ total: Int) {
        if total >= outputBudget {
            overBudget.insert(uid)
        } else if total < resumeMark, overBudget.remove(uid) != nil, heldBack[uid] != nil {
            toResume.insert(uid)
            scheduleResume()
        }
    }

    /// Lists a connection to be resumed when its person is back under budget.
    func holdBack(_ connection: Connection) {
        heldBack[connection.chargedUID, default: [:]][ObjectIdentifier(connection)] = WeakHeld(connection: connection)
    }

    /// Forgets a closed connection.
    func release(_ connection: Connection) {
        let uid = connection.chargedUID
        guard var waiting = heldBack[uid] else { return }
        waiting[ObjectIdentifier(connection)] = nil
        heldBack[uid] = waiting.isEmpty ? nil : waiting
    }

    /// How many connections wait for their person to be back under budget.
    var heldBackCount: Int { heldBack.values.reduce(0) { $0 + $1.count } }

    /// Resumes from the loop, not from inside whichever connection's write
    /// brought the person under budget: resuming handles requests.
    private func scheduleResume() {
        if let resumeSource {
            resumeSource.isEnabled = true
        } else if let loop, let source = try? loop.addDefer({ [weak self] in self?.resumeHeldBack() }) {
            resumeSource = source
        } else {
            resumeHeldBack()
        }
    }

    private func resumeHeldBack() {
        let people = toResume
        toResume = []
        for uid in people where !overBudget.contains(uid) {
            guard let waiting = heldBack.removeValue(forKey: uid) else { continue }
            // A connection resumed may take the person over again: the rest
            // then list themselves again (Connection.updateInterest).
            for held in waiting.values { held.connection?.resume() }
        }
    }
}
