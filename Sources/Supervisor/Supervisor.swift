#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import Logging
import Namespaces
import POSIX
import RPC
import Systemd

/// The supervisor: builds the parts that hold its state, each the one owner
/// of what it holds (see docs/ARCHITECTURE.md, "Who owns what"), hands each
/// request handler the parts it needs, and routes every request to its
/// handler. Everything runs on the one thread that runs the event loop; no locks.
public final class Supervisor {
    let configuration: SupervisorConfiguration
    let audit: Audit
    /// The policy in force; replaced as a whole by reloadPolicy().
    private let policies: PolicyHolder
    /// Owners of subordinate uids, from /etc/subuid.
    private let subordinates: SubordinateOwners
    /// User and group database lookups, off the loop.
    private let names: NameService
    private let registry: GroupRegistry
    private let sessions: SessionTable
    private let bus: EventBus
    /// The per-person counts of buffered request bytes and of unread output all connections share.
    private let connectionInput = ConnectionInput()
    /// Every refusal's record goes through its person's budget (RefusalBudget).
    private let refusals: RefusalRecords
    /// Accepted requests that change nothing, summed up per person.
    private let reads: ReadRecords
    private let listener: Listener
    private let readHandler: ReadHandler
    private let createHandler: CreateHandler
    private let destroyHandler: DestroyHandler
    private let enterHandler: EnterHandler
    private let describeHandler: DescribeHandler
    /// Sessions being started, and the children nobody waits for but the kernel.
    private let launches: Launches
    private let reaper: Reaper
    private let shareHandler: ShareHandler
    private let readoption: Readoption
    /// The cgroups of groups and sessions.
    private let containment: Containment
    private let cgroupHandler: CgroupHandler
    /// Where groups' cgroups are, in words, for the start-up record: units of systemd's or not, and why.
    private let unitsNote: String
    private let sweep: Sweep

    public convenience init(configuration: SupervisorConfiguration, loop: EventLoop, logger: Logger) throws(SupervisorError) {
        try self.init(configuration: configuration, loop: loop, logger: logger, nameLookup: NameAnswer.fromDatabase)
    }

    /// `nameLookup` answers the NameService's questions on its worker thread:
    /// the databases, but for tests that prove the loop does not wait on them.
    init(configuration: SupervisorConfiguration, loop: EventLoop, logger: Logger,
         nameLookup: @escaping NameService.Lookup, nameLimits: NameService.Limits = NameService.Limits()) throws(SupervisorError) {
        self.configuration = configuration
        // Every record names the socket, so records of several supervisors on
        // one host (a system one, a test's) stay apart.
        var logger = logger
        logger[metadataKey: "NSGROUP_SOCKET"] = .string(configuration.socketPath)
        subordinates = SubordinateOwners()
        let audit = Audit(logger: logger, subordinates: subordinates)
        self.audit = audit
        let holders: HolderSpawner
        do {
            holders = try HolderSpawner(executablePath: configuration.holderPath)
        } catch {
            throw SupervisorError(.startup, "cannot open the holder program \(configuration.holderPath): \(error)")
        }
        let state = try StateStore(directory: configuration.stateDirectory)
        // Start-up may look names up on this thread: the loop does not run yet.
        // From here on, lookups go through the NameService.
        let ttyGroup = UserDatabase.groupID(named: "tty") ?? 5
        do {
            policies = PolicyHolder(try PolicyFile.load(path: configuration.configPath, required: configuration.configRequired))
        } catch {
            throw SupervisorError(.startup, "bad configuration: \(error)")
        }
        connectionInput.setOutputBudget(policies.current.outputPerUser)
        refusals = RefusalRecords(audit: audit, policies: policies, subordinates: subordinates, state: state, loop: loop)
        reads = ReadRecords(audit: audit, policies: policies, subordinates: subordinates)
        let layout: CgroupLayout
        do throws(CgroupError) {
            layout = try CgroupLayout.detect()
        } catch {
            throw SupervisorError(.startup, "\(error)")
        }
        let subdirectory = configuration.cgroupDirectory ?? (layout.ownUnified == "/" ? "nsgroupd" : nil)
        containment = Containment(tree: CgroupTree(layout: layout, subdirectory: subdirectory),
                                  instance: configuration.stateDirectory, policies: policies, audit: audit)
        // Each group a unit of systemd's where systemd runs the machine (GroupUnits); else, or
        // when systemd cannot be reached, every group below nsgroupd's own cgroup.
        if !configuration.units {
            unitsNote = "groups below nsgroupd's own cgroup (--no-units)"
        } else if let reason = GroupUnits.unavailable(booted: UnitManager.isBooted, layout: layout) {
            unitsNote = "groups below nsgroupd's own cgroup: \(reason)"
        } else {
            do throws(SystemdError) {
                let manager = try UnitManager(loop: loop)
                containment.units = GroupUnits(manager: manager, cgroups: containment.unitCgroups, loop: loop, logger: audit.logger)
                unitsNote = "each group a scope in \(GroupUnits.slice) (systemd on \(manager.address))"
            } catch {
                unitsNote = "groups below nsgroupd's own cgroup: systemd cannot be reached (\(error))"
                audit.logger.warning("Cannot reach systemd to make groups units of their own: \(error); groups stay below nsgroupd's own cgroup",
                                     metadata: [AuditField.reason: .string("units_unavailable")])
            }
        }
        names = try NameService(loop: loop, limits: nameLimits, lookup: nameLookup)
        subordinates.names = names

        registry = GroupRegistry(state: state, policies: policies, subordinates: subordinates, audit: audit,
                                 socketPath: configuration.socketPath)
        if containment.units != nil {
            // A name no group has now is one that ended (its last records) or never was (a refusal):
            // its unit's name all the same. A group below nsgroupd's own cgroup has none.
            audit.units.lookup = { [unowned registry] name in
                registry[name].map { $0.scope == nil } == true ? nil : GroupUnits.scopeName(name)
            }
        }
        bus = EventBus(policies: policies, input: connectionInput, subordinates: subordinates, logger: audit.logger)
        sessions = SessionTable(loop: loop, registry: registry, bus: bus, subordinates: subordinates, audit: audit,
                                numbers: SessionNumbers(state: state))
        listener = Listener(socketPath: configuration.socketPath, loop: loop, policies: policies, audit: audit,
                            refusals: refusals, reads: reads, subordinates: subordinates, names: names, input: connectionInput,
                            sessions: sessions, bus: bus)
        readHandler = ReadHandler(serverName: configuration.serverName, registry: registry, containment: containment)
        destroyHandler = DestroyHandler(loop: loop, registry: registry, sessions: sessions, bus: bus, audit: audit,
                                        containment: containment)
        let auditLogger = audit.logger
        reaper = Reaper(loop: loop) { message in auditLogger.warning("\(message)") }
        containment.reaper = reaper
        launches = Launches(loop: loop)
        let pasta = PastaLauncher(loop: loop, launches: launches, reaper: reaper, containment: containment,
                                  registry: registry, audit: audit)
        createHandler = CreateHandler(holders: holders, registry: registry, launches: launches, reaper: reaper, pasta: pasta,
                                      destroyer: destroyHandler, bus: bus, policies: policies, subordinates: subordinates,
                                      audit: audit, ttyGroup: ttyGroup, containment: containment)
        enterHandler = EnterHandler(registry: registry, sessions: sessions, launches: launches, reaper: reaper,
                                    policies: policies, subordinates: subordinates, audit: audit, ttyGroup: ttyGroup,
                                    containment: containment)
        shareHandler = ShareHandler(registry: registry, containment: containment, bus: bus)
        describeHandler = DescribeHandler(policies: policies, registry: registry, subordinates: subordinates,
                                          createHandler: createHandler, enterHandler: enterHandler, listener: listener,
                                          layout: containment.tree.layout)
        readoption = Readoption(registry: registry, sessions: sessions, destroyer: destroyHandler, audit: audit,
                                containment: containment, pasta: pasta)
        cgroupHandler = try CgroupHandler(registry: registry, containment: containment, bus: bus, names: names,
                                          policies: policies, loop: loop)
        do {
            sweep = try Sweep(loop: loop, registry: registry, containment: containment, destroyer: destroyHandler,
                              bus: bus, audit: audit)
        } catch {
            throw SupervisorError(.startup, "cannot start the once-a-second sweep: \(error)")
        }
        // A session's end: its cgroup goes, and an OOM kill that ended it is said at once.
        sessions.onEnded = { [containment, sweep] session, group in
            group.lastActive = monotonicSeconds()
            containment.sessionEnded(session.id, guestOf: session.record.guestOf, of: group)
            sweep.reportOOMKills(group)
        }
    }

    private var policy: Policy { policies.current }

    /// Reads the configuration (and /etc/subuid) again (SIGHUP). A file that
    /// does not parse is refused and the policy in force stays; either way
    /// the journal says so. The file names users and groups, so it is read
    /// and parsed on the NameService's worker and swapped in on the loop when
    /// done; one that takes longer than the name service's timeout is refused.
    public func reloadPolicy() {
        let fields = [AuditField.operation: "reload", "NSGROUP_CONFIG": configuration.configPath]
        // Who owns which subordinate uids is read again whether or not the file parses.
        subordinates.reload()
        let path = configuration.configPath
        let required = configuration.configRequired
        names.run({ () -> Result<Policy, SupervisorError> in
            do throws(SupervisorError) {
                return .success(try PolicyFile.load(path: path, required: required))
            } catch {
                return .failure(error)
            }
        }, completion: { [weak self] loaded in
            guard let self else { return }
            let outcome = loaded ?? .failure(SupervisorError(.configuration(path: path, line: 0),
                "the user and group databases did not answer within \(self.names.limits.timeout) s"))
            switch outcome {
            case .success(let reloaded):
                self.policies.replace(with: reloaded)
                self.connectionInput.setOutputBudget(reloaded.outputPerUser)
                self.containment.applyUserLimits()
                self.audit.record(.policyReloaded, "Reloaded policy from \(path)",
                                  fields: fields.merging([AuditField.result: "ok"]) { $1 })
            case .failure(let error):
                self.audit.record(.policyReloaded, level: .error,
                                  "Failed to reload policy: \(error), keeping the policy in force",
                                  fields: fields.merging([AuditField.result: "refused", AuditField.reason: error.description]) { $1 })
            }
        })
    }

    /// Binds the socket (replacing a stale one), or takes the listening
    /// socket systemd passed (see Listener.start). Then takes back the groups
    /// an earlier supervisor left, and starts accepting.
    public func start(activatedSocket: Int32? = nil) throws(SupervisorError) {
        try containment.start(joiningSupervisorLeaf: configuration.joinSupervisorLeaf)
        // The events a supervisor that stopped left: subscribers resume across the restart.
        do throws(SupervisorError) {
            if let events = try registry.state.takeEvents() { try bus.restore(events) }
        } catch {
            audit.logger.warning("Ignored the ring of events an earlier supervisor left: \(error.message); events are numbered afresh",
                                 metadata: [AuditField.reason: .string("events_refused")])
        }
        try listener.start(activatedSocket: activatedSocket) { [unowned self] connection, request, routed, descriptors in
            self.dispatch(connection, request, routed, descriptors)
        }
        audit.record(.supervisorStarted, "Supervisor started on \(configuration.socketPath)\(activatedSocket != nil ? " (socket from systemd)" : ""); cgroups: \(containment.tree.basePath) on \(containment.tree.layout.summary); \(unitsNote)",
                     fields: [AuditField.cgroup: containment.tree.basePath, AuditField.units: containment.units == nil ? "no" : "yes"])
        if let problem = sessions.numbers.problem {
            audit.logger.warning("Ignored the session counter \(configuration.stateDirectory)/groups/\(StateStore.sessionCounterFile): \(problem); session numbers go on past the highest still in use, and the counter is written anew",
                                 metadata: [AuditField.reason: .string("session_counter_refused")])
        }
        // What an earlier supervisor held back and was killed before summing up.
        refusals.writeHeldBackBeforeStop()
        // Connections wait in the backlog until the groups are taken back.
        readoption.readoptGroups()
        // nsgroupd.conf may have changed while no supervisor ran.
        containment.applyUserLimits()
    }

    /// Stops accepting, closes every connection and removes the socket.
    /// Writes the summaries of refusals held back so far (and removes their file from the
    /// state directory). Groups and their holders keep running.
    public func shutdown() {
        listener.shutdown()
        do throws(Errno) {
            try registry.state.saveEvents(bus.snapshot(limit: StateStore.maxFileSize))
        } catch {
            audit.logger.warning("Could not keep the ring of events for the next supervisor: \(error)")
        }
        reads.writeAll(now: monotonicSeconds())
        refusals.writeAll()
        audit.record(.supervisorStopped, "Supervisor stopped; \(registry.count) group(s) keep running",
                     fields: ["NSGROUP_GROUPS": String(registry.count)])
    }

    /// How many groups are alive.
    public var groupCount: Int { registry.count }

    // MARK: Requests

    /// Every request that reaches a handler or was refused on the way
    /// (Routed.route: method, descriptor rules, params) passes here: the
    /// handler, and one journal record of the decision (for a deferred
    /// answer, when its Completion finishes).
    func dispatch(_ connection: Connection, _ request: Request, _ routed: Result<Call, RPCError>,
                  _ descriptors: ReceivedDescriptors) -> Reply {
        let caller = connection.peer
        // The group the request names, if the name is one (nothing else a user typed is recorded as a name).
        let name = request.params?["name"]?.stringValue.flatMap { GroupName.isValid($0) ? $0 : nil }
        let details = RequestDetails()
        if case .success(let call) = routed { RequestFields.describe(call, into: details) }
        let journal: (Result<Void, RPCError>) -> Void = { [weak self, weak connection] outcome in
            // The caller's user name, once the lookup at accept has answered (never waited for).
            if let user = connection?.identity.entry?.name { details.fields[AuditField.callerName] = user }
            self?.record(outcome, of: request, from: caller, name: name, details: details)
        }
        let reply: Reply
        do throws(RPCError) {
            var context = RequestContext(caller: caller, connection: connection, request: request, journal: journal,
                                         details: details)
            let call = try routed.get()
            let questions = Self.nameQueries(call)
            if !questions.isEmpty {
                if let answers = names.cached(questions) {
                    context.names = NameAnswers(answers)
                } else {
                    // Names not in the cache: looked up off the loop, then the
                    // handler runs (these methods take no descriptors).
                    descriptors.closeAll()
                    let completion = context.later()
                    names.lookUp(questions) { [weak self, context] answers in
                        var answered = context
                        answered.names = NameAnswers(answers)
                        answered.completion = completion
                        self?.handleLater(call, answered, completion)
                    }
                    return .deferred
                }
            }
            reply = try handle(call, context, descriptors)
        } catch {
            journal(.failure(error))
            return .error(error)
        }
        descriptors.closeAll()
        if case .deferred = reply { return reply }
        journal(.success(()))
        return reply
    }

    /// Calls the handler of `call`.
    private func handle(_ call: Call, _ context: RequestContext, _ descriptors: ReceivedDescriptors) throws(RPCError) -> Reply {
        switch call {
        case .version: return readHandler.version()
        case .describe: return describeHandler.describe(context)
        case .create(let params): return try createHandler.create(params, context)
        case .list: return readHandler.list(context)
        case .inspect(let params): return try readHandler.inspect(params, context)
        case .destroy(let params): return try destroyHandler.destroy(params, context)
        case .enter(let params): return try enterHandler.enter(params, context, descriptors)
        case .signal(let params): return try enterHandler.signal(params, context)
        case .share(let params): return try shareHandler.share(params, context, adding: true)
        case .unshare(let params): return try shareHandler.share(params, context, adding: false)
        case .attach(let params): return try enterHandler.attach(params, context)
        case .subscribe(let params):
            let subscription = try bus.subscribe(context.connection, params)
            context.details.fields[AuditField.subscription] = String(subscription.id)
            // A connection that subscribes again with nothing new changes nothing: summed up, not recorded again.
            context.details.changedNothing = !subscription.new && params == SubscribeParams()
            return .result(.object(["subscription": .number(JSONNumber(subscription.id)), "instance": .string(bus.instance),
                                    "seq": .number(JSONNumber(bus.lastSeq))]))
        case .unsubscribe(let params):
            try bus.unsubscribe(context.connection, id: params.subscription)
            return .result(.object([:]))
        case .freeze(let params): return try cgroupHandler.freeze(params, context, frozen: true)
        case .thaw(let params): return try cgroupHandler.freeze(params, context, frozen: false)
        case .processes(let params): return try cgroupHandler.processes(params, context)
        case .write(let params):
            try EnterHandler.stream(params.session, of: context.connection, for: "write").write(params)
            return .result(.object([:]))
        case .resize(let params):
            try EnterHandler.stream(params.session, of: context.connection, for: "resize").resize(params)
            return .result(.object([:]))
        }
    }

    /// Runs a handler whose request waited for names (dispatch) and finishes
    /// its completion with the reply; a handler that answers later itself
    /// (returns .deferred) was handed this same completion by `later()`.
    /// The request is carried out even if its client has gone meanwhile, as
    /// one handled at once would have been.
    private func handleLater(_ call: Call, _ context: RequestContext, _ completion: Completion) {
        let reply: Reply
        do throws(RPCError) {
            reply = try handle(call, context, ReceivedDescriptors())
        } catch {
            completion.finish(.error(error))
            return
        }
        if case .deferred = reply { return }
        completion.finish(reply)
    }

    /// The user and group names a request needs looked up before its handler runs.
    private static func nameQueries(_ call: Call) -> Set<NameQuery> {
        switch call {
        case .create(let params): return Member.queries(params.members)
        case .share(let params), .unshare(let params): return Member.queries(params.members)
        default: return []
        }
    }

    /// The one journal record of a request's outcome.
    /// `name`: the group the request names, when it is a valid group name.
    private func record(_ outcome: Result<Void, RPCError>, of request: Request, from caller: PeerCredentials, name: String?,
                        details: RequestDetails) {
        switch outcome {
        case .success:
            // Requests that only read or watch, and those that changed nothing, are summed up
            // per person (ReadRecords) unless [audit] reads = each.
            if let method = MethodName(rawValue: request.method),
               Self.carriesData(method) || (!policy.recordEachRead && (Self.onlyWatches(method) || details.changedNothing)) {
                reads.count(method, name: name, caller: caller, now: monotonicSeconds())
                return
            }
            let group: AuditText = name.map { " of group \($0)" } ?? ""
            let summary: AuditText = details.summary.map { ": \($0)" } ?? ""
            let from = audit.uid(caller.uid, known: details.fields[AuditField.callerName])
            audit.record(.requestAccepted, "Accepted \(request.method)\(group) from \(from)\(summary)",
                         caller: caller, fields: recordFields(request, name: name, result: "ok", details: details),
                         lists: details.lists)
        case .failure(let error):
            // A not_found about a group that exists and the caller may not see hid it from them:
            // policy. One about a group the caller sees (a session it does not have) is a conflict.
            let hidden = error.reason == .notFound
                && name.flatMap { registry[$0] }.map { !policy.mayUse(caller, $0) } == true
            let kind = RefusalKind(error.reason, hidden: hidden)
            var fields = recordFields(request, name: name, result: error.reason.rawValue, details: details)
            fields[AuditField.refusal] = kind.rawValue
            refusals.record(RefusedOperation(method: request.method), error.reason, level: kind.level,
                            "Refused \(request.method, limit: 64) from \(audit.uid(caller.uid, known: details.fields[AuditField.callerName])): \(error.message, limit: 512)",
                            caller: caller, fields: fields, lists: details.lists)
        }
    }

    /// Methods that read and change nothing: version, list, inspect, processes, and attach
    /// (to hear of a session's end). A connection's first subscribe is recorded: it starts a
    /// watch; another on the same connection changes nothing.
    static func onlyWatches(_ method: MethodName) -> Bool {
        method.isRead || method == .attach
    }

    /// `write` and `resize` carry a streamed session's input and terminal size: its data,
    /// as bytes on a terminal are, not decisions. They are always summed up, even with
    /// `[audit] reads = each`: a stream of 20 MiB is 640 of them. The `enter` that
    /// started the stream is recorded, with NSGROUP_STDIO=stream.
    static func carriesData(_ method: MethodName) -> Bool {
        method == .write || method == .resize
    }

    private func recordFields(_ request: Request, name: String?, result: String, details: RequestDetails) -> [String: String] {
        var fields = details.fields
        fields[AuditField.operation] = request.method.scalarPrefix(64)
        fields[AuditField.result] = result
        if let name {
            fields[AuditField.name] = name
            // The instance it is about: one the handler named (create's new group, one that
            // is gone by the answer), else the one of that name now.
            if fields[AuditField.groupID] == nil, let group = registry[name] { fields[AuditField.groupID] = group.id }
        }
        return fields
    }
}

/// One request in flight: who sent it, on which connection.
struct RequestContext {
    let caller: PeerCredentials
    let connection: Connection
    let request: Request
    /// Journals the request's outcome (dispatch's record).
    let journal: (Result<Void, RPCError>) -> Void
    /// The fields of that record: a handler adds what it found or changed.
    let details: RequestDetails
    /// The answers for the user and group names in the request (members),
    /// looked up off the loop before the handler ran (Supervisor.dispatch).
    var names = NameAnswers([:])
    /// The request's completion when it already waited for names: `later()` hands back this one.
    var completion: Completion?
    /// Set when the request runs again after a guest scope was started for it (enter): a
    /// scope that is gone again by then is not started a second time.
    var guestScopeStarted = false

    /// Who the caller is in the user database, looked up when its connection was accepted.
    var identity: CallerIdentity { connection.identity }

    /// For a handler that answers later: it returns `.deferred` and finishes
    /// the completion when its work is done.
    func later() -> Completion {
        if let completion { return completion }
        let completion = Completion(connection: connection, journal: journal)
        connection.awaitCompletion(completion)
        return completion
    }
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
