/// `subscribe {types?, groups?, since?, instance?}` → `{subscription, instance, seq}`:
/// events about the groups the caller may see, of these types and groups only when
/// given, and, with `since`, first the ones after that sequence number that the server
/// still holds (PROTOCOL.md §8.13).
public struct SubscribeParams: Sendable, Equatable {
    /// Event types to send; nil for all (a `gap` is always sent).
    public var types: Set<EventNotification.Kind>?
    /// Group names to send events about; nil for all the caller may see.
    public var groups: Set<String>?
    /// The sequence number of the last event the client has: it gets the later ones again.
    public var since: UInt64?
    /// The server run `since` was numbered in, as a subscribe result gave it.
    public var instance: String?

    /// At most this many names in `groups`.
    public static let maxGroups = 64

    public init(types: Set<EventNotification.Kind>? = nil, groups: Set<String>? = nil, since: UInt64? = nil,
                instance: String? = nil) {
        self.types = types
        self.groups = groups
        self.since = since
        self.instance = instance
    }

    public init(params: JSONValue?) throws(RPCError) {
        var r = try ParamsReader(params, method: "subscribe")
        if let names = try r.stringArray("types") {
            guard !names.isEmpty else { throw .invalidParams("subscribe: \"types\" must name at least one event type") }
            var types = Set<EventNotification.Kind>()
            for name in names {
                guard let type = EventNotification.Kind(rawValue: name) else {
                    throw .invalidParams("subscribe: unknown event type \(JSONValue.string(String(name.prefix(64))).serialized()); types are \(EventNotification.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                guard types.insert(type).inserted else { throw .invalidParams("subscribe: event type \"\(name)\" is named twice") }
            }
            self.types = types
        }
        if let names = try r.stringArray("groups") {
            guard (1...Self.maxGroups).contains(names.count) else {
                throw .invalidParams("subscribe: \"groups\" must name 1 to \(Self.maxGroups) groups")
            }
            for name in names { try GroupName.validate(name) }
            guard Set(names).count == names.count else { throw .invalidParams("subscribe: \"groups\" names a group twice") }
            groups = Set(names)
        }
        since = try r.integer("since", in: 0...Int64.max).map(UInt64.init)
        instance = try r.string("instance")
        if instance != nil, since == nil { throw .invalidParams("subscribe: \"instance\" goes with \"since\"") }
        try r.finish()
    }

    public var json: JSONValue {
        var o: JSONObject = [:]
        if let types { o["types"] = .array(types.map(\.rawValue).sorted().map { .string($0) }) }
        if let groups { o["groups"] = .array(groups.sorted().map { .string($0) }) }
        if let since { o["since"] = .number(JSONNumber(since)) }
        if let instance { o["instance"] = .string(instance) }
        return .object(o)
    }
}

/// `unsubscribe {subscription}` → `{}`: no more events on this connection.
public struct UnsubscribeParams: Sendable, Equatable {
    public var subscription: UInt64

    public init(subscription: UInt64) {
        self.subscription = subscription
    }

    public init(params: JSONValue?) throws(RPCError) {
        var r = try ParamsReader(params, method: "unsubscribe")
        guard let id = try r.integer("subscription", in: 1...Int64.max) else {
            throw .invalidParams("unsubscribe: \"subscription\" is required")
        }
        subscription = UInt64(id)
        try r.finish()
    }

    public var json: JSONValue { .object(["subscription": .number(JSONNumber(subscription))]) }
}
