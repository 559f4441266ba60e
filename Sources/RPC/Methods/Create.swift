/// `create {name, namespaces?, hostname?, tmpfs?, binds?, members?,
/// monotonicOffset?, boottimeOffset?, netnsName?, network?, publish?, limits?, lifetime?, idle?,
/// privateTmp?, privateHome?, home?, root?, persist?}` → the new group.
public struct CreateParams: Sendable, Equatable {
    public var name: String
    /// Kernel names of the kinds to create; nil means the default set.
    public var namespaces: [String]?
    public var hostname: String?
    /// Tmpfs mounts inside the group: "PATH" or "PATH:size=64m,mode=0755".
    public var tmpfs: [String]
    /// Bind mounts (root and admins only): "SOURCE:TARGET" or "SOURCE:TARGET:ro".
    public var binds: [String]
    /// Users ("alice", "1001") and groups ("@devs", "@1002") who may enter too.
    public var members: [String]
    /// Time namespace offsets, in seconds (with "time").
    public var monotonicOffset: Int64?
    public var boottimeOffset: Int64?
    /// Publish the net namespace at /run/netns/NAME for `ip netns` (root and admins only).
    public var netnsName: String?
    /// With a net namespace: "none" (loopback only, the default) or "pasta".
    public var network: GroupNetwork?
    /// Host ports (on 127.0.0.1) that pasta forwards into the group.
    public var publish: [PublishedPort] = []
    /// Resource limits of the group's cgroup; what is not given comes from nsgroupd.conf.
    public var limits = GroupLimits()
    /// Seconds after which the group is destroyed.
    public var lifetime: Int64?
    /// Seconds without a running session after which the group is destroyed.
    public var idle: Int64?
    /// Fresh tmpfs mounts (mode 1777) on /tmp and /var/tmp inside (with mnt).
    public var privateTmp = false
    /// An empty tmpfs of the caller's (mode 0700) on their home directory inside (with mnt).
    public var privateHome = false
    /// A directory of the caller's bound onto their home inside instead (with mnt).
    public var home: String?
    /// "host" (the default) or "overlay": the group's root a copy-on-write view of the host's
    /// (with mnt and user).
    public var root: GroupRoot = .host
    /// With root "overlay": a directory of the caller's holding the upper layer, kept after
    /// the group; without it the upper layer is a tmpfs.
    public var persist: String?

    public static let maxOffset: Int64 = 10 * 366 * 86_400
    /// Lifetimes and idle times: one second to ten years.
    public static let durationRange: ClosedRange<Int64> = 1...(10 * 366 * 86_400)

    public init(name: String, namespaces: [String]? = nil, hostname: String? = nil, tmpfs: [String] = [],
                binds: [String] = [], members: [String] = [], monotonicOffset: Int64? = nil,
                boottimeOffset: Int64? = nil, netnsName: String? = nil) {
        self.name = name
        self.namespaces = namespaces
        self.hostname = hostname
        self.tmpfs = tmpfs
        self.binds = binds
        self.members = members
        self.monotonicOffset = monotonicOffset
        self.boottimeOffset = boottimeOffset
        self.netnsName = netnsName
    }

    public init(params: JSONValue?) throws(RPCError) {
        var r = try ParamsReader(params, method: "create")
        name = try r.requiredString("name")
        namespaces = try r.stringArray("namespaces")
        hostname = try r.string("hostname")
        tmpfs = try r.stringArray("tmpfs") ?? []
        binds = try r.stringArray("binds") ?? []
        members = try r.stringArray("members") ?? []
        monotonicOffset = try r.integer("monotonicOffset", in: -Self.maxOffset...Self.maxOffset)
        boottimeOffset = try r.integer("boottimeOffset", in: -Self.maxOffset...Self.maxOffset)
        netnsName = try r.string("netnsName")
        if let given = try r.string("network") {
            guard let network = GroupNetwork(rawValue: given) else {
                throw .invalidParams("create: \"network\" must be \"none\" or \"pasta\", not \"\(given)\"")
            }
            self.network = network
        }
        for var entry in try r.objectArray("publish") ?? [] { publish.append(try PublishedPort(reader: &entry)) }
        if var limitsReader = try r.object("limits") { limits = try GroupLimits(reader: &limitsReader) }
        lifetime = try r.integer("lifetime", in: Self.durationRange)
        idle = try r.integer("idle", in: Self.durationRange)
        privateTmp = try r.bool("privateTmp") ?? false
        privateHome = try r.bool("privateHome") ?? false
        home = try r.string("home")
        if let given = try r.string("root") {
            guard let root = GroupRoot(rawValue: given) else {
                throw .invalidParams("create: \"root\" must be \"host\" or \"overlay\", not \"\(String(given.prefix(64)))\"")
            }
            self.root = root
        }
        persist = try r.string("persist")
        try r.finish()
        try GroupName.validate(name)
    }

    public var json: JSONValue {
        var o: JSONObject = ["name": .string(name)]
        if let namespaces { o["namespaces"] = .array(namespaces.map { .string($0) }) }
        if let hostname { o["hostname"] = .string(hostname) }
        if !tmpfs.isEmpty { o["tmpfs"] = .array(tmpfs.map { .string($0) }) }
        if !binds.isEmpty { o["binds"] = .array(binds.map { .string($0) }) }
        if !members.isEmpty { o["members"] = .array(members.map { .string($0) }) }
        if let monotonicOffset { o["monotonicOffset"] = .number(JSONNumber(monotonicOffset)) }
        if let boottimeOffset { o["boottimeOffset"] = .number(JSONNumber(boottimeOffset)) }
        if let netnsName { o["netnsName"] = .string(netnsName) }
        if let network { o["network"] = .string(network.rawValue) }
        if !publish.isEmpty { o["publish"] = .array(publish.map(\.json)) }
        if !limits.isEmpty { o["limits"] = limits.json }
        if let lifetime { o["lifetime"] = .number(JSONNumber(lifetime)) }
        if let idle { o["idle"] = .number(JSONNumber(idle)) }
        if privateTmp { o["privateTmp"] = .bool(true) }
        if privateHome { o["privateHome"] = .bool(true) }
        if let home { o["home"] = .string(home) }
        if root != .host { o["root"] = .string(root.rawValue) }
        if let persist { o["persist"] = .string(persist) }
        return .object(o)
    }
}

/// What a group's "/" is.
public enum GroupRoot: String, Sendable, Equatable {
    /// The host's own root, as every group without "root" has it.
    case host
    /// A copy-on-write overlay of the host's root (fuse-overlayfs, as the owner).
    case overlay
}

/// `inspect {name}`, `destroy {name}`, `freeze {name}`, `thaw {name}`,
/// `processes {name}`: methods that name one group.
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
