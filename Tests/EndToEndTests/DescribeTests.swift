import Client
import Foundation
import RPC
import Testing

/// `describe` (PROTOCOL.md §8.17) against the real supervisor: the figures are the
/// policy's and the caller's own, they move as the caller creates and enters, and the
/// methods table is what the server's decoders accept.
@Suite struct DescribeTests {
    /// A configuration that binds alice to a few of everything.
    static let tightConfig = """
        [access]
        namespaces = mnt, uts, net
        [limits]
        groups-per-user = 3
        sessions-per-user = 5
        tmpfs-size = 16m
        tmpfs-per-user = 64m
        pids-per-user = 500
        pids-per-group = 100
        memory-per-group = 256m
        [connections]
        per-user = 7
        max-line = 65536

        """

    /// `nsgroup describe --json` as `user`, decoded.
    static func describe(_ supervisor: TestSupervisor, as user: TestUser?) throws -> DescribeResult {
        let result = try supervisor.nsgroup(["describe", "--json"], as: user)
        guard result.status == 0 else { throw HarnessError("describe as \(user?.name ?? "root") failed: \(result.stderr)") }
        return try DescribeResult(json: JSONParser.parse(result.stdout))
    }

    static let allKinds = ["mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time"]
    static let defaultKinds = ["mnt", "uts", "ipc", "pid", "net", "cgroup"]

    @Test func aliceSeesHerLimitsAndTheyMoveAsSheCreatesAndEnters() throws {
        let supervisor = try TestSupervisor(config: Self.tightConfig)
        let alice = try TestUser.alice()
        let before = try Self.describe(supervisor, as: alice)
        #expect(before.major == 1 && before.minor == 1)
        #expect(before.allowedKinds == ["mnt", "uts", "net"])
        #expect(before.defaultKinds == Self.defaultKinds)
        let limits = before.limits
        #expect(limits.maxLine == 65536)
        #expect(limits.groups == Allowance(max: 3, left: 3))
        #expect(limits.serverGroups == nil, "alice learns how many groups others hold")
        #expect(limits.sessions == Allowance(max: 5, left: 5))
        #expect(limits.connections == Allowance(max: 7, left: 6), "the CLI's own connection counts")
        #expect(limits.tmpfsSize == 16 << 20)
        #expect(limits.tmpfsPerUser == Allowance(max: 64 << 20, left: 64 << 20))
        #expect(limits.perGroup == GroupLimits(memory: 256 << 20, pids: 100))
        // The per-user pids limit is set where the host has the pids controller.
        let pidsPlace = before.features.controllers.first { $0.name == "pids" }?.place
        #expect(limits.perUser?.pids == (pidsPlace == "none" ? nil : 500))

        // A group with a tmpfs of the default size: one group and 16 MiB less.
        let directory = "/tmp/nsgroup-describe-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(chown(directory, alice.uid, alice.gid) == 0)
        let created = try supervisor.nsgroup(["create", "dsc-a", "--ns", "mnt,uts", "--tmpfs", directory], as: alice)
        #expect(created.status == 0, "\(created.stderr)")
        defer { _ = try? supervisor.nsgroup(["destroy", "dsc-a"]) }
        let after = try Self.describe(supervisor, as: alice).limits
        #expect(after.groups == Allowance(max: 3, left: 2))
        #expect(after.serverGroups == nil)
        #expect(try Self.describe(supervisor, as: nil).limits.serverGroups == Allowance(max: 4096, left: 4095))
        #expect(after.tmpfsPerUser == Allowance(max: 64 << 20, left: 48 << 20))

        // A running session: one less.
        let session = try supervisor.startEnter("dsc-a", ["sleep", "30"], as: alice)
        defer { session.terminate(); session.waitUntilExit() }
        try waitUntil("alice's session counted") {
            try Self.describe(supervisor, as: alice).limits.sessions == Allowance(max: 5, left: 4)
        }

        // A kind the policy refuses her is not among those listed, and create agrees.
        let refused = try supervisor.nsgroup(["create", "dsc-b", "--ns", "pid"], as: alice)
        #expect(refused.status != 0 && refused.stderr.contains("not allowed"), "\(refused.stderr)")
    }

    @Test func rootIsHeldToNoPerUserLimit() throws {
        let supervisor = try TestSupervisor(config: Self.tightConfig)
        let client = try RPCClient(socketPath: supervisor.socketPath)
        let result = try DescribeResult(json: client.call("describe").result)
        #expect(result.allowedKinds == Self.allKinds, "access.namespaces does not bind root")
        let limits = result.limits
        #expect(limits.groups == nil && limits.sessions == nil && limits.tmpfsSize == nil && limits.tmpfsPerUser == nil
                && limits.perUser == nil)
        #expect(limits.connections == Allowance(max: 7, left: 6), "connections.per-user binds root too")
        #expect(limits.serverGroups == Allowance(max: 4096, left: 4096))
        #expect(limits.perGroup == GroupLimits(memory: 256 << 20, pids: 100))
        // null, not absent, on the wire.
        let raw = try client.call("describe").result
        #expect(raw["limits"]?["groups"] == .null && raw["limits"]?["perUser"] == .null)
        // Another connection of root's: one left less.
        let second = try RPCClient(socketPath: supervisor.socketPath)
        #expect(try DescribeResult(json: second.call("describe").result).limits.connections == Allowance(max: 7, left: 5))
        withExtendedLifetime(client) {}
    }

    @Test func anAdminMayCreateEveryKindButIsCounted() throws {
        let supervisor = try TestSupervisor(config: Self.tightConfig)
        let carol = try TestUser.carol()
        let result = try Self.describe(supervisor, as: carol)
        #expect(result.allowedKinds == Self.allKinds)
        #expect(result.limits.groups == Allowance(max: 3, left: 3), "admins are users with more access, not more quota")
        #expect(result.limits.sessions == Allowance(max: 5, left: 5))
    }

    @Test func whoMayNotCreateIsOfferedNoKind() throws {
        let supervisor = try TestSupervisor(config: "[access]\ncreate = nsg-bob\n")
        #expect(try Self.describe(supervisor, as: TestUser.alice()).allowedKinds.isEmpty)
        #expect(try Self.describe(supervisor, as: TestUser.bob()).allowedKinds == Self.allKinds)
        // The default configuration's figures.
        let bob = try Self.describe(supervisor, as: TestUser.bob()).limits
        #expect(bob.groups == Allowance(max: 16, left: 16) && bob.sessions == Allowance(max: 64, left: 64))
        #expect(bob.maxLine == 1 << 20 && bob.tmpfsSize == 1 << 30)
    }

    @Test func featuresAreTheHostsOwn() throws {
        let supervisor = try TestSupervisor()
        let features = try Self.describe(supervisor, as: nil).features
        #expect(features.userNamespaces == FileManager.default.fileExists(atPath: "/proc/self/ns/user"))
        #expect(features.timeNamespaces == FileManager.default.fileExists(atPath: "/proc/self/ns/time"))
        #expect(features.controllers.map(\.name) == ["memory", "pids", "cpu"])
        #expect(features.cgroups == (features.controllers.contains { $0.place == "v1" } ? "hybrid" : "v2"))
        func openToAll(_ path: String) -> Bool {
            var info = stat()
            return stat(path, &info) == 0 && info.st_mode & 0o006 == 0o006
        }
        #expect(features.pasta == (access("/usr/bin/pasta", X_OK) == 0 && openToAll("/dev/net/tun")))
        #expect(features.overlayRoot == (access("/usr/bin/fuse-overlayfs", X_OK) == 0 && openToAll("/dev/fuse")))
    }

    /// Every parameter the table lists is one the server reads, every required one is
    /// required, and none it does not list is taken: each checked by a request that the
    /// decoder refuses before any handler runs.
    @Test func theMethodsTableIsWhatTheServerAccepts() throws {
        let supervisor = try TestSupervisor()
        let client = try RPCClient(socketPath: supervisor.socketPath)
        let result = try DescribeResult(json: client.call("describe").result)
        let version = try VersionResult(json: client.call("version").result)
        #expect(result.methods.map(\.name) == version.methods)
        #expect(version.methods == MethodName.allCases.map(\.rawValue))
        let valid: [String: JSONValue] = ["name": "dsc-none", "tty": true, "session": 1, "signal": 15, "members": ["nsg-bob"],
                                           "subscription": 1, "rows": 24, "columns": 80]
        for method in result.methods {
            var base = JSONObject()
            for name in method.required {
                guard let value = valid[name] else { Issue.record("\(method.name): no valid value for \(name)"); continue }
                base[name] = value
            }
            // The required ones are enough to pass the decoder, which then refuses an unknown one.
            var unknown = base
            unknown["zzUnknown"] = 1
            let refused = serverError { () throws(ClientError) in try client.call(method.name, .object(unknown)) }
            #expect(refused?.message == "\(method.name): unknown parameter \"zzUnknown\"", "\(method.name): \(refused?.message ?? "")")
            // Each listed one is read: a value of no type any parameter takes is refused by name.
            for name in method.required + method.optional {
                var params = base
                params[name] = [[]]
                let error = serverError { () throws(ClientError) in try client.call(method.name, .object(params)) }
                let message = error?.message ?? ""
                #expect(error?.reason == .invalidParams && message.contains("\"\(name)\"") && !message.contains("unknown parameter"),
                        "\(method.name) \(name): \(message)")
            }
            // Each required one is required.
            for name in method.required {
                var params = base
                params[name] = nil
                let message = serverError { () throws(ClientError) in try client.call(method.name, .object(params)) }?.message ?? ""
                #expect(message.contains("\"\(name)\"") && !message.contains("unknown parameter"), "\(method.name) without \(name): \(message)")
            }
        }
        #expect(try supervisor.groupNames().isEmpty, "no request reached a handler")
    }

    /// The table is the schemas' too: each method's `params` schema has exactly the listed
    /// parameters as properties, and exactly the required ones as `required`. (The server's
    /// side of it is the test above.)
    @Test func theMethodsTableIsTheSchemas() throws {
        for method in MethodName.allCases {
            let path = Products.repositoryRoot + "/protocol/schema/\(method.rawValue).json"
            let schema = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
            let params = try #require((schema["$defs"] as? [String: Any])?["params"] as? [String: Any], "\(path) has no $defs.params")
            let properties = (params["properties"] as? [String: Any]).map { Set($0.keys) } ?? []
            let required = Set(params["required"] as? [String] ?? [])
            if params["$ref"] as? String == "common.json#/$defs/noParams" {
                #expect(method.parameters.isEmpty, "\(method) takes no params by its schema")
                continue
            }
            #expect(properties == Set(method.parameters.map(\.name)), "\(method): schema \(properties.sorted())")
            #expect(required == Set(method.parameters.filter(\.required).map(\.name)), "\(method): schema requires \(required.sorted())")
        }
    }

    @Test func readableOutputSaysWhatIsLeft() throws {
        let supervisor = try TestSupervisor(config: Self.tightConfig)
        let alice = try TestUser.alice()
        let text = try supervisor.nsgroup(["describe"], as: alice)
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("protocol:    1.1\n"))
        #expect(text.stdout.contains("may create:  mnt,uts,net (default mnt,uts,ipc,pid,net,cgroup)\n"))
        #expect(text.stdout.contains("groups:      3 of 3 left (your own)\n"), "\(text.stdout)")
        #expect(text.stdout.contains("tmpfs:       64.0M of 64.0M left, at most 16.0M a mount\n"), "\(text.stdout)")
        let root = try supervisor.nsgroup(["describe"])
        #expect(root.stdout.contains("groups:      no limit; 4096 of 4096 on the server\n"), "\(root.stdout)")
        #expect(root.stdout.contains("per user:    no limit\n"))
    }

    /// describe is a read: summed up per person with the others, as version is.
    @Test func describeIsRecordedAsARead() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor(config: "[audit]\nread-summary-interval = 1\n")
        let client = try RPCClient(socketPath: supervisor.socketPath)
        for _ in 0..<2 { _ = try client.call("describe") }
        _ = try client.call("version")
        let record = try JournalTests().one(supervisor, "readsSummarized", ["NSGROUP_READS=describe=2 version=1"])
        #expect(record["NSGROUP_CALLER_UID"] == "0")
        withExtendedLifetime(client) {}
    }
}
