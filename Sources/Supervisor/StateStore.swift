#if canImport(Glibc)
import Glibc
#endif
import Namespaces
import POSIX
import RPC

/// The state directory: one file per group, `<dir>/groups/<name>.json`, the
/// session counter, `<dir>/groups/session-counter` (SessionNumbers), and the
/// refusals held back, `<dir>/groups/refusals-held-back` (RefusalRecords), in a
/// root-owned 0700 directory. Files are written atomically (temporary file,
/// fsync, rename, fsync of the directory) and opened with O_NOFOLLOW, so a
/// reader sees a whole old record or a whole new one, never a mix.
final class StateStore {
    let directory: String
    private let groupsFD: FileDescriptor

    /// Creates (or checks) the directories. The groups directory must be
    /// owned by root, not a symlink, and is forced to mode 0700.
    init(directory: String) throws(SupervisorError) {
        self.directory = directory
        let groups = directory + "/groups"
        func unusable(_ error: Errno) -> SupervisorError {
            SupervisorError(.startup, "cannot use state directory \(directory): \(error)")
        }
        func opened() throws(SupervisorError) -> FileDescriptor {
            do throws(Errno) {
                try Self.makeDirectory(directory, mode: 0o755)
                try Self.makeDirectory(groups, mode: 0o700)
                return try FileDescriptor.open(groups, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
            } catch {
                throw unusable(error)
            }
        }
        let fd = try opened()
        var st = stat()
        if fstat(fd.rawValue, &st) < 0 { throw unusable(Errno.current) }
        guard st.st_uid == 0 else {
            throw SupervisorError(.startup, "state directory \(groups) is not owned by root")
        }
        if st.st_mode & 0o7777 != 0o700, fchmod(fd.rawValue, 0o700) < 0 { throw unusable(Errno.current) }
        groupsFD = fd
    }

    private static func makeDirectory(_ path: String, mode: mode_t) throws(Errno) {
        if mkdir(path, mode) == 0 || errno == EEXIST {
            var st = stat()
            if lstat(path, &st) < 0 { throw Errno.current }
            guard st.st_mode & S_IFMT == S_IFDIR else { throw Errno(rawValue: ENOTDIR) }
            return
        }
        if errno == ENOENT {
            let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
            if !parent.isEmpty, parent != path {
                try makeDirectory(parent, mode: 0o755)
                if mkdir(path, mode) == 0 || errno == EEXIST { return }
            }
        }
        throw Errno.current
    }

    private func fileName(_ name: String) -> String { name + ".json" }

    /// Writes a group's record atomically.
    func save(_ record: GroupRecord) throws(Errno) {
        try write(StateCodec.encode(record), as: fileName(record.name))
    }

    /// Writes one JSON value and a newline to the file `name` in the groups directory:
    /// a temporary file, fsync, rename over the old one, fsync of the directory.
    private func write(_ value: JSONValue, as name: String) throws(Errno) {
        var bytes: [UInt8] = []
        value.serialize(into: &bytes)
        bytes.append(0x0A)
        let temporary = "." + name + ".tmp"
        _ = unlinkat(groupsFD.rawValue, temporary, 0)
        let fd = openat(groupsFD.rawValue, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd < 0 { throw Errno.current }
        let file = FileDescriptor(adopting: fd)
        do throws(Errno) {
            try file.writeAll(bytes)
            if fsync(file.rawValue) < 0 { throw Errno.current }
            if renameat(groupsFD.rawValue, temporary, groupsFD.rawValue, name) < 0 { throw Errno.current }
        } catch {
            _ = unlinkat(groupsFD.rawValue, temporary, 0)
            throw error
        }
        _ = fsync(groupsFD.rawValue)
    }

    /// Removes a group's record; a missing file is not an error.
    func remove(name: String) throws(Errno) {
        if unlinkat(groupsFD.rawValue, fileName(name), 0) < 0, errno != ENOENT { throw Errno.current }
        _ = fsync(groupsFD.rawValue)
    }

    /// Names of the records on disk (file names that are valid group names).
    func storedNames() -> [String] {
        fileNames().compactMap { fileName in
            guard fileName.hasSuffix(".json") else { return nil }
            let name = String(fileName.dropLast(5))
            return GroupName.isValid(name) ? name : nil
        }.sorted()
    }

    private func fileNames() -> [String] {
        (try? Directory.entries(descriptor: groupsFD.rawValue)) ?? []
    }

    /// Temporary files a save interrupted by a crash left behind.
    func removeTemporaryFiles() {
        for fileName in fileNames() where fileName.hasPrefix(".")
            && (fileName.hasSuffix(".json.tmp") || fileName == "." + Self.sessionCounterFile + ".tmp"
                || fileName == "." + Self.eventsFile + ".tmp"
                || fileName == "." + Self.refusalsHeldBackFile + ".tmp") {
            _ = unlinkat(groupsFD.rawValue, fileName, 0)
        }
    }

    static let maxFileSize = 1 << 20

    /// Reads a group's record, trusting nothing: the file must be a regular
    /// file (a symlink is refused by O_NOFOLLOW), owned by root, writable by
    /// no one else, of sane size, and hold a well-formed version 1 record
    /// of the group its name says. Refusals are `SupervisorError`s of kind
    /// `stateFile`, whose problem is the journal's reason.
    func load(name: String) throws(SupervisorError) -> GroupRecord {
        try StateCodec.decode(try readJSON(fileName(name)), name: name)
    }

    /// The JSON value in the file `name` of the groups directory, read as `load` describes.
    private func readJSON(_ name: String) throws(SupervisorError) -> JSONValue {
        func refused(_ problem: SupervisorError.StateFileProblem, _ message: String) -> SupervisorError {
            SupervisorError(.stateFile(problem), message)
        }
        let fd = openat(groupsFD.rawValue, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 {
            let error = Errno.current
            if error.rawValue == ELOOP { throw refused(.symlink, "it is a symbolic link") }
            throw refused(.unreadable, "cannot open it: \(error)")
        }
        let file = FileDescriptor(adopting: fd)
        var st = stat()
        guard fstat(file.rawValue, &st) == 0 else { throw refused(.unreadable, "cannot stat it: \(Errno.current)") }
        guard st.st_mode & S_IFMT == S_IFREG else { throw refused(.notRegular, "it is not a regular file") }
        guard st.st_uid == 0 else { throw refused(.notRoot, "it is owned by uid \(st.st_uid), not root") }
        guard st.st_mode & 0o022 == 0 else {
            throw refused(.writable, "it is writable by others than root (mode \(String(st.st_mode & 0o7777, radix: 8)))")
        }
        guard st.st_size <= Self.maxFileSize else { throw refused(.tooLarge, "it is larger than \(Self.maxFileSize) bytes") }
        let bytes: [UInt8]
        do { bytes = try file.readAll(limit: Self.maxFileSize) } catch {
            throw refused(.unreadable, "cannot read it: \(error)")
        }
        do { return try JSONParser.parse(bytes) } catch {
            throw refused(.malformed, "it is not JSON (truncated?): \(error)")
        }
    }

    // MARK: The session counter

    /// The session counter's file: `{"version": 1, "next": N}`, N the first session number
    /// no supervisor may have given yet (SessionNumbers).
    static let sessionCounterFile = "session-counter"
    /// The highest number the counter may hold: session numbers stay exact in any JSON reader.
    static let maxSessionNumber: UInt64 = 1 << 53

    /// The number in the session counter's file, or nil when there is none (a fresh state
    /// directory). A file that is not trusted (as `load` checks a record) or that does not
    /// hold a version 1 counter with a number in 1...maxSessionNumber is refused.
    func loadSessionCounter() throws(SupervisorError) -> UInt64? {
        var st = stat()
        if fstatat(groupsFD.rawValue, Self.sessionCounterFile, &st, AT_SYMLINK_NOFOLLOW) < 0, errno == ENOENT { return nil }
        let value = try readJSON(Self.sessionCounterFile)
        func malformed(_ message: String) -> SupervisorError { SupervisorError(.stateFile(.malformed), message) }
        guard let object = value.objectValue, object.keys.count == 2, Set(object.keys) == ["version", "next"] else {
            throw malformed("it is not an object of \"version\" and \"next\"")
        }
        guard object["version"]?.int64Value == Int64(StateCodec.version) else {
            throw malformed("version \(object["version"]!.serialized()) is not \(StateCodec.version)")
        }
        guard let next = object["next"]?.int64Value, next >= 1, UInt64(next) <= Self.maxSessionNumber else {
            throw malformed("\"next\" is \(String(object["next"]!.serialized().prefix(64))), not a number from 1 to \(Self.maxSessionNumber)")
        }
        return UInt64(next)
    }

    /// Writes the session counter atomically.
    func saveSessionCounter(next: UInt64) throws(Errno) {
        try write(.object(["version": .number(JSONNumber(StateCodec.version)), "next": .number(JSONNumber(next))]),
                  as: Self.sessionCounterFile)
    }

    // MARK: The refusals held back

    /// The tallies of refusals held back in intervals that had not ended (HeldBackRefusals),
    /// written by RefusalRecords while refusals are held back and removed when none are.
    static let refusalsHeldBackFile = "refusals-held-back"

    /// The tallies in the file, or nil when there is none. A file that is not trusted (as
    /// `load` checks a record) or does not hold well-formed version 1 tallies is refused.
    func loadRefusalsHeldBack() throws(SupervisorError) -> HeldBackRefusals? {
        var st = stat()
        if fstatat(groupsFD.rawValue, Self.refusalsHeldBackFile, &st, AT_SYMLINK_NOFOLLOW) < 0, errno == ENOENT { return nil }
        return try HeldBackRefusals(json: try readJSON(Self.refusalsHeldBackFile))
    }

    /// Writes the tallies atomically, within the size `loadRefusalsHeldBack` accepts; returns
    /// how many people were left out to stay within it (HeldBackRefusals.json(limit:)).
    @discardableResult
    func saveRefusalsHeldBack(_ refusals: HeldBackRefusals) throws(Errno) -> Int {
        let (value, leftOut) = refusals.json(limit: Self.maxFileSize)
        try write(value, as: Self.refusalsHeldBackFile)
        return leftOut
    }

    /// Removes the tallies' file (a symlink itself, never its target); a missing file is not an error.
    func removeRefusalsHeldBack() throws(Errno) {
        if unlinkat(groupsFD.rawValue, Self.refusalsHeldBackFile, 0) < 0 {
            if errno == ENOENT { return }
            throw Errno.current
        }
        _ = fsync(groupsFD.rawValue)
    }

    // MARK: The events' ring

    /// The ring of events a supervisor that stopped (not one that was killed) left for the
    /// next, so that subscribers resume across a restart (EventBus.snapshot); read once
    /// and removed at start.
    static let eventsFile = "events"

    /// Writes the ring atomically.
    func saveEvents(_ value: JSONValue) throws(Errno) {
        try write(value, as: Self.eventsFile)
    }

    /// The ring an earlier supervisor left, if it left one (trusted as `load` trusts a record),
    /// and the file removed either way: a later crash must not bring an old ring back.
    func takeEvents() throws(SupervisorError) -> JSONValue? {
        var st = stat()
        if fstatat(groupsFD.rawValue, Self.eventsFile, &st, AT_SYMLINK_NOFOLLOW) < 0, errno == ENOENT { return nil }
        defer {
            _ = unlinkat(groupsFD.rawValue, Self.eventsFile, 0)
            _ = fsync(groupsFD.rawValue)
        }
        return try readJSON(Self.eventsFile)
    }

    /// Removes a record that is not trusted (a symlink itself, never its target).
    func discard(name: String) {
        _ = unlinkat(groupsFD.rawValue, fileName(name), 0)
        _ = fsync(groupsFD.rawValue)
    }
}

/// The state file's format: one JSON object, version 1. Package-visible for
/// `nsgroup-bench codable`, which times it.
package enum StateCodec {
    static let version = 1

    package static func encode(_ r: GroupRecord) -> JSONValue {
        var o: JSONObject = [
            "version": .number(JSONNumber(version)),
            "name": .string(r.name),
            "owner": .number(JSONNumber(r.owner)),
            "ownerName": .string(r.ownerName),
            "namespaces": .array(r.namespaces.map { .string($0.description) }),
            "holderPID": .number(JSONNumber(r.holderPID)),
            "holderStartTime": .number(JSONNumber(r.holderStartTime)),
            "created": .number(JSONNumber(r.created)),
            "tmpfs": .array(r.tmpfs.map { .object(["path": .string($0.path), "options": .string($0.options)]) }),
        ]
        if let hostname = r.hostname { o["hostname"] = .string(hostname) }
        o["binds"] = .array(r.binds.map { .object(["source": .string($0.source), "target": .string($0.target), "readOnly": .bool($0.readOnly)]) })
        if let maps = r.userMaps {
            func encode(_ lines: [IDMapping]) -> JSONValue {
                .array(lines.map { .array([.number(JSONNumber($0.inside)), .number(JSONNumber($0.outside)), .number(JSONNumber($0.count))]) })
            }
            o["uidMap"] = encode(maps.uids)
            o["gidMap"] = encode(maps.gids)
        }
        if r.kinds.contains(.time) {
            o["monotonicOffset"] = .number(JSONNumber(r.monotonicOffset))
            o["boottimeOffset"] = .number(JSONNumber(r.boottimeOffset))
        }
        if let netns = r.netnsName { o["netnsName"] = .string(netns) }
        if let pasta = r.pasta { o["pasta"] = pasta.json }
        if r.cgroupUser != r.owner { o["cgroupUser"] = .number(JSONNumber(r.cgroupUser)) }
        if !r.limits.isEmpty { o["limits"] = r.limits.json }
        if let lifetime = r.lifetime, let expires = r.expires {
            o["lifetime"] = .number(JSONNumber(lifetime))
            o["expires"] = .number(JSONNumber(expires))
        }
        if let idle = r.idle { o["idle"] = .number(JSONNumber(idle)) }
        if let groupID = r.groupID { o["groupID"] = .string(groupID) }
        if r.privateTmp { o["privateTmp"] = .bool(true) }
        if r.privateHome { o["privateHome"] = .bool(true) }
        if let home = r.home { o["home"] = .string(home) }
        if r.root != .host { o["root"] = .string(r.root.rawValue) }
        if let persist = r.persist { o["persist"] = .string(persist) }
        if let upper = r.rootUpper { o["rootUpper"] = .string(upper) }
        // The file is rewritten on every session change: each session's argv
        // is kept cut as events carry it (EventNotification.truncated), so a
        // group with many sessions of long commands still has a small file.
        o["sessions"] = .array(r.sessions.map { session in
            let argv = EventNotification.truncated(session.argv)
            var s: JSONObject = [
                "id": .number(JSONNumber(session.id)),
                "pid": .number(JSONNumber(session.pid)),
                "startTime": .number(JSONNumber(session.startTime)),
                "uid": .number(JSONNumber(session.uid)),
                "argv": .array(argv.argv.map { .string($0) }),
                "started": .number(JSONNumber(session.started)),
                "tty": .bool(session.tty),
                "callerGID": .number(JSONNumber(session.callerGID)),
                "callerPID": .number(JSONNumber(session.callerPID)),
            ]
            if argv.truncated || session.argvTruncated { s["argvTruncated"] = .bool(true) }
            if let guestOf = session.guestOf { s["guestOf"] = .number(JSONNumber(guestOf)) }
            if let sessionID = session.sessionID { s["sessionID"] = .string(sessionID) }
            return .object(s)
        })
        o["members"] = .array(r.members.map(encode))
        return .object(o)
    }

    /// A member as records keep it: `{"user": UID, "name": N}` or `{"group": GID, "name": N}`.
    static func encode(_ member: Member) -> JSONValue {
        switch member {
        case .user(let uid, let name): .object(["user": .number(JSONNumber(uid)), "name": .string(name)])
        case .group(let gid, let name): .object(["group": .number(JSONNumber(gid)), "name": .string(name)])
        }
    }

    /// A member read back, or nil when `value` is not one.
    static func member(_ value: JSONValue) -> Member? {
        guard let m = value.objectValue, let name = m["name"]?.stringValue else { return nil }
        if let uid = m["user"]?.int64Value, (0...Int64(UInt32.max - 1)).contains(uid) { return .user(uid: uid_t(uid), name: name) }
        if let gid = m["group"]?.int64Value, (0...Int64(UInt32.max - 1)).contains(gid) { return .group(gid: gid_t(gid), name: name) }
        return nil
    }
}

extension StateCodec {
    /// Reads a record back, strictly: every field present with its type and
    /// range, the name equal to the file's, namespace ids in the kernel's
    /// spelling with each kind at most once.
    package static func decode(_ value: JSONValue, name fileName: String) throws(SupervisorError) -> GroupRecord {
        func malformed(_ message: String) -> SupervisorError { SupervisorError(.stateFile(.malformed), message) }
        guard let o = value.objectValue else { throw malformed("the record is not a JSON object") }
        func field(_ key: String) throws(SupervisorError) -> JSONValue {
            guard let v = o[key] else { throw malformed("\"\(key)\" is missing") }
            return v
        }
        func integer(_ key: String, _ range: ClosedRange<Int64>, in object: JSONObject? = nil) throws(SupervisorError) -> Int64 {
            let v = object == nil ? try field(key) : object![key]
            guard let n = v?.int64Value, range.contains(n) else { throw malformed("\"\(key)\" is not a number in range") }
            return n
        }
        func string(_ value: JSONValue?, _ what: String) throws(SupervisorError) -> String {
            guard let s = value?.stringValue else { throw malformed("\(what) is not a string") }
            return s
        }
        /// A random id (RandomID), when there is one: records an earlier version wrote have none.
        func randomID(_ key: String, in object: JSONObject) throws(SupervisorError) -> String? {
            guard let value = object[key] else { return nil }
            guard let id = value.stringValue, RandomID.isValid(id) else {
                throw malformed("\"\(key)\" is \(String(value.serialized().prefix(64))), not 32 lowercase hex digits")
            }
            return id
        }
        guard try integer("version", 0...Int64.max) == Int64(version) else {
            throw malformed("version \(o["version"]?.serialized() ?? "?") is not \(version)")
        }
        let name = try string(o["name"], "\"name\"")
        guard name == fileName, GroupName.isValid(name) else {
            throw malformed("it names group \(JSONValue.string(String(name.prefix(64))).serialized()), not \"\(fileName)\"")
        }
        var namespaces: [NamespaceID] = []
        guard let nsArray = try field("namespaces").arrayValue, !nsArray.isEmpty else {
            throw malformed("\"namespaces\" is not a non-empty array")
        }
        for element in nsArray {
            guard let id = element.stringValue.flatMap(NamespaceID.init), !namespaces.contains(where: { $0.kind == id.kind }) else {
                throw malformed("\"namespaces\" holds \(element.serialized()), not a namespace id of a kind not yet named")
            }
            namespaces.append(id)
        }
        var tmpfs: [TmpfsMount] = []
        for element in try field("tmpfs").arrayValue ?? [] {
            guard let m = element.objectValue, let path = m["path"]?.stringValue, let options = m["options"]?.stringValue else {
                throw malformed("\"tmpfs\" holds \(element.serialized())")
            }
            tmpfs.append(TmpfsMount(path: path, options: options))
        }
        var members: [Member] = []
        for element in o["members"]?.arrayValue ?? [] {
            guard let member = member(element) else { throw malformed("\"members\" holds \(element.serialized())") }
            members.append(member)
        }
        var sessions: [SessionRecord] = []
        for element in o["sessions"]?.arrayValue ?? [] {
            guard let s = element.objectValue, let argv = s["argv"]?.arrayValue?.compactMap(\.stringValue),
                  let tty = s["tty"]?.boolValue
            else { throw malformed("\"sessions\" holds \(element.serialized())") }
            let argvTruncated = s["argvTruncated"]
            guard argvTruncated == nil || argvTruncated?.boolValue != nil else {
                throw malformed("\"argvTruncated\" is \(argvTruncated!.serialized()), not true or false")
            }
            var guestOf: uid_t?
            if s["guestOf"] != nil { guestOf = uid_t(try integer("guestOf", 0...Int64(UInt32.max - 1), in: s)) }
            sessions.append(SessionRecord(
                id: UInt64(try integer("id", 1...Int64.max, in: s)),
                pid: pid_t(try integer("pid", 1...Int64(Int32.max), in: s)),
                startTime: UInt64(try integer("startTime", 0...Int64.max, in: s)),
                uid: uid_t(try integer("uid", 0...Int64(UInt32.max - 1), in: s)),
                argv: argv, started: try integer("started", 0...Int64.max, in: s), tty: tty,
                callerGID: gid_t(try integer("callerGID", 0...Int64(UInt32.max - 1), in: s)),
                callerPID: pid_t(try integer("callerPID", 0...Int64(Int32.max), in: s)),
                argvTruncated: argvTruncated?.boolValue ?? false))
            sessions[sessions.count - 1].guestOf = guestOf
            sessions[sessions.count - 1].sessionID = try randomID("sessionID", in: s)
        }
        let hostname = try o["hostname"].map { (v) throws(SupervisorError) in try string(v, "\"hostname\"") }
        var binds: [BindMount] = []
        for element in o["binds"]?.arrayValue ?? [] {
            guard let b = element.objectValue, let source = b["source"]?.stringValue, let target = b["target"]?.stringValue,
                  let readOnly = b["readOnly"]?.boolValue
            else { throw malformed("\"binds\" holds \(element.serialized())") }
            binds.append(BindMount(source: source, target: target, readOnly: readOnly))
        }
        func mapping(_ key: String) throws(SupervisorError) -> [IDMapping]? {
            guard let lines = o[key] else { return nil }
            var result: [IDMapping] = []
            for line in lines.arrayValue ?? [] {
                let numbers = line.arrayValue?.compactMap(\.int64Value) ?? []
                guard numbers.count == 3, numbers.allSatisfy({ (0...Int64(UInt32.max)).contains($0) }) else {
                    throw malformed("\"\(key)\" holds \(line.serialized())")
                }
                result.append(IDMapping(inside: UInt32(numbers[0]), outside: UInt32(numbers[1]), count: UInt32(numbers[2])))
            }
            guard !result.isEmpty else { throw malformed("\"\(key)\" is empty") }
            return result
        }
        let uidMap = try mapping("uidMap")
        let gidMap = try mapping("gidMap")
        guard (uidMap == nil) == (gidMap == nil), (uidMap != nil) == namespaces.contains(where: { $0.kind == .user }) else {
            throw malformed("\"uidMap\" and \"gidMap\" go with a user namespace, and only with one")
        }
        let offsets = CreateParams.maxOffset
        var record = GroupRecord(
            name: name,
            owner: uid_t(try integer("owner", 0...Int64(UInt32.max - 1))),
            ownerName: try string(o["ownerName"], "\"ownerName\""),
            namespaces: namespaces,
            holderPID: pid_t(try integer("holderPID", 2...Int64(Int32.max))),
            holderStartTime: UInt64(try integer("holderStartTime", 0...Int64.max)),
            created: try integer("created", 0...Int64.max),
            hostname: hostname, tmpfs: tmpfs, members: members, sessions: sessions)
        record.binds = binds
        if let uidMap, let gidMap { record.userMaps = UserMaps(uids: uidMap, gids: gidMap) }
        if namespaces.contains(where: { $0.kind == .time }) {
            record.monotonicOffset = try integer("monotonicOffset", -offsets...offsets)
            record.boottimeOffset = try integer("boottimeOffset", -offsets...offsets)
        }
        if let netns = o["netnsName"] {
            guard let name = netns.stringValue, NetnsPublisher.isValidName(name) else {
                throw malformed("\"netnsName\" is \(netns.serialized())")
            }
            record.netnsName = name
        }
        if let pasta = o["pasta"] {
            guard namespaces.contains(where: { $0.kind == .net }), namespaces.contains(where: { $0.kind == .user }) else {
                throw malformed("\"pasta\" goes with a net and a user namespace, and only with them")
            }
            do throws(RPCError) {
                record.pasta = try PastaRecord(json: pasta)
            } catch {
                throw malformed("\"pasta\" is \(pasta.serialized()): \(error.message)")
            }
        }
        if o["cgroupUser"] != nil { record.cgroupUser = uid_t(try integer("cgroupUser", 0...Int64(UInt32.max - 1))) }
        if let limits = o["limits"] {
            do throws(RPCError) {
                var reader = try ParamsReader(limits, method: "limits")
                record.limits = try GroupLimits(reader: &reader)
            } catch {
                throw malformed("\"limits\" is \(limits.serialized()): \(error.message)")
            }
        }
        let durations = CreateParams.durationRange
        if o["lifetime"] != nil || o["expires"] != nil {
            record.lifetime = try integer("lifetime", durations)
            record.expires = try integer("expires", 0...Int64.max)
        }
        if o["idle"] != nil { record.idle = try integer("idle", durations) }
        record.groupID = try randomID("groupID", in: o)
        for key in ["privateTmp", "privateHome"] {
            guard let flag = o[key] else { continue }
            guard flag == .bool(true) else { throw malformed("\"\(key)\" is \(String(flag.serialized().prefix(64))), not true") }
        }
        record.privateTmp = o["privateTmp"] != nil
        record.privateHome = o["privateHome"] != nil
        if let home = o["home"] {
            guard let path = home.stringValue, HolderSpec.isValidMountPath(path) else {
                throw malformed("\"home\" is \(String(home.serialized().prefix(64))), not a mount path")
            }
            record.home = path
        }
        if let root = o["root"] {
            guard let name = root.stringValue, let value = GroupRoot(rawValue: name), value == .overlay,
                  namespaces.contains(where: { $0.kind == .user }), namespaces.contains(where: { $0.kind == .mnt }) else {
                throw malformed("\"root\" is \(String(root.serialized().prefix(64))), not \"overlay\" in a group with mnt and user")
            }
            record.root = value
        }
        if let persist = o["persist"] {
            guard record.root == .overlay, let path = persist.stringValue, HolderSpec.isValidMountPath(path) else {
                throw malformed("\"persist\" is \(String(persist.serialized().prefix(64))), not a path of an overlay root")
            }
            record.persist = path
        }
        if let upper = o["rootUpper"] {
            guard record.root == .overlay, record.persist == nil, let options = upper.stringValue,
                  (try? TmpfsMount(spec: "/upper:" + options)) != nil else {
                throw malformed("\"rootUpper\" is \(String(upper.serialized().prefix(64))), not the tmpfs options of an overlay root")
            }
            record.rootUpper = options
        }
        return record
    }
}
