import Testing
@testable import Supervisor
import Namespaces
import RPC

/// The RPCError `body` throws, or nil (with an issue recorded) when it returns.
func refusal<T>(_ body: () throws(RPCError) -> T, sourceLocation: SourceLocation = #_sourceLocation) -> RPCError? {
    do throws(RPCError) {
        let value = try body()
        Issue.record("expected a refusal, got \(value)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

@Suite("create: namespace kinds")
struct NamespaceKindsValidationTests {
    @Test func absentMeansTheDefaultSet() throws {
        #expect(try CreateHandler.namespaceKinds(nil) == Set(NamespaceKind.defaultSet))
    }

    @Test(arguments: [
        ["mnt"], ["uts"], ["ipc"], ["pid"], ["net"], ["cgroup"],
        ["net", "mnt"], ["mnt", "uts", "ipc", "pid", "net", "cgroup"], ["cgroup", "pid"],
    ])
    func accepted(_ names: [String]) throws {
        let kinds = try CreateHandler.namespaceKinds(names)
        #expect(kinds == Set(names.compactMap(NamespaceKind.init(rawValue:))))
        #expect(kinds.count == names.count)
    }

    @Test func emptyListIsRefused() throws {
        let error = try #require(refusal { () throws(RPCError) in try CreateHandler.namespaceKinds([]) })
        #expect(error.reason == .invalidParams)
        #expect(error.message == #"create: "namespaces" must name at least one kind"#)
    }

    @Test(arguments: ["bogus", "MNT", "mount", "", "pid_for_children", "net "])
    func unknownKindIsRefused(_ name: String) throws {
        let error = try #require(refusal { () throws(RPCError) in try CreateHandler.namespaceKinds(["mnt", name]) })
        #expect(error.reason == .invalidParams)
        #expect(error.message == "create: unknown namespace kind \(JSONValue.string(name).serialized()); kinds are mnt, uts, ipc, pid, net, user, cgroup, time")
    }

    @Test func unknownKindIsShownAsJSON() throws {
        let error = try #require(refusal { () throws(RPCError) in try CreateHandler.namespaceKinds(["a\"b\n"]) })
        #expect(error.message.hasPrefix(#"create: unknown namespace kind "a\"b\n"; "#))
    }

    @Test(arguments: [["net", "net"], ["mnt", "uts", "mnt"], ["cgroup", "pid", "cgroup"]])
    func repeatedKindIsRefused(_ names: [String]) throws {
        let error = try #require(refusal { () throws(RPCError) in try CreateHandler.namespaceKinds(names) })
        #expect(error.reason == .invalidParams)
        let repeated = names.last!
        #expect(error.message == "create: namespace kind \"\(repeated)\" is named twice")
    }

    @Test(arguments: ["user", "time"])
    func userAndTimeAreKinds(_ name: String) throws {
        for names in [[name], ["mnt", name]] {
            let kinds = try CreateHandler.namespaceKinds(names)
            #expect(kinds == Set(names.compactMap(NamespaceKind.init(rawValue:))))
        }
    }
}

@Suite("create: hostname")
struct HostnameValidationTests {
    static let withUTS: Set<NamespaceKind> = [.uts, .mnt]
    static let withoutUTS: Set<NamespaceKind> = [.mnt, .net]

    @Test func noUTSNoHostname() throws {
        #expect(try CreateHandler.hostname(nil, kinds: Self.withoutUTS, name: "web") == nil)
    }

    @Test func hostnameNeedsUTS() throws {
        let error = try #require(refusal { () throws(RPCError) in try CreateHandler.hostname("box", kinds: Self.withoutUTS, name: "web") })
        #expect(error.reason == .invalidParams)
        #expect(error.message == #"create: "hostname" needs a uts namespace"#)
    }

    @Test func utsDefaultsToTheGroupName() throws {
        #expect(try CreateHandler.hostname(nil, kinds: Self.withUTS, name: "web-1") == "web-1")
    }

    @Test(arguments: [
        "a", "Box", "web-1", "a.b.c", "under_score", "a-", "0", "x.", "...", "_",
        String(repeating: "h", count: 64),
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.",
    ])
    func accepted(_ hostname: String) throws {
        #expect(try CreateHandler.hostname(hostname, kinds: Self.withUTS, name: "g") == hostname)
    }

    @Test(arguments: [
        "", "-a", "-", String(repeating: "h", count: 65), "a b", "a/b", "a:b", "ä", "a\0b", "a\nb", "a\"b",
        " a", "a@b", "host\u{301}",
    ])
    func refused(_ hostname: String) throws {
        let error = try #require(refusal { () throws(RPCError) in try CreateHandler.hostname(hostname, kinds: Self.withUTS, name: "g") })
        #expect(error.reason == .invalidParams)
        #expect(error.message == "create: invalid hostname \(JSONValue.string(hostname).serialized()): 1 to 64 characters of A-Z, a-z, 0-9, '-', '.', '_', not starting with '-'")
    }

    @Test func lengthIsCountedInBytes() throws {
        // 32 two-byte characters: 64 bytes, but not allowed characters anyway; 64 ASCII bytes are fine.
        #expect(refusal { () throws(RPCError) in try CreateHandler.hostname(String(repeating: "é", count: 32), kinds: Self.withUTS, name: "g") } != nil)
        #expect(try CreateHandler.hostname(String(repeating: "e", count: 64), kinds: Self.withUTS, name: "g")?.utf8.count == 64)
    }
}

@Suite("create: tmpfs mounts")
struct TmpfsValidationTests {
    static let withMnt: Set<NamespaceKind> = [.mnt, .uts]

    static func message(_ path: String) -> String {
        "create: tmpfs path \(JSONValue.string(String(path.prefix(256))).serialized()) must be an absolute, normalised path other than / (no //, . or .. components, no ':')"
    }

    @Test func noneIsFineWithoutMnt() throws {
        #expect(try CreateHandler.tmpfsMounts([], kinds: [.net]) == [])
        #expect(try CreateHandler.tmpfsMounts([], kinds: Self.withMnt) == [])
    }

    @Test func tmpfsNeedsMnt() throws {
        let error = try #require(refusal { () throws(RPCError) in try CreateHandler.tmpfsMounts(["/tmp"], kinds: [.uts, .net]) })
        #expect(error.reason == .invalidParams)
        #expect(error.message == #"create: "tmpfs" needs a mnt namespace"#)
    }

    @Test(arguments: [
        ["/tmp"], ["/tmp", "/var/tmp"], ["/a/b/c"], ["/a/.b"], ["/..."], ["/a..b"], ["/.hidden"], ["/a b"],
        ["/tmp", "/tmp/inner"], ["/" + String(repeating: "x", count: 4094)],
    ])
    func accepted(_ paths: [String]) throws {
        let mounts = try CreateHandler.tmpfsMounts(paths, kinds: Self.withMnt)
        #expect(mounts.map(\.path) == paths)
        #expect(mounts.allSatisfy { $0.options == "mode=0700" })
    }

    @Test func atMost32() throws {
        let paths32 = (0..<32).map { "/t\($0)" }
        #expect(try CreateHandler.tmpfsMounts(paths32, kinds: Self.withMnt).count == 32)
        let error = try #require(refusal { () throws(RPCError) in try CreateHandler.tmpfsMounts(paths32 + ["/t32"], kinds: Self.withMnt) })
        #expect(error.reason == .invalidParams)
        #expect(error.message == "create: at most 32 tmpfs mounts")
    }

    @Test(arguments: [
        "", "/", "tmp", "tmp/x", "./tmp", "//tmp", "/tmp/", "/tmp//x", "/./tmp", "/tmp/.", "/tmp/..", "/a/../b",
        "/..", "/.", "/a\0b", "/" + String(repeating: "x", count: 4095),
    ])
    func refused(_ path: String) throws {
        let error = try #require(refusal { () throws(RPCError) in try CreateHandler.tmpfsMounts(["/ok", path], kinds: Self.withMnt) })
        #expect(error.reason == .invalidParams)
        #expect(error.message == Self.message(path))
    }

    @Test func longPathIsShortenedInTheMessage() throws {
        let path = "relative/" + String(repeating: "y", count: 1000)
        let error = try #require(refusal { () throws(RPCError) in try CreateHandler.tmpfsMounts([path], kinds: Self.withMnt) })
        #expect(error.message == Self.message(path))
        #expect(!error.message.contains(String(repeating: "y", count: 300)))
    }

    @Test func repeatedPathIsRefused() throws {
        let error = try #require(refusal { () throws(RPCError) in try CreateHandler.tmpfsMounts(["/a", "/b", "/a"], kinds: Self.withMnt) })
        #expect(error.reason == .invalidParams)
        #expect(error.message == #"create: tmpfs path "/a" is named twice"#)
    }

    @Test func twoMountsOnOnePathAreRefused() throws {
        let binds = try CreateHandler.bindMounts(["/srv:/a", "/opt:/b:ro"], kinds: Self.withMnt)
        let error = try #require(refusal { () throws(RPCError) in
            try CreateHandler.distinctTargets(binds: binds, tmpfs: try CreateHandler.tmpfsMounts(["/c", "/b"], kinds: Self.withMnt))
        })
        #expect(error.reason == .invalidParams)
        #expect(error.message == #"create: "/b" is the target of two mounts"#)
        let twice = try CreateHandler.bindMounts(["/srv:/a", "/opt:/a"], kinds: Self.withMnt)
        #expect(refusal { () throws(RPCError) in try CreateHandler.distinctTargets(binds: twice, tmpfs: []) }?.message
                == #"create: "/a" is the target of two mounts"#)
        // Nested paths are fine: a tmpfs inside a bind.
        try CreateHandler.distinctTargets(binds: binds, tmpfs: try CreateHandler.tmpfsMounts(["/a/cache"], kinds: Self.withMnt))
    }
}
