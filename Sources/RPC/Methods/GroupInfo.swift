/// A group as `create`, `list` and `inspect` describe it.
public struct GroupInfo: Sendable, Equatable {
    public var name: String
    public var owner: UInt32
    public var ownerName: String
    /// Kind → id as the kernel writes it (`"mnt": "mnt:[4026532211]"`), in kind order.
    public var namespaces: [(kind: String, id: String)]
    public var holder: Int32
    /// RFC 3339, UTC.
    public var created: String
    public var hostname: String?
    public var tmpfs: [String]
    /// Processes started by `enter` that are still running.
    public var sessions: [SessionInfo]
    /// Who else may enter: user names and @group names.
    public var members: [String]
    /// Bind mounts, as "SOURCE:TARGET[:ro]".
    public var binds: [String] = []
    /// With a user namespace: its maps, one "inside outside count" line each, as in /proc/PID/uid_map.
    public var uidMap: [String]?
    public var gidMap: [String]?
    /// With a time namespace: its offsets in seconds.
    public var monotonicOffset: Int64?
    public var boottimeOffset: Int64?
    /// Where the net namespace is published for `ip netns`, if it is.
    public var netnsName: String?
    /// With `network` "pasta": the pid of its pasta (absent once pasta has ended) and the published ports.
    public var network: GroupNetwork?
    public var pasta: Int32?
    public var publish: [PublishedPort] = []
    /// The limits in force on the group's cgroup (those asked for, and nsgroupd.conf's defaults).
    public var limits = GroupLimits()
    /// What the group uses now (holder and every session).
    public var usage: ResourceUsage?
    /// Stopped by `freeze` until `thaw`.
    public var frozen = false
    /// The group's cgroup, as a path in the unified hierarchy ("/nsgroupd/users/1001/lab").
    public var cgroup: String?
    /// With a lifetime: its length in seconds, and when it ends (RFC 3339, UTC).
    public var lifetime: Int64?
    public var expires: String?
    /// With an idle time: seconds without a running session before the group is destroyed.
    public var idle: Int64?
    /// Created with private /tmp and /var/tmp (tmpfs mounts, also in `tmpfs`).
    public var privateTmp = false
    /// Created with a private home: an empty tmpfs (also in `tmpfs`), or `home` bound there.
    public var privateHome = false
    /// The directory bound onto the owner's home, if one is.
    public var home: String?
    /// "overlay" for a copy-on-write root (nil: the host's), and its persist directory.
    public var root: GroupRoot?
    public var persist: String?

    public init(name: String, owner: UInt32, ownerName: String, namespaces: [(kind: String, id: String)],
                holder: Int32, created: String, hostname: String?, tmpfs: [String], sessions: [SessionInfo] = [],
                members: [String] = []) {
        self.name = name
        self.owner = owner
        self.ownerName = ownerName
        self.namespaces = namespaces
        self.holder = holder
        self.created = created
        self.hostname = hostname
        self.tmpfs = tmpfs
        self.sessions = sessions
        self.members = members
    }

    public static func == (a: GroupInfo, b: GroupInfo) -> Bool {
        a.json == b.json
    }

    public var json: JSONValue {
        var o: JSONObject = [
            "name": .string(name),
            "owner": .number(JSONNumber(owner)),
            "ownerName": .string(ownerName),
            "namespaces": .object(JSONObject(namespaces.map { ($0.kind, JSONValue.string($0.id)) })),
            "holder": .number(JSONNumber(holder)),
            "created": .string(created),
        ]
        if let hostname { o["hostname"] = .string(hostname) }
        o["tmpfs"] = .array(tmpfs.map { .string($0) })
        o["members"] = .array(members.map { .string($0) })
        if !binds.isEmpty { o["binds"] = .array(binds.map { .string($0) }) }
        if let uidMap { o["uidMap"] = .array(uidMap.map { .string($0) }) }
        if let gidMap { o["gidMap"] = .array(gidMap.map { .string($0) }) }
        if let monotonicOffset { o["monotonicOffset"] = .number(JSONNumber(monotonicOffset)) }
        if let boottimeOffset { o["boottimeOffset"] = .number(JSONNumber(boottimeOffset)) }
        if let netnsName { o["netnsName"] = .string(netnsName) }
        if let network { o["network"] = .string(network.rawValue) }
        if let pasta { o["pasta"] = .number(JSONNumber(pasta)) }
        if network == .pasta { o["publish"] = .array(publish.map(\.json)) }
        o["limits"] = limits.json
        if let usage { o["usage"] = usage.json }
        o["frozen"] = .bool(frozen)
        if let cgroup { o["cgroup"] = .string(cgroup) }
        if let lifetime { o["lifetime"] = .number(JSONNumber(lifetime)) }
        if let expires { o["expires"] = .string(expires) }
        if let idle { o["idle"] = .number(JSONNumber(idle)) }
        if privateTmp { o["privateTmp"] = .bool(true) }
        if privateHome { o["privateHome"] = .bool(true) }
        if let home { o["home"] = .string(home) }
        if let root { o["root"] = .string(root.rawValue) }
        if let persist { o["persist"] = .string(persist) }
        o["sessions"] = .array(sessions.map(\.json))
        return .object(o)
    }

    public init(json: JSONValue) throws(RPCError) {
        var r = try ParamsReader(json, method: "group")
        name = try r.requiredString("name")
        owner = UInt32(try r.integer("owner", in: 0...Int64(UInt32.max)) ?? 0)
        ownerName = try r.string("ownerName") ?? String(owner)
        namespaces = try r.stringMap("namespaces")?.map { (kind: $0.0, id: $0.1) } ?? []
        holder = Int32(try r.integer("holder", in: 0...Int64(Int32.max)) ?? 0)
        created = try r.string("created") ?? ""
        hostname = try r.string("hostname")
        tmpfs = try r.stringArray("tmpfs") ?? []
        var sessions: [SessionInfo] = []
        for element in json["sessions"]?.arrayValue ?? [] { sessions.append(try SessionInfo(json: element)) }
        self.sessions = sessions
        members = try r.stringArray("members") ?? []
        binds = try r.stringArray("binds") ?? []
        uidMap = try r.stringArray("uidMap")
        gidMap = try r.stringArray("gidMap")
        monotonicOffset = try r.integer("monotonicOffset", in: Int64.min...Int64.max)
        boottimeOffset = try r.integer("boottimeOffset", in: Int64.min...Int64.max)
        netnsName = try r.string("netnsName")
        network = try r.string("network").flatMap(GroupNetwork.init(rawValue:))
        pasta = try r.integer("pasta", in: 1...Int64(Int32.max)).map(Int32.init)
        for var entry in try r.objectArray("publish") ?? [] { publish.append(try PublishedPort(reader: &entry)) }
        if let value = json["limits"], !value.isNull { limits = try GroupLimits(json: value) }
        if let value = json["usage"], !value.isNull { usage = try ResourceUsage(json: value) }
        frozen = try r.bool("frozen") ?? false
        cgroup = try r.string("cgroup")
        lifetime = try r.integer("lifetime", in: 0...Int64.max)
        expires = try r.string("expires")
        idle = try r.integer("idle", in: 0...Int64.max)
        privateTmp = try r.bool("privateTmp") ?? false
        privateHome = try r.bool("privateHome") ?? false
        home = try r.string("home")
        root = try r.string("root").flatMap(GroupRoot.init(rawValue:))
        persist = try r.string("persist")
    }
}

/// `list` → `{groups: [...]}`.
public struct ListResult: Sendable, Equatable {
    public var groups: [GroupInfo]

    public init(groups: [GroupInfo]) {
        self.groups = groups
    }

    public var json: JSONValue { .object(["groups": .array(groups.map(\.json))]) }

    public init(json: JSONValue) throws(RPCError) {
        guard let array = json["groups"]?.arrayValue else { throw .invalidParams("list result: \"groups\" must be an array") }
        var groups: [GroupInfo] = []
        for element in array { groups.append(try GroupInfo(json: element)) }
        self.groups = groups
    }
}
