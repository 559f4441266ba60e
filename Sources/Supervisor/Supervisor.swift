#if canImport(Glibc)
import Glibc
#endif
import Logging
import Namespaces
import POSIX
import RPC
import Systemd

/// The supervisor: owns the listening socket, the connections, the groups and
/// their holders. Everything runs on the one thread that runs the event loop;
/// state has that single owner and no locks.
public final class Supervisor {
    let configuration: SupervisorConfiguration
    let loop: EventLoop
    let audit: Audit
    let holders: HolderSpawner
    let state: StateStore
    /// The policy in force; replaced as a whole by reloadPolicy().
    private(set) var policy: Policy
    let ttyGroup: gid_t

    var groups: [String: Group] = [:]
    /// Numbers each Group object this supervisor registers: a name re-created is a new instance.
    private var nextGroupInstance: UInt64 = 1
    var nextSessionID: UInt64 = 1
    /// How recently ended sessions ended, for `attach`; oldest first in endedOrder. Keyed
    /// by session, and kept with the instance of the group it ran in, so that a group
    /// re-created under the same name does not inherit the old one's sessions.
    var recentlyEnded: [UInt64: (group: String, instance: UInt64, uid: uid_t, exited: ExitedNotification)] = [:]
    var endedOrder: [UInt64] = []
    private var connections: [UInt64: Connection] = [:]
    /// Open connections per charged person (see SubordinateOwners).
    private var connectionsPerUID: [uid_t: Int] = [:]
    /// The receive buffer, and the per-person counts of buffered request bytes and of unread output.
    let connectionInput = ConnectionInput()
    /// Owners of subordinate uids, from /etc/subuid.
    let subordinates: SubordinateOwners
    /// Connections that asked for events (subscribe).
    var subscribers: [ObjectIdentifier: WeakConnection] = [:]
    private var sweepTimer: EventSource?
    private var nextConnectionID: UInt64 = 1
    private var listener: FileDescriptor?
    private var listenerSource: EventSource?
    private var ownsSocketPath = false

    public init(configuration: SupervisorConfiguration, loop: EventLoop, logger: Logger) throws(StartupError) {
        self.configuration = configuration
        self.loop = loop
        // Every record names the socket, so records of several supervisors on
        // one host (a system one, a test's) stay apart.
        var logger = logger
        logger[metadataKey: "NSGROUP_SOCKET"] = .string(configuration.socketPath)
        subordinates = SubordinateOwners()
        self.audit = Audit(logger: logger, subordinates: subordinates)
        do {
            holders = try HolderSpawner(executablePath: configuration.holderPath)
        } catch {
            throw StartupError("cannot open the holder program \(configuration.holderPath): \(error)")
        }
        state = try StateStore(directory: configuration.stateDirectory)
        ttyGroup = UserDatabase.groupID(named: "tty") ?? 5
        do {
            policy = try PolicyFile.load(path: configuration.configPath, required: configuration.configRequired)
        } catch {
            throw StartupError("bad configuration: \(error)")
        }
        connectionInput.setOutputBudget(policy.outputPerUser)
    }

    /// Reads the configuration (and /etc/subuid) again (SIGHUP). A file that
    /// does not parse is refused and the policy in force stays; either way
    /// the journal says so.
    public func reloadPolicy() {
        let fields = [AuditField.operation: "reload", "NSGROUP_CONFIG": configuration.configPath]
        // Who owns which subordinate uids is read again whether or not the file parses.
        subordinates.reload()
        do {
            let reloaded = try PolicyFile.load(path: configuration.configPath, required: configuration.configRequired)
            policy = reloaded
            connectionInput.setOutputBudget(reloaded.outputPerUser)
            audit.record(.policyReloaded, "Reloaded policy from \(configuration.configPath)",
                         fields: fields.merging([AuditField.result: "ok"]) { $1 })
        } catch {
            audit.record(.policyReloaded, level: .error,
                         "Failed to reload policy: \(error), keeping the policy in force",
                         fields: fields.merging([AuditField.result: "refused", AuditField.reason: error.description]) { $1 })
        }
    }

    /// Binds the socket (replacing a stale one) and starts accepting.
    /// Binds the socket (replacing a stale one), or takes the listening
    /// socket systemd passed (socket activation: then it is systemd's, and is
    /// neither bound, chmod'ed nor removed here). Then takes back the groups
    /// an earlier supervisor left, and starts accepting.
    public func start(activatedSocket: Int32? = nil) throws(StartupError) {
        let socket: FileDescriptor
        if let activatedSocket {
            socket = FileDescriptor(adopting: activatedSocket)
            do { try socket.setNonBlocking() } catch { throw StartupError("cannot use the socket from systemd: \(error)") }
        } else {
            socket = try bindSocket(configuration.socketPath)
        }
        do {
            listenerSource = try loop.addIO(fd: socket.rawValue, events: .readable) { [weak self] _ in
                self?.acceptConnections()
            }
        } catch {
            throw StartupError("cannot watch the socket: \(error)")
        }
        listener = consume socket
        do {
            sweepTimer = try loop.addRepeatingTimer(everyMicroseconds: 1_000_000) { [weak self] in self?.sweepConnections() }
        } catch {
            throw StartupError("cannot start the connection timer: \(error)")
        }
        audit.record(.supervisorStarted, "Supervisor started on \(configuration.socketPath)\(activatedSocket != nil ? " (socket from systemd)" : "")")
        // Connections wait in the backlog until the groups are taken back.
        readoptGroups()
    }

    /// Puts a group in the registry as a new instance of its name.
    func register(_ group: Group) {
        group.instance = nextGroupInstance
        nextGroupInstance += 1
        groups[group.name] = group
    }

    /// Tells the service manager how many groups there are (STATUS=).
    func groupsChanged() {
        ServiceManager.status("Serving \(counted(groups.count, "group")) on \(configuration.socketPath)")
    }

    /// Stops accepting, closes every connection and removes the socket.
    /// Groups and their holders keep running.
    public func shutdown() {
        sweepTimer?.cancel()
        listenerSource?.cancel()
        listenerSource = nil
        listener = nil
        if ownsSocketPath { unlink(configuration.socketPath) }
        for connection in Array(connections.values) { connection.close() }
        audit.record(.supervisorStopped, "Supervisor stopped; \(groups.count) group(s) keep running",
                     fields: ["NSGROUP_GROUPS": String(groups.count)])
    }

    /// How many groups are alive.
    public var groupCount: Int { groups.count }

    // MARK: Socket

    private func bindSocket(_ path: String) throws(StartupError) -> FileDescriptor {
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !directory.isEmpty {
            var st = stat()
            if stat(directory, &st) < 0 {
                if mkdir(directory, 0o755) < 0 && errno != EEXIST {
                    throw StartupError("cannot create socket directory \(directory): \(Errno.current)")
                }
                chmod(directory, 0o755)
            }
        }
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else {
                throw StartupError("\(path) exists and is not a socket; remove it or choose another --socket")
            }
            if (try? UnixSocket.connect(path: path)) != nil {
                throw StartupError("another nsgroupd is already listening on \(path)")
            }
            unlink(path)  // stale: nobody answers on it
        }
        let socket: FileDescriptor
        do {
            socket = try UnixSocket.listen(path: path)
        } catch {
            throw StartupError("cannot listen on \(path): \(error)")
        }
        ownsSocketPath = true
        // Everyone may connect: who may do what is decided per request from SO_PEERCRED.
        if chmod(path, 0o666) < 0 {
            throw StartupError("cannot make \(path) reachable: \(Errno.current)")
        }
        return socket
    }

    private func acceptConnections() {
        guard let listenerFD = listener?.rawValue else { return }
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
            // One stat of /etc/subuid per connection; it is read again only if it changed.
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
                input: connectionInput, chargedUID: charged,
                budgetCheck: { [unowned self] connection, held in self.bufferRefusal(connection, held: held) },
                dispatch: { [unowned self] connection, request, routed, descriptors in
                    self.dispatch(connection, request, routed, descriptors)
                },
                onClose: { [weak self] connection in self?.connectionClosed(connection) })
            do {
                try connection.start(on: loop)
            } catch {
                audit.logger.warning("Failed to watch a connection: \(error), closing it")
                continue
            }
            connections[id] = connection
            connectionsPerUID[charged, default: 0] += 1
        }
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
            error = RPCError(.limitExceeded, "\(chargedSubject(peer.uid)) \(counted(open, "connection")) open, the most allowed (connections.per-user = \(policy.connectionsPerUser))")
        } else {
            return nil
        }
        audit.record(.requestRefused, level: .notice, "Refused a connection from uid \(peer.uid): \(error.message)",
                     caller: peer, fields: [AuditField.operation: "connect", AuditField.result: error.reason.rawValue])
        return Response.error(id: .null, error)
    }

    private func connectionClosed(_ connection: Connection) {
        guard connections.removeValue(forKey: connection.id) != nil else { return }
        recordReads(of: connection)
        subscribers[ObjectIdentifier(connection)] = nil
        let uid = connection.chargedUID
        let left = connectionsPerUID[uid, default: 1] - 1
        connectionsPerUID[uid] = left > 0 ? left : nil
    }

    /// Who a per-user limit is about, as the subject of its message: "uid
    /// 1001 has" for a person, "uid 100007 is a subordinate uid of alice
    /// (uid 1001), who has" for an id charged to its range's owner. The verb
    /// is `has` unless given.
    func chargedSubject(_ uid: uid_t, _ verb: String = "has") -> String {
        guard let owner = subordinates.owner(of: uid) else { return "uid \(uid) \(verb)" }
        return "uid \(uid) is a subordinate uid of \(owner.name) (uid \(owner.uid)), who \(verb)"
    }

    /// The refusal for a connection whose person holds `held` bytes of
    /// unfinished requests in all, past connections.buffer-per-user.
    private func bufferRefusal(_ connection: Connection, held: Int) -> RPCError? {
        guard held > policy.bufferBudget else { return nil }
        let error = RPCError(.limitExceeded, "\(chargedSubject(connection.peer.uid)) \(held) bytes of unfinished requests buffered across all connections, more than allowed (connections.buffer-per-user = \(policy.bufferBudget)); closing the connection")
        audit.record(.requestRefused, level: .notice, "Refused buffered requests from uid \(connection.peer.uid): \(error.message)",
                     caller: connection.peer, fields: [AuditField.operation: "receive", AuditField.result: error.reason.rawValue])
        return error
    }

    /// Once a second: closes connections that are idle past idle-timeout
    /// (unless a session reports to them, they subscribed, or a reply of
    /// theirs is pending), those with part of a request line waiting longer
    /// than idle-timeout (whatever they are), and those whose unread replies
    /// (over 1 MiB, or any while their person is over output-per-user) have
    /// not moved for write-timeout.
    func sweepConnections() {
        let now = monotonicSeconds()
        var listening = Set<ObjectIdentifier>()
        for group in groups.values {
            for session in group.sessions.values { listening.formUnion(session.listenerIDs) }
        }
        listening.formUnion(subscribers.keys)
        for connection in Array(connections.values) {
            if let since = connection.reads.since, now - since >= Double(policy.readSummaryInterval) {
                recordReads(of: connection)
            }
            if connection.isStuckWriting(now: now, timeout: policy.writeTimeout) {
                let person = connectionInput.isHeldBack(connection.chargedUID)
                    ? "; \(chargedSubject(connection.peer.uid)) \(connectionInput.unreadBytes[connection.chargedUID, default: 0]) bytes unread across all connections (connections.output-per-user = \(policy.outputPerUser))"
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

    // MARK: Requests

    /// Every request that reaches a handler or was refused on the way
    /// (Routed.route: method, descriptor rules, params) passes here: the
    /// handler, and one journal record of the decision.
    func dispatch(_ connection: Connection, _ request: Request, _ routed: Result<Call, RPCError>,
                  _ descriptors: ReceivedDescriptors) -> Reply {
        let caller = connection.peer
        let name = request.params?["name"]?.stringValue
        let reply: Reply
        do throws(RPCError) {
            let context = RequestContext(caller: caller, connection: connection, request: request)
            switch try routed.get() {
            case .version: reply = version()
            case .create(let params): reply = try create(params, context)
            case .list: reply = list(context)
            case .inspect(let params): reply = try inspect(params, context)
            case .destroy(let params): reply = try destroy(params, context)
            case .enter(let params): reply = try enter(params, context, descriptors)
            case .signal(let params): reply = try signal(params, context)
            case .share(let params): reply = try share(params, context, adding: true)
            case .unshare(let params): reply = try share(params, context, adding: false)
            case .attach(let params): reply = try attach(params, context)
            case .subscribe: reply = subscribe(context)
            }
        } catch {
            audit.record(.requestRefused, level: .notice,
                         "Refused \(request.method) from uid \(caller.uid): \(error.message)",
                         caller: caller,
                         fields: recordFields(request, name: name, result: error.reason.rawValue))
            return .error(error)
        }
        descriptors.closeAll()
        if case .success(let call) = routed, call.method.isRead, !policy.recordEachRead {
            connection.reads.add(call.method, name: name, now: monotonicSeconds())
        } else {
            audit.record(.requestAccepted, "Accepted \(request.method) from uid \(caller.uid)",
                         caller: caller, fields: recordFields(request, name: name, result: "ok"))
        }
        return reply
    }

    /// Writes one `reads-summarized` record for the reads a connection has had accepted
    /// since the last one (see ReadTally for why reads are not recorded one by one).
    func recordReads(of connection: Connection) {
        let tally = connection.reads
        guard let since = tally.since else { return }
        connection.reads = ReadTally()
        let caller = connection.peer
        let counts = tally.countsField
        let names = tally.namesField
        var fields = [AuditField.operation: "read", AuditField.result: "ok", AuditField.reads: counts]
        if !names.isEmpty { fields[AuditField.names] = names }
        let seconds = Int((monotonicSeconds() - since).rounded())
        audit.record(.readsSummarized,
                     "uid \(caller.uid) (pid \(caller.pid)) had \(counted(tally.total, "read")) accepted in \(seconds) s: \(counts)"
                        + (names.isEmpty ? "" : "; inspected \(names)"),
                     caller: caller, fields: fields)
    }

    private func recordFields(_ request: Request, name: String?, result: String) -> [String: String] {
        var fields = [AuditField.operation: String(request.method.prefix(64)), AuditField.result: result]
        if let name, GroupName.isValid(name) { fields[AuditField.name] = name }
        return fields
    }

    /// The group named by a request, if the caller may do `action` with it:
    /// manage (destroy, share) needs owner or admin; use (inspect, enter)
    /// also admits members. A group the caller may not see (not owner, member or admin)
    /// is not_found, word for word as one that does not exist: names are not an oracle.
    func group(_ name: String, _ context: RequestContext, action: String, manage: Bool) throws(RPCError) -> Group {
        let caller = context.caller
        guard let group = groups[name], policy.mayUse(caller, group) else { throw .notFound(group: name) }
        guard !manage || policy.mayManage(caller, group) else {
            let who = ["its owner"] + policy.admins
            throw RPCError(.permissionDenied, "uid \(caller.uid) may not \(action) group \"\(name)\": only \(Policy.listed(who)) may")
        }
        return group
    }
}

/// One request in flight: who sent it, on which connection.
struct RequestContext {
    let caller: PeerCredentials
    let connection: Connection
    let request: Request
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
