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
