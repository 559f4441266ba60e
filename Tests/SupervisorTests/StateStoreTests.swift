import Testing
import Glibc
@testable import Supervisor
import Namespaces
import POSIX
import RPC

// MARK: - Helpers

/// A scratch directory under /tmp, removed with everything in it.
final class ScratchDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/nsg-unit-state-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw ScratchError("mkdtemp: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    deinit { Directory.removeTree(path) }

    static func entries(_ path: String) -> [String]? { (try? Directory.entries(path))?.sorted() }
}

struct ScratchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

private func lstatOf(_ path: String) -> stat? {
    var st = stat()
    return lstat(path, &st) == 0 ? st : nil
}

private func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        result += chunk[0..<n]
    }
    return result
}

private func writeFile(_ path: String, _ text: String, mode: mode_t = 0o644) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    return bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count
}

private func sampleRecord(_ name: String = "web", hostname: String? = "web-host", created: Int64 = 1_795_000_000) -> GroupRecord {
    GroupRecord(
        name: name, owner: 1000, ownerName: "alice",
        namespaces: [NamespaceID(kind: .mnt, inode: 4_026_532_211), NamespaceID(kind: .uts, inode: 4_026_532_212),
                     NamespaceID(kind: .net, inode: 4_026_532_215)],
        holderPID: 31337, holderStartTime: 123_456_789_012,
        created: created, hostname: hostname,
        tmpfs: [TmpfsMount(path: "/tmp"), TmpfsMount(path: "/run/x", options: "mode=0755,size=1m")],
        members: [.user(uid: 1001, name: "bob"), .group(gid: 1002, name: "devs")],
        sessions: [SessionRecord(id: 7, pid: 4242, startTime: 99, uid: 1001, argv: ["sh", "-c", "sleep 1"],
                                 started: 1_795_000_100, tty: true, callerGID: 1001, callerPID: 4240)])
}

private func startupError(_ directory: String, sourceLocation: SourceLocation = #_sourceLocation) -> SupervisorError? {
    do throws(SupervisorError) {
        _ = try StateStore(directory: directory)
        Issue.record("StateStore accepted \(directory)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

// MARK: - StateCodec

@Suite("StateCodec")
struct StateCodecTests {
    @Test func encodesTheDocumentedFields() throws {
        let record = sampleRecord()
        let json = StateCodec.encode(record)
        let object = try #require(json.objectValue)
        #expect(Set(object.keys) == ["version", "name", "owner", "ownerName", "namespaces", "holderPID",
                                     "holderStartTime", "created", "tmpfs", "hostname", "members", "sessions", "binds"])
        #expect(json["version"] == .number(JSONNumber(StateCodec.version)))
        #expect(StateCodec.version == 1)
        #expect(json["name"] == .string("web"))
        #expect(json["owner"]?.int64Value == 1000)
        #expect(json["ownerName"] == .string("alice"))
        #expect(json["namespaces"] == .array(["mnt:[4026532211]", "uts:[4026532212]", "net:[4026532215]"]))
        #expect(json["holderPID"]?.int64Value == 31337)
        #expect(json["holderStartTime"]?.int64Value == 123_456_789_012)
        #expect(json["created"]?.int64Value == 1_795_000_000)
        #expect(json["hostname"] == .string("web-host"))
        #expect(json["tmpfs"] == .array([
            .object(["path": "/tmp", "options": "mode=0700"]),
            .object(["path": "/run/x", "options": "mode=0755,size=1m"]),
        ]))
        #expect(json["members"] == .array([
            .object(["user": 1001, "name": "bob"]),
            .object(["group": 1002, "name": "devs"]),
        ]))
    }

    /// create's privateTmp, privateHome and home: written only when set, read back strictly.
    @Test func privateMountsRoundTripAndAreReadStrictly() throws {
        var record = sampleRecord()
        record.privateTmp = true
        record.privateHome = true
        record.home = "/srv/alice-home"
        let json = StateCodec.encode(record)
        #expect(json["privateTmp"] == .bool(true) && json["privateHome"] == .bool(true) && json["home"] == .string("/srv/alice-home"))
        #expect(try StateCodec.decode(json, name: "web") == record)
        #expect(StateCodec.encode(sampleRecord())["privateTmp"] == nil)
        for (key, bad) in [("privateTmp", JSONValue.bool(false)), ("privateHome", .string("yes")), ("home", .string("relative")),
                           ("home", .string("/a/../b")), ("home", .number(JSONNumber(1)))] {
            guard case .object(var object) = json else { Issue.record("not an object"); return }
            object[key] = bad
            #expect(throws: SupervisorError.self, "\(key): \(bad.serialized())") { try StateCodec.decode(.object(object), name: "web") }
        }
    }

    @Test func noHostnameMeansNoMember() {
        let json = StateCodec.encode(sampleRecord(hostname: nil))
        #expect(json["hostname"] == nil)
        #expect(json.objectValue?.count == 12)
    }

    @Test func namespaceIDsParseBack() throws {
        let record = sampleRecord()
        let ids = try #require(StateCodec.encode(record)["namespaces"]?.arrayValue).compactMap { $0.stringValue.flatMap(NamespaceID.init) }
        #expect(ids == record.namespaces)
    }

    @Test func largeValuesAreExact() {
        var record = sampleRecord()
        record.owner = UInt32.max - 1
        record.holderStartTime = UInt64.max
        record.created = Int64.min
        record.holderPID = Int32.max
        let text = StateCodec.encode(record).serialized()
        #expect(text.contains("\"owner\":4294967294"))
        #expect(text.contains("\"holderStartTime\":18446744073709551615"))
        #expect(text.contains("\"created\":-9223372036854775808"))
        #expect(text.contains("\"holderPID\":2147483647"))
    }
}

// MARK: - StateStore

@Suite("StateStore in a scratch directory")
struct StateStoreTests {
    @Test func createsTheDirectories() throws {
        let scratch = try ScratchDirectory()
        let directory = scratch.path + "/deep/state"
        let store = try StateStore(directory: directory)
        #expect(store.directory == directory)
        let groups = try #require(lstatOf(directory + "/groups"))
        #expect(groups.st_mode & S_IFMT == S_IFDIR)
        #expect(groups.st_mode & 0o7777 == 0o700)
        #expect(groups.st_uid == 0)
        #expect(lstatOf(directory).map { $0.st_mode & S_IFMT == S_IFDIR } == true)
        #expect(store.storedNames().isEmpty)
    }

    @Test func tightensAnExistingGroupsDirectory() throws {
        let scratch = try ScratchDirectory()
        #expect(mkdir(scratch.path + "/groups", 0o755) == 0)
        #expect(chmod(scratch.path + "/groups", 0o777) == 0)
        _ = try StateStore(directory: scratch.path)
        #expect(lstatOf(scratch.path + "/groups").map { $0.st_mode & 0o7777 } == 0o700)
    }

    @Test func savesAtomicallyWithTheRightModes() throws {
        let scratch = try ScratchDirectory()
        let store = try StateStore(directory: scratch.path)
        let record = sampleRecord()
        try store.save(record)

        let file = scratch.path + "/groups/web.json"
        let st = try #require(lstatOf(file))
        #expect(st.st_mode & S_IFMT == S_IFREG)
        #expect(st.st_mode & 0o7777 == 0o600)
        #expect(st.st_uid == 0)
        // Nothing but the record: the temporary file was renamed, not left behind.
        #expect(ScratchDirectory.entries(scratch.path + "/groups") == ["web.json"])

        let bytes = try #require(readFile(file))
        #expect(bytes.last == 0x0A)
        #expect(bytes.filter { $0 == 0x0A }.count == 1)
        let parsed = try JSONParser.parse(Array(bytes.dropLast()))
        #expect(parsed == StateCodec.encode(record))
        #expect(parsed["name"] == .string("web"))
        #expect(parsed["holderPID"]?.int64Value == 31337)
        #expect(store.storedNames() == ["web"])
    }

    @Test func saveReplacesTheFileByRename() throws {
        let scratch = try ScratchDirectory()
        let store = try StateStore(directory: scratch.path)
        try store.save(sampleRecord())
        let file = scratch.path + "/groups/web.json"
        let firstInode = try #require(lstatOf(file)).st_ino
        var changed = sampleRecord()
        changed.hostname = "other"
        changed.holderPID = 42
        try store.save(changed)
        let second = try #require(lstatOf(file))
        #expect(second.st_ino != firstInode, "the record was rewritten in place instead of renamed over")
        #expect(second.st_mode & 0o7777 == 0o600)
        let parsed = try JSONParser.parse(Array(try #require(readFile(file)).dropLast()))
        #expect(parsed == StateCodec.encode(changed))
        #expect(ScratchDirectory.entries(scratch.path + "/groups") == ["web.json"])
    }

    @Test func removeDeletesAndToleratesMissing() throws {
        let scratch = try ScratchDirectory()
        let store = try StateStore(directory: scratch.path)
        try store.save(sampleRecord("a"))
        try store.save(sampleRecord("b"))
        #expect(store.storedNames() == ["a", "b"])
        try store.remove(name: "a")
        #expect(store.storedNames() == ["b"])
        #expect(lstatOf(scratch.path + "/groups/a.json") == nil)
        try store.remove(name: "a")
        try store.remove(name: "never-existed")
        #expect(ScratchDirectory.entries(scratch.path + "/groups") == ["b.json"])
    }

    @Test func storedNamesIgnoresWhatIsNotAGroupRecord() throws {
        let scratch = try ScratchDirectory()
        let store = try StateStore(directory: scratch.path)
        try store.save(sampleRecord("good"))
        try store.save(sampleRecord("0.also-good_1"))
        let groups = scratch.path + "/groups/"
        for junk in ["Bad.json", ".hidden.json", "..json", ".json", "x.txt", "json", "a b.json", "-dash.json",
                     ".good.json.tmp", "good.json.bak", "_under.json",
                     String(repeating: "n", count: 64) + ".json"] {
            #expect(writeFile(groups + junk, "{}\n"), "\(junk)")
        }
        #expect(mkdir(groups + "dir", 0o700) == 0)
        #expect(store.storedNames() == ["0.also-good_1", "good"])
        // Asking twice gives the same answer (the directory is read from the start each time).
        #expect(store.storedNames() == ["0.also-good_1", "good"])
    }

    @Test func refusesAGroupsDirectoryThatIsASymlink() throws {
        let scratch = try ScratchDirectory()
        let elsewhere = scratch.path + "/elsewhere"
        #expect(mkdir(elsewhere, 0o700) == 0)
        let state = scratch.path + "/state"
        #expect(mkdir(state, 0o755) == 0)
        #expect(symlink(elsewhere, state + "/groups") == 0)
        let error = try #require(startupError(state))
        #expect(error.message.contains(state))
        // Nothing was written through the link.
        #expect(ScratchDirectory.entries(elsewhere) == [])
    }

    @Test func refusesAGroupsDirectoryNotOwnedByRoot() throws {
        let scratch = try ScratchDirectory()
        #expect(mkdir(scratch.path + "/groups", 0o700) == 0)
        #expect(chown(scratch.path + "/groups", 65534, 65534) == 0)
        let error = try #require(startupError(scratch.path))
        #expect(error.message == "state directory \(scratch.path)/groups is not owned by root")
    }

    @Test func refusesAStateDirectoryThatIsAFile() throws {
        let scratch = try ScratchDirectory()
        let file = scratch.path + "/file"
        #expect(writeFile(file, "x"))
        let error = try #require(startupError(file))
        #expect(error.message.hasPrefix("cannot use state directory \(file): "))
    }

    @Test func saveDoesNotFollowASymlinkInPlaceOfTheRecord() throws {
        let scratch = try ScratchDirectory()
        let store = try StateStore(directory: scratch.path + "/state")
        let victim = scratch.path + "/victim"
        #expect(writeFile(victim, "precious\n"))
        #expect(symlink(victim, scratch.path + "/state/groups/web.json") == 0)
        try store.save(sampleRecord())
        #expect(readFile(victim) == Array("precious\n".utf8))
        let st = try #require(lstatOf(scratch.path + "/state/groups/web.json"))
        #expect(st.st_mode & S_IFMT == S_IFREG)
    }

    @Test func saveDoesNotFollowAPlantedTemporaryFile() throws {
        let scratch = try ScratchDirectory()
        let store = try StateStore(directory: scratch.path + "/state")
        let victim = scratch.path + "/victim"
        #expect(writeFile(victim, "precious\n"))
        #expect(symlink(victim, scratch.path + "/state/groups/.web.json.tmp") == 0)
        try store.save(sampleRecord())
        #expect(readFile(victim) == Array("precious\n".utf8))
        #expect(ScratchDirectory.entries(scratch.path + "/state/groups") == ["web.json"])
        let parsed = try JSONParser.parse(Array(try #require(readFile(scratch.path + "/state/groups/web.json")).dropLast()))
        #expect(parsed == StateCodec.encode(sampleRecord()))
    }

    @Test func twoStoresOnOneDirectorySeeEachOther() throws {
        let scratch = try ScratchDirectory()
        let first = try StateStore(directory: scratch.path)
        try first.save(sampleRecord("shared"))
        let second = try StateStore(directory: scratch.path)
        #expect(second.storedNames() == ["shared"])
    }
}

// MARK: - Loading, trusting nothing

@Suite("StateStore.load refuses what it cannot trust")
struct StateStoreLoadTests {
    /// Each test gets its own store in a scratch directory.
    let scratch: ScratchDirectory
    let store: StateStore
    /// Where the record of `web` is.
    var path: String { scratch.path + "/groups/web.json" }

    init() throws {
        scratch = try ScratchDirectory()
        store = try StateStore(directory: scratch.path)
    }

    /// What `load` throws for `web`, or nil (with an issue recorded) if it loads.
    private func refusal(sourceLocation: SourceLocation = #_sourceLocation) -> SupervisorError? {
        do throws(SupervisorError) {
            let record = try store.load(name: "web")
            Issue.record("loaded \(record)", sourceLocation: sourceLocation)
            return nil
        } catch {
            return error
        }
    }

    @Test func aSavedRecordLoadsBack() throws {
        try store.save(sampleRecord())
        #expect(try store.load(name: "web") == sampleRecord())
    }

    @Test func aSymlinkIsRefused() throws {
        try store.save(sampleRecord())
        #expect(rename(path, scratch.path + "/real.json") == 0)
        #expect(symlink(scratch.path + "/real.json", path) == 0)
        let error = try #require(refusal())
        #expect(error.kind == .stateFile(.symlink))
        #expect(error.reason == "symlink")
        #expect(error.description == "it is a symbolic link")
    }

    @Test func aFileOfSomeoneElseIsRefused() throws {
        try store.save(sampleRecord())
        #expect(chown(path, 65534, 65534) == 0)
        let error = try #require(refusal())
        #expect(error.kind == .stateFile(.notRoot))
        #expect(error.reason == "not_root")
        #expect(error.message == "it is owned by uid 65534, not root")
    }

    @Test func aFileOthersMayWriteIsRefused() throws {
        try store.save(sampleRecord())
        #expect(chmod(path, 0o622) == 0)
        let error = try #require(refusal())
        #expect(error.kind == .stateFile(.writable))
        #expect(error.message == "it is writable by others than root (mode 622)")
    }

    @Test func aDirectoryIsRefused() throws {
        #expect(mkdir(path, 0o700) == 0)
        let error = try #require(refusal())
        #expect(error.kind == .stateFile(.notRegular))
        #expect(error.reason == "not_regular")
        #expect(error.message == "it is not a regular file")
    }

    @Test func aHugeFileIsRefusedUnread() throws {
        #expect(writeFile(path, "{}", mode: 0o600))
        #expect(truncate(path, off_t(StateStore.maxFileSize + 1)) == 0)
        let error = try #require(refusal())
        #expect(error.kind == .stateFile(.tooLarge))
        #expect(error.reason == "too_large")
        #expect(error.message == "it is larger than 1048576 bytes")
    }

    @Test func textThatIsNotJSONIsMalformed() throws {
        #expect(writeFile(path, #"{"version":1,"na"#, mode: 0o600))
        let error = try #require(refusal())
        #expect(error.kind == .stateFile(.malformed))
        #expect(error.message.hasPrefix("it is not JSON (truncated?): "))
    }

    @Test func aRecordOfAnotherGroupIsMalformed() throws {
        try store.save(sampleRecord("other"))
        #expect(rename(scratch.path + "/groups/other.json", path) == 0)
        let error = try #require(refusal())
        #expect(error.kind == .stateFile(.malformed))
        #expect(error.reason == "malformed")
        #expect(error.message == #"it names group "other", not "web""#)
    }

    /// The journal's reasons for a dropped file are the ones the catalog explains.
    @Test func theReasonsAreTheCatalogs() throws {
        let bytes = try #require(readFile(PackagingTests.root + "/packaging/catalog/nsgroup.catalog"))
        let catalog = String(decoding: bytes, as: UTF8.self)
        let listed = try #require(catalog.split(separator: "\n").first { String($0).trimmed.hasPrefix("symlink,") })
        let words = listed.split(separator: ",").map { String($0).trimmed }
        #expect(Set(words) == Set(SupervisorError.StateFileProblem.allCases.map(\.rawValue)))
    }
}

@Suite("SupervisorError")
struct SupervisorErrorTests {
    @Test func startupIsItsMessage() {
        let error = SupervisorError(.startup, "another nsgroupd is already listening on /run/x.sock")
        #expect(error.description == "another nsgroupd is already listening on /run/x.sock")
        #expect(error.reason == "startup")
    }

    @Test func configurationNamesFileAndLine() {
        #expect(SupervisorError(.configuration(path: "/e.conf", line: 4), "expected key = value").description
            == "/e.conf:4: expected key = value")
        #expect(SupervisorError(.configuration(path: "/e.conf", line: 0), "is not a regular file").description
            == "/e.conf: is not a regular file")
        #expect(SupervisorError(.configuration(path: "/e.conf", line: 0), "x").reason == "configuration")
    }

    @Test func aStateDirectoryOfSomeoneElseStopsTheStart() throws {
        let scratch = try ScratchDirectory()
        #expect(mkdir(scratch.path + "/groups", 0o700) == 0)
        #expect(chown(scratch.path + "/groups", 65534, 65534) == 0)
        do throws(SupervisorError) {
            _ = try StateStore(directory: scratch.path)
            Issue.record("accepted")
        } catch {
            #expect(error.kind == .startup)
        }
    }
}

// MARK: - Random ids

@Suite("Group and session ids in the state file")
struct StateFileIDTests {
    static let groupID = "0123456789abcdef0123456789abcdef"
    static let sessionID = "fedcba9876543210fedcba9876543210"

    func withIDs() -> GroupRecord {
        var record = sampleRecord()
        record.groupID = Self.groupID
        record.sessions[0].sessionID = Self.sessionID
        return record
    }

    @Test func randomIDsAre32LowercaseHexDigitsAndDiffer() {
        let ids = (0..<64).map { _ in RandomID.make() }
        #expect(ids.allSatisfy(RandomID.isValid))
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.utf8.count == 32 && $0 == $0.lowercased() })
        // All 128 bits vary: every hex digit position takes more than one value over 64 ids.
        #expect((0..<32).allSatisfy { index in Set(ids.map { Array($0)[index] }).count > 1 })
        #expect(RandomID.isValid(Self.groupID))
        for bad in ["", "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcde",
                    "0123456789abcdef0123456789abcdef0", "0123456789abcdef-123456789abcdef", "g123456789abcdef0123456789abcdef"] {
            #expect(!RandomID.isValid(bad), "\(bad)")
        }
    }

    @Test func idsAreWrittenAndReadBack() throws {
        let scratch = try ScratchDirectory()
        let store = try StateStore(directory: scratch.path)
        try store.save(withIDs())
        let json = StateCodec.encode(withIDs())
        #expect(json["groupID"] == .string(Self.groupID))
        #expect(json["sessions"]?.arrayValue?.first?["sessionID"] == .string(Self.sessionID))
        let loaded = try store.load(name: "web")
        #expect(loaded == withIDs())
        #expect(loaded.groupID == Self.groupID)
        #expect(loaded.sessions.first?.sessionID == Self.sessionID)
    }

    /// Records an earlier version wrote have no ids: they load, without.
    @Test func recordsWithoutIDsLoadWithout() throws {
        let scratch = try ScratchDirectory()
        let store = try StateStore(directory: scratch.path)
        try store.save(sampleRecord())
        let text = String(decoding: try #require(readFile(scratch.path + "/groups/web.json")), as: UTF8.self)
        #expect(!text.contains("groupID") && !text.contains("sessionID"))
        let loaded = try store.load(name: "web")
        #expect(loaded.groupID == nil)
        #expect(loaded.sessions.first?.sessionID == nil)
    }

    /// A group or session built from such a record gets an id, which its record then keeps.
    @Test func aGroupAndASessionWithoutIDsGetOne() throws {
        let group = Group(record: sampleRecord(), holder: try Pidfd.open(pid: getpid()))
        #expect(RandomID.isValid(group.id))
        #expect(group.record.groupID == group.id)
        let kept = Group(record: withIDs(), holder: try Pidfd.open(pid: getpid()))
        #expect(kept.id == Self.groupID)
        let session = Session(record: sampleRecord().sessions[0], pidfd: try Pidfd.open(pid: getpid()), adopted: true, connection: nil)
        #expect(RandomID.isValid(session.uniqueID))
        #expect(session.record.sessionID == session.uniqueID)
        let keptSession = Session(record: withIDs().sessions[0], pidfd: try Pidfd.open(pid: getpid()), adopted: true, connection: nil)
        #expect(keptSession.uniqueID == Self.sessionID)
    }

    @Test(arguments: [JSONValue.string("0123456789ABCDEF0123456789ABCDEF"), .string("short"), .number(JSONNumber(7)),
                      .string("0123456789abcdef0123456789abcdef\n"), .null])
    func aMalformedIDIsRefused(_ id: JSONValue) throws {
        guard case .object(var object) = StateCodec.encode(withIDs()) else { Issue.record("not an object"); return }
        object["groupID"] = id
        #expect(throws: SupervisorError.self) { try StateCodec.decode(.object(object), name: "web") }
        do throws(SupervisorError) {
            _ = try StateCodec.decode(.object(object), name: "web")
        } catch {
            #expect(error.kind == .stateFile(.malformed))
            #expect(error.message.hasPrefix("\"groupID\" is "), "\(error.message)")
        }
        guard case .object(var session) = StateCodec.encode(withIDs())["sessions"]?.arrayValue?.first,
              case .object(var good) = StateCodec.encode(withIDs()) else { Issue.record("no session"); return }
        session["sessionID"] = id
        good["sessions"] = .array([.object(session)])
        #expect(throws: SupervisorError.self) { try StateCodec.decode(.object(good), name: "web") }
    }
}

// MARK: - The session counter

@Suite("The session counter")
struct SessionCounterTests {
    let scratch: ScratchDirectory
    let store: StateStore
    var path: String { scratch.path + "/groups/" + StateStore.sessionCounterFile }

    init() throws {
        scratch = try ScratchDirectory()
        store = try StateStore(directory: scratch.path)
    }

    /// The number the counter file holds, read as a test would (nil: no such file).
    func onDisk() throws -> Int64? {
        guard let bytes = readFile(path) else { return nil }
        #expect(bytes.last == 0x0A)
        let value = try JSONParser.parse(Array(bytes.dropLast()))
        #expect(value["version"] == .number(JSONNumber(1)))
        return value["next"]?.int64Value
    }

    @Test func aFreshDirectoryCountsFromOneAndReservesABlock() throws {
        let numbers = SessionNumbers(state: store)
        #expect(numbers.problem == nil)
        #expect(try onDisk() == nil, "nothing is written before a number is given")
        #expect(numbers.take() == 1)
        #expect(try onDisk() == 1 + Int64(SessionNumbers.blockSize))
        let st = try #require(lstatOf(path))
        #expect(st.st_mode & S_IFMT == S_IFREG)
        #expect(st.st_mode & 0o7777 == 0o600)
        #expect(st.st_uid == 0)
        // No temporary file is left, and the counter is not a group.
        #expect(ScratchDirectory.entries(scratch.path + "/groups") == [StateStore.sessionCounterFile])
        #expect(store.storedNames().isEmpty)
    }

    @Test func theFileIsWrittenOnlyWhenABlockIsUsedUp() throws {
        let numbers = SessionNumbers(state: store)
        let block = SessionNumbers.blockSize
        #expect(numbers.take() == 1)
        let inode = try #require(lstatOf(path)).st_ino
        for expected in 2...block { #expect(numbers.take() == expected) }
        #expect(try #require(lstatOf(path)).st_ino == inode, "the counter was written again within its block")
        #expect(try onDisk() == Int64(block + 1))
        #expect(numbers.take() == block + 1)
        #expect(try #require(lstatOf(path)).st_ino != inode)
        #expect(try onDisk() == Int64(2 * block + 1))
    }

    /// After a restart (or a crash) numbers go on past the reserved block: some are skipped, none repeats.
    @Test func aRestartGoesOnPastTheReservedBlock() throws {
        let first = SessionNumbers(state: store)
        #expect(first.take() == 1)
        #expect(first.take() == 2)
        let second = SessionNumbers(state: try StateStore(directory: scratch.path))
        #expect(second.problem == nil)
        #expect(second.take() == 1 + SessionNumbers.blockSize)
        #expect(try onDisk() == 1 + 2 * Int64(SessionNumbers.blockSize))
    }

    /// A number an earlier supervisor gave (a session taken back) is passed over, and the
    /// block reserved next starts above it.
    @Test func numbersTakenElsewhereArePassedOver() throws {
        let numbers = SessionNumbers(state: store)
        #expect(numbers.take() == 1)
        numbers.noteTaken(1000)
        #expect(numbers.take() == 1001)
        #expect(try onDisk() == 1001 + Int64(SessionNumbers.blockSize))
        numbers.noteTaken(5)
        #expect(numbers.take() == 1002)
    }

    @Test func aMissingFileReadsAsNone() throws {
        #expect(try store.loadSessionCounter() == nil)
        try store.saveSessionCounter(next: 77)
        #expect(try store.loadSessionCounter() == 77)
    }

    @Test func aTemporaryFileACrashLeftIsRemoved() throws {
        #expect(writeFile(scratch.path + "/groups/." + StateStore.sessionCounterFile + ".tmp", "{\"version\":1,", mode: 0o600))
        store.removeTemporaryFiles()
        #expect(ScratchDirectory.entries(scratch.path + "/groups") == [])
    }

    /// What the counter file holds that is not a counter of ours: refused with the reason,
    /// numbering starts at 1 (then past what is known to be taken), and the next number
    /// given writes a good counter in its place.
    @Test(arguments: [
        (#"{"version":1,"next":0}"#, "\"next\" is 0, not a number from 1 to 9007199254740992"),
        (#"{"version":1,"next":-3}"#, "\"next\" is -3, not a number from 1 to 9007199254740992"),
        (#"{"version":1,"next":9007199254740993}"#, "\"next\" is 9007199254740993, not a number from 1 to 9007199254740992"),
        (#"{"version":1,"next":"12"}"#, #""next" is "12", not a number from 1 to 9007199254740992"#),
        (#"{"version":1,"next":1.5}"#, "\"next\" is 1.5, not a number from 1 to 9007199254740992"),
        (#"{"version":2,"next":12}"#, "version 2 is not 1"),
        (#"{"version":1,"next":12,"more":1}"#, "it is not an object of \"version\" and \"next\""),
        (#"{"next":12}"#, "it is not an object of \"version\" and \"next\""),
        (#"[1,12]"#, "it is not an object of \"version\" and \"next\""),
        (#"{"version":1,"ne"#, "it is not JSON (truncated?): "),
    ])
    func aMalformedCounterIsRefused(_ text: String, _ problem: String) throws {
        #expect(writeFile(path, text + "\n", mode: 0o600))
        let numbers = SessionNumbers(state: store)
        let found = try #require(numbers.problem)
        #expect(found.hasPrefix(problem), "\(found)")
        numbers.noteTaken(40)
        #expect(numbers.take() == 41)
        #expect(try onDisk() == 41 + Int64(SessionNumbers.blockSize))
    }

    @Test func aCounterOfSomeoneElseIsRefused() throws {
        #expect(writeFile(path, #"{"version":1,"next":5000}"#, mode: 0o600))
        #expect(chown(path, 65534, 65534) == 0)
        let numbers = SessionNumbers(state: store)
        #expect(numbers.problem == "it is owned by uid 65534, not root")
        #expect(numbers.take() == 1)
        #expect(try #require(lstatOf(path)).st_uid == 0)
    }

    @Test func aCounterOthersMayWriteIsRefused() throws {
        #expect(writeFile(path, #"{"version":1,"next":5000}"#, mode: 0o600))
        #expect(chmod(path, 0o666) == 0)
        let numbers = SessionNumbers(state: store)
        #expect(numbers.problem == "it is writable by others than root (mode 666)")
        #expect(numbers.take() == 1)
        #expect(try #require(lstatOf(path)).st_mode & 0o7777 == 0o600)
    }

    /// A symlink in its place is neither followed when read nor written through.
    @Test func aSymlinkInPlaceOfTheCounterIsRefusedAndNotFollowed() throws {
        let victim = scratch.path + "/victim"
        #expect(writeFile(victim, #"{"version":1,"next":5000}"#, mode: 0o600))
        #expect(symlink(victim, path) == 0)
        let numbers = SessionNumbers(state: store)
        #expect(numbers.problem == "it is a symbolic link")
        #expect(numbers.take() == 1)
        #expect(readFile(victim) == Array(#"{"version":1,"next":5000}"#.utf8))
        #expect(try #require(lstatOf(path)).st_mode & S_IFMT == S_IFREG)
    }

    /// When the counter cannot be written, the number is still given, and whoever listens is told.
    @Test func aCounterThatCannotBeWrittenIsSaid() throws {
        #expect(mkdir(path, 0o700) == 0)  // rename cannot replace a directory by a file
        let numbers = SessionNumbers(state: store)
        #expect(numbers.problem == "it is not a regular file")
        var failures: [Errno] = []
        numbers.onSaveFailure = { failures.append($0) }
        #expect(numbers.take() == 1)
        #expect(numbers.take() == 2)
        #expect(failures.count == 2, "each number given without a reservation on disk tries again")
    }
}

// MARK: - The refusals held back

@Suite("The refusals held back")
struct RefusalsHeldBackFileTests {
    let scratch: ScratchDirectory
    let store: StateStore
    var path: String { scratch.path + "/groups/" + StateStore.refusalsHeldBackFile }

    init() throws {
        scratch = try ScratchDirectory()
        store = try StateStore(directory: scratch.path)
    }

    static let sample = HeldBackRefusals(written: 1_795_000_100, tallies: [
        .init(person: 1005, heldBack: 8, kinds: [RefusalBudget.Kind(.method(.inspect), .notFound): 8], uids: [1005],
              moreUIDs: false, started: 1_795_000_090),
        .init(person: 1, heldBack: 12, kinds: [RefusalBudget.Kind(.other, .methodNotFound): 9,
                                               RefusalBudget.Kind(.connect, .limitExceeded): 2,
                                               RefusalBudget.Kind(.line, .parseError): 1],
              uids: Array(100_000..<100_032), moreUIDs: true, started: 1_795_000_000),
    ])

    /// The error a refused file gives, or nil when it loads.
    func refusal() -> SupervisorError? {
        do throws(SupervisorError) {
            _ = try store.loadRefusalsHeldBack()
            return nil
        } catch {
            return error
        }
    }

    @Test func writtenTalliesReadBack() throws {
        #expect(try store.loadRefusalsHeldBack() == nil, "no file, nothing held back")
        #expect(try store.saveRefusalsHeldBack(Self.sample) == 0)
        #expect(try store.loadRefusalsHeldBack() == Self.sample)
        let st = try #require(lstatOf(path))
        #expect(st.st_mode & S_IFMT == S_IFREG)
        #expect(st.st_mode & 0o7777 == 0o600)
        #expect(st.st_uid == 0)
        #expect(ScratchDirectory.entries(scratch.path + "/groups") == [StateStore.refusalsHeldBackFile])
        #expect(store.storedNames().isEmpty, "the file is not a group")
        let value = try JSONParser.parse(Array(try #require(readFile(path)).dropLast()))
        #expect(value["people"]?.arrayValue?.first == [
            "person": 1005, "heldBack": 8, "kinds": ["inspect/not_found": 8], "uids": [1005], "moreUIDs": false,
            "started": 1_795_000_090,
        ])
        #expect(Self.sample.summaries.map(\.seconds) == [10, 100], "each interval ran until the file was written")
        #expect(Self.sample.summaries.last?.kindsField == "connect/limit_exceeded=2 line/parse_error=1 other/method_not_found=9")
    }

    @Test func removalLeavesNothingAndToleratesNoFile() throws {
        try store.saveRefusalsHeldBack(Self.sample)
        try store.removeRefusalsHeldBack()
        #expect(ScratchDirectory.entries(scratch.path + "/groups") == [])
        #expect(try store.loadRefusalsHeldBack() == nil)
        try store.removeRefusalsHeldBack()
    }

    @Test func aTemporaryFileACrashLeftIsRemoved() throws {
        #expect(writeFile(scratch.path + "/groups/." + StateStore.refusalsHeldBackFile + ".tmp", "{\"version\":1,", mode: 0o600))
        store.removeTemporaryFiles()
        #expect(ScratchDirectory.entries(scratch.path + "/groups") == [])
    }

    /// Past the size a reader accepts, the people with the fewest refusals held back are left out.
    @Test func theFileStaysWithinTheSizeAReaderAccepts() throws {
        let kinds = Dictionary(uniqueKeysWithValues: MethodName.allCases.flatMap { method in
            ErrorReason.allCases.map { (RefusalBudget.Kind(.method(method), $0), 1) }
        })
        let tallies = (0..<400).map { i in
            HeldBackRefusals.Tally(person: uid_t(2000 + i), heldBack: kinds.count + 1 + i, kinds: kinds.merging(
                [RefusalBudget.Kind(.other, .methodNotFound): 1 + i]) { $1 }, uids: Array(uid_t(300_000 + 100 * i)..<uid_t(300_032 + 100 * i)),
                moreUIDs: true, started: 1_795_000_000)
        }
        let leftOut = try store.saveRefusalsHeldBack(HeldBackRefusals(written: 1_795_000_001, tallies: tallies))
        #expect(leftOut > 0 && leftOut < 400)
        #expect(try #require(lstatOf(path)).st_size <= StateStore.maxFileSize)
        let kept = try #require(try store.loadRefusalsHeldBack()).tallies
        #expect(kept.count == 400 - leftOut)
        #expect(kept == Array(tallies.suffix(kept.count)), "the most held back are kept, in order")
    }

    /// What the file holds that is not tallies of ours is refused with the reason.
    @Test(arguments: [
        (#"{"version":2,"written":5,"people":[]}"#, "version 2 is not 1"),
        (#"{"version":1,"written":5}"#, #"the file is not an object of "people", "version", "written""#),
        (#"{"version":1,"written":5,"people":[],"more":1}"#, #"the file is not an object of "#),
        (#"[]"#, "the file is not an object of "),
        (#"{"version":1,"written":-1,"people":[]}"#, #""written" is -1, not a number from 0 to "#),
        (#"{"version":1,"written":5,"people":{}}"#, #""people" is {}, not an array"#),
        (#"{"version":1,"written":5,"people":[{"person":7,"heldBack":2,"kinds":{"inspect/not_found":2},"uids":[7],"moreUIDs":false}]}"#,
         "a person is not an object of "),
        (#"{"version":1,"written":5,"people":[{"person":-7,"heldBack":2,"kinds":{"inspect/not_found":2},"uids":[7],"moreUIDs":false,"started":1}]}"#,
         #""person" is -7, not a number from 0 to 4294967294"#),
        (#"{"version":1,"written":5,"people":[{"person":7,"heldBack":0,"kinds":{"inspect/not_found":0},"uids":[7],"moreUIDs":false,"started":1}]}"#,
         #""heldBack" of person 7 is 0, not a number from 1 to "#),
        (#"{"version":1,"written":5,"people":[{"person":7,"heldBack":2,"kinds":{"inspect/not_found":1},"uids":[7],"moreUIDs":false,"started":1}]}"#,
         "the kinds of person 7 count 1 refusals, not 2"),
        (#"{"version":1,"written":5,"people":[{"person":7,"heldBack":2,"kinds":{"rm -rf/not_found":2},"uids":[7],"moreUIDs":false,"started":1}]}"#,
         #""kinds" of person 7 names "rm -rf/not_found", not a kind of refusal"#),
        (#"{"version":1,"written":5,"people":[{"person":7,"heldBack":2,"kinds":{"inspect/bored":2},"uids":[7],"moreUIDs":false,"started":1}]}"#,
         #""kinds" of person 7 names "inspect/bored", not a kind of refusal"#),
        (#"{"version":1,"written":5,"people":[{"person":7,"heldBack":2,"kinds":{},"uids":[7],"moreUIDs":false,"started":1}]}"#,
         #""kinds" of person 7 is {}, not an object of counts"#),
        (#"{"version":1,"written":5,"people":[{"person":7,"heldBack":2,"kinds":{"inspect/not_found":2},"uids":[],"moreUIDs":false,"started":1}]}"#,
         #""uids" of person 7 is [], not 1 to 32 uids"#),
        (#"{"version":1,"written":5,"people":[{"person":7,"heldBack":2,"kinds":{"inspect/not_found":2},"uids":[9,8],"moreUIDs":false,"started":1}]}"#,
         "the uids of person 7 are not ascending"),
        (#"{"version":1,"written":5,"people":[{"person":7,"heldBack":2,"kinds":{"inspect/not_found":2},"uids":[7],"moreUIDs":true,"started":1}]}"#,
         #""moreUIDs" of person 7 is true, not true (with 32 uids) or false"#),
        (#"{"version":1,"written":5,"people":[{"person":7,"heldBack":2,"kinds":{"inspect/not_found":2},"uids":[7],"moreUIDs":false,"started":6}]}"#,
         #""started" of person 7 is 6, not a number from 0 to 5"#),
        (#"{"version":1,"written":5,"people":[{"person":7,"heldBack":1,"kinds":{"inspect/not_found":1},"uids":[7],"moreUIDs":false,"started":1},{"person":7,"heldBack":1,"kinds":{"inspect/not_found":1},"uids":[7],"moreUIDs":false,"started":1}]}"#,
         "person 7 is there twice"),
        (#"{"version":1,"written":5,"peo"#, "it is not JSON (truncated?): "),
    ])
    func malformedTalliesAreRefused(_ text: String, _ problem: String) throws {
        #expect(writeFile(path, text + "\n", mode: 0o600))
        let error = try #require(refusal())
        #expect(error.kind == .stateFile(.malformed))
        #expect(error.message.hasPrefix(problem), "\(error.message)")
    }

    @Test func aFileOfSomeoneElseIsRefused() throws {
        try store.saveRefusalsHeldBack(Self.sample)
        #expect(chown(path, 65534, 65534) == 0)
        #expect(refusal()?.message == "it is owned by uid 65534, not root")
    }

    @Test func aFileOthersMayWriteIsRefused() throws {
        try store.saveRefusalsHeldBack(Self.sample)
        #expect(chmod(path, 0o666) == 0)
        #expect(refusal()?.message == "it is writable by others than root (mode 666)")
    }

    /// A symlink in its place is neither followed when read nor when removed, nor written through.
    @Test func aSymlinkInPlaceOfTheFileIsRefusedAndNotFollowed() throws {
        let victim = scratch.path + "/victim"
        #expect(writeFile(victim, "precious", mode: 0o600))
        #expect(symlink(victim, path) == 0)
        #expect(refusal()?.message == "it is a symbolic link")
        try store.removeRefusalsHeldBack()
        #expect(readFile(victim) == Array("precious".utf8))
        #expect(lstatOf(path) == nil)
        #expect(symlink(victim, path) == 0)
        try store.saveRefusalsHeldBack(Self.sample)
        #expect(readFile(victim) == Array("precious".utf8))
        #expect(try store.loadRefusalsHeldBack() == Self.sample)
    }
}
