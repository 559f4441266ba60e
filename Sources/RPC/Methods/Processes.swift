/// One process in a group's cgroup, as `processes` lists it.
public struct ProcessInfo: Sendable, Equatable {
    /// Its pid as the supervisor's pid namespace (the host's) sees it.
    public var pid: Int32
    /// Its pid in the group's pid namespace; the same as `pid` in a group without one.
    public var nspid: Int32
    /// Its real uid, as the host knows it.
    public var uid: UInt32
    /// The name the user database has for `uid`; nil when it has none.
    public var user: String?
    /// The session whose cgroup it is in; nil for the holder's (the holder itself).
    public var session: UInt64?
    /// Its command line, arguments joined by spaces and cut to `maxCommandBytes`;
    /// its name in brackets ("[sh]") when the command line is empty (a zombie).
    public var command: String

    /// The most of a command line `command` carries, in bytes.
    public static let maxCommandBytes = 4096

    public init(pid: Int32, nspid: Int32, uid: UInt32, user: String? = nil, session: UInt64? = nil, command: String) {
        self.pid = pid
        self.nspid = nspid
        self.uid = uid
        self.user = user
        self.session = session
        self.command = command
    }

    /// `argv` joined by spaces and cut to at most `maxCommandBytes` on a
    /// character boundary; `[name]` when `argv` holds nothing but empty strings.
    public static func command(argv: [String], name: String) -> String {
        if argv.allSatisfy(\.isEmpty) { return "[\(name)]" }
        let joined = argv.joined(separator: " ")
        guard joined.utf8.count > maxCommandBytes else { return joined }
        var kept = String.UnicodeScalarView()
        var bytes = 0
        for scalar in joined.unicodeScalars {
            let width = UTF8.width(scalar)
            if bytes + width > maxCommandBytes { break }
            bytes += width
            kept.append(scalar)
        }
        return String(kept)
    }

    public var json: JSONValue {
        var o: JSONObject = [
            "pid": .number(JSONNumber(pid)),
            "nspid": .number(JSONNumber(nspid)),
            "uid": .number(JSONNumber(uid)),
        ]
        if let user { o["user"] = .string(user) }
        if let session { o["session"] = .number(JSONNumber(session)) }
        o["command"] = .string(command)
        return .object(o)
    }

    public init(json: JSONValue) throws(RPCError) {
        var r = try ParamsReader(json, method: "process")
        pid = Int32(try r.integer("pid", in: 0...Int64(Int32.max)) ?? 0)
        nspid = Int32(try r.integer("nspid", in: 0...Int64(Int32.max)) ?? 0)
        uid = UInt32(try r.integer("uid", in: 0...Int64(UInt32.max)) ?? 0)
        user = try r.string("user")
        session = try r.integer("session", in: 1...Int64.max).map(UInt64.init)
        command = try r.string("command") ?? ""
    }
}

/// `processes {name}` → `{name, processes}`: every process in the group's
/// cgroup, the holder's and every session's, in order of `pid`.
public struct ProcessesResult: Sendable, Equatable {
    public var name: String
    public var processes: [ProcessInfo]

    public init(name: String, processes: [ProcessInfo]) {
        self.name = name
        self.processes = processes
    }

    public var json: JSONValue {
        .object(["name": .string(name), "processes": .array(processes.map(\.json))])
    }

    public init(json: JSONValue) throws(RPCError) {
        var r = try ParamsReader(json, method: "processes result")
        name = try r.requiredString("name")
        guard let array = json["processes"]?.arrayValue else {
            throw .invalidParams("processes result: \"processes\" must be an array")
        }
        var processes: [ProcessInfo] = []
        processes.reserveCapacity(array.count)
        for element in array { processes.append(try ProcessInfo(json: element)) }
        self.processes = processes
    }
}
