import Glibc
import Logging
import Namespaces
import POSIX
import RPC
@testable import Supervisor
import Systemd
import Testing

// The parts the supervisor is wired from, each on its own: no socket to
// listen on, no holder program.

/// A registry, session table and event bus over a scratch state directory.
private final class Parts {
    let scratch: ScratchDirectory
    let loop: EventLoop
    let policies: PolicyHolder
    let subordinates = SubordinateOwners(path: "/nonexistent/subuid")
    let input = ConnectionInput()
    let registry: GroupRegistry
    let bus: EventBus
    let sessions: SessionTable

    init(policy: Policy = Policy()) throws {
        scratch = try ScratchDirectory()
        loop = try EventLoop()
        policies = PolicyHolder(policy)
        let audit = Audit(logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), subordinates: subordinates)
        let state = try StateStore(directory: scratch.path)
        registry = GroupRegistry(state: state, policies: policies,
                                 subordinates: subordinates, audit: audit, socketPath: scratch.path + "/socket")
        bus = EventBus(policies: policies, input: input, subordinates: subordinates, logger: audit.logger)
        sessions = SessionTable(loop: loop, registry: registry, bus: bus, subordinates: subordinates, audit: audit,
                                numbers: SessionNumbers(state: state))
    }

    /// A group whose "holder" is this test process (never signalled here).
    func group(_ name: String, owner: uid_t, members: [Member] = []) throws -> Group {
        let record = GroupRecord(name: name, owner: owner, ownerName: String(owner), namespaces: [],
                                 holderPID: getpid(), holderStartTime: 0, created: 0, hostname: nil, tmpfs: [],
                                 members: members, sessions: [])
        return Group(record: record, holder: try Pidfd.open(pid: getpid()))
    }
}

private func caller(_ uid: uid_t) -> PeerCredentials {
    PeerCredentials(pid: getpid(), uid: uid, gid: uid, groups: [])
}

/// A Connection on one end of a socket pair; the test holds the other end and reads nothing unless asked.
private final class Peer {
    let client: Int32
    let connection: Connection
    var closed = false

    init(uid: uid_t, input: ConnectionInput, loop: EventLoop) throws {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw ScratchError("socketpair: \(String(cString: strerror(errno)))")
        }
        client = fds[0]
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        var onClose: (() -> Void)?
        connection = Connection(
            id: UInt64(uid), socket: FileDescriptor(adopting: fds[1]), peer: caller(uid), maxLineLength: 1 << 16,
            input: input, dispatch: { _, _, _, descriptors in
                descriptors.closeAll()
                return .result(.object([:]))
            },
            onClose: { _ in onClose?() })
        onClose = { [weak self] in self?.closed = true }
        try connection.start(on: loop)
    }

    deinit {
        connection.close()
        close(client)
    }

    /// Everything the supervisor has written so far, as text.
    func received() -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(client, &buffer, buffer.count)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

@Suite("GroupRegistry: instances, visibility, per-person counts")
struct GroupRegistryTests {
    @Test func eachRegistrationIsANewInstanceOfItsName() throws {
        let parts = try Parts()
        let first = try parts.group("web", owner: 4242)
        parts.registry.register(first)
        let other = try parts.group("db", owner: 4242)
        parts.registry.register(other)
        #expect(first.instance == 1)
        #expect(other.instance == 2)
        #expect(parts.registry.unregister(first))
        #expect(!parts.registry.unregister(first), "an instance goes once")
        let again = try parts.group("web", owner: 4242)
        parts.registry.register(again)
        #expect(again.instance == 3)
        // The old instance can no longer take the name's new one out.
        #expect(!parts.registry.unregister(first))
        #expect(parts.registry["web"] === again)
        #expect(parts.registry.count == 2)
    }

    @Test func aGroupTheCallerMayNotSeeIsNotFoundWordForWord() throws {
        let parts = try Parts()
        parts.registry.register(try parts.group("mine", owner: 4242, members: [.user(uid: 4343, name: "friend")]))
        parts.registry.register(try parts.group("theirs", owner: 4444))
        #expect(parts.registry.visible(to: caller(4242)).map(\.name) == ["mine"])
        #expect(parts.registry.visible(to: caller(4343)).map(\.name) == ["mine"])
        #expect(parts.registry.visible(to: caller(0)).map(\.name) == ["mine", "theirs"])

        let hidden = try #require(refusal { () throws(RPCError) in
            try parts.registry.group("theirs", caller: caller(4242), action: "inspect", manage: false)
        })
        let missing = try #require(refusal { () throws(RPCError) in
            try parts.registry.group("nothing", caller: caller(4242), action: "inspect", manage: false)
        })
        #expect(hidden.reason == .notFound)
        #expect(hidden.message == missing.message.replacingOccurrences(of: "nothing", with: "theirs"))

        // A member sees the group but may not manage it.
        let denied = try #require(refusal { () throws(RPCError) in
            try parts.registry.group("mine", caller: caller(4343), action: "destroy", manage: true)
        })
        #expect(denied.reason == .permissionDenied)
        #expect(denied.message == #"uid 4343 may not destroy group "mine": only its owner and root may"#)
        #expect(try parts.registry.group("mine", caller: caller(4242), action: "destroy", manage: true).name == "mine")
    }

    @Test func groupsAreChargedToTheirOwner() throws {
        let parts = try Parts()
        parts.registry.register(try parts.group("a", owner: 4242))
        parts.registry.register(try parts.group("b", owner: 4242))
        parts.registry.register(try parts.group("c", owner: 4343))
        #expect(parts.registry.groups(chargedTo: 4242).map(\.name).sorted() == ["a", "b"])
        #expect(parts.registry.groups(chargedTo: 4444).isEmpty)
    }
}

@Suite("SessionTable: ids and ended sessions")
struct SessionTableTests {
    @Test func idsAreNeverReused() throws {
        let parts = try Parts()
        #expect(parts.sessions.takeID() == 1)
        #expect(parts.sessions.takeID() == 2)
        parts.sessions.noteTaken(10)  // a session an earlier supervisor started
        #expect(parts.sessions.takeID() == 11)
        parts.sessions.noteTaken(5)
        #expect(parts.sessions.takeID() == 12)
    }

    @Test func anEndedSessionIsFoundOnlyUnderItsGroupsInstance() throws {
        let parts = try Parts()
        let old = try parts.group("web", owner: 4242)
        parts.registry.register(old)
        parts.sessions.rememberEnded(ExitedNotification(session: 7, code: 3, signal: nil), group: old, uid: 4242)
        #expect(parts.sessions.ended(7, inGroupNamed: "web", current: old)?.exited.code == 3)
        #expect(parts.sessions.ended(7, inGroupNamed: "web", current: old)?.uid == 4242)
        #expect(parts.sessions.ended(7, inGroupNamed: "db", current: nil) == nil)
        parts.registry.unregister(old)
        // No group of that name: found by name.
        #expect(parts.sessions.ended(7, inGroupNamed: "web", current: nil) != nil)
        // The name re-created: the new group does not inherit the old one's sessions.
        let new = try parts.group("web", owner: 4242)
        parts.registry.register(new)
        #expect(parts.sessions.ended(7, inGroupNamed: "web", current: new) == nil)
    }

    @Test func onlyTheLatestEndingsAreKept() throws {
        let parts = try Parts()
        let group = try parts.group("web", owner: 4242)
        parts.registry.register(group)
        let count = UInt64(SessionTable.rememberedEndings)
        for id in 1...(count + 1) {
            parts.sessions.rememberEnded(ExitedNotification(session: id, code: 0, signal: nil), group: group, uid: 4242)
        }
        #expect(parts.sessions.ended(1, inGroupNamed: "web", current: group) == nil, "the oldest is forgotten")
        #expect(parts.sessions.ended(2, inGroupNamed: "web", current: group) != nil)
        #expect(parts.sessions.ended(count + 1, inGroupNamed: "web", current: group) != nil)
    }

    @Test func noSessionsCountNothing() throws {
        let parts = try Parts()
        parts.registry.register(try parts.group("web", owner: 4242))
        #expect(parts.sessions.count(chargedTo: 4242) == 0)
        #expect(parts.sessions.listeningConnections.isEmpty)
    }
}

@Suite("EventBus: who gets events, and who is dropped")
struct EventBusTests {
    @Test func onlySubscribersWhoMaySeeTheGroupGetItsEvents() throws {
        let parts = try Parts()
        let owner = try Peer(uid: 4242, input: parts.input, loop: parts.loop)
        let stranger = try Peer(uid: 4343, input: parts.input, loop: parts.loop)
        let admin = try Peer(uid: 0, input: parts.input, loop: parts.loop)
        for peer in [owner, stranger, admin] { _ = try parts.bus.subscribe(peer.connection, SubscribeParams()) }
        #expect(Set(parts.bus.subscriberIDs) == Set([owner, stranger, admin].map { ObjectIdentifier($0.connection) }))
        parts.bus.groupEvent(.groupCreated, try parts.group("web", owner: 4242))
        #expect(owner.received().contains(#""group":"web""#))
        #expect(admin.received().contains(#""group":"web""#))
        #expect(stranger.received().isEmpty)
        parts.bus.unsubscribe(owner.connection)
        parts.bus.groupEvent(.groupDestroyed, try parts.group("web", owner: 4242))
        #expect(owner.received().isEmpty)
        #expect(admin.received().contains("group-destroyed"))
    }

    @Test func aSubscriberThatDoesNotReadIsDropped() throws {
        var policy = Policy()
        policy.subscriberBuffer = 4096
        let parts = try Parts(policy: policy)
        let slow = try Peer(uid: 4242, input: parts.input, loop: parts.loop)
        _ = try parts.bus.subscribe(slow.connection, SubscribeParams())
        let group = try parts.group("web", owner: 4242)
        // The kernel's (small) send buffer fills first, then the connection's own queue.
        for _ in 0..<5000 where !slow.closed { parts.bus.groupEvent(.groupCreated, group) }
        #expect(slow.closed)
        #expect(parts.bus.subscriberIDs.isEmpty)
    }
}

@Suite("SessionEnd: what ended a session, in the journal")
struct SessionEndTests {
    private func session(in group: Group) throws -> Session {
        let record = SessionRecord(id: 12, pid: getpid(), startTime: 0, uid: 1001, argv: ["sleep", "9"],
                                   started: 1_795_000_100, tty: false, callerGID: 1001, callerPID: getpid())
        return Session(record: record, pidfd: try Pidfd.open(pid: getpid()), adopted: false, connection: nil)
    }

    @Test func anExitIsAnExitWhateverElseHappened() throws {
        let group = try Parts().group("lab", owner: 1001)
        let session = try session(in: group)
        #expect(SessionEnd.of(session, in: group, status: ExitStatus(code: 3, signal: nil)) == .exit(code: 3))
        group.destroying = true
        #expect(SessionEnd.of(session, in: group, status: ExitStatus(code: 0, signal: nil)) == .exit(code: 0))
    }

    @Test func aSignalNobodyAskedForIsJustASignal() throws {
        let group = try Parts().group("lab", owner: 1001)
        let session = try session(in: group)
        let killed = SessionEnd.of(session, in: group, status: ExitStatus(code: nil, signal: 15))
        #expect(killed == .signal(15))
        #expect(killed.fields == [AuditField.endedBy: "signal"])
        // Status unknown (a session taken back): nothing to tell.
        #expect(SessionEnd.of(session, in: group, status: nil) == .unknown)
    }

    /// A catchable signal a request sent may have been survived, and the same signal sent
    /// again by anyone: the request is told apart, not blamed.
    @Test func aCatchableSignalARequestSentIsNotBlamedOnIt() throws {
        let group = try Parts().group("lab", owner: 1001)
        let session = try session(in: group)
        session.noteSignalRequest(Session.SignalRequest(uid: 1002, signal: 15, boottime: 100))
        let killed = SessionEnd.of(session, in: group, status: ExitStatus(code: nil, signal: 15), now: 102.1)
        #expect(killed == .signal(15, request: SessionEnd.Request(uid: 1002, signal: 15, microseconds: 2_100_000)))
        #expect(killed.fields == [AuditField.endedBy: "signal", AuditField.signalRequestUID: "1002",
                                  AuditField.signalRequestSignal: "15", AuditField.signalRequestMicroseconds: "2100000"])
        #expect(killed.fields[AuditField.endedByUID] == nil && killed.fields[AuditField.signalSent] == nil)
        // Another signal than the one sent ended it: the request is still told of.
        let other = SessionEnd.of(session, in: group, status: ExitStatus(code: nil, signal: 9), now: 100.5)
        #expect(other == .signal(9, request: SessionEnd.Request(uid: 1002, signal: 15, microseconds: 500_000)))
        // A clock that seems to go back says 0, not a wrapped number.
        #expect(session.signalRequest?.microseconds(before: 99) == 0)
        // An exit after a request is an exit.
        #expect(SessionEnd.of(session, in: group, status: ExitStatus(code: 0, signal: nil)) == .exit(code: 0))
    }

    /// SIGKILL cannot be survived: a session that died of it after a request sent it was
    /// ended by that request (or would have been).
    @Test func aSIGKILLARequestSentIsSaidByWhoSentIt() throws {
        let group = try Parts().group("lab", owner: 1001)
        let session = try session(in: group)
        session.noteSignalRequest(Session.SignalRequest(uid: 1002, signal: SIGTERM))
        session.noteSignalRequest(Session.SignalRequest(uid: 1003, signal: SIGKILL))
        let requested = SessionEnd.of(session, in: group, status: ExitStatus(code: nil, signal: SIGKILL))
        #expect(requested == .signalRequest(signal: SIGKILL, uid: 1003))
        #expect(requested.fields == [AuditField.endedBy: "signal-request", AuditField.endedByUID: "1003", AuditField.signalSent: "9"])
        // What is sent after a SIGKILL does not replace it: the session is dying of that one.
        session.noteSignalRequest(Session.SignalRequest(uid: 1004, signal: SIGTERM))
        #expect(SessionEnd.of(session, in: group, status: ExitStatus(code: nil, signal: SIGKILL)) == .signalRequest(signal: SIGKILL, uid: 1003))
    }

    /// A SIGKILL from elsewhere after a request sent a catchable signal: not the request's doing.
    @Test func aSIGKILLAfterACatchableRequestIsJustASignal() throws {
        let group = try Parts().group("lab", owner: 1001)
        let session = try session(in: group)
        session.noteSignalRequest(Session.SignalRequest(uid: 1002, signal: SIGTERM, boottime: 10))
        #expect(SessionEnd.of(session, in: group, status: ExitStatus(code: nil, signal: SIGKILL), now: 11)
            == .signal(SIGKILL, request: SessionEnd.Request(uid: 1002, signal: SIGTERM, microseconds: 1_000_000)))
    }

    /// A signal that stops, continues or is ignored by default cannot end a process: a request
    /// for one is not the one a session's end tells of.
    @Test func aRequestForASignalThatCannotEndAProcessIsNotKept() throws {
        let group = try Parts().group("lab", owner: 1001)
        let session = try session(in: group)
        for signal in [0, SIGSTOP, SIGCONT, SIGTSTP, SIGWINCH] {
            session.noteSignalRequest(Session.SignalRequest(uid: 1002, signal: signal))
        }
        #expect(session.signalRequest == nil)
        session.noteSignalRequest(Session.SignalRequest(uid: 1002, signal: SIGKILL))
        session.noteSignalRequest(Session.SignalRequest(uid: 1003, signal: SIGCONT))
        #expect(SessionEnd.of(session, in: group, status: ExitStatus(code: nil, signal: SIGKILL)) == .signalRequest(signal: SIGKILL, uid: 1002))
        let other = try self.session(in: group)
        other.noteSignalRequest(Session.SignalRequest(uid: 1002, signal: SIGINT, boottime: 5))
        other.noteSignalRequest(Session.SignalRequest(uid: 1003, signal: SIGSTOP, boottime: 6))
        #expect(SessionEnd.of(other, in: group, status: ExitStatus(code: nil, signal: SIGINT), now: 7)
            == .signal(SIGINT, request: SessionEnd.Request(uid: 1002, signal: SIGINT, microseconds: 2_000_000)))
    }

    @Test func aSessionThatWentWithItsGroupSaysWhy() throws {
        let group = try Parts().group("lab", owner: 1001)
        let session = try session(in: group)
        group.destroying = true
        group.destroyReason = "request"
        group.destroyedBy = 1003
        session.noteSignalRequest(Session.SignalRequest(uid: 1002, signal: 9))
        let destroyed = SessionEnd.of(session, in: group, status: ExitStatus(code: nil, signal: 9))
        #expect(destroyed == .destroy(uid: 1003, signal: 9))
        #expect(destroyed.fields == [AuditField.endedBy: "destroy", AuditField.endedByUID: "1003"])
        #expect(SessionEnd.of(session, in: group, status: nil) == .destroy(uid: 1003, signal: nil))
        group.destroyReason = "idle"
        let expired = SessionEnd.of(session, in: group, status: ExitStatus(code: nil, signal: 9))
        #expect(expired == .expired(reason: "idle", signal: 9))
        #expect(expired.fields == [AuditField.endedBy: "expired", AuditField.reason: "idle"])
    }

    @Test func theMessageSaysItInWords() {
        #expect(SessionEnd.message(session: 12, pid: 4711, group: "lab", .signalRequest(signal: 15, uid: 1001),
                                   microseconds: 3_240_000).description
            == "Session 12 (pid 4711) in group lab ended: killed by signal 15 sent by uid 1001, after 3.2 s")
        #expect(SessionEnd.message(session: 12, pid: 4711, group: "lab",
                                   .signal(15, request: SessionEnd.Request(uid: 1003, signal: 15, microseconds: 2_080_000)),
                                   microseconds: 5_300_000).description
            == "Session 12 (pid 4711) in group lab ended: killed by signal 15 (uid 1003 had sent signal 15 through nsgroupd 2.1 s before), after 5.3 s")
        #expect(SessionEnd.message(session: 12, pid: 4711, group: "lab",
                                   .signal(9, request: SessionEnd.Request(uid: 1003, signal: 2, microseconds: 14_000)),
                                   microseconds: nil).description
            == "Session 12 (pid 4711) in group lab ended: killed by signal 9 (uid 1003 had sent signal 2 through nsgroupd 14 ms before)")
        #expect(SessionEnd.message(session: 12, pid: 4711, group: "lab", .signal(15), microseconds: 1_000).description
            == "Session 12 (pid 4711) in group lab ended: killed by signal 15, after 1 ms")
        #expect(SessionEnd.message(session: 3, pid: 9, group: "lab", .exit(code: 3), microseconds: 14_200).description
            == "Session 3 (pid 9) in group lab ended: exited with code 3, after 14 ms")
        #expect(SessionEnd.message(session: 3, pid: 9, group: "lab", .expired(reason: "lifetime", signal: 9), microseconds: nil).description
            == "Session 3 (pid 9) in group lab ended: killed by signal 9 when the group's lifetime ran out")
        #expect(SessionEnd.message(session: 3, pid: 9, group: "lab", .supervisorDown, microseconds: nil).description
            == "Session 3 (pid 9) in group lab ended while the supervisor was down; how is not known")
        #expect(SessionEnd.message(session: 3, pid: 9, group: "l\u{1b}[2Jab", .holderDied(signal: nil), microseconds: nil).description
            == "Session 3 (pid 9) in group l\\033[2Jab ended when the group's holder died")
        #expect(SessionEnd.message(session: 3, pid: 9, group: "lab", .unknown, microseconds: 2_000_000).description
            == "Session 3 (pid 9) in group lab ended; its exit status is unknown (it was started before the supervisor restarted), after 2.0 s")
        #expect(SessionEnd.duration(999_400).description == "999 ms")
        #expect(SessionEnd.duration(999_600).description == "1.0 s")
        #expect(SessionEnd.duration(59_940_000).description == "59.9 s")
        #expect(SessionEnd.duration(125_000_000).description == "2 min 5 s")
        #expect(SessionEnd.duration(11_520_000_000).description == "3 h 12 min")
    }

    @Test func theFieldsNameTheSession() {
        var record = SessionRecord(id: 12, pid: 4711, startTime: 0, uid: 1001, argv: [], started: 1_795_000_100, tty: true,
                                   callerGID: 1001, callerPID: 4700)
        record.sessionID = "0123456789abcdef0123456789abcdef"
        let fields = SessionEnd.fields(record, .exit(code: 0), microseconds: 5)
        #expect(fields == [AuditField.endedBy: "exit", AuditField.session: "12",
                           AuditField.sessionID: "0123456789abcdef0123456789abcdef",
                           AuditField.sessionStarted: Timestamp.format(secondsSinceEpoch: 1_795_000_100),
                           AuditField.tty: "pty", AuditField.durationMicroseconds: "5"])
    }
}
