import Testing
import Glibc
@testable import Supervisor
import Namespaces
import POSIX
import RPC

// MARK: - Helpers

/// The path every parse below is told it read (it appears in each error).
private let confPath = "/etc/nsgroup/nsgroupd.conf"

/// The error `PolicyFile.parse` throws for `text`, or nil (with an issue
/// recorded) when it accepts it.
private func parseError(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> SupervisorError? {
    do throws(SupervisorError) {
        let policy = try PolicyFile.parse(text, path: confPath)
        Issue.record("the file was accepted as \(policy)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// The error `PolicyFile.load` throws, or nil (with an issue recorded).
private func loadError(_ path: String, required: Bool, sourceLocation: SourceLocation = #_sourceLocation) -> SupervisorError? {
    do throws(SupervisorError) {
        let policy = try PolicyFile.load(path: path, required: required)
        Issue.record("\(path) was loaded as \(policy)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

private func writeConfig(_ path: String, _ bytes: [UInt8]) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw ScratchError("open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        guard n > 0 else { throw ScratchError("write \(path): \(String(cString: strerror(errno)))") }
        offset += n
    }
}

/// A user or group every Linux system has, by name, with its id.
private func systemUser(_ name: String) throws -> uid_t {
    try #require(UserDatabase.user(named: name)?.uid, "the system has no user \(name)")
}

private func systemGroup(_ name: String) throws -> gid_t {
    try #require(UserDatabase.groupID(named: name), "the system has no group \(name)")
}

private func credentials(uid: uid_t, gid: gid_t, groups: [gid_t] = []) -> PeerCredentials {
    PeerCredentials(pid: 4242, uid: uid, gid: gid, groups: groups)
}

// MARK: - Accepted forms

@Suite("PolicyFile: accepted forms")
struct PolicyFileAcceptedTests {
    @Test func theDefaults() throws {
        let policy = Policy.defaults()
        #expect(policy.create == .everyone)
        #expect(policy.namespaces == Set(NamespaceKind.allCases))
        #expect(policy.groupsPerUser == 16)
        #expect(policy.sessionsPerUser == 64)
        #expect(policy.maxGroups == 4096)
        #expect(policy.spawnTimeout == 30)
        // The admin group is nsgroup-admin when the system has one, else there is none.
        if let gid = UserDatabase.groupID(named: "nsgroup-admin") {
            #expect(policy.adminGroup?.name == "nsgroup-admin")
            #expect(policy.adminGroup?.gid == gid)
            #expect(Policy.listed(policy.admins) == "root and members of nsgroup-admin")
        } else {
            #expect(policy.adminGroup == nil)
            #expect(Policy.listed(policy.admins) == "root")
        }
    }

    @Test(arguments: ["", "\n", "\n\n\n", "   \n\t\n", "# only a comment\n", "; only a comment", "#\n;\n  # indented\n"])
    func anEmptyFileIsTheDefaults(_ text: String) throws {
        #expect(try PolicyFile.parse(text, path: confPath) == Policy.defaults())
    }

    @Test func emptySectionsAreTheDefaults() throws {
        #expect(try PolicyFile.parse("[access]\n[limits]\n", path: confPath) == Policy.defaults())
    }

    @Test func theDocumentedExampleWithItsComments() throws {
        let text = """
            [access]
            create = *                      # or: alice, bob, @devs
            admin-group = adm               ; who administers
            namespaces = mnt, uts, ipc, pid, net, cgroup, user, time

            [limits]
            groups-per-user = 3
            sessions-per-user = 7
            groups = 11
            spawn-timeout = 5
            """
        let policy = try PolicyFile.parse(text, path: confPath)
        #expect(policy.create == .everyone)
        #expect(policy.adminGroup?.name == "adm")
        #expect(policy.adminGroup?.gid == (try systemGroup("adm")))
        #expect(Policy.listed(policy.admins) == "root and members of adm")
        #expect(policy.namespaces == Set(NamespaceKind.allCases))
        #expect(policy.groupsPerUser == 3)
        #expect(policy.sessionsPerUser == 7)
        #expect(policy.maxGroups == 11)
        #expect(policy.spawnTimeout == 5)
    }

    @Test func auditReadsIsSummaryOrEach() throws {
        #expect(Policy.defaults().recordEachRead == false)
        #expect(try PolicyFile.parse("[audit]\nreads = each\n", path: confPath).recordEachRead == true)
        #expect(try PolicyFile.parse("[audit]\nreads = summary\n", path: confPath) == Policy.defaults())
        let error = try #require(parseError("[audit]\nreads = all\n"))
        #expect(error.message == #"audit.reads: "all" is not summary or each"#)
        #expect(Policy.defaults().readSummaryInterval == 60)
        #expect(try PolicyFile.parse("[audit]\nread-summary-interval = 5\n", path: confPath).readSummaryInterval == 5)
        #expect(try #require(parseError("[audit]\nread-summary-interval = 0\n")).message
                == #"audit.read-summary-interval: "0" is not a whole number from 1 to 86400"#)
    }

    @Test func auditRefusalBudgetKeys() throws {
        let defaults = Policy.defaults()
        #expect(defaults.refusalsPerInterval == 50)
        #expect(defaults.refusalInterval == 60)
        let policy = try PolicyFile.parse("[audit]\nrefusals-per-interval = 20\nrefusal-interval = 2\n", path: confPath)
        #expect(policy.refusalsPerInterval == 20)
        #expect(policy.refusalInterval == 2)
        var expected = defaults
        expected.refusalsPerInterval = 20
        expected.refusalInterval = 2
        #expect(policy == expected)
        #expect(policy != defaults, "both keys count in ==")
        var other = defaults
        other.refusalInterval = 61
        #expect(other != defaults)
        #expect(try PolicyFile.parse("[audit]\nrefusals-per-interval = 1\nrefusal-interval = 86400\n", path: confPath).refusalInterval == 86_400)
        #expect(try PolicyFile.parse("[audit]\nrefusals-per-interval = 1000000\n", path: confPath).refusalsPerInterval == 1_000_000)
        for (text, message) in [
            ("refusals-per-interval = 0", #"audit.refusals-per-interval: "0" is not a whole number from 1 to 1000000"#),
            ("refusals-per-interval = 1000001", #"audit.refusals-per-interval: "1000001" is not a whole number from 1 to 1000000"#),
            ("refusals-per-interval = unlimited", #"audit.refusals-per-interval: "unlimited" is not a whole number from 1 to 1000000"#),
            ("refusals-per-interval = -5", #"audit.refusals-per-interval: "-5" is not a whole number from 1 to 1000000"#),
            ("refusal-interval = 0", #"audit.refusal-interval: "0" is not a whole number from 1 to 86400"#),
            ("refusal-interval = 86401", #"audit.refusal-interval: "86401" is not a whole number from 1 to 86400"#),
            ("refusal-interval = 1m", #"audit.refusal-interval: "1m" is not a whole number from 1 to 86400"#),
            ("refusal-interval =", #"audit.refusal-interval: "" is not a whole number from 1 to 86400"#),
        ] {
            let error = try #require(parseError("[audit]\n\(text)\n"))
            #expect(error.message == message)
            #expect(error.description.contains("\(confPath):2:"), "\(error)")
        }
        let twice = try #require(parseError("[audit]\nrefusal-interval = 5\nrefusal-interval = 6\n"))
        #expect(twice.message == "audit.refusal-interval is set twice (first on line 2)")
        let misplaced = try #require(parseError("[limits]\nrefusal-interval = 5\n"))
        #expect(misplaced.message.hasPrefix("unknown key \"refusal-interval\" in [limits]"))
    }

    @Test func aMissingKeyKeepsItsDefault() throws {
        let policy = try PolicyFile.parse("[limits]\ngroups = 9\n", path: confPath)
        var expected = Policy.defaults()
        expected.maxGroups = 9
        #expect(policy == expected)
    }

    @Test func createNamesUsersAndGroups() throws {
        let policy = try PolicyFile.parse("[access]\ncreate = daemon, @adm,root , @root\n", path: confPath)
        let expected = Policy.CreateRule.only(
            users: [try systemUser("daemon"), try systemUser("root")],
            groups: [try systemGroup("adm"), try systemGroup("root")],
            text: "daemon, @adm, root, @root")
        #expect(policy.create == expected)
    }

    @Test func createListsMayHaveEmptyItems() throws {
        let policy = try PolicyFile.parse("[access]\ncreate = ,daemon,,\n", path: confPath)
        #expect(policy.create == .only(users: [try systemUser("daemon")], groups: [], text: "daemon"))
    }

    @Test func createStarIsEveryone() throws {
        #expect(try PolicyFile.parse("[access]\ncreate = *\n", path: confPath).create == .everyone)
        #expect(try PolicyFile.parse("[access]\ncreate=*", path: confPath).create == .everyone)
    }

    @Test func anEmptyAdminGroupMeansOnlyRoot() throws {
        let policy = try PolicyFile.parse("[access]\nadmin-group =\n", path: confPath)
        #expect(policy.adminGroup == nil)
        #expect(Policy.listed(policy.admins) == "root")
        let nobody = credentials(uid: 1234, gid: 1234, groups: Array(0...2000).map { gid_t($0) })
        #expect(!policy.isAdmin(nobody), "with no admin group, no group membership makes an admin")
        #expect(policy.isAdmin(credentials(uid: 0, gid: 0)))
    }

    @Test(arguments: [
        ("uts, net", [NamespaceKind.uts, .net]),
        ("net", [.net]),
        ("mnt,uts,ipc,pid,net,user,cgroup,time", NamespaceKind.allCases),
        ("  time ,\tuser  ", [.time, .user]),
        ("uts, net,", [.uts, .net]),
    ])
    func namespacesNamesKinds(_ value: String, _ kinds: [NamespaceKind]) throws {
        let policy = try PolicyFile.parse("[access]\nnamespaces = \(value)\n", path: confPath)
        #expect(policy.namespaces == Set(kinds))
    }

    /// An empty list, or a kind named twice, is a mistake, not a policy.
    @Test func anEmptyOrRepeatedNamespacesListIsRefused() throws {
        for (value, message) in [("", "name at least one namespace kind"), ("uts, uts", "\"uts\" is named twice")] {
            let error = try #require(parseError("[access]\nnamespaces = \(value)\n"))
            #expect(error.description == "\(confPath):2: access.namespaces: \(message)")
        }
    }

    @Test(arguments: [("0", 0), ("1", 1), ("16", 16), ("1000000", 1_000_000), ("007", 7)])
    func limitsTakeWholeNumbers(_ value: String, _ number: Int) throws {
        let text = "[limits]\ngroups-per-user = \(value)\nsessions-per-user = \(value)\ngroups = \(value)\n"
        let policy = try PolicyFile.parse(text, path: confPath)
        #expect(policy.groupsPerUser == number)
        #expect(policy.sessionsPerUser == number)
        #expect(policy.maxGroups == number)
    }

    @Test func spacingAroundKeysValuesAndHeaders() throws {
        let text = "  [ limits ]  \n\tgroups\t=\t5\t\ngroups-per-user=6\n   sessions-per-user   =   7   \n"
        let policy = try PolicyFile.parse(text, path: confPath)
        #expect(policy.maxGroups == 5)
        #expect(policy.groupsPerUser == 6)
        #expect(policy.sessionsPerUser == 7)
    }

    @Test func commentsStartWithHashOrSemicolonAnywhere() throws {
        let text = """
            # a whole-line comment
            ; another one
            [limits] # after a header
            groups = 5 # after a value
            groups-per-user = 6; right after a value
            sessions-per-user = 7 ;# both
                # an indented comment
            """
        let policy = try PolicyFile.parse(text, path: confPath)
        #expect(policy.maxGroups == 5)
        #expect(policy.groupsPerUser == 6)
        #expect(policy.sessionsPerUser == 7)
    }

    @Test func aSectionMayBeOpenedAgain() throws {
        let text = "[limits]\ngroups = 5\n[access]\ncreate = daemon\n[limits]\ngroups-per-user = 6\n"
        let policy = try PolicyFile.parse(text, path: confPath)
        #expect(policy.maxGroups == 5)
        #expect(policy.groupsPerUser == 6)
        #expect(policy.create == .only(users: [try systemUser("daemon")], groups: [], text: "daemon"))
    }

    @Test func aFileWithoutAFinalNewline() throws {
        #expect(try PolicyFile.parse("[limits]\ngroups = 5", path: confPath).maxGroups == 5)
    }

    /// A file written on Windows (or by an editor set to CRLF) means the same.
    @Test func crlfLineEndings() throws {
        let text = "# policy\r\n[access]\r\ncreate = daemon, @adm\r\nnamespaces = uts, net\r\n\r\n[limits]\r\ngroups = 5\r\n"
        let policy = try PolicyFile.parse(text, path: confPath)
        #expect(policy.create == .only(users: [try systemUser("daemon")], groups: [try systemGroup("adm")], text: "daemon, @adm"))
        #expect(policy.namespaces == [.uts, .net])
        #expect(policy.maxGroups == 5)
    }

    /// With CRLF endings an error still names its own line.
    @Test func crlfErrorsNameTheirLine() throws {
        let error = try #require(parseError("[limits]\r\ngroups = 5\r\nbogus = 1\r\n"))
        #expect(error.kind == .configuration(path: confPath, line: 3))
        #expect(error.description == #"/etc/nsgroup/nsgroupd.conf:3: unknown key "bogus" in [limits]; keys there are cpus-per-group, cpus-per-user, groups, groups-per-user, memory-per-group, memory-per-user, pids-per-group, pids-per-user, sessions-per-user, spawn-timeout, tmpfs-per-user, tmpfs-size"#)
    }
}

// MARK: - Errors

@Suite("PolicyFile: errors name the file and the line")
struct PolicyFileErrorTests {
    @Test(arguments: [
        // Sections.
        ("[acess]", 1, "unknown section [acess]; sections are [access], [limits], [connections] and [audit]"),
        ("[Access]", 1, "unknown section [Access]; sections are [access], [limits], [connections] and [audit]"),
        ("[]", 1, "unknown section []; sections are [access], [limits], [connections] and [audit]"),
        ("[access.limits]", 1, "unknown section [access.limits]; sections are [access], [limits], [connections] and [audit]"),
        ("[access", 1, "a section header must end with ]"),
        ("[limits # closed in a comment ]", 1, "a section header must end with ]"),
        // Keys.
        ("[access]\ncreat = *", 2, #"unknown key "creat" in [access]; keys there are admin-group, create, namespaces, tmpfs-paths"#),
        ("[limits]\ncreate = *", 2, #"unknown key "create" in [limits]; keys there are cpus-per-group, cpus-per-user, groups, groups-per-user, memory-per-group, memory-per-user, pids-per-group, pids-per-user, sessions-per-user, spawn-timeout, tmpfs-per-user, tmpfs-size"#),
        ("[access]\ngroups = 5", 2, #"unknown key "groups" in [access]; keys there are admin-group, create, namespaces, tmpfs-paths"#),
        ("[limits]\nspawn-timeout = 0", 2, #"limits.spawn-timeout: "0" is not a whole number from 1 to 3600"#),
        ("[limits]\nGroups = 5", 2, #"unknown key "Groups" in [limits]; keys there are cpus-per-group, cpus-per-user, groups, groups-per-user, memory-per-group, memory-per-user, pids-per-group, pids-per-user, sessions-per-user, spawn-timeout, tmpfs-per-user, tmpfs-size"#),
        ("[limits]\n= 5", 2, #"unknown key "" in [limits]; keys there are cpus-per-group, cpus-per-user, groups, groups-per-user, memory-per-group, memory-per-user, pids-per-group, pids-per-user, sessions-per-user, spawn-timeout, tmpfs-per-user, tmpfs-size"#),
        ("create = *", 1, #""create" must be inside a section ([access], [limits], [connections] or [audit])"#),
        ("# first\n\ngroups = 5\n[limits]", 3, #""groups" must be inside a section ([access], [limits], [connections] or [audit])"#),
        ("[access]\ncreate", 2, "expected key = value"),
        ("[access]\ncreate * # no equals sign", 2, "expected key = value"),
        // Repeats, across re-opened sections too.
        ("[limits]\ngroups = 1\ngroups = 2", 3, "limits.groups is set twice (first on line 2)"),
        ("[limits]\ngroups = 1\n\n[access]\ncreate = *\n[limits]\ngroups = 1", 7, "limits.groups is set twice (first on line 2)"),
        ("[access]\n# c\ncreate = *\ncreate = daemon", 4, "access.create is set twice (first on line 3)"),
        // tmpfs places: never a system directory, below one or holding one.
        ("[access]\ntmpfs-paths = /tmp, /usr/local/sbin", 2, "access.tmpfs-paths: /usr/local/sbin is or holds /usr, where programs or configuration of the system or of other users live"),
        ("[access]\ntmpfs-paths = /home", 2, "access.tmpfs-paths: /home is or holds /home, where programs or configuration of the system or of other users live"),
        ("[access]\ntmpfs-paths = /var", 2, "access.tmpfs-paths: /var is or holds /var/cache, where programs or configuration of the system or of other users live"),
        ("[access]\ntmpfs-paths = /", 2, #"access.tmpfs-paths: "/" is not ~ or an absolute, normalised path other than /"#),
        ("[access]\ntmpfs-paths = tmp", 2, #"access.tmpfs-paths: "tmp" is not ~ or an absolute, normalised path other than /"#),
        ("[access]\ntmpfs-paths = /srv/../etc", 2, #"access.tmpfs-paths: "/srv/../etc" is not ~ or an absolute, normalised path other than /"#),
        ("[access]\ntmpfs-paths = ~, ~", 2, #"access.tmpfs-paths: "~" is named twice"#),
        ("[limits]\ntmpfs-size = 1k", 2, #"limits.tmpfs-size: "1k" is not a size from 1m to 1t (bytes, or a number with k, m, g or t)"#),
        ("[limits]\ntmpfs-per-user = 2T", 2, #"limits.tmpfs-per-user: "2T" is not a size from 1m to 1t (bytes, or a number with k, m, g or t)"#),
        ("[limits]\ntmpfs-size = 1 g", 2, #"limits.tmpfs-size: "1 g" is not a size from 1m to 1t (bytes, or a number with k, m, g or t)"#),
        // Numbers.
        ("[limits]\ngroups = -1", 2, #"limits.groups: "-1" is not a whole number from 0 to 1000000"#),
        ("[limits]\ngroups = 1000001", 2, #"limits.groups: "1000001" is not a whole number from 0 to 1000000"#),
        ("[limits]\ngroups = ", 2, #"limits.groups: "" is not a whole number from 0 to 1000000"#),
        ("[limits]\ngroups = many", 2, #"limits.groups: "many" is not a whole number from 0 to 1000000"#),
        ("[limits]\ngroups-per-user = 1.5", 2, #"limits.groups-per-user: "1.5" is not a whole number from 0 to 1000000"#),
        ("[limits]\ngroups-per-user = 0x10", 2, #"limits.groups-per-user: "0x10" is not a whole number from 0 to 1000000"#),
        ("[limits]\nsessions-per-user = 1 000", 2, #"limits.sessions-per-user: "1 000" is not a whole number from 0 to 1000000"#),
        ("[limits]\nsessions-per-user = 99999999999999999999999", 2,
         #"limits.sessions-per-user: "99999999999999999999999" is not a whole number from 0 to 1000000"#),
        // Users, groups and kinds that do not exist.
        ("[access]\ncreate = daemon, nsg-no-such-user", 2, #"access.create: no user named "nsg-no-such-user""#),
        ("[access]\ncreate = @nsg-no-such-group", 2, #"access.create: no group named "nsg-no-such-group""#),
        ("[access]\ncreate = @", 2, #"access.create: no group named """#),
        ("[access]\ncreate = *, daemon", 2, #"access.create: no user named "*""#),
        ("[access]\ncreate =", 2, "access.create: name users and @groups, or * for everyone"),
        ("[access]\ncreate = , ,", 2, "access.create: name users and @groups, or * for everyone"),
        ("[access]\nadmin-group = nsg-no-such-group", 2, #"access.admin-group: no group named "nsg-no-such-group""#),
        ("[access]\nnamespaces = uts, mount", 2,
         #"access.namespaces: unknown namespace kind "mount"; kinds are mnt, uts, ipc, pid, net, user, cgroup, time"#),
        ("[access]\nnamespaces = UTS", 2,
         #"access.namespaces: unknown namespace kind "UTS"; kinds are mnt, uts, ipc, pid, net, user, cgroup, time"#),
    ])
    func refused(_ text: String, _ line: Int, _ message: String) throws {
        let error = try #require(parseError(text))
        #expect(error.kind == .configuration(path: confPath, line: line))
        #expect(error.message == message)
        #expect(error.description == "\(confPath):\(line): \(message)")
    }

    /// The first error stops the parse: later lines are not looked at.
    @Test func theFirstErrorIsReported() throws {
        let error = try #require(parseError("[limits]\ngroups = x\n[nope]\nbogus\n"))
        #expect(error.kind == .configuration(path: confPath, line: 2))
    }

    /// Lines are counted from 1, comments and blank lines included.
    @Test func lineNumbersCountEveryLine() throws {
        let error = try #require(parseError("# header\n\n; note\n[access]\n\n\ncreate = nsg-no-such-user\n"))
        #expect(error.kind == .configuration(path: confPath, line: 7))
    }

    @Test func anErrorWithoutALineNamesOnlyThePath() throws {
        let error = SupervisorError(.configuration(path: "/x.conf", line: 0), "cannot read: Permission denied")
        #expect(error.description == "/x.conf: cannot read: Permission denied")
    }
}

// MARK: - Loading

@Suite("PolicyFile.load")
struct PolicyFileLoadTests {
    @Test func aMissingFileIsTheDefaultsUnlessItWasNamed() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path + "/nsgroupd.conf"
        #expect(try PolicyFile.load(path: path, required: false) == Policy.defaults())
        let error = try #require(loadError(path, required: true))
        #expect(error.kind == .configuration(path: path, line: 0))
        #expect(error.description == "\(path): cannot read: No such file or directory")
    }

    @Test func aFileIsReadAndParsed() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path + "/nsgroupd.conf"
        try writeConfig(path, Array("[limits]\ngroups = 5\n".utf8))
        for required in [false, true] {
            #expect(try PolicyFile.load(path: path, required: required).maxGroups == 5)
        }
        try writeConfig(path, Array("[limits]\ngroups = 5\nbogus = 1\n".utf8))
        let error = try #require(loadError(path, required: false))
        #expect(error.description == #"\#(path):3: unknown key "bogus" in [limits]; keys there are cpus-per-group, cpus-per-user, groups, groups-per-user, memory-per-group, memory-per-user, pids-per-group, pids-per-user, sessions-per-user, spawn-timeout, tmpfs-per-user, tmpfs-size"#)
    }

    /// O_NOFOLLOW: a symlink is refused even when it points at a good file,
    /// and even when the file was not named (a planted link is not the defaults).
    @Test func aSymlinkIsRefused() throws {
        let scratch = try ScratchDirectory()
        let target = scratch.path + "/real.conf"
        let link = scratch.path + "/nsgroupd.conf"
        try writeConfig(target, Array("[limits]\ngroups = 5\n".utf8))
        #expect(symlink(target, link) == 0)
        for required in [false, true] {
            let error = try #require(loadError(link, required: required))
            #expect(error.kind == .configuration(path: link, line: 0))
            #expect(error.description == "\(link): cannot read: Too many levels of symbolic links")
        }
        // A dangling link is not a missing file either.
        let dangling = scratch.path + "/dangling.conf"
        #expect(symlink(scratch.path + "/absent.conf", dangling) == 0)
        let error = try #require(loadError(dangling, required: false))
        #expect(error.description == "\(dangling): cannot read: Too many levels of symbolic links")
    }

    @Test func aDirectoryIsRefused() throws {
        let scratch = try ScratchDirectory()
        let error = try #require(loadError(scratch.path, required: false))
        #expect(error.description == "\(scratch.path): is not a regular file")
    }

    /// "A policy is never half read": a file longer than what load reads
    /// must not be taken as its first part.
    @Test func aFileIsNeverHalfRead() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path + "/nsgroupd.conf"
        // Comment lines up to just before 1 MiB, then a value that straddles
        // it: the first MiB ends in "groups = 1".
        let mebibyte = 1 << 20
        var text = "[limits]\n"
        let filler = "# " + String(repeating: "x", count: 1021) + "\n"  // 1024 bytes
        while text.utf8.count + filler.utf8.count <= mebibyte - 10 - 3 { text += filler }
        text += "#" + String(repeating: "y", count: mebibyte - 10 - text.utf8.count - 2) + "\n"
        #expect(text.utf8.count == mebibyte - 10)
        text += "groups = 100\n"
        #expect(Array(text.utf8)[(mebibyte - 10)..<mebibyte] == Array("groups = 1".utf8)[...])
        try writeConfig(path, Array(text.utf8))
        do throws(SupervisorError) {
            let policy = try PolicyFile.load(path: path, required: true)
            #expect(policy.maxGroups == 100, "the file was cut short: limits.groups = 100 was read as \(policy.maxGroups)")
        } catch {
            // Refusing an oversized file is as good.
        }
    }

    @Test func invalidUTF8DoesNotStopTheParse() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path + "/nsgroupd.conf"
        try writeConfig(path, Array("# caf".utf8) + [0xE9] + Array("\n[limits]\ngroups = 5\n".utf8))
        #expect(try PolicyFile.load(path: path, required: true).maxGroups == 5)
    }
}

// MARK: - Decisions

@Suite("Policy decisions")
struct PolicyDecisionTests {
    static let ownerUID: uid_t = 51001
    static let memberUID: uid_t = 51004
    static let friendsGID: gid_t = 51003
    static let adminGID: gid_t = 51099

    func policy(create: Policy.CreateRule = .everyone, admins: Bool = true) -> Policy {
        var policy = Policy()
        policy.create = create
        policy.adminGroup = admins ? ("wheel-test", Self.adminGID) : nil
        return policy
    }

    let root = credentials(uid: 0, gid: 0)
    let admin = credentials(uid: 51002, gid: 51002, groups: [51002, PolicyDecisionTests.adminGID])
    let adminByPrimaryGroup = credentials(uid: 51005, gid: PolicyDecisionTests.adminGID)
    let owner = credentials(uid: PolicyDecisionTests.ownerUID, gid: PolicyDecisionTests.ownerUID,
                            groups: [PolicyDecisionTests.ownerUID])
    let member = credentials(uid: PolicyDecisionTests.memberUID, gid: PolicyDecisionTests.memberUID,
                             groups: [PolicyDecisionTests.memberUID])
    let friend = credentials(uid: 51006, gid: 51006, groups: [51006, PolicyDecisionTests.friendsGID])
    let friendByPrimaryGroup = credentials(uid: 51007, gid: PolicyDecisionTests.friendsGID)
    let stranger = credentials(uid: 51008, gid: 51008, groups: [51008, 100])

    /// A group owned by ownerUID, shared with memberUID and @friendsGID; its
    /// "holder" is this test process (nothing is ever signalled).
    func sharedGroup() throws -> Group {
        let record = GroupRecord(
            name: "shared", owner: Self.ownerUID, ownerName: "owner",
            namespaces: [NamespaceID(kind: .uts, inode: 4_026_532_000)],
            holderPID: getpid(), holderStartTime: 1, created: 1_795_000_000, hostname: "shared", tmpfs: [],
            members: [.user(uid: Self.memberUID, name: "member"), .group(gid: Self.friendsGID, name: "friends")], sessions: [])
        return Group(record: record, holder: try Pidfd.open(pid: getpid()))
    }

    @Test func isAdmin() {
        let policy = policy()
        #expect(policy.isAdmin(root))
        #expect(policy.isAdmin(admin))
        #expect(policy.isAdmin(adminByPrimaryGroup))
        for caller in [owner, member, friend, stranger] { #expect(!policy.isAdmin(caller), "\(caller)") }
        // Without an admin group only root administers; gid 0 alone is not root.
        let noAdmins = self.policy(admins: false)
        #expect(noAdmins.isAdmin(root))
        #expect(!noAdmins.isAdmin(admin))
        #expect(!noAdmins.isAdmin(credentials(uid: 51010, gid: 0, groups: [0])))
        #expect(Policy.listed(noAdmins.admins) == "root")
        #expect(Policy.listed(policy.admins) == "root and members of wheel-test")
    }

    @Test func everyoneMayCreateByDefault() {
        let policy = policy()
        for caller in [root, admin, owner, member, friend, stranger] { #expect(policy.mayCreate(caller), "\(caller)") }
    }

    @Test func theCreateRuleAdmitsItsUsersAndGroupsAndAdmins() {
        let policy = policy(create: .only(users: [Self.ownerUID], groups: [Self.friendsGID], text: "owner, @friends"))
        #expect(policy.mayCreate(owner))
        #expect(policy.mayCreate(friend))
        #expect(policy.mayCreate(friendByPrimaryGroup))
        #expect(policy.mayCreate(root))
        #expect(policy.mayCreate(admin))
        #expect(policy.mayCreate(adminByPrimaryGroup))
        #expect(!policy.mayCreate(member))
        #expect(!policy.mayCreate(stranger))
        // An empty rule leaves only root and admins.
        let nobody = self.policy(create: .only(users: [], groups: [], text: ""))
        #expect(nobody.mayCreate(root) && nobody.mayCreate(admin))
        #expect(!nobody.mayCreate(owner))
        // Without an admin group, a former admin is just a user.
        let noAdmins = self.policy(create: .only(users: [Self.ownerUID], groups: [], text: "owner"), admins: false)
        #expect(!noAdmins.mayCreate(admin))
        #expect(noAdmins.mayCreate(root))
    }

    @Test func manageIsForTheOwnerAndAdminsUseAlsoForMembers() throws {
        let group = try sharedGroup()
        let policy = policy()
        let cases: [(PeerCredentials, manage: Bool, use: Bool)] = [
            (root, true, true), (admin, true, true), (adminByPrimaryGroup, true, true), (owner, true, true),
            (member, false, true), (friend, false, true), (friendByPrimaryGroup, false, true),
            (stranger, false, false),
        ]
        for (caller, manage, use) in cases {
            #expect(policy.mayManage(caller, group) == manage, "\(caller)")
            #expect(policy.mayUse(caller, group) == use, "\(caller)")
        }
        // The owner's own gid, or sharing the owner's primary group, gives nothing.
        let sameGroupAsOwner = credentials(uid: 51011, gid: Self.ownerUID, groups: [Self.ownerUID])
        #expect(!policy.mayUse(sameGroupAsOwner, group))
    }

    @Test func membersAreMatchedByIDNotName() throws {
        let dave = Member.user(uid: 51004, name: "dave")
        let friends = Member.group(gid: 51003, name: "friends")
        #expect(dave.admits(member))
        #expect(!dave.admits(credentials(uid: 51012, gid: 51004)), "a gid equal to the member's uid is not the member")
        #expect(friends.admits(friend) && friends.admits(friendByPrimaryGroup))
        #expect(!friends.admits(credentials(uid: 51003, gid: 1)), "a uid equal to the group's gid is not a member")
        #expect(dave.sameAs(.user(uid: 51004, name: "renamed")))
        #expect(!dave.sameAs(.group(gid: 51004, name: "dave")))
        #expect(friends.sameAs(.group(gid: 51003, name: "other")))
        #expect(dave.description == "dave")
        #expect(friends.description == "@friends")
    }

    @Test func membersResolveNamesAndNumbers() throws {
        #expect(try Member.resolve("root", method: "share", names: .database) == .user(uid: 0, name: "root"))
        #expect(try Member.resolve("@root", method: "share", names: .database) == .group(gid: 0, name: "root"))
        #expect(try Member.resolve("0", method: "share", names: .database) == .user(uid: 0, name: "root"))
        #expect(try Member.resolve("@0", method: "share", names: .database) == .group(gid: 0, name: "root"))
        // A number nobody has is taken as is.
        #expect(try Member.resolve("3999999", method: "share", names: .database) == .user(uid: 3_999_999, name: "3999999"))
        #expect(try Member.resolve("@3999999", method: "share", names: .database) == .group(gid: 3_999_999, name: "3999999"))
        let cases: [(String, String)] = [
            ("nsg-no-such-user", #"create: no user named "nsg-no-such-user""#),
            ("@nsg-no-such-group", #"create: no group named "nsg-no-such-group""#),
            ("", #"create: invalid user name """#),
            ("@", #"create: invalid group name """#),
            ("nsg-dave\u{0}junk", #"create: invalid user name "nsg-dave\u0000junk""#),
            ("01004", #"create: no user named "01004""#),
            ("4294967295", #"create: no user named "4294967295""#),
        ]
        for (text, message) in cases {
            let error = try #require(refusal { () throws(RPCError) in try Member.resolve(text, method: "create", names: .database) })
            #expect(error.reason == .invalidParams)
            #expect(error.message == message)
        }
    }

    @Test func policiesCompareByEveryField() {
        var a = policy()
        var b = policy()
        #expect(a == b)
        b.adminGroup = ("wheel-test", 1)
        #expect(a != b)
        b = a
        b.create = .only(users: [1], groups: [], text: "x")
        #expect(a != b)
        b = a
        b.namespaces = [.uts]
        #expect(a != b)
        a.groupsPerUser = 1
        b = policy()
        #expect(a != b)
        a = policy()
        a.recordEachRead = true
        #expect(a != b)
    }
}

@Suite("tmpfs places and sizes")
struct TmpfsPolicyTests {
    @Test func theDefaultsAndTheirForms() throws {
        let defaults = try PolicyFile.parse("", path: confPath)
        #expect(defaults.tmpfsPaths.map(\.description) == ["/tmp", "/var/tmp", "/mnt", "/srv", "/media", "~"])
        #expect(defaults.tmpfsSize == 1 << 30)
        #expect(defaults.tmpfsPerUser == 4 << 30)
        let set = try PolicyFile.parse("[access]\ntmpfs-paths = /scratch, ~\n[limits]\ntmpfs-size = 64M\ntmpfs-per-user = 1536k\n", path: confPath)
        #expect(set.tmpfsPaths == [.directory("/scratch"), .home])
        #expect(set.tmpfsSize == 64 << 20)
        #expect(set.tmpfsPerUser == 1536 << 10)
        #expect(try PolicyFile.parse("[access]\ntmpfs-paths =\n", path: confPath).tmpfsPaths.isEmpty)
    }

    @Test func placesAdmitTheirOwnTreeOnly() {
        let tmp = TmpfsPlace.directory("/tmp")
        #expect(tmp.admits("/tmp", home: nil))
        #expect(tmp.admits("/tmp/a/b", home: nil))
        #expect(!tmp.admits("/tmpx", home: nil))
        #expect(!tmp.admits("/", home: nil))
        #expect(TmpfsPlace.home.admits("/home/alice/build", home: "/home/alice"))
        #expect(TmpfsPlace.home.admits("/home/alice", home: "/home/alice/"))
        #expect(!TmpfsPlace.home.admits("/home/alicex", home: "/home/alice"))
        #expect(!TmpfsPlace.home.admits("/home/bob", home: "/home/alice"))
        // A home outside /home (a service account's, root's) admits nothing.
        #expect(!TmpfsPlace.home.admits("/var/lib/svc", home: "/var/lib/svc"))
        #expect(!TmpfsPlace.home.admits("/", home: "/"))
        #expect(!TmpfsPlace.home.admits("/home/x", home: nil))
    }

    @Test func byteSizes() {
        #expect(ByteSize.parse("1") == 1)
        #expect(ByteSize.parse("64m") == 64 << 20)
        #expect(ByteSize.parse("2G") == 2 << 30)
        #expect(ByteSize.parse("1t") == 1 << 40)
        #expect(ByteSize.parse("999999999999g") == .max)
        #expect(ByteSize.parse("99999999999999999999999") == .max)
        for bad in ["", "k", "1.5g", "-1", "1 m", "1mb", "0x10"] { #expect(ByteSize.parse(bad) == nil, "\(bad)") }
        #expect(ByteSize.format(1 << 30) == "1g")
        #expect(ByteSize.format(1536 << 10) == "1536k")
        #expect(ByteSize.format(1000) == "1000")
        #expect(ByteSize.format(12 << 20) == "12m")
        #expect(TmpfsMount(path: "/t", options: "mode=0700,size=8m").size == "8m")
        #expect(TmpfsMount(path: "/t", options: "mode=0700").size == nil)
        #expect(CreateHandler.tmpfsBytes("8m") == 8 << 20)
        #expect(CreateHandler.tmpfsBytes("100%") == UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE))) / 100 * 100)
    }
}
