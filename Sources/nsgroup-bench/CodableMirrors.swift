// What `nsgroup-bench codable` measures: the payloads, the Codable mirrors of
// the RPC results, and the state file's format written with Codable.
//
// The mirrors write the same JSON as RPC's hand-written `json` properties (the
// benchmark checks it before timing anything), so that the two ways are timed
// on the same bytes. For the state file the hand-written side is Supervisor's
// own StateCodec (package-visible for this), and the Codable side here is what
// a migration would write, with the same checks.

import FoundationEssentials
import Namespaces
import RPC
import Supervisor

// MARK: - Payloads

enum CodablePayloads {
    /// In NamespaceKind order, as the supervisor lists them.
    static let kinds = ["mnt", "uts", "ipc", "pid", "net", "cgroup"]
    static let kindsWithUser = ["mnt", "uts", "ipc", "pid", "net", "user", "cgroup"]

    /// Group `i` of a realistic list: six namespaces, a hostname, two tmpfs,
    /// two members, 0 to 2 sessions (one on average), every fourth with a
    /// user namespace and its maps.
    static func group(_ i: Int) -> GroupInfo {
        let withUser = i % 4 == 3
        let kinds = withUser ? Self.kindsWithUser : Self.kinds
        var group = GroupInfo(
            name: "lab-\(i)", owner: 1000 + UInt32(i % 7), ownerName: "user\(i % 7)",
            namespaces: kinds.enumerated().map { (kind: $0.element, id: "\($0.element):[\(4_026_532_200 + i * 8 + $0.offset)]") },
            holder: Int32(20_000 + i), created: Timestamp.format(secondsSinceEpoch: 1_780_000_000 + Int64(i) * 61),
            hostname: "lab-\(i)", tmpfs: ["/tmp", "/var/tmp:size=64m,mode=1777"],
            sessions: (0..<((i + 1) % 3)).map { s in
                SessionInfo(session: UInt64(i * 4 + s + 1), pid: Int32(30_000 + i * 4 + s), uid: 1000 + UInt32(i % 7),
                            argv: s == 0 ? ["/bin/bash", "-l"] : ["make", "-j2", "check"],
                            started: Timestamp.format(secondsSinceEpoch: 1_780_000_100 + Int64(i) * 61), tty: s == 0)
            },
            members: ["alice", "@devs"])
        if withUser {
            group.uidMap = ["0 \(1000 + i % 7) 1", "1 \(100_000 + (i % 7) * 65536) 65536"]
            group.gidMap = group.uidMap
        }
        return group
    }

    static func groups(_ count: Int) -> [GroupInfo] { (0..<count).map(group) }

    /// A `session-ended` event: the largest kind (argv, code and signal).
    static let event = EventNotification(
        kind: .sessionEnded, group: "lab-3", time: "2026-11-28T23:40:00Z", owner: 1000, session: 42, pid: 31_337,
        uid: 1000, argv: ["/usr/bin/make", "-C", "/home/alice/src/nsgroup", "-j2", "check"], code: 2, signal: nil)

    /// A state record of a group with a user namespace and `sessions` sessions.
    static func stateRecord(sessions count: Int) -> GroupRecord {
        let kinds: [NamespaceKind] = [.mnt, .uts, .ipc, .pid, .net, .user, .cgroup]
        var namespaces: [NamespaceID] = []
        for (offset, kind) in kinds.enumerated() { namespaces.append(NamespaceID(kind: kind, inode: 4_026_532_200 + UInt64(offset))) }
        var sessions: [SessionRecord] = []
        for s in 0..<count {
            let argv = s % 2 == 0 ? ["/bin/bash", "-l"] : ["/usr/bin/make", "-C", "/home/alice/src", "-j2", "check"]
            sessions.append(SessionRecord(
                id: UInt64(s + 1), pid: Int32(30_000 + s), startTime: 1_300_000 + UInt64(s) * 17, uid: 1000, argv: argv,
                started: 1_780_000_100 + Int64(s) * 30, tty: s % 2 == 0, callerGID: 1000, callerPID: Int32(29_000 + s)))
        }
        let maps = [IDMapping(inside: 0, outside: 1000, count: 1), IDMapping(inside: 1, outside: 100_000, count: 65536)]
        var record = GroupRecord(
            name: "lab-3", owner: 1000, ownerName: "alice", namespaces: namespaces,
            holderPID: 20_003, holderStartTime: 1_234_567, created: 1_780_000_000, hostname: "lab-3",
            tmpfs: [TmpfsMount(path: "/tmp"), TmpfsMount(path: "/var/tmp", options: "mode=1777,size=64m")],
            members: [.user(uid: 1001, name: "bob"), .group(gid: 1002, name: "devs")],
            sessions: sessions)
        record.binds = [BindMount(source: "/srv/data", target: "/data", readOnly: true)]
        record.userMaps = UserMaps(uids: maps, gids: maps)
        return record
    }
}

// MARK: - Codable mirrors of the RPC results

/// A coding key made from a string (for objects whose keys are data).
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// `"namespaces": {"mnt": "mnt:[…]", …}`, written in kind order, read back in kind order.
struct NamespaceMapC: Codable, Equatable {
    struct Entry: Equatable {
        var kind: String
        var id: String
    }

    var entries: [Entry]

    init(_ entries: [Entry]) { self.entries = entries }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyKey.self)
        for entry in entries { try container.encode(entry.id, forKey: AnyKey(entry.kind)) }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        // allKeys comes in no particular order: put the kernel's order back.
        let order = NamespaceKind.allCases.map(\.rawValue)
        entries = try container.allKeys.map { Entry(kind: $0.stringValue, id: try container.decode(String.self, forKey: $0)) }
            .sorted { (order.firstIndex(of: $0.kind) ?? order.count) < (order.firstIndex(of: $1.kind) ?? order.count) }
    }
}

struct SessionInfoC: Codable, Equatable {
    var session: UInt64
    var pid: Int32
    var uid: UInt32
    var argv: [String]
    var started: String
    var tty: Bool
    var usage: ResourceUsageC?
    var cgroup: String?

    init(_ s: SessionInfo) {
        session = s.session
        pid = s.pid
        uid = s.uid
        argv = s.argv
        started = s.started
        tty = s.tty
        usage = s.usage.map(ResourceUsageC.init)
        cgroup = s.cgroup
    }
}

struct GroupLimitsC: Codable, Equatable {
    var memory: UInt64?
    var pids: UInt64?
    var cpuWeight: UInt64?
    var cpus: Double?

    init(_ l: GroupLimits) {
        memory = l.memory
        pids = l.pids
        cpuWeight = l.cpuWeight
        cpus = l.cpus
    }
}

struct ResourceUsageC: Codable, Equatable {
    var memory: UInt64?
    var memoryPeak: UInt64?
    var pids: UInt64?
    var cpuUsec: UInt64?

    init(_ u: ResourceUsage) {
        memory = u.memory
        memoryPeak = u.memoryPeak
        pids = u.pids
        cpuUsec = u.cpuUsec
    }
}

/// GroupInfo's wire form; the properties are in the order GroupInfo.json writes them.
struct GroupInfoC: Codable, Equatable {
    var name: String
    var owner: UInt32
    var ownerName: String
    var namespaces: NamespaceMapC
    var holder: Int32
    var created: String
    var hostname: String?
    var tmpfs: [String]
    var members: [String]
    var binds: [String]?
    var uidMap: [String]?
    var gidMap: [String]?
    var monotonicOffset: Int64?
    var boottimeOffset: Int64?
    var netnsName: String?
    var limits: GroupLimitsC
    var usage: ResourceUsageC?
    var frozen: Bool
    var cgroup: String?
    var lifetime: Int64?
    var expires: String?
    var idle: Int64?
    var sessions: [SessionInfoC]

    init(_ g: GroupInfo) {
        name = g.name
        owner = g.owner
        ownerName = g.ownerName
        namespaces = NamespaceMapC(g.namespaces.map { NamespaceMapC.Entry(kind: $0.kind, id: $0.id) })
        holder = g.holder
        created = g.created
        hostname = g.hostname
        tmpfs = g.tmpfs
        members = g.members
        binds = g.binds.isEmpty ? nil : g.binds
        uidMap = g.uidMap
        gidMap = g.gidMap
        monotonicOffset = g.monotonicOffset
        boottimeOffset = g.boottimeOffset
        netnsName = g.netnsName
        limits = GroupLimitsC(g.limits)
        usage = g.usage.map(ResourceUsageC.init)
        frozen = g.frozen
        cgroup = g.cgroup
        lifetime = g.lifetime
        expires = g.expires
        idle = g.idle
        sessions = g.sessions.map(SessionInfoC.init)
    }
}

struct ListResultC: Codable, Equatable {
    var groups: [GroupInfoC]
}

/// `{"jsonrpc":"2.0","id":N,"result":…}`.
struct ReplyC<Result: Codable>: Codable {
    var jsonrpc = "2.0"
    var id: Int64
    var result: Result
}

/// `{"jsonrpc":"2.0","method":…,"params":…}`.
struct NotificationC<Params: Codable>: Codable {
    var jsonrpc = "2.0"
    var method: String
    var params: Params
}

/// EventNotification's wire form: `code` and `signal` are written as null
/// for session-ended, left out otherwise; `argvTruncated` only when true;
/// `reason` and `oomKills` only when set.
struct EventC: Codable, Equatable {
    var type: String
    var group: String
    var time: String
    var owner: UInt32
    var session: UInt64?
    var pid: Int32?
    var uid: UInt32?
    var argv: [String]?
    var argvTruncated: Bool?
    var code: Int32?
    var signal: Int32?
    var reason: String?
    var oomKills: UInt64?

    init(_ e: EventNotification) {
        type = e.kind.rawValue
        group = e.group
        time = e.time
        owner = e.owner
        session = e.session
        pid = e.pid
        uid = e.uid
        argv = e.argv
        argvTruncated = e.argvTruncated ? true : nil
        code = e.code
        signal = e.signal
        reason = e.reason
        oomKills = e.oomKills
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encode(group, forKey: .group)
        try c.encode(time, forKey: .time)
        try c.encode(owner, forKey: .owner)
        try c.encodeIfPresent(session, forKey: .session)
        try c.encodeIfPresent(pid, forKey: .pid)
        try c.encodeIfPresent(uid, forKey: .uid)
        try c.encodeIfPresent(argv, forKey: .argv)
        try c.encodeIfPresent(argvTruncated, forKey: .argvTruncated)
        if type == EventNotification.Kind.sessionEnded.rawValue {
            try c.encode(code, forKey: .code)
            try c.encode(signal, forKey: .signal)
        }
        try c.encodeIfPresent(reason, forKey: .reason)
        try c.encodeIfPresent(oomKills, forKey: .oomKills)
    }
}

// MARK: - The state file, both ways

// The hand-written side is Supervisor's own StateCodec (package-visible), on its
// GroupRecord; only the Codable side is written here.

/// Why the Codable decoder refused a state file.
struct StateProblem: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The same format with Codable, as a migration of StateCodec would write it:
/// a custom encode(to:) (the domain types are not the file's shape) ...
struct EncodableStateRecord: Encodable {
    let record: GroupRecord

    func encode(to encoder: any Encoder) throws {
        let r = record
        var o = encoder.container(keyedBy: AnyKey.self)
        try o.encode(1, forKey: AnyKey("version"))
        try o.encode(r.name, forKey: AnyKey("name"))
        try o.encode(r.owner, forKey: AnyKey("owner"))
        try o.encode(r.ownerName, forKey: AnyKey("ownerName"))
        try o.encode(r.namespaces.map(\.description), forKey: AnyKey("namespaces"))
        try o.encode(r.holderPID, forKey: AnyKey("holderPID"))
        try o.encode(r.holderStartTime, forKey: AnyKey("holderStartTime"))
        try o.encode(r.created, forKey: AnyKey("created"))
        var tmpfs = o.nestedUnkeyedContainer(forKey: AnyKey("tmpfs"))
        for mount in r.tmpfs {
            var m = tmpfs.nestedContainer(keyedBy: AnyKey.self)
            try m.encode(mount.path, forKey: AnyKey("path"))
            try m.encode(mount.options, forKey: AnyKey("options"))
        }
        try o.encodeIfPresent(r.hostname, forKey: AnyKey("hostname"))
        var binds = o.nestedUnkeyedContainer(forKey: AnyKey("binds"))
        for bind in r.binds {
            var b = binds.nestedContainer(keyedBy: AnyKey.self)
            try b.encode(bind.source, forKey: AnyKey("source"))
            try b.encode(bind.target, forKey: AnyKey("target"))
            try b.encode(bind.readOnly, forKey: AnyKey("readOnly"))
        }
        if let maps = r.userMaps {
            try o.encode(maps.uids.map { [$0.inside, $0.outside, $0.count] }, forKey: AnyKey("uidMap"))
            try o.encode(maps.gids.map { [$0.inside, $0.outside, $0.count] }, forKey: AnyKey("gidMap"))
        }
        if r.namespaces.contains(where: { $0.kind == .time }) {
            try o.encode(r.monotonicOffset, forKey: AnyKey("monotonicOffset"))
            try o.encode(r.boottimeOffset, forKey: AnyKey("boottimeOffset"))
        }
        try o.encodeIfPresent(r.netnsName, forKey: AnyKey("netnsName"))
        var sessions = o.nestedUnkeyedContainer(forKey: AnyKey("sessions"))
        for session in r.sessions {
            let argv = EventNotification.truncated(session.argv)
            var s = sessions.nestedContainer(keyedBy: AnyKey.self)
            try s.encode(session.id, forKey: AnyKey("id"))
            try s.encode(session.pid, forKey: AnyKey("pid"))
            try s.encode(session.startTime, forKey: AnyKey("startTime"))
            try s.encode(session.uid, forKey: AnyKey("uid"))
            try s.encode(argv.argv, forKey: AnyKey("argv"))
            try s.encode(session.started, forKey: AnyKey("started"))
            try s.encode(session.tty, forKey: AnyKey("tty"))
            try s.encode(session.callerGID, forKey: AnyKey("callerGID"))
            try s.encode(session.callerPID, forKey: AnyKey("callerPID"))
            if argv.truncated || session.argvTruncated { try s.encode(true, forKey: AnyKey("argvTruncated")) }
        }
        var members = o.nestedUnkeyedContainer(forKey: AnyKey("members"))
        for member in r.members {
            var m = members.nestedContainer(keyedBy: AnyKey.self)
            switch member {
            case .user(let uid, let name):
                try m.encode(uid, forKey: AnyKey("user"))
                try m.encode(name, forKey: AnyKey("name"))
            case .group(let gid, let name):
                try m.encode(gid, forKey: AnyKey("group"))
                try m.encode(name, forKey: AnyKey("name"))
            }
        }
    }
}

/// ... and a custom init(from:) with StateCodec.decode's checks. The file's
/// name comes in through userInfo. Messages that quote the offending value
/// (`"tmpfs" holds {...}`) cannot: a Decoder never shows the raw JSON.
struct StrictStateRecord: Decodable {
    static let fileNameKey = CodingUserInfoKey(rawValue: "nsgroup.fileName")!

    let record: GroupRecord

    private typealias Object = KeyedDecodingContainer<AnyKey>

    private static func integer(_ o: Object, _ key: String, _ range: ClosedRange<Int64>, missing: Bool = true) throws -> Int64 {
        let k = AnyKey(key)
        if missing, !o.contains(k) { throw StateProblem("\"\(key)\" is missing") }
        guard let n = try? o.decode(Int64.self, forKey: k), range.contains(n) else { throw StateProblem("\"\(key)\" is not a number in range") }
        return n
    }

    private static func string(_ o: Object, _ key: String) throws -> String {
        guard let s = try? o.decode(String.self, forKey: AnyKey(key)) else { throw StateProblem("\"\(key)\" is not a string") }
        return s
    }

    private static func objects(_ o: Object, _ key: String, required: Bool = false) throws -> [Object] {
        let k = AnyKey(key)
        guard o.contains(k) else {
            if required { throw StateProblem("\"\(key)\" is missing") }
            return []
        }
        guard var list = try? o.nestedUnkeyedContainer(forKey: k) else { return [] }
        var result: [Object] = []
        while !list.isAtEnd {
            guard let element = try? list.nestedContainer(keyedBy: AnyKey.self) else {
                throw StateProblem("\"\(key)\" holds an element that is not an object")
            }
            result.append(element)
        }
        return result
    }

    init(from decoder: any Decoder) throws {
        guard let fileName = decoder.userInfo[Self.fileNameKey] as? String else { throw StateProblem("no file name given") }
        guard let o = try? decoder.container(keyedBy: AnyKey.self) else { throw StateProblem("the record is not a JSON object") }
        let version = try Self.integer(o, "version", 0...Int64.max)
        guard version == 1 else { throw StateProblem("version \(version) is not 1") }
        let name = try Self.string(o, "name")
        guard name == fileName, GroupName.isValid(name) else {
            throw StateProblem("it names group \(JSONValue.string(String(name.prefix(64))).serialized()), not \"\(fileName)\"")
        }
        if !o.contains(AnyKey("namespaces")) { throw StateProblem("\"namespaces\" is missing") }
        guard let texts = try? o.decode([String].self, forKey: AnyKey("namespaces")), !texts.isEmpty else {
            throw StateProblem("\"namespaces\" is not a non-empty array")
        }
        var namespaces: [NamespaceID] = []
        for text in texts {
            guard let id = NamespaceID(text), !namespaces.contains(where: { $0.kind == id.kind }) else {
                throw StateProblem("\"namespaces\" holds \(JSONValue.string(text).serialized()), not a namespace id of a kind not yet named")
            }
            namespaces.append(id)
        }
        var tmpfs: [TmpfsMount] = []
        for m in try Self.objects(o, "tmpfs", required: true) {
            guard let path = try? m.decode(String.self, forKey: AnyKey("path")), let options = try? m.decode(String.self, forKey: AnyKey("options")) else {
                throw StateProblem("\"tmpfs\" holds an element without a string path and options")
            }
            tmpfs.append(TmpfsMount(path: path, options: options))
        }
        var members: [Member] = []
        for m in try Self.objects(o, "members") {
            guard let memberName = try? m.decode(String.self, forKey: AnyKey("name")) else {
                throw StateProblem("\"members\" holds an element without a string name")
            }
            let ids = 0...Int64(UInt32.max - 1)
            if let uid = try? m.decode(Int64.self, forKey: AnyKey("user")), ids.contains(uid) {
                members.append(.user(uid: UInt32(uid), name: memberName))
            } else if let gid = try? m.decode(Int64.self, forKey: AnyKey("group")), ids.contains(gid) {
                members.append(.group(gid: UInt32(gid), name: memberName))
            } else {
                throw StateProblem("\"members\" holds an element that is neither a user nor a group")
            }
        }
        var sessions: [SessionRecord] = []
        for s in try Self.objects(o, "sessions") {
            guard let argv = try? s.decode([String].self, forKey: AnyKey("argv")), let tty = try? s.decode(Bool.self, forKey: AnyKey("tty")) else {
                throw StateProblem("\"sessions\" holds an element without argv and tty")
            }
            var argvTruncated = false
            if s.contains(AnyKey("argvTruncated")) {
                guard let flag = try? s.decode(Bool.self, forKey: AnyKey("argvTruncated")) else {
                    throw StateProblem("\"argvTruncated\" is not true or false")
                }
                argvTruncated = flag
            }
            sessions.append(SessionRecord(
                id: UInt64(try Self.integer(s, "id", 1...Int64.max, missing: false)),
                pid: Int32(try Self.integer(s, "pid", 1...Int64(Int32.max), missing: false)),
                startTime: UInt64(try Self.integer(s, "startTime", 0...Int64.max, missing: false)),
                uid: UInt32(try Self.integer(s, "uid", 0...Int64(UInt32.max - 1), missing: false)),
                argv: argv, started: try Self.integer(s, "started", 0...Int64.max, missing: false), tty: tty,
                callerGID: UInt32(try Self.integer(s, "callerGID", 0...Int64(UInt32.max - 1), missing: false)),
                callerPID: Int32(try Self.integer(s, "callerPID", 0...Int64(Int32.max), missing: false)),
                argvTruncated: argvTruncated))
        }
        let hostname = o.contains(AnyKey("hostname")) ? try Self.string(o, "hostname") : nil
        var binds: [BindMount] = []
        for b in try Self.objects(o, "binds") {
            guard let source = try? b.decode(String.self, forKey: AnyKey("source")), let target = try? b.decode(String.self, forKey: AnyKey("target")),
                  let readOnly = try? b.decode(Bool.self, forKey: AnyKey("readOnly"))
            else { throw StateProblem("\"binds\" holds an element without source, target and readOnly") }
            binds.append(BindMount(source: source, target: target, readOnly: readOnly))
        }
        func mapping(_ key: String) throws -> [IDMapping]? {
            guard o.contains(AnyKey(key)) else { return nil }
            guard let lines = try? o.decode([[UInt32]].self, forKey: AnyKey(key)), lines.allSatisfy({ $0.count == 3 }) else {
                throw StateProblem("\"\(key)\" holds a line that is not three numbers from 0 to \(UInt32.max)")
            }
            guard !lines.isEmpty else { throw StateProblem("\"\(key)\" is empty") }
            return lines.map { IDMapping(inside: $0[0], outside: $0[1], count: $0[2]) }
        }
        let uidMap = try mapping("uidMap")
        let gidMap = try mapping("gidMap")
        guard (uidMap == nil) == (gidMap == nil), (uidMap != nil) == namespaces.contains(where: { $0.kind == .user }) else {
            throw StateProblem("\"uidMap\" and \"gidMap\" go with a user namespace, and only with one")
        }
        let offsets = CreateParams.maxOffset
        var record = GroupRecord(
            name: name,
            owner: UInt32(try Self.integer(o, "owner", 0...Int64(UInt32.max - 1))),
            ownerName: try Self.string(o, "ownerName"),
            namespaces: namespaces,
            holderPID: Int32(try Self.integer(o, "holderPID", 2...Int64(Int32.max))),
            holderStartTime: UInt64(try Self.integer(o, "holderStartTime", 0...Int64.max)),
            created: try Self.integer(o, "created", 0...Int64.max),
            hostname: hostname, tmpfs: tmpfs, members: members, sessions: sessions)
        record.binds = binds
        if let uidMap, let gidMap { record.userMaps = UserMaps(uids: uidMap, gids: gidMap) }
        if namespaces.contains(where: { $0.kind == .time }) {
            record.monotonicOffset = try Self.integer(o, "monotonicOffset", -offsets...offsets)
            record.boottimeOffset = try Self.integer(o, "boottimeOffset", -offsets...offsets)
        }
        if o.contains(AnyKey("netnsName")) {
            guard let name = try? o.decode(String.self, forKey: AnyKey("netnsName")), NetnsPublisher.isValidName(name) else {
                throw StateProblem("\"netnsName\" is not a valid name")
            }
            record.netnsName = name
        }
        self.record = record
    }
}
