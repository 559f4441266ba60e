/// `describe` → what the server offers this caller: protocol, methods with their
/// parameters, the namespace kinds the caller may create, the limits that bind
/// the caller, and the host's features (PROTOCOL.md §8.17).
public struct DescribeResult: Sendable, Equatable {
    public var major: Int
    public var minor: Int
    /// Every method and its parameters, as `MethodName.parameters` has them.
    public var methods: [MethodEntry]
    /// Kinds this caller may name in `create`, and what `create` makes when it names none.
    public var allowedKinds: [String]
    public var defaultKinds: [String]
    public var limits: DescribeLimits
    public var features: DescribeFeatures

    public struct MethodEntry: Sendable, Equatable {
        public var name: String
        public var required: [String]
        public var optional: [String]

        public init(name: String, required: [String], optional: [String]) {
            self.name = name
            self.required = required
            self.optional = optional
        }

        /// The entry of `method`, from its table.
        public init(_ method: MethodName) {
            self.init(name: method.rawValue, required: method.parameters.filter(\.required).map(\.name),
                      optional: method.parameters.filter { !$0.required }.map(\.name))
        }
    }

    public init(major: Int = protocolVersion, minor: Int = protocolMinor,
                methods: [MethodEntry] = MethodName.allCases.map(MethodEntry.init),
                allowedKinds: [String], defaultKinds: [String], limits: DescribeLimits, features: DescribeFeatures) {
        self.major = major
        self.minor = minor
        self.methods = methods
        self.allowedKinds = allowedKinds
        self.defaultKinds = defaultKinds
        self.limits = limits
        self.features = features
    }

    public var json: JSONValue {
        var methodsObject = JSONObject()
        for entry in methods {
            methodsObject[entry.name] = .object(["required": .array(entry.required.map { .string($0) }),
                                                 "optional": .array(entry.optional.map { .string($0) })])
        }
        return .object([
            "protocol": .object(["major": .number(JSONNumber(major)), "minor": .number(JSONNumber(minor))]),
            "methods": .object(methodsObject),
            "namespaceKinds": .object(["allowed": .array(allowedKinds.map { .string($0) }),
                                       "default": .array(defaultKinds.map { .string($0) })]),
            "limits": limits.json,
            "features": features.json,
        ])
    }

    /// Reads a server's answer as a client does: members it does not know are ignored.
    public init(json: JSONValue) throws(RPCError) {
        var r = try ParamsReader(json, method: "describe result")
        guard var version = try r.object("protocol") else { throw .invalidParams("describe result: \"protocol\" is required") }
        major = Int(try version.integer("major", in: 0...Int64(Int32.max)) ?? 0)
        minor = Int(try version.integer("minor", in: 0...Int64(Int32.max)) ?? 0)
        methods = []
        if let object = json["methods"]?.objectValue {
            for (name, value) in object {
                var m = try ParamsReader(value, method: "describe result: \"methods\"")
                methods.append(MethodEntry(name: name, required: try m.stringArray("required") ?? [],
                                           optional: try m.stringArray("optional") ?? []))
            }
        }
        if var kinds = try r.object("namespaceKinds") {
            allowedKinds = try kinds.stringArray("allowed") ?? []
            defaultKinds = try kinds.stringArray("default") ?? []
        } else {
            allowedKinds = []
            defaultKinds = []
        }
        limits = try DescribeLimits(json: json["limits"] ?? .object([:]))
        features = try DescribeFeatures(json: json["features"] ?? .object([:]))
    }
}

/// How much of one thing the caller may have and how much is left now.
public struct Allowance: Sendable, Equatable {
    public var max: UInt64
    public var left: UInt64

    public init(max: UInt64, left: UInt64) {
        self.max = max
        self.left = left
    }

    /// `max` less what is `used`, never below 0.
    public init(max: UInt64, used: UInt64) {
        self.init(max: max, left: used >= max ? 0 : max - used)
    }

    public var json: JSONValue { .object(["max": .number(JSONNumber(max)), "left": .number(JSONNumber(left))]) }

    init?(json: JSONValue?, _ name: String) throws(RPCError) {
        guard let json, !json.isNull else { return nil }
        var r = try ParamsReader(json, method: "describe result: \"\(name)\"")
        max = UInt64(try r.integer("max", in: 0...Int64.max) ?? 0)
        left = UInt64(try r.integer("left", in: 0...Int64.max) ?? 0)
    }
}

/// The limits that apply to the caller. A per-user figure is nil (JSON null) for root,
/// whom per-user limits do not bind.
public struct DescribeLimits: Sendable, Equatable {
    /// The longest request line, in bytes without its newline (connections.max-line).
    public var maxLine: UInt64
    /// The caller's groups (limits.groups-per-user), counted with her subordinate uids'.
    public var groups: Allowance?
    /// Groups on the server, everyone's (limits.groups): binds root too.
    /// Root and admins only: how many groups everyone holds is not a user's to know.
    public var serverGroups: Allowance?
    /// Sessions running (limits.sessions-per-user).
    public var sessions: Allowance?
    /// Connections open at once (connections.per-user): binds root too.
    public var connections: Allowance
    /// tmpfs: the largest one mount may have (limits.tmpfs-size) and the bytes of all
    /// the caller's mounts (limits.tmpfs-per-user).
    public var tmpfsSize: UInt64?
    public var tmpfsPerUser: Allowance?
    /// What the kernel holds all the caller's groups and sessions to together (the
    /// `-per-user` keys on controllers the host has); nil for root.
    public var perUser: GroupLimits?
    /// What a group gets when its create names no limits, and, for all but root, the
    /// most a create may ask for (the `-per-group` keys).
    public var perGroup: GroupLimits

    public init(maxLine: UInt64, groups: Allowance?, serverGroups: Allowance?, sessions: Allowance?, connections: Allowance,
                tmpfsSize: UInt64?, tmpfsPerUser: Allowance?, perUser: GroupLimits?, perGroup: GroupLimits) {
        self.maxLine = maxLine
        self.groups = groups
        self.serverGroups = serverGroups
        self.sessions = sessions
        self.connections = connections
        self.tmpfsSize = tmpfsSize
        self.tmpfsPerUser = tmpfsPerUser
        self.perUser = perUser
        self.perGroup = perGroup
    }

    public var json: JSONValue {
        .object([
            "maxLine": .number(JSONNumber(maxLine)),
            "groups": groups?.json ?? .null,
            "serverGroups": serverGroups?.json ?? .null,
            "sessions": sessions?.json ?? .null,
            "connections": connections.json,
            "tmpfsSize": tmpfsSize.map { .number(JSONNumber($0)) } ?? .null,
            "tmpfsPerUser": tmpfsPerUser?.json ?? .null,
            "perUser": perUser?.json ?? .null,
            "perGroup": perGroup.json,
        ])
    }

    public init(json: JSONValue) throws(RPCError) {
        var r = try ParamsReader(json, method: "describe result: \"limits\"")
        maxLine = UInt64(try r.integer("maxLine", in: 0...Int64.max) ?? 0)
        groups = try Allowance(json: json["groups"], "groups")
        serverGroups = try Allowance(json: json["serverGroups"], "serverGroups")
        sessions = try Allowance(json: json["sessions"], "sessions")
        connections = try Allowance(json: json["connections"], "connections") ?? Allowance(max: 0, left: 0)
        tmpfsSize = try r.integer("tmpfsSize", in: 0...Int64.max).map(UInt64.init)
        tmpfsPerUser = try Allowance(json: json["tmpfsPerUser"], "tmpfsPerUser")
        if let value = json["perUser"], !value.isNull { perUser = try GroupLimits(json: value) } else { perUser = nil }
        perGroup = try GroupLimits(json: json["perGroup"] ?? .object([:]))
    }
}

/// What the host offers, whoever asks.
public struct DescribeFeatures: Sendable, Equatable {
    /// Whether groups may have a user namespace (`user`) and a time namespace (`time`).
    public var userNamespaces: Bool
    public var timeNamespaces: Bool
    /// "v2" (every controller there is in the unified hierarchy) or "hybrid" (some in v1).
    public var cgroups: String
    /// Where each controller that limits a group is: "v2", "v1" or "none".
    public var controllers: [(name: String, place: String)]
    /// create's `"network": "pasta"` and `"root": "overlay"`: their programs and devices are there.
    public var pasta: Bool
    public var overlayRoot: Bool

    public init(userNamespaces: Bool, timeNamespaces: Bool, cgroups: String, controllers: [(name: String, place: String)],
                pasta: Bool, overlayRoot: Bool) {
        self.userNamespaces = userNamespaces
        self.timeNamespaces = timeNamespaces
        self.cgroups = cgroups
        self.controllers = controllers
        self.pasta = pasta
        self.overlayRoot = overlayRoot
    }

    public static func == (a: DescribeFeatures, b: DescribeFeatures) -> Bool {
        a.userNamespaces == b.userNamespaces && a.timeNamespaces == b.timeNamespaces && a.cgroups == b.cgroups
            && a.controllers.elementsEqual(b.controllers) { $0 == $1 } && a.pasta == b.pasta && a.overlayRoot == b.overlayRoot
    }

    public var json: JSONValue {
        var places = JSONObject()
        for (name, place) in controllers { places[name] = .string(place) }
        return .object([
            "userNamespaces": .bool(userNamespaces),
            "timeNamespaces": .bool(timeNamespaces),
            "cgroups": .string(cgroups),
            "controllers": .object(places),
            "pasta": .bool(pasta),
            "overlayRoot": .bool(overlayRoot),
        ])
    }

    public init(json: JSONValue) throws(RPCError) {
        var r = try ParamsReader(json, method: "describe result: \"features\"")
        userNamespaces = try r.bool("userNamespaces") ?? false
        timeNamespaces = try r.bool("timeNamespaces") ?? false
        cgroups = try r.string("cgroups") ?? ""
        controllers = try r.stringMap("controllers")?.map { (name: $0.0, place: $0.1) } ?? []
        pasta = try r.bool("pasta") ?? false
        overlayRoot = try r.bool("overlayRoot") ?? false
    }
}
