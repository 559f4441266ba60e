/// `enter {name, argv?, cwd?, env?, tty, rows?, columns?, trustOwner?, stdio?}` → `{session, pid[, window]}`.
///
/// With `tty: true` the server passes the pty master beside the reply. With
/// `tty: false` the request carries exactly three descriptors (the caller's
/// stdin, stdout and stderr), which the process gets as its own. With
/// `stdio: "stream"` no descriptors go either way: the session's stdio is carried
/// on the connection (Stream.swift).
public struct EnterParams: Sendable, Equatable {
    public var name: String
    /// What to run; nil means the caller's login shell, as a login shell.
    public var argv: [String]?
    /// Directory inside the group; nil means the caller's home if it exists there, else /.
    public var cwd: String?
    /// Variables added to (or replacing those of) the clean environment.
    public var env: [(String, String)]
    public var tty: Bool
    /// The terminal size to start with (tty only).
    public var rows: UInt16?
    public var columns: UInt16?
    /// A member (or an admin who is not root) entering a group with a user namespace says they trust its owner, who is
    /// root inside it and controls every file the session would run (PROTOCOL.md, "Who can
    /// run what"). Without it such an enter is refused. No effect for anyone else.
    public var trustOwner: Bool
    /// How the session gets its stdio: descriptors (the default) or streamed on the connection.
    public var stdio: StdioMode

    /// Caps on what one enter may carry (PROTOCOL.md §8.6): the count and the
    /// total size of argv and of env, each string counted with its
    /// terminating NUL (an env entry as NAME=value), as execve(2) counts
    /// them. Far below the kernel's own limits (ARG_MAX is a quarter of the
    /// stack limit), so every session stays cheap to record, report and
    /// keep in a state file.
    public static let maxArguments = 1024
    public static let maxArgumentBytes = 128 << 10
    public static let maxEnvironment = 128
    public static let maxEnvironmentBytes = 32 << 10

    public init(name: String, argv: [String]? = nil, cwd: String? = nil, env: [(String, String)] = [],
                tty: Bool, rows: UInt16? = nil, columns: UInt16? = nil, trustOwner: Bool = false,
                stdio: StdioMode = .descriptors) {
        self.name = name
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.tty = tty
        self.rows = rows
        self.columns = columns
        self.trustOwner = trustOwner
        self.stdio = stdio
    }

    public static func == (a: EnterParams, b: EnterParams) -> Bool { a.json == b.json }

    public init(params: JSONValue?) throws(RPCError) {
        var r = try ParamsReader(params, method: "enter")
        name = try r.requiredString("name")
        argv = try r.stringArray("argv")
        cwd = try r.string("cwd")
        env = try r.stringMap("env") ?? []
        guard let tty = try r.bool("tty") else { throw .invalidParams("enter: \"tty\" is required (true or false)") }
        self.tty = tty
        rows = try r.integer("rows", in: 0...Int64(UInt16.max)).map { UInt16($0) }
        columns = try r.integer("columns", in: 0...Int64(UInt16.max)).map { UInt16($0) }
        trustOwner = try r.bool("trustOwner") ?? false
        if let mode = try r.string("stdio") {
            guard let stdio = StdioMode(rawValue: mode) else {
                throw .invalidParams("enter: \"stdio\" must be \"descriptors\" or \"stream\"")
            }
            self.stdio = stdio
        } else {
            stdio = .descriptors
        }
        try r.finish()
        try GroupName.validate(name)
        try validate()
    }

    private func validate() throws(RPCError) {
        if let argv {
            guard !argv.isEmpty else { throw .invalidParams("enter: \"argv\" must name a program") }
            guard argv.count <= Self.maxArguments else {
                throw .invalidParams("enter: \"argv\" has \(argv.count) arguments, more than the \(Self.maxArguments) allowed")
            }
            let bytes = argv.reduce(0) { $0 + $1.utf8.count + 1 }
            guard bytes <= Self.maxArgumentBytes else {
                throw .invalidParams("enter: \"argv\" holds \(bytes) bytes (each argument counted with its terminating NUL), more than the \(Self.maxArgumentBytes) allowed")
            }
            guard !argv[0].isEmpty else { throw .invalidParams("enter: the program name is empty") }
            guard argv.allSatisfy({ !$0.utf8.contains(0) }) else { throw .invalidParams("enter: arguments must not contain NUL") }
        }
        if let cwd {
            guard cwd.hasPrefix("/"), !cwd.utf8.contains(0), cwd.utf8.count < 4096 else {
                throw .invalidParams("enter: \"cwd\" must be an absolute path")
            }
        }
        guard env.count <= Self.maxEnvironment else {
            throw .invalidParams("enter: \"env\" has \(env.count) variables, more than the \(Self.maxEnvironment) allowed")
        }
        let environmentBytes = env.reduce(0) { $0 + $1.0.utf8.count + 1 + $1.1.utf8.count + 1 }
        guard environmentBytes <= Self.maxEnvironmentBytes else {
            throw .invalidParams("enter: \"env\" holds \(environmentBytes) bytes (each NAME=value counted with its terminating NUL), more than the \(Self.maxEnvironmentBytes) allowed")
        }
        for (key, value) in env {
            let validKey = !key.isEmpty && !key.utf8.contains(UInt8(ascii: "=")) && !key.utf8.contains(0)
            guard validKey, !value.utf8.contains(0) else {
                throw .invalidParams("enter: invalid environment variable \(JSONValue.string(String(key.prefix(64))).serialized()): names are non-empty without '=' or NUL; values have no NUL")
            }
        }
        if !tty, rows != nil || columns != nil {
            throw .invalidParams("enter: \"rows\" and \"columns\" need \"tty\": true")
        }
    }

    public var json: JSONValue {
        var o: JSONObject = ["name": .string(name), "tty": .bool(tty)]
        if let argv { o["argv"] = .array(argv.map { .string($0) }) }
        if let cwd { o["cwd"] = .string(cwd) }
        if !env.isEmpty { o["env"] = .object(JSONObject(env.map { ($0.0, JSONValue.string($0.1)) })) }
        if let rows { o["rows"] = .number(JSONNumber(Int(rows))) }
        if let columns { o["columns"] = .number(JSONNumber(Int(columns))) }
        if trustOwner { o["trustOwner"] = .bool(true) }
        if stdio != .descriptors { o["stdio"] = .string(stdio.rawValue) }
        return .object(o)
    }
}

/// The reply to `enter`: the session's number (for `signal` and the `exited`
/// notification) and its pid as the supervisor sees it; for a streamed session, the
/// input window (StreamLimits.window) the client may send before `window` notifications.
public struct EnterResult: Sendable, Equatable {
    public var session: UInt64
    public var pid: Int32
    public var window: Int?

    public init(session: UInt64, pid: Int32, window: Int? = nil) {
        self.session = session
        self.pid = pid
        self.window = window
    }

    public var json: JSONValue {
        var o: JSONObject = ["session": .number(JSONNumber(session)), "pid": .number(JSONNumber(pid))]
        if let window { o["window"] = .number(JSONNumber(window)) }
        return .object(o)
    }

    public init(json: JSONValue) throws(RPCError) {
        guard let session = json["session"]?.int64Value, session > 0, let pid = json["pid"]?.int64Value else {
            throw RPCError(.internalError, "malformed enter result")
        }
        self.session = UInt64(session)
        self.pid = Int32(truncatingIfNeeded: pid)
        window = json["window"]?.int64Value.map { Int($0) }
    }
}

/// `exited {session, code, signal[, endedBy]}`: code is the exit status or null, signal
/// the number of the signal that ended the process or null; endedBy, when the
/// session went down with its group, says how (an addition older clients ignore).
public struct ExitedNotification: Sendable, Equatable {
    public var session: UInt64
    public var code: Int32?
    public var signal: Int32?
    /// Set only when the session ended because its group ended.
    public var endedBy: EndedBy?
    /// The session's group (protocol 1.1; nil from an older server).
    public var group: String?

    /// The values of `endedBy`.
    public enum EndedBy: String, Sendable, CaseIterable {
        /// Someone destroyed the group (`destroy`).
        case destroy
        /// The group's lifetime ran out, or it was idle too long.
        case expired
        /// The group's holder died, and the group with it.
        case holderDied = "holder-died"
    }

    public init(session: UInt64, code: Int32?, signal: Int32?, endedBy: EndedBy? = nil, group: String? = nil) {
        self.session = session
        self.code = code
        self.signal = signal
        self.endedBy = endedBy
        self.group = group
    }

    /// What a shell would report: the code, 128 + the signal, or 255 if unknown.
    public var shellStatus: Int32 {
        if let signal { return 128 + signal }
        return code ?? 255
    }

    public var json: JSONValue {
        var o: JSONObject = [
            "session": .number(JSONNumber(session)),
            "code": code.map { .number(JSONNumber(Int($0))) } ?? .null,
            "signal": signal.map { .number(JSONNumber(Int($0))) } ?? .null,
        ]
        if let endedBy { o["endedBy"] = .string(endedBy.rawValue) }
        if let group { o["group"] = .string(group) }
        return .object(o)
    }

    public init(json: JSONValue) throws(RPCError) {
        guard let session = json["session"]?.int64Value else { throw RPCError(.internalError, "malformed exited notification") }
        self.session = UInt64(session)
        // An exit code is 0…255 and a signal 1…64 (the schema's ranges): anything else, from a
        // server that is not what it should be (another host's), would make a wrong status.
        let code = json["code"]?.int64Value
        let signal = json["signal"]?.int64Value
        guard code.map({ (0...255).contains($0) }) ?? true, signal.map({ (1...64).contains($0) }) ?? true else {
            throw RPCError(.internalError, "malformed exited notification: code \(code.map(String.init) ?? "null"), signal \(signal.map(String.init) ?? "null")")
        }
        self.code = code.map { Int32($0) }
        self.signal = signal.map { Int32($0) }
        endedBy = json["endedBy"]?.stringValue.flatMap(EndedBy.init(rawValue:))
        group = json["group"]?.stringValue
    }
}

/// `signal {name, session, signal}` → `{}`: sends a signal to a session's
/// process (the CLI forwards Ctrl-C this way in scripted mode).
public struct SignalParams: Sendable, Equatable {
    public var name: String
    public var session: UInt64
    public var signal: Int32

    public init(name: String, session: UInt64, signal: Int32) {
        self.name = name
        self.session = session
        self.signal = signal
    }

    public init(params: JSONValue?) throws(RPCError) {
        var r = try ParamsReader(params, method: "signal")
        name = try r.requiredString("name")
        guard let session = try r.integer("session", in: 1...Int64.max) else { throw .invalidParams("signal: \"session\" is required") }
        guard let signal = try r.integer("signal", in: 1...64) else { throw .invalidParams("signal: \"signal\" is required") }
        self.session = UInt64(session)
        self.signal = Int32(signal)
        try r.finish()
        try GroupName.validate(name)
    }

    public var json: JSONValue {
        .object(["name": .string(name), "session": .number(JSONNumber(session)), "signal": .number(JSONNumber(Int(signal)))])
    }
}

/// A process started by `enter`, as `inspect` lists it.
public struct SessionInfo: Sendable, Equatable {
    public var session: UInt64
    public var pid: Int32
    public var uid: UInt32
    public var argv: [String]
    /// RFC 3339, UTC.
    public var started: String
    public var tty: Bool
    /// What the session's cgroup uses now (the session and whatever it started).
    public var usage: ResourceUsage?
    /// The session's cgroup in the unified hierarchy.
    public var cgroup: String?

    public init(session: UInt64, pid: Int32, uid: UInt32, argv: [String], started: String, tty: Bool) {
        self.session = session
        self.pid = pid
        self.uid = uid
        self.argv = argv
        self.started = started
        self.tty = tty
    }

    public var json: JSONValue {
        var o: JSONObject = [
            "session": .number(JSONNumber(session)),
            "pid": .number(JSONNumber(pid)),
            "uid": .number(JSONNumber(uid)),
            "argv": .array(argv.map { .string($0) }),
            "started": .string(started),
            "tty": .bool(tty),
        ]
        if let usage { o["usage"] = usage.json }
        if let cgroup { o["cgroup"] = .string(cgroup) }
        return .object(o)
    }

    public init(json: JSONValue) throws(RPCError) {
        var r = try ParamsReader(json, method: "session")
        session = UInt64(try r.integer("session", in: 0...Int64.max) ?? 0)
        pid = Int32(try r.integer("pid", in: 0...Int64(Int32.max)) ?? 0)
        uid = UInt32(try r.integer("uid", in: 0...Int64(UInt32.max)) ?? 0)
        argv = try r.stringArray("argv") ?? []
        started = try r.string("started") ?? ""
        tty = try r.bool("tty") ?? false
        if let value = json["usage"], !value.isNull { usage = try ResourceUsage(json: value) }
        cgroup = try r.string("cgroup")
    }
}

/// `attach {name, session}` → `{session, pid}`: this connection gets the
/// session's `exited` notification too (a client that lost its connection
/// to a restarting supervisor attaches again). For a session that ended a
/// short while ago the notification follows the reply at once.
public struct AttachParams: Sendable, Equatable {
    public var name: String
    public var session: UInt64

    public init(name: String, session: UInt64) {
        self.name = name
        self.session = session
    }

    public init(params: JSONValue?) throws(RPCError) {
        var r = try ParamsReader(params, method: "attach")
        name = try r.requiredString("name")
        guard let session = try r.integer("session", in: 1...Int64.max) else { throw .invalidParams("attach: \"session\" is required") }
        self.session = UInt64(session)
        try r.finish()
        try GroupName.validate(name)
    }

    public var json: JSONValue {
        .object(["name": .string(name), "session": .number(JSONNumber(session))])
    }
}

/// `event` notifications of a `subscribe`d connection: what happened to
/// which group (and session), when.
public struct EventNotification: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case groupCreated = "group-created"
        case groupDestroyed = "group-destroyed"
        /// The holder died without a destroy: the group is gone.
        case groupFailed = "group-failed"
        case sessionStarted = "session-started"
        case sessionEnded = "session-ended"
        /// `freeze` stopped every process of the group.
        case groupFrozen = "group-frozen"
        /// `thaw` let them go on.
        case groupThawed = "group-thawed"
        /// The kernel's OOM killer killed a process of the group (at its memory limit).
        case groupOOM = "group-oom"
        /// `share` added members (`added`, and `members` after).
        case groupShared = "group-shared"
        /// `unshare` removed members (`removed`, and `members` after).
        case groupUnshared = "group-unshared"
    }

    public var kind: Kind
    public var group: String
    /// RFC 3339, UTC.
    public var time: String
    public var owner: UInt32
    public var session: UInt64?
    public var pid: Int32?
    public var uid: UInt32?
    /// At most the first maxArgvItems arguments, each cut to maxArgumentBytes.
    public var argv: [String]?
    /// Whether argv was cut (`"argvTruncated": true`; absent when whole).
    public var argvTruncated: Bool
    public var code: Int32?
    public var signal: Int32?
    /// group-destroyed: why ("request": a destroy; "lifetime": it expired;
    /// "idle": it had no session for its idle time).
    public var reason: String?
    /// group-oom: the group's OOM kills so far, this one included.
    public var oomKills: UInt64?
    /// group-shared: the users and @groups share added ("alice", "@devs").
    public var added: [String]?
    /// group-unshared: the users and @groups unshare removed.
    public var removed: [String]?
    /// group-shared, group-unshared: the members after the change (absent in the
    /// event a removed member gets, who may no longer see the group).
    public var members: [String]?
    /// Its place in the server's sequence of events (set when it is sent; §8.14).
    public var seq: UInt64?

    /// The values of `reason` on group-destroyed.
    public enum DestroyReason: String, Sendable, CaseIterable {
        case request
        case lifetime
        case idle
    }

    /// How much of a session's argv events (and state files) carry, so that
    /// one session's arguments cannot outgrow a watcher's buffer.
    public static let maxArgvItems = 16
    public static let maxArgumentBytes = 256

    /// The first maxArgvItems arguments, each cut to at most maxArgumentBytes
    /// bytes on a character boundary, and whether anything was cut.
    public static func truncated(_ argv: [String]) -> (argv: [String], truncated: Bool) {
        var truncated = argv.count > maxArgvItems
        let shown = argv.prefix(maxArgvItems).map { argument -> String in
            guard argument.utf8.count > maxArgumentBytes else { return argument }
            truncated = true
            var kept = String.UnicodeScalarView()
            var bytes = 0
            for scalar in argument.unicodeScalars {
                let width = UTF8.width(scalar)
                if bytes + width > maxArgumentBytes { break }
                bytes += width
                kept.append(scalar)
            }
            return String(kept)
        }
        return (shown, truncated)
    }

    public init(kind: Kind, group: String, time: String, owner: UInt32, session: UInt64? = nil, pid: Int32? = nil,
                uid: UInt32? = nil, argv: [String]? = nil, argvTruncated: Bool = false, code: Int32? = nil, signal: Int32? = nil,
                reason: String? = nil, oomKills: UInt64? = nil) {
        self.kind = kind
        self.group = group
        self.time = time
        self.owner = owner
        self.session = session
        self.pid = pid
        self.uid = uid
        self.argv = argv
        self.argvTruncated = argvTruncated
        self.code = code
        self.signal = signal
        self.reason = reason
        self.oomKills = oomKills
    }

    public var json: JSONValue {
        var o: JSONObject = ["type": .string(kind.rawValue), "group": .string(group), "time": .string(time),
                             "owner": .number(JSONNumber(owner))]
        if let session { o["session"] = .number(JSONNumber(session)) }
        if let pid { o["pid"] = .number(JSONNumber(pid)) }
        if let uid { o["uid"] = .number(JSONNumber(uid)) }
        if let argv { o["argv"] = .array(argv.map { .string($0) }) }
        if argvTruncated { o["argvTruncated"] = .bool(true) }
        if kind == .sessionEnded {
            o["code"] = code.map { .number(JSONNumber(Int($0))) } ?? .null
            o["signal"] = signal.map { .number(JSONNumber(Int($0))) } ?? .null
        }
        if let reason { o["reason"] = .string(reason) }
        if let oomKills { o["oomKills"] = .number(JSONNumber(oomKills)) }
        if let added { o["added"] = .array(added.map { .string($0) }) }
        if let removed { o["removed"] = .array(removed.map { .string($0) }) }
        if let members { o["members"] = .array(members.map { .string($0) }) }
        if let seq { o["seq"] = .number(JSONNumber(seq)) }
        return .object(o)
    }

    public init(json: JSONValue) throws(RPCError) {
        guard let type = json["type"]?.stringValue, let kind = Kind(rawValue: type), let group = json["group"]?.stringValue else {
            throw RPCError(.internalError, "malformed event notification")
        }
        self.kind = kind
        self.group = group
        time = json["time"]?.stringValue ?? ""
        owner = UInt32(truncatingIfNeeded: json["owner"]?.int64Value ?? 0)
        session = json["session"]?.int64Value.map { UInt64($0) }
        pid = json["pid"]?.int64Value.map { Int32(truncatingIfNeeded: $0) }
        uid = json["uid"]?.int64Value.map { UInt32(truncatingIfNeeded: $0) }
        argv = json["argv"]?.arrayValue?.compactMap(\.stringValue)
        argvTruncated = json["argvTruncated"]?.boolValue ?? false
        code = json["code"]?.int64Value.map { Int32(truncatingIfNeeded: $0) }
        signal = json["signal"]?.int64Value.map { Int32(truncatingIfNeeded: $0) }
        reason = json["reason"]?.stringValue
        if case .number(let n)? = json["oomKills"] { oomKills = n.uint64Value }
        added = json["added"]?.arrayValue?.compactMap(\.stringValue)
        removed = json["removed"]?.arrayValue?.compactMap(\.stringValue)
        members = json["members"]?.arrayValue?.compactMap(\.stringValue)
        if case .number(let n)? = json["seq"] { seq = n.uint64Value }
    }
}
