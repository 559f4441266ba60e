#if canImport(Glibc)
import Glibc
#endif
import CPOSIX
import Cgroups
import Namespaces
import POSIX
import RPC

/// `enter`, and what may be done to a running session: `attach` and
/// `signal`. Decides how each caller enters a group (EntryMode) and who may
/// control a session (checkControl); the sessions themselves are the
/// SessionTable's.
final class EnterHandler {
    private let registry: GroupRegistry
    private let sessions: SessionTable
    private let launches: Launches
    private let reaper: Reaper
    private let policies: PolicyHolder
    private let subordinates: SubordinateOwners
    private let audit: Audit
    private let ttyGroup: gid_t
    private let containment: Containment

    init(registry: GroupRegistry, sessions: SessionTable, launches: Launches, reaper: Reaper, policies: PolicyHolder,
         subordinates: SubordinateOwners, audit: Audit, ttyGroup: gid_t, containment: Containment) {
        self.containment = containment
        self.registry = registry
        self.sessions = sessions
        self.launches = launches
        self.reaper = reaper
        self.policies = policies
        self.subordinates = subordinates
        self.audit = audit
        self.ttyGroup = ttyGroup
    }

    private var policy: Policy { policies.current }

    static let userSearchPath = "/usr/local/bin:/usr/bin:/bin"
    static let rootSearchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    static let defaultTerm = "xterm-256color"

    /// The sessions limits.sessions-per-user counts for the person `charged`: those running
    /// and those still starting.
    func sessionsRunning(chargedTo charged: uid_t) -> Int {
        sessions.count(chargedTo: charged) + launches.count(.session, chargedTo: charged)
    }

    /// Starts a process inside the group as exactly the caller: the caller's
    /// uid, gid and supplementary groups (from the kernel, at connect time),
    /// its audit loginuid and resource limits (read from the process that connected),
    /// no capabilities unless the caller is root, no_new_privs, a clean
    /// environment, and only fds 0-2. Interactive: on a new pty of the group,
    /// whose master goes back beside the reply. Scripted: on the three
    /// descriptors the caller passed.
    /// Routed.route has checked the descriptors against `params.tty`: none with a tty, else exactly 3.
    ///
    /// The answer comes once the process has exec'd its program or failed
    /// (Launches): nothing here waits for a child, so a session whose program
    /// or directory sits on a file a user can stall (a lease, FUSE, a hung
    /// NFS server) stalls only its own enter, and only until
    /// limits.spawn-timeout. The places a launch can wait: the terminal's
    /// path in the group's tree, the session's directory, the program's path
    /// and file; all are in its children (CSpawn, ns_spawn_enter_start).
    func enter(_ params: EnterParams, _ context: RequestContext, _ descriptors: ReceivedDescriptors) throws(RPCError) -> Reply {
        let group = try registry.group(params.name, caller: context.caller, action: "enter", manage: false)
        guard !group.destroying else { throw .notFound(group: params.name) }
        // A frozen group's processes do not run: a session would hang where it starts.
        guard !group.frozen else {
            throw RPCError(.frozen, "group \"\(params.name)\" is frozen: nothing runs in it until it is thawed (nsgroup thaw \(params.name))")
        }

        let caller = context.caller
        // A session takes on its caller's audit loginuid and resource limits, read from the
        // process that connected (PROTOCOL.md §4). When that process cannot be verified
        // (gone, its socket handed to another), a session would start with an unset
        // loginuid, which it may set to anyone's, and the supervisor's limits: refused.
        guard let process = context.connection.connectingProcess() else {
            throw RPCError(.permissionDenied, "enter: the process that opened this connection (pid \(caller.pid)) is gone, so nsgroupd cannot verify its audit login uid and resource limits, which a session takes on; enter from the process that connects")
        }
        // Per-user limits bind everyone but root (admins are users with more access, not more quota).
        // Sessions still starting count: concurrent enters cannot pass the limit together.
        let charged = subordinates.chargedUID(caller.uid)
        if caller.uid != 0 {
            let running = sessionsRunning(chargedTo: charged)
            if running >= policy.sessionsPerUser {
                throw RPCError(.limitExceeded, "\(subordinates.chargedSubject(caller.uid)) \(counted(running, "session")) running, the most allowed (limits.sessions-per-user = \(policy.sessionsPerUser))")
            }
        }
        let entry = try entryMode(group, caller, trustOwner: params.trustOwner)
        // Root entering through someone else's user namespace runs as a process she may
        // ptrace: she could take its descriptors (pidfd_getfd) and keep them. So no
        // descriptor of root's own goes there, only pipes the client relays.
        if !params.tty, params.stdio == .descriptors, entry.isNamespaceRoot(owner: false),
           !descriptors.rawValues.allSatisfy(FileDescriptor.isAnonymousPipe) {
            descriptors.closeAll()
            throw RPCError(.permissionDenied, "enter: root enters group \"\(group.name)\" through the user namespace of its owner (uid \(group.owner)), who could take the session's descriptors: stdin, stdout and stderr must be pipes, which the client relays (nsgroup does)",
                           details: ["needs": "pipes"])
        }
        // A session of someone else's in a group that is a unit runs in a scope of that person's
        // (Containment.startGuestScope): when there is none, it is started first, and this
        // request runs again once it is there.
        let guestOf = containment.guestOf(charged, in: group)
        if containment.needsGuestScope(guestOf, of: group), let guestOf {
            guard !context.guestScopeStarted else {
                throw RPCError(.operationFailed, "cannot enter group \"\(params.name)\": \(GroupUnits.guestScopeName(group.name, guestOf)) went away as soon as it was started; try again")
            }
            let completion = context.later()
            var again = context
            again.completion = completion
            again.guestScopeStarted = true
            let kept = descriptors.takeAll()
            containment.startGuestScope(guestOf, of: group, guestName: context.identity.name) { [weak self] error in
                guard let self, !completion.isFinished else { return }
                if let error { return completion.finish(.error(error)) }
                guard !completion.isCancelled else {
                    return completion.finish(.error(RPCError(.operationFailed, "cannot enter group \"\(params.name)\": the client went away while its scope started")))
                }
                do throws(RPCError) {
                    let reply = try self.enter(params, again, kept)
                    if case .deferred = reply { return }
                    completion.finish(reply)
                } catch {
                    completion.finish(.error(error))
                }
            }
            return .deferred
        }
        let user = context.identity  // looked up off the loop at accept (NameService)
        let shell = user.shell
        // Root, entering through someone else's user namespace, is that namespace's
        // root, not itself: its name and home, which the owner's rights may well not
        // reach (then the session starts in /).
        let home: String
        let userName: String
        if case .namespaceRoot(_, owner: false) = entry {
            (home, userName) = ("/root", "root")
        } else {
            (home, userName) = (user.home, user.name)
        }

        // What to run: the request's argv, or the login shell as a login shell.
        let executable: String
        let argv: [String]
        if let requested = params.argv {
            executable = requested[0]
            argv = requested
        } else {
            executable = shell
            argv = ["-" + (shell.split(separator: "/").last.map(String.init) ?? "sh")]
        }

        // A clean environment built for the caller, then the request's entries. A session that
        // runs as root (host root, or root of the group's user namespace, its owner too, who
        // may administer an overlay root there) gets root's PATH, with the sbin directories.
        var environment: [(String, String)] = [
            ("HOME", home), ("USER", userName), ("LOGNAME", userName), ("SHELL", shell),
            ("PATH", caller.uid == 0 || entry.isNamespaceRoot ? Self.rootSearchPath : Self.userSearchPath),
        ]
        if params.tty { environment.append(("TERM", Self.defaultTerm)) }
        for (key, value) in params.env {
            if let index = environment.firstIndex(where: { $0.0 == key }) {
                environment[index].1 = value
            } else {
                environment.append((key, value))
            }
        }
        let searchPath = environment.first { $0.0 == "PATH" }?.1 ?? Self.userSearchPath

        var kinds = group.record.kinds
        let groups: [gid_t]
        switch entry {
        case .namespaceRoot(let kept, _): groups = kept
        case .asCaller, .trustingOwner:
            kinds.remove(.user)
            groups = caller.groups
        }
        var spec = SessionSpec(
            uid: entry.isNamespaceRoot ? 0 : caller.uid, gid: entry.isNamespaceRoot ? 0 : caller.gid, groups: groups,
            cwd: params.cwd ?? home, cwdFallback: params.cwd == nil,
            executable: executable, argv: argv, environment: environment.map { "\($0.0)=\($0.1)" },
            searchPath: searchPath, controllingTerminal: params.tty)
        spec.userNamespaceRoot = entry.isNamespaceRoot
        // Verified above: nil only where the kernel keeps no loginuid (no audit).
        spec.loginUID = process.loginUID
        spec.resourceLimits = process.limits
        if let umask = process.umask { spec.umask = umask }

        let namespaces: NamespaceFiles
        do {
            namespaces = try NamespaceFiles(holder: group.holder, kinds: kinds)
        } catch {
            throw RPCError.operationFailed("cannot enter group \"\(params.name)\": opening its namespaces failed: \(error)",
                                           step: .openNamespaces(pid: group.record.holderPID), errno: error)
        }

        // The terminal is opened by the launch's first child, through the group's
        // tree (/proc/HOLDER/root, whose magic link no user's file system is on).
        var groupRoot: FileDescriptor?
        if params.tty, group.record.kinds.contains(.mnt) {
            do {
                // An overlay root is served to the group's user namespace only: its devpts
                // instance, which the holder keeps open, is reached without its tree.
                let path = group.record.root == .overlay
                    ? "/proc/\(group.record.holderPID)/fd/\(HolderSpec.devptsDescriptor)" : "/proc/\(group.record.holderPID)/root"
                groupRoot = try FileDescriptor.open(path, NS_O_PATH | O_DIRECTORY)
            } catch {
                throw RPCError.operationFailed("cannot enter group \"\(params.name)\"", step: .openPtmx, errno: error)
            }
        }
        // The terminal is the session's: through a user namespace, its root's (the owner).
        let terminal = params.tty
            ? TerminalRequest(groupRoot: groupRoot?.rawValue, uid: entry.isNamespaceRoot ? group.owner : caller.uid,
                              ttyGroup: ttyGroup, rows: params.rows ?? 0, columns: params.columns ?? 0)
            : nil
        // The session's own cgroup, numbered as the session will be: in the group's when it
        // is charged to the group's person, else below the caller's (Containment.prepareSession).
        // A number whose cgroup still has processes (a daemon an earlier session left, before
        // a restart) is passed over.
        var id = sessions.takeID()
        for _ in 0..<64 where containment.isTaken(id, guestOf: guestOf, of: group) { id = sessions.takeID() }
        let cgroup: (node: CgroupNode, files: CgroupFiles)
        do throws(CgroupError) {
            cgroup = try containment.prepareSession(id, guestOf: guestOf, of: group)
        } catch {
            throw RPCError.operationFailed("cannot enter group \"\(params.name)\": its session's cgroup", error)
        }
        // Streamed without a terminal: the session's stdio is three pipes of ours, whose
        // other ends the stream keeps (SessionStream).
        var streamPipes: (session: [Int32], ours: SessionStream.Ends)?
        if params.stdio == .stream, !params.tty {
            do {
                streamPipes = try Self.makeStreamPipes()
            } catch {
                containment.discard(cgroup.node)
                throw RPCError.operationFailed("cannot enter group \"\(params.name)\": its stdio pipes", step: .pipe2, errno: error)
            }
        }
        let fds = streamPipes?.session ?? descriptors.rawValues
        let launch: SessionLaunch
        do throws(SpawnError) {
            launch = try SessionLaunch.start(spec, namespaces: namespaces,
                                             stdio: params.tty ? (-1, -1, -1) : (fds[0], fds[1], fds[2]), terminal: terminal,
                                             cgroup: cgroup.files.session)
        } catch {
            containment.discard(cgroup.node)
            for fd in streamPipes?.session ?? [] { _ = Glibc.close(fd) }
            streamPipes?.ours.closeAll()
            throw Self.spawnFailure(params.name, error)
        }
        withExtendedLifetime(cgroup.files) {}
        // Our copies of the caller's stdio (or the session's ends of its pipes) close here:
        // only the children hold them now.
        descriptors.closeAll()
        for fd in streamPipes?.session ?? [] { _ = Glibc.close(fd) }
        _ = consume groupRoot

        let completion = context.later()
        let started = Started(id: id, guestOf: guestOf, cgroup: cgroup.node, group: group, caller: caller, argv: argv, tty: params.tty,
                              entry: entry, connection: context.connection, completion: completion, details: context.details,
                              stream: params.stdio == .stream, streamEnds: streamPipes?.ours)
        let timeout = policy.spawnTimeout
        do {
            try launches.watch(.session, channel: launch.channel.rawValue, chargedTo: charged, timeoutSeconds: timeout,
                               readable: { [weak self] in
                                   let state = launch.advance()
                                   if case .running = state { return false }
                                   self?.ended(launch, state, started)
                                   return true
                               },
                               expired: { [weak self] in self?.ended(launch, launch.timeOut(after: timeout), started) })
        } catch {
            launch.kill()
            ended(launch, .failed(SpawnError(step: .killed, errno: Errno(rawValue: ECANCELED))), started,
                  error: RPCError(.internalError, "cannot enter group \"\(params.name)\": cannot watch the new process: \(error)"))
            return .deferred
        }
        group.launching[ObjectIdentifier(launch)] = launch
        // A client that goes away before the answer takes its launch with it: killed, its
        // channel reaches end of file, and it ends as failed.
        completion.onCancel = { [weak launch] in launch?.kill() }
        return .deferred
    }

    /// What a launch needs to know when it ends.
    private struct Started {
        let id: UInt64
        let guestOf: uid_t?
        let cgroup: CgroupNode
        let group: Group
        let caller: PeerCredentials
        let argv: [String]
        let tty: Bool
        let entry: EntryMode
        let connection: Connection
        let completion: Completion
        /// The fields of the request's record (which session it started).
        let details: RequestDetails
        /// `"stdio": "stream"`: the session's stdio goes through the connection.
        let stream: Bool
        /// Without a terminal, the supervisor's ends of the session's pipes (closed if it fails).
        let streamEnds: SessionStream.Ends?
    }

    /// Three pipes for a streamed session: its ends (stdin's read end, stdout's and
    /// stderr's write ends) and ours. All close-on-exec; the launch gives the session its
    /// ends as 0, 1 and 2.
    static func makeStreamPipes() throws(Errno) -> (session: [Int32], ours: SessionStream.Ends) {
        var made: [Int32] = []
        for _ in 0..<3 {
            var pair: [Int32] = [-1, -1]
            guard ns_pipe_cloexec(&pair) == 0 else {
                let error = Errno.current
                for fd in made { _ = Glibc.close(fd) }
                throw error
            }
            made += pair
        }
        return ([made[0], made[3], made[5]], SessionStream.Ends(stdin: made[1], stdout: made[2], stderr: made[4]))
    }

    /// A launch ended: its first child goes to the Reaper, and so does its
    /// session if it failed; then the session runs (register, journal,
    /// answer with its terminal), or the answer says why not.
    private func ended(_ launch: SessionLaunch, _ state: SessionLaunch.State, _ started: Started, error: RPCError? = nil) {
        if let first = launch.takeFirstChild() { reaper.reap(first) }
        let group = started.group
        group.launching[ObjectIdentifier(launch)] = nil
        let caller = started.caller
        let name = group.name
        if case .failed(let failure) = state {
            started.streamEnds?.closeAll()
            if let session = launch.takeSession() { reaper.kill(session) }
            try? started.cgroup.killAll()
            containment.discard(started.cgroup)
            started.completion.finish(.error(error ?? Self.spawnFailure(name, failure)))
            return
        }
        guard let pidfd = launch.takeSession() else {
            started.streamEnds?.closeAll()
            return
        }
        // The group went away while its session started (destroy killed what it knew of),
        // or the client did: this one goes too.
        let groupGone = group.destroying || registry[name] !== group
        if groupGone || started.completion.isCancelled {
            started.streamEnds?.closeAll()
            reaper.kill(pidfd)
            try? started.cgroup.killAll()
            containment.discard(started.cgroup)
            started.completion.finish(.error(groupGone
                ? .notFound(group: name)
                : RPCError.operationFailed("cannot enter group \"\(name)\"", step: .killed, errno: Errno(rawValue: ECANCELED))))
            return
        }
        let master = launch.takeTerminal()
        let pid = pidfd.pid
        var record = SessionRecord(
            id: started.id, pid: pid, startTime: (try? ProcFS.startTime(pid: pid)) ?? 0,
            uid: caller.uid, argv: started.argv, started: Timestamp.now(), tty: started.tty,
            callerGID: caller.gid, callerPID: caller.pid)
        record.guestOf = started.guestOf
        record.sessionID = RandomID.make()
        let session = Session(record: record, pidfd: pidfd, adopted: false, connection: started.connection)
        // A session that starts (and, in SessionTable, one that ends) is use: the idle clock starts again.
        group.lastActive = monotonicSeconds()
        do {
            try sessions.start(session, in: group)
        } catch {
            started.streamEnds?.closeAll()
            reaper.kill(borrowing: session.pidfd)
            try? started.cgroup.killAll()
            containment.discard(started.cgroup)
            started.completion.finish(.error(RPCError(.internalError, "cannot enter group \"\(name)\": cannot watch the process: \(error)")))
            return
        }
        // The decision (request-accepted) first, then what it started.
        started.details.fields[AuditField.session] = String(session.id)
        started.details.fields[AuditField.sessionID] = session.uniqueID
        started.details.fields[AuditField.groupID] = group.id
        if started.stream {
            // The reply first (with the input window), then the stream's output after it.
            started.completion.finish(.result(EnterResult(session: session.id, pid: session.pid, window: StreamLimits.window).json))
            var ends = started.streamEnds
            if let master { ends = SessionStream.Ends.terminal(master.release()) }
            if let ends, let loop = started.connection.loop, !started.connection.isClosed {
                do {
                    let stream = try SessionStream(session: session.id, ends: ends, connection: started.connection, loop: loop)
                    started.connection.addStream(stream)
                    session.stream = stream
                } catch {
                    // Without its stream the session has no stdio: its pipes are closed
                    // (end of file, EPIPE) or its terminal hung up, as if the client had gone.
                    audit.logger.warning("Session \(session.id) of group \(name) lost its streamed stdio: \(error)")
                }
            } else {
                ends?.closeAll()
            }
        } else {
            let result = EnterResult(session: session.id, pid: session.pid).json
            if let master {
                started.completion.finish(.result(result, descriptors: ReceivedDescriptors([master.release()])))
            } else {
                started.completion.finish(.result(result))
            }
        }
        // What the enter asked (cwd, environment names, ...) and what it started; the argv
        // is the one that runs (the login shell's when none was asked), cut as requests' are.
        let recorded = RequestDetails()
        recorded.fields = started.details.fields
        recorded.lists = started.details.lists
        RequestFields.argvFields(started.argv, into: recorded)
        recorded.fields.merge([
            AuditField.name: name,
            AuditField.groupID: group.id,
            AuditField.operation: "enter",
            AuditField.result: "ok",
            AuditField.ownerUID: String(group.owner),
            AuditField.holderPID: String(group.record.holderPID),
            AuditField.sessionPID: String(session.pid),
            AuditField.session: String(session.id),
            AuditField.sessionID: session.uniqueID,
            AuditField.sessionStarted: Timestamp.format(secondsSinceEpoch: session.record.started),
            AuditField.tty: session.record.tty ? "pty" : "stdio",
            AuditField.stdio: started.stream ? "stream" : "descriptors",
            AuditField.enteredAs: started.entry.auditName,
        ]) { $1 }
        // The caller's name, when the lookup at accept had answered by the request's record.
        let who = audit.uid(caller.uid, known: recorded.fields[AuditField.callerName])
        audit.record(.sessionStarted, "Started session \(session.id) (pid \(session.pid)) in group \(name) for \(who): \(recorded.fields[AuditField.argv] ?? "", limit: SessionEnd.messageArgvLimit)",
                     caller: caller, fields: recorded.fields, lists: recorded.lists)
    }

    /// A launch that failed. A clone refused with EAGAIN in a group's cgroup
    /// is a pids limit (the group's, or that of the person the session is charged to): said so,
    /// as limit_exceeded.
    static func spawnFailure(_ name: String, _ error: SpawnError) -> RPCError {
        if error.step == .clone3, error.errno.rawValue == EAGAIN {
            return RPCError(.limitExceeded, "cannot enter group \"\(name)\": no process can start there: a pids limit is reached (the group's, or the per-user limit of whom the session is charged to) (\(error))")
        }
        return RPCError.operationFailed("cannot enter group \"\(name)\"", error)
    }

    /// How a caller enters a group: who controls the files a session may run decides it
    /// (README, "Who can run what"). In a group with a user namespace its owner is root
    /// inside and shapes its mount tree, so nobody may run there with more than her rights:
    /// she and root enter *through* that user namespace as its root (root inside maps to her
    /// ids on the host). Anyone else — a member, or an admin who is not root — cannot be kept
    /// safe from her and enters as themselves only when they say they trust her. (An admin
    /// is not made the namespace's root: that would hand every admin every owner's file
    /// rights, and host root's in a group root owns.) A group without a user namespace is
    /// entered by everyone as themselves: its owner cannot change what runs there (bind
    /// mounts are for admins, tmpfs mounts only on directories of the owner's own).
    enum EntryMode: Equatable {
        /// uid and gid 0 in the group's user namespace, with these host groups kept
        /// (the owner's own; none for root, who gets exactly the owner's rights or fewer).
        case namespaceRoot(groups: [gid_t], owner: Bool)
        /// The caller's own ids, from the host's user namespace.
        case asCaller
        /// As asCaller, in a group with a user namespace of someone else's: a member or admin
        /// who said they trust its owner.
        case trustingOwner

        var isNamespaceRoot: Bool { if case .namespaceRoot = self { true } else { false } }

        /// NSGROUP_ENTERED_AS.
        var auditName: String {
            switch self {
            case .namespaceRoot: "namespace-root"
            case .asCaller: "caller"
            case .trustingOwner: "trusting-owner"
            }
        }

        func isNamespaceRoot(owner: Bool) -> Bool {
            if case .namespaceRoot(_, let isOwner) = self { isOwner == owner } else { false }
        }
    }

    func entryMode(_ group: Group, _ caller: PeerCredentials, trustOwner: Bool) throws(RPCError) -> EntryMode {
        guard group.record.kinds.contains(.user) else { return .asCaller }
        if caller.uid == group.owner { return .namespaceRoot(groups: caller.groups, owner: true) }
        if caller.uid == 0 { return .namespaceRoot(groups: [], owner: false) }
        guard trustOwner else {
            throw RPCError(.permissionDenied, "group \"\(group.name)\" has a user namespace: its owner (uid \(group.owner)) is root inside it and controls every file a session there runs, so it could run code as you; enter with --trust-owner (\"trustOwner\": true) only if you trust that user with your account",
                           details: ["needs": "trustOwner"])
        }
        return .trustingOwner
    }

    /// A session belongs to whoever started it: they and admins may attach to it or signal
    /// it; the group's owner may not touch the sessions of others (root's least of all).
    /// Passes when `caller` may control the session (`uid` is its user, nil when there is
    /// no such session). Otherwise: not_found when the caller may not see the group, so that
    /// neither groups nor session numbers leak; else not_found for a missing session and
    /// permission_denied for someone else's.
    func checkControl(_ caller: PeerCredentials, of uid: uid_t?, _ session: UInt64, in name: String, _ group: Group?,
                      action: String) throws(RPCError) {
        if let uid, caller.uid == uid || policy.isAdmin(caller) { return }
        guard let group, policy.mayUse(caller, group) else { throw .notFound(group: name) }
        guard uid != nil else { throw RPCError(.notFound, "group \"\(name)\" has no session \(session)") }
        throw RPCError(.permissionDenied, "uid \(caller.uid) may not \(action) session \(session) of group \"\(name)\": only \(Policy.listed(["the session's own user"] + policy.admins)) may")
    }

    /// `attach {name, session}`: the session's own user and admins may attach. A session
    /// that ended is found only under the instance of the group it ran in (or by name,
    /// once no group of that name exists).
    func attach(_ params: AttachParams, _ context: RequestContext) throws(RPCError) -> Reply {
        let caller = context.caller
        let current = registry[params.name]
        let live = current?.sessions[params.session]
        let ended = sessions.ended(params.session, inGroupNamed: params.name, current: current)
        try checkControl(caller, of: live?.uid ?? ended?.uid, params.session, in: params.name, current, action: "attach to")
        if let live {
            live.addListener(context.connection)
            return .result(EnterResult(session: live.id, pid: live.pid).json)
        }
        // The reply first, then at once the notification it promises.
        return .result(EnterResult(session: params.session, pid: 0).json,
                       followedBy: [Response.notification(method: NotificationName.exited.rawValue, params: ended!.exited.json)])
    }

    /// The streamed session `session` of `connection`, for `write` and `resize`. A stream
    /// belongs to the connection that entered it: any other session number, whoever's it is
    /// and whether it exists, gets the same not_found, so no session is found out this way.
    static func stream(_ session: UInt64, of connection: Connection, for method: String) throws(RPCError) -> SessionStream {
        guard let stream = connection.streams[session], !stream.isClosed else {
            throw RPCError(.notFound, "\(method): this connection streams no session \(session)")
        }
        return stream
    }

    /// `signal {name, session, signal}`: the session's own user and admins may signal it.
    func signal(_ params: SignalParams, _ context: RequestContext) throws(RPCError) -> Reply {
        let group = registry[params.name]
        let session = group?.sessions[params.session]
        try checkControl(context.caller, of: session?.uid, params.session, in: params.name, group, action: "signal")
        guard let session else { throw RPCError(.internalError, "session \(params.session) vanished") }
        context.details.fields[AuditField.sessionUID] = String(session.uid)
        context.details.fields[AuditField.sessionPID] = String(session.pid)
        context.details.fields[AuditField.session] = String(session.id)
        context.details.fields[AuditField.sessionID] = session.uniqueID
        do {
            try Self.send(params.signal, to: session)
            // Its end record tells of it: as what ended it only for a SIGKILL, which
            // cannot be survived; else as the fact it is, beside the signal that did.
            session.noteSignalRequest(Session.SignalRequest(uid: context.caller.uid, signal: params.signal))
        } catch where error.rawValue == ESRCH {
            // It has just ended; its exited notification is on its way.
        } catch {
            throw RPCError.operationFailed("cannot signal session \(params.session): \(error)", step: .signal, errno: error)
        }
        return .result(.object([:]))
    }

    /// Signals that stop or continue a job: they go to the session's whole process group
    /// (it leads one of its own, made by setsid), as a terminal sends Ctrl-Z to a whole
    /// pipeline; so `enter -T`'s Ctrl-Z stops what the command started too.
    static let jobControlSignals: Set<Int32> = [SIGTSTP, SIGSTOP, SIGCONT, SIGTTIN, SIGTTOU]

    /// Sends `signal` to the session's process, or for a job-control signal to its process
    /// group. Before Linux 6.9 (no PIDFD_SIGNAL_PROCESS_GROUP), kill(-pid) serves for a session
    /// of ours: our unreaped child keeps its pid, and so its process group's id, from
    /// being reused. One an earlier supervisor started may have been reaped by init, so
    /// there only its own process is signalled.
    private static func send(_ signal: Int32, to session: Session) throws(Errno) {
        guard jobControlSignals.contains(signal) else { return try session.pidfd.signal(signal) }
        do {
            try session.pidfd.signalProcessGroup(signal)
        } catch where error.rawValue == EINVAL {
            guard !session.adopted else { return try session.pidfd.signal(signal) }
            if kill(-session.pid, signal) < 0 { throw Errno.current }
        }
    }
}
