#if canImport(Glibc)
import Glibc
#endif
import Logging
import Namespaces
import POSIX
import RPC
import Systemd

/// The listening socket and the connections accepted on it: accept, the
/// connection caps (in all, per person, the places kept for admins), the
/// budget of buffered request bytes per person, the once-a-second sweep of
/// idle, stalled and stuck connections, the journal records of their reads
/// and of the lines they sent that are not requests, the once-a-second
/// summaries of refusals held back (RefusalRecords), and closing them all at
/// shutdown.
final class Listener {
    private let socketPath: String
    private let loop: EventLoop
    private let policies: PolicyHolder
    private let audit: Audit
    /// Where the refusals of connections, of buffered requests and of lines go.
    private let refusals: RefusalRecords
    /// Accepted requests that changed nothing, summed up per person.
    private let reads: ReadRecords
    private let subordinates: SubordinateOwners
    /// Looks up each peer's passwd entry off the loop.
    private let names: NameService
    /// The receive buffer, and the per-person counts of buffered request bytes and of unread output.
    private let input: ConnectionInput
    /// Whose connections the sweep leaves open while idle: sessions' and subscribers'.
    private let sessions: SessionTable
    private let bus: EventBus
    private var connections: [UInt64: Connection] = [:]
    /// Open connections per charged person (see SubordinateOwners).
    private var connectionsPerUID: [uid_t: Int] = [:]
    private var nextConnectionID: UInt64 = 1
    private var listener: FileDescriptor?
    private var listenerSource: EventSource?
    private var sweepTimer: EventSource?
    private var ownsSocketPath = false
    /// Where each request goes (Supervisor.dispatch); set by start.
    private var dispatch: Connection.Dispatch?

    init(socketPath: String, loop: EventLoop, policies: PolicyHolder, audit: Audit, refusals: RefusalRecords,
         reads: ReadRecords, subordinates: SubordinateOwners, names: NameService, input: ConnectionInput, sessions: SessionTable, bus: EventBus) {
        self.names = names
        self.socketPath = socketPath
        self.loop = loop
        self.policies = policies
        self.audit = audit
        self.refusals = refusals
        self.reads = reads
        self.subordinates = subordinates
        self.input = input
        self.sessions = sessions
        self.bus = bus
    }

    private var policy: Policy { policies.current }

    /// Binds the socket (replacing a stale one), or takes the listening
    /// socket systemd passed (socket activation: then it is systemd's, and is
    /// neither bound, chmod'ed nor removed here), and starts watching it and
    /// sweeping. Requests go to `dispatch`.
    func start(activatedSocket: Int32?, dispatch: @escaping Connection.Dispatch) throws(SupervisorError) {
        self.dispatch = dispatch
        let socket: FileDescriptor
        if let activatedSocket {
            socket = FileDescriptor(adopting: activatedSocket)
            do { try socket.setNonBlocking() } catch { throw SupervisorError(.startup, "cannot use the socket from systemd: \(error)") }
        } else {
            socket = try bindSocket(socketPath)
        }
        do {
            listenerSource = try loop.addIO(fd: socket.rawValue, events: .readable) { [weak self] _ in
                self?.acceptConnections()
            }
        } catch {
            throw SupervisorError(.startup, "cannot watch the socket: \(error)")
        }
        listener = consume socket
        do {
            sweepTimer = try loop.addRepeatingTimer(everyMicroseconds: 1_000_000) { [weak self] in self?.sweepConnections() }
        } catch {
            throw SupervisorError(.startup, "cannot start the connection timer: \(error)")
        }
    }

    /// Stops accepting, closes every connection and removes the socket.
    func shutdown() {
        sweepTimer?.cancel()
        listenerSource?.cancel()
        listenerSource = nil
        listener = nil
        if ownsSocketPath { unlink(socketPath) }
        for connection in Array(connections.values) { connection.close() }
    }

    private func bindSocket(_ path: String) throws(SupervisorError) -> FileDescriptor {
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !directory.isEmpty {
            var st = stat()
            if stat(directory, &st) < 0 {
                if mkdir(directory, 0o755) < 0 && errno != EEXIST {
                    throw SupervisorError(.startup, "cannot create socket directory \(directory): \(Errno.current)")
                }
                chmod(directory, 0o755)
            }
        }
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else {
                throw SupervisorError(.startup, "\(path) exists and is not a socket; remove it or choose another --socket")
            }
            if (try? UnixSocket.connect(path: path)) != nil {
                throw SupervisorError(.startup, "another nsgroupd is already listening on \(path)")
            }
            unlink(path)  // stale: nobody answers on it
        }
        let socket: FileDescriptor
        do {
            socket = try UnixSocket.listen(path: path)
        } catch {
            throw SupervisorError(.startup, "cannot listen on \(path): \(error)")
        }
        ownsSocketPath = true
        // Everyone may connect: who may do what is decided per request from SO_PEERCRED.
        if chmod(path, 0o666) < 0 {
            throw SupervisorError(.startup, "cannot make \(path) reachable: \(Errno.current)")
        }
        return socket
    }

    private func acceptConnections() {
        guard let listenerFD = listener?.rawValue, let dispatch else { return }
        for _ in 0..<64 {
            let accepted: FileDescriptor?
            do {
                accepted = try UnixSocket.accept(listenerFD)
            } catch {
                audit.logger.warning("Failed to accept a connection: \(error), ignoring")
                return
            }
            guard let socket = accepted else { return }
            let peer: PeerCredentials
            do {
                peer = try PeerCredentials.of(socket: socket.rawValue)
            } catch {
                audit.logger.warning("Failed to read peer credentials: \(error), closing the connection")
                continue
            }
            // One stat of /etc/subuid per connection; it is read again only if it
            // changed, on the NameService's worker (it resolves owner names).
            subordinates.refreshIfChanged()
            let charged = subordinates.chargedUID(peer.uid)
            if let refusal = connectionRefusal(for: peer, charged: charged) {
                // One error line, then the connection is closed; nothing else is read.
                _ = try? refusal.line.withBytes { (raw) throws(Errno) in
                    _ = try UnixSocket.send(socket.rawValue, raw)
                }
                continue
            }
            let id = nextConnectionID
            nextConnectionID += 1
            let connection = Connection(
                id: id, socket: socket, peer: peer, maxLineLength: policy.maxLine,
                input: input, chargedUID: charged,
                budgetCheck: { [unowned self] connection, held in self.bufferRefusal(connection, held: held) },
                dispatch: dispatch,
                refuseLine: { [unowned self] connection, error in self.recordLineRefusal(connection, error) },
                onClose: { [weak self] connection in self?.connectionClosed(connection) })
            // Who the peer is (name, home, shell): from the cache, or looked up
            // off the loop while the connection reads nothing (NameService).
            let identityQuery = NameQuery.user(uid: peer.uid)
            let known = names.cached(identityQuery)
            if let known {
                connection.identify(CallerIdentity(uid: peer.uid, entry: known.userEntry))
            } else {
                connection.awaitIdentity()
            }
            do {
                try connection.start(on: loop)
            } catch {
                audit.logger.warning("Failed to watch a connection: \(error), closing it")
                continue
            }
            connections[id] = connection
            connectionsPerUID[charged, default: 0] += 1
            if known == nil {
                names.lookUp(identityQuery) { [weak connection] answer in
                    connection?.identify(CallerIdentity(uid: peer.uid, entry: answer.userEntry))
                }
            }
        }
    }

    /// The connections connections.per-user counts for the person `charged`.
    func openConnections(chargedTo charged: uid_t) -> Int {
        connectionsPerUID[charged, default: 0]
    }

    /// The error line for a connection over the caps, or nil. The last
    /// connections.reserved-for-admins places are for root and admins, so
    /// that a flood from one person cannot lock them out.
    private func connectionRefusal(for peer: PeerCredentials, charged: uid_t) -> JSONValue? {
        let error: RPCError
        let open = connectionsPerUID[charged, default: 0]
        if connections.count >= policy.maxConnections {
            error = RPCError(.limitExceeded, "nsgroupd serves at most \(counted(policy.maxConnections, "connection")) at once (connections.max); try again later")
        } else if connections.count >= policy.maxConnections - policy.reservedConnections, !policy.isAdmin(peer) {
            error = RPCError(.limitExceeded, "nsgroupd serves at most \(counted(policy.maxConnections - policy.reservedConnections, "connection")) at once for users other than \(Policy.listed(policy.admins)) (connections.max = \(policy.maxConnections), connections.reserved-for-admins = \(policy.reservedConnections)); try again later")
        } else if open >= policy.connectionsPerUser {
            error = RPCError(.limitExceeded, "\(subordinates.chargedSubject(peer.uid)) \(counted(open, "connection")) open, the most allowed (connections.per-user = \(policy.connectionsPerUser))")
        } else {
            return nil
        }
        refusals.record(.connect, error.reason, level: .notice, "Refused a connection from uid \(peer.uid): \(error.message)",
                        caller: peer, fields: [AuditField.operation: "connect", AuditField.result: error.reason.rawValue,
                                               AuditField.refusal: RefusalKind.policy.rawValue])
        return Response.error(id: .null, error)
    }

    private func connectionClosed(_ connection: Connection) {
        guard connections.removeValue(forKey: connection.id) != nil else { return }
        bus.unsubscribe(connection)
        let uid = connection.chargedUID
        let left = connectionsPerUID[uid, default: 1] - 1
        reads.connectionClosed(person: uid, stillOpen: left > 0, now: monotonicSeconds())
        connectionsPerUID[uid] = left > 0 ? left : nil
    }

    /// The refusal for a connection whose person holds `held` bytes of
    /// unfinished requests in all, past connections.buffer-per-user.
    private func bufferRefusal(_ connection: Connection, held: Int) -> RPCError? {
        guard held > policy.bufferBudget else { return nil }
        let error = RPCError(.limitExceeded, "\(subordinates.chargedSubject(connection.peer.uid)) \(held) bytes of unfinished requests buffered across all connections, more than allowed (connections.buffer-per-user = \(policy.bufferBudget)); closing the connection")
        refusals.record(.receive, error.reason, level: .notice,
                        "Refused buffered requests from uid \(connection.peer.uid): \(error.message)",
                        caller: connection.peer, fields: [AuditField.operation: "receive", AuditField.result: error.reason.rawValue,
                                                          AuditField.refusal: RefusalKind.policy.rawValue])
        return error
    }

    /// The record of a line that is not a request (it does not parse, is not a JSON-RPC 2.0
    /// request, is too long, or is a notification with params that are not an object): it
    /// was answered with `error` (a notification is not), and nothing ran. Its text is the
    /// client's: only the start of the error's message goes in, escaped.
    private func recordLineRefusal(_ connection: Connection, _ error: RPCError) {
        let kind = RefusalKind(error.reason)
        refusals.record(.line, error.reason, level: kind.level,
                        "Refused a line from uid \(connection.peer.uid): \(error.message, limit: 256)",
                        caller: connection.peer, fields: [AuditField.operation: "line", AuditField.result: error.reason.rawValue,
                                                          AuditField.refusal: kind.rawValue])
    }

    /// Once a second: closes connections that are idle past idle-timeout
    /// (unless a session reports to them, they subscribed, or a reply of
    /// theirs is pending), those with part of a request line waiting longer
    /// than idle-timeout (whatever they are), and those whose unread replies
    /// (over 1 MiB, or any while their person is over output-per-user) have
    /// not moved for write-timeout. Writes the reads of connections whose
    /// summary is due, and the summaries of refusals whose interval ended.
    private func sweepConnections() {
        refusals.writeEndedIntervals()
        let now = monotonicSeconds()
        reads.writeDue(now: now)
        var listening = sessions.listeningConnections
        listening.formUnion(bus.subscriberIDs)
        for connection in Array(connections.values) {
            if connection.isStuckWriting(now: now, timeout: policy.writeTimeout) {
                let person = input.isHeldBack(connection.chargedUID)
                    ? "; \(subordinates.chargedSubject(connection.peer.uid)) \(input.unreadBytes[connection.chargedUID, default: 0]) bytes unread across all connections (connections.output-per-user = \(policy.outputPerUser))"
                    : ""
                audit.logger.notice("Closing a connection of uid \(connection.peer.uid): it has not read its replies for \(policy.writeTimeout) s (connections.write-timeout)\(person)",
                                    metadata: [AuditField.callerUID: .string(String(connection.peer.uid))])
                connection.close()
            } else if connection.hasStalledLine(now: now, timeout: policy.idleTimeout) {
                // Subscribers and sessions' connections included: half a line is never worth keeping.
                audit.logger.notice("Closing a connection of uid \(connection.peer.uid): \(connection.bufferedRequestBytes) bytes of a request line unfinished for \(policy.idleTimeout) s (connections.idle-timeout)",
                                    metadata: [AuditField.callerUID: .string(String(connection.peer.uid))])
                connection.close()
            } else if !listening.contains(ObjectIdentifier(connection)),
                      connection.isIdle(now: now, timeout: policy.idleTimeout) {
                connection.close()
            }
        }
    }
}
