import Logging
import RPC

/// Events: the connections that subscribed, and the fan-out of every change
/// to a group to those of them whose caller may see the group (list, inspect).
final class EventBus {
    private let policies: PolicyHolder
    /// Read for each subscriber's person: their unread output (connections.output-per-user).
    private let input: ConnectionInput
    private let subordinates: SubordinateOwners
    private let logger: Logger
    /// Connections that asked for events (subscribe), held weakly.
    private var subscribers: [ObjectIdentifier: WeakConnection] = [:]

    init(policies: PolicyHolder, input: ConnectionInput, subordinates: SubordinateOwners, logger: Logger) {
        self.policies = policies
        self.input = input
        self.subordinates = subordinates
        self.logger = logger
    }

    private var policy: Policy { policies.current }

    /// `subscribe {}`: from now on this connection gets an `event`
    /// notification for everything that happens to a group its caller may
    /// see (list, inspect). It keeps answering requests too, and is never
    /// closed for being idle; one that does not read its events and lets
    /// more than connections.subscriber-buffer of them pile up is dropped,
    /// rather than slowing the supervisor or holding its memory; so is one
    /// behind on its events while its person is over connections.output-per-user.
    /// Returns false when the connection was subscribed already (nothing changed).
    @discardableResult
    func subscribe(_ connection: Connection) -> Bool {
        guard subscribers[ObjectIdentifier(connection)] == nil else { return false }
        connection.becomeSubscriber()
        subscribers[ObjectIdentifier(connection)] = WeakConnection(connection)
        return true
    }

    /// Forgets a connection that closed.
    func unsubscribe(_ connection: Connection) {
        subscribers[ObjectIdentifier(connection)] = nil
    }

    /// The subscribed connections (exempt from idle timeouts).
    var subscriberIDs: Dictionary<ObjectIdentifier, WeakConnection>.Keys { subscribers.keys }

    /// The subscribers who may see `group` now (taken before a change that may shut some out).
    func viewers(of group: Group) -> Set<ObjectIdentifier> {
        Set(subscribers.compactMap { id, subscriber in
            subscriber.connection.map { policy.mayUse($0.peer, group) } == true ? id : nil
        })
    }

    /// Sends an event about `group` to every subscriber who may see it; and `former`,
    /// if given, to those of `formerViewers` who no longer may (a member unshare removed).
    func emit(_ event: EventNotification, about group: Group,
              former: (event: EventNotification, viewers: Set<ObjectIdentifier>)? = nil) {
        guard !subscribers.isEmpty else { return }
        let message = Response.notification(method: NotificationName.event.rawValue, params: event.json)
        let formerMessage = former.map { Response.notification(method: NotificationName.event.rawValue, params: $0.event.json) }
        for (id, subscriber) in subscribers {
            guard let connection = subscriber.connection, !connection.isClosed else {
                subscribers[id] = nil
                continue
            }
            if policy.mayUse(connection.peer, group) {
                connection.send(message)
            } else if let formerMessage, former?.viewers.contains(id) == true {
                connection.send(formerMessage)
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
        emit(event, about: group, former: (withoutMembers, viewersBefore))
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
