/// `create {name, namespaces?, hostname?, tmpfs?, members?}` → the new group.
public struct CreateParams: Sendable, Equatable {
    public var name: String
    /// Kernel names of the kinds to create; nil means the default set.
    public var namespaces: [String]?
    public var hostname: String?
    /// Absolute paths inside the group to mount a tmpfs on.
    public var tmpfs: [String]
    /// Users ("alice", "1001") and groups ("@devs", "@1002") who may enter too.
    public var members: [String]

    public init(name: String, namespaces: [String]? = nil, hostname: String? = nil, tmpfs: [String] = [],
                members: [String] = []) {
        self.name = name
        self.namespaces = namespaces
        self.hostname = hostname
        self.tmpfs = tmpfs
        self.members = members
    }

    public init(params: JSONValue?) throws(RPCError) {
        var r = try ParamsReader(params, method: "create")
        name = try r.requiredString("name")
        namespaces = try r.stringArray("namespaces")
        hostname = try r.string("hostname")
        tmpfs = try r.stringArray("tmpfs") ?? []
        members = try r.stringArray("members") ?? []
        try r.finish()
        try GroupName.validate(name)
    }

    public var json: JSONValue {
        var o: JSONObject = ["name": .string(name)]
        if let namespaces { o["namespaces"] = .array(namespaces.map { .string($0) }) }
        if let hostname { o["hostname"] = .string(hostname) }
        if !tmpfs.isEmpty { o["tmpfs"] = .array(tmpfs.map { .string($0) }) }
        if !members.isEmpty { o["members"] = .array(members.map { .string($0) }) }
        return .object(o)
    }
}

/// `inspect {name}`, `destroy {name}`: methods that name one group.
public struct NameParams: Sendable, Equatable {
    public var name: String

    public init(name: String) {
        self.name = name
    }

    public init(params: JSONValue?, method: String) throws(RPCError) {
        var r = try ParamsReader(params, method: method)
        name = try r.requiredString("name")
        try r.finish()
        try GroupName.validate(name)
    }

    public var json: JSONValue { .object(["name": .string(name)]) }
}

/// `share {name, members}` and `unshare {name, members}` → the group: add
/// members to, or remove them from, those who may enter a group.
public struct ShareParams: Sendable, Equatable {
    public var name: String
    public var members: [String]

    public init(name: String, members: [String]) {
        self.name = name
        self.members = members
    }

    public init(params: JSONValue?, method: String) throws(RPCError) {
        var r = try ParamsReader(params, method: method)
        name = try r.requiredString("name")
        guard let members = try r.stringArray("members"), !members.isEmpty else {
            throw .invalidParams("\(method): \"members\" must name at least one user or @group")
        }
        self.members = members
        try r.finish()
        try GroupName.validate(name)
    }

    public var json: JSONValue {
        .object(["name": .string(name), "members": .array(members.map { .string($0) })])
    }
}
