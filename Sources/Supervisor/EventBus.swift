#if canImport(Glibc)
import Glibc
#endif
import Logging
import POSIX
import RPC

/// Events: the connections that subscribed, and the fan-out of every change
/// to a group to those of them whose caller may see the group (list, inspect).
/// Every event gets the next number of this run's sequence (`seq`), and the
/// latest ones are kept in a ring, with who could see each, so that a client
/// that reconnects can ask for what it missed (`since`), or learn that the
/// ring no longer holds it (a `gap` event).
final class EventBus {
    private let policies: PolicyHolder
    /// Read for each subscriber's person: their unread output (connections.output-per-user).
    private let input: ConnectionInput
    private let subordinates: SubordinateOwners
    private let logger: Logger

    /// One connection's subscription: its id and what it asked for.
    struct Subscription {
        let id: UInt64
        weak var connection: Connection?
        var types: Set<EventNotification.Kind>?
        var groups: Set<String>?

        func wants(_ type: EventNotification.Kind, _ group: String) -> Bool {
            types.map { $0.contains(type) } ?? true && groups.map { $0.contains(group) } ?? true
        }
    }

    /// Connections that asked for events (subscribe), held weakly.
    private var subscribers: [ObjectIdentifier: Subscription] = [:]
    private var lastSubscription: UInt64 = 0

    /// This run of the supervisor: sequence numbers are this run's. A supervisor that
    /// stopped hands its run on to the next (snapshot, restore); one that was killed does not.
    private(set) var instance = RandomID.make()
    /// The number of the latest event, 0 before the first.
    private(set) var lastSeq: UInt64 = 0

    /// An event as the ring keeps it: its message, and who could see it when it happened.
    struct Recorded {
        let seq: UInt64
        let type: EventNotification.Kind
        let group: String
        let owner: uid_t
        let members: [Member]
        /// The notification's line, serialized once: the ring holds bytes, not JSON trees.
        let message: [UInt8]
        /// group-unshared: the event without `members`, for those only `membersBefore` admitted.
        let former: (message: [UInt8], membersBefore: [Member])?
        var bytes: Int { message.count + (former?.message.count ?? 0) }
    }

    /// The latest events, oldest first, at most ringEvents of them and ringBytes of messages.
    private var ring: [Recorded] = []
    private var ringStart = 0
    private var ringBytes = 0
    static let ringEvents = 1024
    static let ringMaxBytes = 512 << 10

    init(policies: PolicyHolder, input: ConnectionInput, subordinates: SubordinateOwners, logger: Logger) {
        self.policies = policies
        self.input = input
        self.subordinates = subordinates
        self.logger = logger
    }

    private var policy: Policy { policies.current }

    // MARK: Across a restart

    /// The ring as a stopping supervisor leaves it (StateStore.saveEvents): the instance, the
    /// last number and the events, oldest first, the oldest left out past `limit` bytes.
    func snapshot(limit: Int) -> JSONValue {
        var events: [JSONValue] = []
        var bytes = 128
        for recorded in ring[ringStart...].reversed() {
            guard let message = try? JSONParser.parse(Array(recorded.message.dropLast())) else { continue }
            var o: JSONObject = ["seq": .number(JSONNumber(recorded.seq)), "type": .string(recorded.type.rawValue),
                                 "group": .string(recorded.group), "owner": .number(JSONNumber(recorded.owner)),
                                 "members": .array(recorded.members.map(StateCodec.encode)), "message": message]
            if let former = recorded.former, let formerMessage = try? JSONParser.parse(Array(former.message.dropLast())) {
                o["former"] = formerMessage
                o["membersBefore"] = .array(former.membersBefore.map(StateCodec.encode))
            }
            let event = JSONValue.object(o)
            bytes += event.serialized().utf8.count + 1
            if bytes > limit { break }
            events.append(event)
        }
        return .object(["version": .number(JSONNumber(1)), "instance": .string(instance),
                        "seq": .number(JSONNumber(lastSeq)), "events": .array(events.reversed())])
    }

    /// Takes the ring a stopped supervisor left: this run goes on with its instance and
    /// numbers, so that subscribers resume as if nothing happened. Anything malformed is
    /// refused whole (this run then starts a sequence of its own).
    func restore(_ value: JSONValue) throws(SupervisorError) {
        func malformed(_ what: String) -> SupervisorError { SupervisorError(.stateFile(.malformed), what) }
        guard let o = value.objectValue, o["version"]?.int64Value == 1, let restoredInstance = o["instance"]?.stringValue,
              RandomID.isValid(restoredInstance), let seq = o["seq"]?.int64Value, seq >= 0, let events = o["events"]?.arrayValue
        else { throw malformed("it is not a version 1 ring of events") }
        var restored: [Recorded] = []
        var previous: UInt64 = 0
        for event in events {
            guard let e = event.objectValue, let n = e["seq"]?.int64Value, n > previous, n <= seq,
                  let type = e["type"]?.stringValue.flatMap(EventNotification.Kind.init(rawValue:)),
                  let group = e["group"]?.stringValue, GroupName.isValid(group),
                  let owner = e["owner"]?.int64Value, (0...Int64(UInt32.max - 1)).contains(owner),
                  let members = e["members"]?.arrayValue?.compactMap(StateCodec.member), members.count == e["members"]?.arrayValue?.count,
                  let message = e["message"], message["params"]?["seq"]?.int64Value == n, message["params"]?["group"]?.stringValue == group
            else { throw malformed("an event in it is not well formed: \(String(event.serialized().prefix(128)))") }
            var former: (message: [UInt8], membersBefore: [Member])?
            if let formerMessage = e["former"] {
                guard let before = e["membersBefore"]?.arrayValue?.compactMap(StateCodec.member),
                      formerMessage["params"]?["seq"]?.int64Value == n else { throw malformed("an event's former part is not well formed") }
                former = (formerMessage.line, before)
            }
            previous = UInt64(n)
            restored.append(Recorded(seq: UInt64(n), type: type, group: group, owner: uid_t(owner), members: members,
                                     message: message.line, former: former))
        }
        guard restored.count <= Self.ringEvents else { throw malformed("it holds more than \(Self.ringEvents) events") }
        instance = restoredInstance
        lastSeq = UInt64(seq)
        ring = restored
        ringStart = 0
        ringBytes = restored.reduce(0) { $0 + $1.bytes }
    }

    /// `subscribe {types?, groups?, since?, instance?}`: from now on this connection gets an
    /// `event` notification for everything that happens to a group its caller may see (list,
    /// inspect), of the types and groups asked for. With `since`, the events after that
    /// number that the ring still holds come first (before the reply), or a `gap` where it
    /// no longer does. It keeps answering requests too, and is never closed for being idle;
    /// one that does not read its events and lets more than connections.subscriber-buffer of
    /// them pile up is dropped, rather than slowing the supervisor or holding its memory; so
    /// is one behind on its events while its person is over connections.output-per-user.
    /// Subscribing again keeps the id and takes the new filters. Returns the subscription's
    /// id and whether it is new.
    func subscribe(_ connection: Connection, _ params: SubscribeParams) throws(RPCError) -> (id: UInt64, new: Bool) {
        if let since = params.since, params.instance == nil || params.instance == instance, since > lastSeq {
            throw .invalidParams("subscribe: \"since\" \(since) is after the last event of this run, \(lastSeq)")
        }
        let key = ObjectIdentifier(connection)
        let existing = subscribers[key]
        let id: UInt64
        if let existing {
            id = existing.id
        } else {
            lastSubscription += 1
            id = lastSubscription
            connection.becomeSubscriber()
        }
        subscribers[key] = Subscription(id: id, connection: connection, types: params.types, groups: params.groups)
        if let since = params.since { replay(to: connection, subscription: subscribers[key]!, since: since, instance: params.instance) }
        return (id, existing == nil)
    }

    /// `unsubscribe {subscription}`: no more events on this connection.
    func unsubscribe(_ connection: Connection, id: UInt64) throws(RPCError) {
        guard subscribers[ObjectIdentifier(connection)]?.id == id else {
            throw .invalidParams("unsubscribe: this connection has no subscription \(id)")
        }
        subscribers[ObjectIdentifier(connection)] = nil
    }

    /// Forgets a connection that closed.
    func unsubscribe(_ connection: Connection) {
        subscribers[ObjectIdentifier(connection)] = nil
    }

    /// The subscribed connections (exempt from idle timeouts).
    var subscriberIDs: Dictionary<ObjectIdentifier, Subscription>.Keys { subscribers.keys }

    /// The subscribers who may see `group` now (taken before a change that may shut some out).
    func viewers(of group: Group) -> Set<ObjectIdentifier> {
        Set(subscribers.compactMap { id, subscriber in
            subscriber.connection.map { policy.mayUse($0.peer, group) } == true ? id : nil
        })
    }

    /// The events after `since` that the ring holds and the subscriber may see, in order;
    /// first a `gap` when some of them are gone: the ring has dropped them, or `since` was
    /// numbered by an earlier run of the supervisor.
    /// At most half of connections.subscriber-buffer is replayed, so that a subscriber that
    /// reads is not dropped for the replay it asked for: the newest events that fit, after a
    /// `gap` for the older ones.
    private func replay(to connection: Connection, subscription: Subscription, since: UInt64, instance asked: String?) {
        let sameRun = asked == nil || asked == instance
        // What this subscriber gets, oldest first.
        var due: [(seq: UInt64, message: [UInt8])] = []
        for recorded in ring[ringStart...] where !sameRun || recorded.seq > since {
            guard subscription.wants(recorded.type, recorded.group) else { continue }
            if policy.mayUse(connection.peer, owner: recorded.owner, members: recorded.members) {
                due.append((recorded.seq, recorded.message))
            } else if let former = recorded.former, policy.mayUse(connection.peer, owner: recorded.owner, members: former.membersBefore) {
                due.append((recorded.seq, former.message))
            }
        }
        var budget = policy.subscriberBuffer / 2
        var first = due.count
        while first > 0 {
            let size = due[first - 1].message.count
            guard size <= budget else { break }
            budget -= size
            first -= 1
        }
        let oldest = ringStart < ring.count ? ring[ringStart].seq : lastSeq + 1
        if first > 0 {
            sendGap(to: connection, reason: sameRun ? "overflow" : "restart", until: due[first - 1].seq)
        } else if !sameRun {
            sendGap(to: connection, reason: "restart", until: oldest - 1)
        } else if since + 1 < oldest {
            sendGap(to: connection, reason: "overflow", until: oldest - 1)
        }
        for event in due[first...] { connection.send(line: event.message) }
    }

    /// An `event` notification's line.
    private static func eventLine(_ params: JSONValue) -> [UInt8] {
        Response.notification(method: NotificationName.event.rawValue, params: params).line
    }

    /// `{"type": "gap", "reason", "until", "time"}`: events up to `until` may be missing.
    private func sendGap(to connection: Connection, reason: String, until: UInt64) {
        let params: JSONObject = ["type": .string("gap"), "reason": .string(reason), "until": .number(JSONNumber(until)),
                                  "time": .string(Timestamp.format(secondsSinceEpoch: Timestamp.now()))]
        connection.send(line: Self.eventLine(.object(params)))
    }

    /// Numbers `event` and keeps it in the ring with who may see it.
    private func record(_ event: inout EventNotification, group: Group, former: EventNotification?,
                        membersBefore: [Member]) -> Recorded {
        lastSeq += 1
        event.seq = lastSeq
        let message = Self.eventLine(event.json)
        let formerMessage: [UInt8]? = former.map { former in
            var numbered = former
            numbered.seq = lastSeq
            return Self.eventLine(numbered.json)
        }
        let recorded = Recorded(seq: lastSeq, type: event.kind, group: group.name, owner: group.owner,
                                members: group.record.members, message: message,
                                former: formerMessage.map { ($0, membersBefore) })
        ring.append(recorded)
        ringBytes += recorded.bytes
        while ring.count - ringStart > Self.ringEvents || ringBytes > Self.ringMaxBytes {
            ringBytes -= ring[ringStart].bytes
            ringStart += 1
        }
        // Dropped entries are let go in batches, not one array move per event.
        if ringStart >= Self.ringEvents {
            ring.removeFirst(ringStart)
            ringStart = 0
        }
        return recorded
    }

    /// Sends an event about `group` to every subscriber who may see it and asked for it; and
    /// `former`, if given, to those of `formerViewers` who no longer may (a member unshare
    /// removed), whose members were `membersBefore`.
    func emit(_ event: EventNotification, about group: Group,
              former: (event: EventNotification, viewers: Set<ObjectIdentifier>, membersBefore: [Member])? = nil) {
        var event = event
        let recorded = record(&event, group: group, former: former?.event, membersBefore: former?.membersBefore ?? [])
        guard !subscribers.isEmpty else { return }
        for (id, subscriber) in subscribers {
            guard let connection = subscriber.connection, !connection.isClosed else {
                subscribers[id] = nil
                continue
            }
            guard subscriber.wants(recorded.type, recorded.group) else { continue }
            if policy.mayUse(connection.peer, group) {
                connection.send(line: recorded.message)
            } else if let formerMessage = recorded.former?.message, former?.viewers.contains(id) == true {
                connection.send(line: formerMessage)
            } else {
                continue
            }
            let unread = connection.queuedOutputBytes
            let overSelf = unread > policy.subscriberBuffer
            // Events are pushed, not asked for, so they cannot wait for the person's
            // budget: a subscriber behind on them while its person is over
            // connections.output-per-user is dropped, as one over its own buffer is.
            if overSelf || (unread > 0 && input.isHeldBack(connection.chargedUID)) {
                let why = overSelf
                    ? "(connections.subscriber-buffer = \(policy.subscriberBuffer))"
                    : "while \(subordinates.chargedSubject(connection.peer.uid)) \(input.unreadBytes[connection.chargedUID, default: 0]) bytes unread across all connections (connections.output-per-user = \(policy.outputPerUser))"
                logger.notice("Dropping an event subscriber of uid \(connection.peer.uid): \(unread) bytes of events unread \(why)",
                              metadata: [AuditField.callerUID: .string(String(connection.peer.uid))])
                subscribers[id] = nil
                connection.close()
            }
        }
    }

    func groupEvent(_ kind: EventNotification.Kind, _ group: Group, reason: String? = nil, oomKills: UInt64? = nil) {
        var event = EventNotification(kind: kind, group: group.name, time: Timestamp.format(secondsSinceEpoch: Timestamp.now()),
                                      owner: group.owner)
        event.reason = reason
        event.oomKills = oomKills
        emit(event, about: group)
    }

    /// group-shared or group-unshared after `share`/`unshare` changed the members: to
    /// everyone who may see the group now, a new member included. Someone who could see it
    /// just before (`viewersBefore`) but no longer may, a removed member, is told of the
    /// change too, without the members left: they learn that they lost the group, and
    /// nothing more about it.
    func membersEvent(_ group: Group, added: [Member], removed: [Member], viewersBefore: Set<ObjectIdentifier>) {
        let kind: EventNotification.Kind = added.isEmpty ? .groupUnshared : .groupShared
        var event = EventNotification(kind: kind, group: group.name, time: Timestamp.format(secondsSinceEpoch: Timestamp.now()),
                                      owner: group.owner)
        if kind == .groupShared { event.added = added.map(\.description) } else { event.removed = removed.map(\.description) }
        let withoutMembers = event
        event.members = group.record.members.map(\.description)
        // Who could see the group before: those it has now, and those unshare removed.
        let membersBefore = group.record.members + removed
        emit(event, about: group, former: (withoutMembers, viewersBefore, membersBefore))
    }

    /// Session events carry the argv cut as EventNotification.truncated does
    /// (16 arguments of at most 256 bytes), so that no session's arguments
    /// can outgrow a watcher's buffer (connections.subscriber-buffer).
    func sessionEvent(_ kind: EventNotification.Kind, _ session: Session, in group: Group, ended: ExitedNotification? = nil) {
        let argv = EventNotification.truncated(session.argv)
        emit(EventNotification(kind: kind, group: group.name, time: Timestamp.format(secondsSinceEpoch: Timestamp.now()),
                               owner: group.owner, session: session.id, pid: session.pid, uid: session.uid,
                               argv: argv.argv, argvTruncated: argv.truncated || session.record.argvTruncated,
                               code: ended?.code, signal: ended?.signal), about: group)
    }
}
