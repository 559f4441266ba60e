import Client
import Foundation
import Glibc
import RPC
import Supervisor
import Testing

/// Who calls, in the access matrix: root, an admin, the owner, a member by
/// name, a member through a Unix group, and a stranger.
enum PolicyCaller: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case root, carol, alice, dave, erin, bob

    var testDescription: String { rawValue }

    /// The user to run as (nil: root, the test process itself).
    func user() throws -> TestUser? {
        switch self {
        case .root: return nil
        case .carol: return try TestUser.carol()
        case .alice: return try TestUser.alice()
        case .dave: return try TestUser.dave()
        case .erin: return try TestUser.erin()
        case .bob: return try TestUser.bob()
        }
    }

    /// list (sees it), inspect, enter.
    var mayUse: Bool { self != .bob }
    /// share, unshare, destroy.
    var mayManage: Bool { self == .root || self == .carol || self == .alice }
}

/// The access policy of nsgroupd.conf, end to end: who may see, enter,
/// share and destroy a group, who may create one and of which kinds, the
/// limits, and reloading the policy on SIGHUP.
@Suite struct PolicyTests {
    // MARK: Helpers

    static let admins = "root and members of nsgroup-admin"

    /// The CLI's refusal of `action` on `group` for `uid`, as Supervisor.group(...) words it.
    /// What a member is told when they try to manage a group (destroy, share).
    static func refusal(_ uid: uid_t, _ action: String, _ group: String) -> String {
        "nsgroup: uid \(uid) may not \(action) group \"\(group)\": only its owner, \(admins) may\n"
    }

    /// What someone who may not see a group is told: the same as for a name nobody uses.
    static func hidden(_ group: String) -> String {
        "nsgroup: no group named \"\(group)\"\n"
    }

    /// Alice's group NAME shared with nsg-dave (at create) and @nsg-friends (by share).
    static func aliceSharedGroup(_ supervisor: TestSupervisor, _ name: String) throws {
        let alice = try TestUser.alice()
        let created = try supervisor.nsgroup(["create", name, "--member", "nsg-dave"], as: alice)
        guard created.status == 0 else { throw HarnessError("create \(name) failed: \(created.stderr)") }
        let shared = try supervisor.nsgroup(["share", name, "@nsg-friends"], as: alice)
        guard shared.status == 0 else { throw HarnessError("share \(name) failed: \(shared.stderr)") }
    }

    static func members(_ supervisor: TestSupervisor, _ name: String) throws -> [String]? {
        try supervisor.inspect(name)["members"] as? [String]
    }

    /// Group names in `list --json` output.
    static func listedNames(_ stdout: String) -> [String]? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any],
              let groups = object["groups"] as? [[String: Any]]
        else { return nil }
        return groups.compactMap { $0["name"] as? String }
    }

    static func sessionCount(_ supervisor: TestSupervisor, _ name: String) -> Int? {
        (try? supervisor.inspect(name)["sessions"] as? [Any])??.count
    }

    /// A tiny JSON-RPC client in python3, run as `user` through setpriv like
    /// the CLI: sends one request line, prints the reply line.
    static let rawClient = """
        import socket, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sys.argv[1])
        s.sendall(sys.stdin.buffer.read())
        reply = b""
        while not reply.endswith(b"\\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
        sys.stdout.buffer.write(reply)
        """

    /// The error of one request sent as `user` with the caller's real
    /// credentials: (data.reason, message); nil reason when it succeeded.
    static func rawError(_ supervisor: TestSupervisor, _ method: String, _ params: [String: Any],
                         as user: TestUser?) throws -> (reason: String?, message: String?) {
        let request: [String: Any] = ["jsonrpc": "2.0", "id": 1, "method": method, "params": params]
        var line = try JSONSerialization.data(withJSONObject: request)
        line.append(UInt8(ascii: "\n"))
        let result = try run("/usr/bin/python3", ["-I", "-c", rawClient, supervisor.socketPath], as: user, stdin: line)
        guard result.status == 0,
              // The reply is the first line; a notification may follow it in the same read.
              let first = result.stdout.split(separator: "\n").first,
              let reply = (try? JSONSerialization.jsonObject(with: Data(first.utf8))) as? [String: Any]
        else { throw HarnessError("raw \(method) failed: \(result.stdout) \(result.stderr)") }
        let error = reply["error"] as? [String: Any]
        return ((error?["data"] as? [String: Any])?["reason"] as? String, error?["message"] as? String)
    }

    /// Writes the supervisor's configuration file in place.
    static func writeConfig(_ supervisor: TestSupervisor, _ text: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: supervisor.configPath))
    }

    /// This supervisor's policy-reloaded records in the journal with this result.
    static func reloadRecords(_ supervisor: TestSupervisor, result: String) throws -> [[String: String]] {
        let query = try run("/usr/bin/journalctl", ["-o", "json", "--no-pager", "--all",
                                                    "NSGROUP_SOCKET=\(supervisor.socketPath)", "_PID=\(supervisor.pid)",
                                                    "MESSAGE_ID=\(AuditEvent.policyReloaded.messageID)",
                                                    "NSGROUP_RESULT=\(result)"])
        return query.stdout.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }.map { $0.compactMapValues { $0 as? String } }
    }

    /// Runs a program that should exit by itself; kills it (and records an
    /// issue) if it is still running after `timeoutSeconds`.
    static func runBounded(_ executable: String, _ arguments: [String], timeoutSeconds: Double = 20,
                           sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        if !eventually(timeoutSeconds: timeoutSeconds, { !process.isRunning }) {
            Issue.record("\(executable) was still running after \(timeoutSeconds) s", sourceLocation: sourceLocation)
            // SIGKILL: a child of the test runner inherits its blocked signals, SIGTERM among
            // them, and one blocked on a full output pipe would never go otherwise.
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus,
                             stdout: String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
                             stderr: String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }

    // MARK: Sharing and the access matrix

    @Test func sharingIsRecordedAndShown() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let created = try supervisor.nsgroup(["create", "shared", "--member", "nsg-dave", "--json"], as: alice)
        #expect(created.status == 0, "\(created.stderr)")
        #expect(created.stdout.contains(#""members":["nsg-dave"]"#), "\(created.stdout)")
        let shared = try supervisor.nsgroup(["share", "shared", "@nsg-friends"], as: alice)
        #expect(shared.status == 0, "\(shared.stderr)")
        #expect(shared.stdout == "shared: members nsg-dave, @nsg-friends\n")
        #expect(try Self.members(supervisor, "shared") == ["nsg-dave", "@nsg-friends"])
        // Members see it in inspect's text too.
        let text = try supervisor.nsgroup(["inspect", "shared"], as: try TestUser.erin())
        #expect(text.stdout.contains("Members:     nsg-dave, @nsg-friends\n"), "\(text.stdout)")

        // Sharing again with the same member, by name or by number, changes nothing.
        let dave = try TestUser.dave()
        #expect(try supervisor.nsgroup(["share", "shared", "nsg-dave", String(dave.uid)], as: alice).stdout
                == "shared: members nsg-dave, @nsg-friends\n")
        #expect(try Self.members(supervisor, "shared") == ["nsg-dave", "@nsg-friends"])

        // Unknown users and groups are refused, and nothing changes.
        let unknownUser = try supervisor.nsgroup(["share", "shared", "nsg-no-such-user"], as: alice)
        #expect(unknownUser.status == 125)
        #expect(unknownUser.stderr == "nsgroup: share: no user named \"nsg-no-such-user\"\n")
        let unknownGroup = try supervisor.nsgroup(["create", "other", "--member", "@nsg-no-such-group"], as: alice)
        #expect(unknownGroup.status == 125)
        #expect(unknownGroup.stderr == "nsgroup: create: no group named \"nsg-no-such-group\"\n")
        #expect(try supervisor.groupNames() == ["shared"])
        #expect(try Self.members(supervisor, "shared") == ["nsg-dave", "@nsg-friends"])

        // A group nobody was added to has no members.
        #expect(try supervisor.nsgroup(["create", "private"], as: alice).status == 0)
        #expect(try Self.members(supervisor, "private") == [])
    }

    /// Each caller × list, inspect, enter, share, unshare, destroy, on a
    /// group of alice's shared with nsg-dave and @nsg-friends.
    @Test(arguments: PolicyCaller.allCases)
    func accessMatrix(_ caller: PolicyCaller) throws {
        let supervisor = try TestSupervisor()
        let group = "shared-\(caller.rawValue)"
        try Self.aliceSharedGroup(supervisor, group)
        let user = try caller.user()
        let uid = user?.uid ?? 0
        let alice = try TestUser.alice()

        // list: succeeds for everyone, shows the group to those who may use it.
        let list = try supervisor.nsgroup(["list", "--json"], as: user)
        #expect(list.status == 0, "\(list.stderr)")
        #expect(Self.listedNames(list.stdout) == (caller.mayUse ? [group] : []))

        // inspect
        let inspect = try supervisor.nsgroup(["inspect", group, "--json"], as: user)
        if caller.mayUse {
            #expect(inspect.status == 0, "\(inspect.stderr)")
            #expect(inspect.stdout.contains(#""members":["nsg-dave","@nsg-friends"]"#), "\(inspect.stdout)")
            #expect(inspect.stderr.isEmpty)
        } else {
            #expect(inspect.status == 125)
            #expect(inspect.stdout.isEmpty)
            // With --json, the refusal is a JSON error object.
            #expect(inspect.stderr == #"{"error":{"reason":"not_found","message":"no group named \"\#(group)\""}}"# + "\n")
        }

        // enter
        let enter = try supervisor.nsgroup(["enter", group, "--", "true"], as: user)
        if caller.mayUse {
            #expect(enter.status == 0, "\(enter.stderr)")
            #expect(enter.stderr.isEmpty)
        } else {
            #expect(enter.status == 125)
            #expect(enter.stderr == Self.hidden(group))
        }

        // share and unshare
        if caller.mayManage {
            let share = try supervisor.nsgroup(["share", group, "nobody"], as: user)
            #expect(share.status == 0, "\(share.stderr)")
            #expect(share.stdout == "\(group): members nsg-dave, @nsg-friends, nobody\n")
            #expect(try Self.members(supervisor, group) == ["nsg-dave", "@nsg-friends", "nobody"])
            let unshare = try supervisor.nsgroup(["unshare", group, "nobody"], as: user)
            #expect(unshare.status == 0, "\(unshare.stderr)")
            #expect(unshare.stdout == "\(group): members nsg-dave, @nsg-friends\n")
        } else {
            // Letting oneself (or a friend) in, or throwing a member out.
            let share = try supervisor.nsgroup(["share", group, "nsg-bob"], as: user)
            #expect(share.status == 125)
            #expect(share.stdout.isEmpty)
            let expected = caller.mayUse ? Self.refusal(uid, "change the sharing of", group) : Self.hidden(group)
            #expect(share.stderr == expected)
            let unshare = try supervisor.nsgroup(["unshare", group, "nsg-dave", "@nsg-friends"], as: user)
            #expect(unshare.status == 125)
            #expect(unshare.stderr == expected)
        }
        #expect(try Self.members(supervisor, group) == ["nsg-dave", "@nsg-friends"])

        // destroy
        let destroy = try supervisor.nsgroup(["destroy", group], as: user)
        if caller.mayManage {
            #expect(destroy.status == 0, "\(destroy.stderr)")
            #expect(destroy.stderr.isEmpty)
            #expect(try supervisor.groupNames().isEmpty)
        } else {
            #expect(destroy.status == 125)
            #expect(destroy.stderr == (caller.mayUse ? Self.refusal(uid, "destroy", group) : Self.hidden(group)))
            #expect(try supervisor.groupNames() == [group], "the refused destroy changed nothing")
            #expect(try supervisor.nsgroup(["enter", group, "--", "true"], as: alice).status == 0)
        }
    }

    /// On one group: every refused caller tries destroy first, then root,
    /// carol and alice each destroy a group of alice's.
    @Test func destroyIsRefusedUntilAnAllowedCallerAsks() throws {
        let supervisor = try TestSupervisor()
        for name in ["by-root", "by-carol", "by-alice"] { try Self.aliceSharedGroup(supervisor, name) }
        for caller in [PolicyCaller.dave, .erin, .bob] {
            let user = try #require(try caller.user())
            for name in ["by-root", "by-carol", "by-alice"] {
                let refused = try supervisor.nsgroup(["destroy", name], as: user)
                #expect(refused.status == 125)
                #expect(refused.stderr == (caller == .bob ? Self.hidden(name) : Self.refusal(user.uid, "destroy", name)))
            }
        }
        #expect(try supervisor.groupNames() == ["by-alice", "by-carol", "by-root"])
        for name in ["by-root", "by-carol", "by-alice"] {
            #expect(try Self.members(supervisor, name) == ["nsg-dave", "@nsg-friends"])
            #expect(try supervisor.nsgroup(["enter", name, "--", "true"], as: try TestUser.dave()).status == 0)
        }

        #expect(try supervisor.nsgroup(["destroy", "by-root"]).status == 0)
        #expect(try supervisor.groupNames() == ["by-alice", "by-carol"])
        #expect(try supervisor.nsgroup(["destroy", "by-carol"], as: try TestUser.carol()).status == 0)
        #expect(try supervisor.groupNames() == ["by-alice"])
        #expect(try supervisor.nsgroup(["destroy", "by-alice"], as: try TestUser.alice()).status == 0)
        #expect(try supervisor.groupNames().isEmpty)
    }

    /// Unsharing takes access away at once; a session already started keeps running.
    @Test func unsharingRevokesAccess() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let dave = try TestUser.dave()
        let erin = try TestUser.erin()
        try Self.aliceSharedGroup(supervisor, "revoke")

        let session = try supervisor.startEnter("revoke", ["sleep", "300"], as: dave)
        defer { if session.isRunning { session.terminate(); session.waitUntilExit() } }
        #expect(eventually { Self.sessionCount(supervisor, "revoke") == 1 })

        let removed = try supervisor.nsgroup(["unshare", "revoke", "nsg-dave"], as: alice)
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(removed.stdout == "revoke: members @nsg-friends\n")
        #expect(try Self.members(supervisor, "revoke") == ["@nsg-friends"])

        // Dave is a stranger now.
        #expect(Self.listedNames(try supervisor.nsgroup(["list", "--json"], as: dave).stdout) == [])
        let inspect = try supervisor.nsgroup(["inspect", "revoke"], as: dave)
        #expect(inspect.status == 125)
        #expect(inspect.stderr == Self.hidden("revoke"))
        let enter = try supervisor.nsgroup(["enter", "revoke", "--", "true"], as: dave)
        #expect(enter.status == 125)
        #expect(enter.stderr == Self.hidden("revoke"))
        // Erin still gets in through @nsg-friends.
        #expect(try supervisor.nsgroup(["enter", "revoke", "--", "true"], as: erin).status == 0)

        // The session dave started before keeps running, and stays his to stop.
        let sessions = try #require(try supervisor.inspect("revoke")["sessions"] as? [[String: Any]])
        #expect(sessions.count == 1)
        #expect(sessions.first?["uid"] as? Int == Int(dave.uid))
        #expect(session.isRunning)

        let friendsRemoved = try supervisor.nsgroup(["unshare", "revoke", "@nsg-friends"], as: alice)
        #expect(friendsRemoved.stdout == "revoke: only its owner may enter\n")
        #expect(try Self.members(supervisor, "revoke") == [])
        let erinEnter = try supervisor.nsgroup(["enter", "revoke", "--", "true"], as: erin)
        #expect(erinEnter.status == 125)
        #expect(erinEnter.stderr == Self.hidden("revoke"))
        #expect(try supervisor.nsgroup(["inspect", "revoke"], as: erin).status == 125)

        // Removing someone who is not a member changes nothing.
        let noop = try supervisor.nsgroup(["unshare", "revoke", "nsg-bob"], as: alice)
        #expect(noop.status == 0, "\(noop.stderr)")
        #expect(noop.stdout == "revoke: only its owner may enter\n")
        // Sharing again lets them back in.
        #expect(try supervisor.nsgroup(["share", "revoke", "nsg-dave"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["enter", "revoke", "--", "true"], as: dave).status == 0)

        kill(session.processIdentifier, SIGTERM)
        session.waitUntilExit()
        #expect(session.terminationStatus == 128 + SIGTERM)
        #expect(eventually { Self.sessionCount(supervisor, "revoke") == 0 })
    }

    /// admin-group names who administers: empty means only root.
    @Test func theAdminGroupComesFromTheConfiguration() throws {
        let noAdmins = try TestSupervisor(config: "[access]\nadmin-group =\n")
        try Self.aliceSharedGroup(noAdmins, "box")
        let carol = try TestUser.carol()
        #expect(Self.listedNames(try noAdmins.nsgroup(["list", "--json"], as: carol).stdout) == [])
        let inspect = try noAdmins.nsgroup(["inspect", "box"], as: carol)
        #expect(inspect.status == 125)
        #expect(inspect.stderr == Self.hidden("box"))
        let destroy = try noAdmins.nsgroup(["destroy", "box"], as: carol)
        #expect(destroy.stderr == Self.hidden("box"))
        // A member hears the rule, naming only root as admin.
        #expect(try noAdmins.nsgroup(["destroy", "box"], as: try TestUser.dave()).stderr
                == "nsgroup: uid \(try TestUser.dave().uid) may not destroy group \"box\": only its owner and root may\n")
        #expect(try noAdmins.groupNames() == ["box"])

        // Another group administers: erin (in nsg-friends) may destroy alice's group, carol may not.
        let friendsAdmin = try TestSupervisor(config: "[access]\nadmin-group = nsg-friends\n")
        #expect(try friendsAdmin.nsgroup(["create", "box"], as: try TestUser.alice()).status == 0)
        #expect(try friendsAdmin.nsgroup(["share", "box", "nsg-carol"], as: try TestUser.alice()).status == 0)
        let refused = try friendsAdmin.nsgroup(["destroy", "box"], as: carol)
        #expect(refused.stderr == "nsgroup: uid \(carol.uid) may not destroy group \"box\": only its owner, root and members of nsg-friends may\n")
        #expect(try friendsAdmin.nsgroup(["destroy", "box"], as: try TestUser.erin()).status == 0)
        #expect(try friendsAdmin.groupNames().isEmpty)
    }

    /// signal: the session's own user and admins; a member may not signal another
    /// member's session, and a stranger learns nothing of the group.
    @Test func whoMaySignalASession() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        try Self.aliceSharedGroup(supervisor, "box")
        let session = try supervisor.startEnter("box", ["sleep", "300"], as: alice)
        defer { if session.isRunning { session.terminate(); session.waitUntilExit() } }
        #expect(eventually { Self.sessionCount(supervisor, "box") == 1 })
        let sessions = try #require(try supervisor.inspect("box")["sessions"] as? [[String: Any]])
        let id = try #require(sessions.first?["session"] as? Int)
        let params: [String: Any] = ["name": "box", "session": id, "signal": Int(SIGTERM)]

        for user in [try TestUser.dave(), try TestUser.erin()] {
            let refused = try Self.rawError(supervisor, "signal", params, as: user)
            #expect(refused.reason == "permission_denied", "\(user.name)")
            #expect(refused.message?.hasPrefix("uid \(user.uid) may not signal session \(id) of group \"box\"") == true, "\(refused.message ?? "")")
        }
        let stranger = try Self.rawError(supervisor, "signal", params, as: try TestUser.bob())
        #expect(stranger.reason == "not_found")
        #expect(stranger.message == "no group named \"box\"")
        #expect(session.isRunning)
        // An admin may (as may root).
        let byAdmin = try Self.rawError(supervisor, "signal", params, as: try TestUser.carol())
        #expect(byAdmin.reason == nil, "\(byAdmin.message ?? "")")
        #expect(eventually { !session.isRunning }, "the admin's signal did not end the session")
        if !session.isRunning { #expect(session.terminationStatus == 128 + SIGTERM) }
    }

    // MARK: Who may create

    @Test func everyoneMayCreateByDefault() throws {
        let supervisor = try TestSupervisor()
        for caller in PolicyCaller.allCases {
            let user = try caller.user()
            let created = try supervisor.nsgroup(["create", "by-\(caller.rawValue)"], as: user)
            #expect(created.status == 0, "\(caller): \(created.stderr)")
            #expect(try supervisor.inspect("by-\(caller.rawValue)")["owner"] as? Int == Int(user?.uid ?? 0))
        }
        #expect(try supervisor.groupNames().count == PolicyCaller.allCases.count)
    }

    @Test func theCreateRuleNamesWhoMayCreate() throws {
        let supervisor = try TestSupervisor(config: "[access]\ncreate = nsg-alice\n")
        let bob = try TestUser.bob()
        let refused = try supervisor.nsgroup(["create", "bobs"], as: bob)
        #expect(refused.status == 125)
        #expect(refused.stdout.isEmpty)
        #expect(refused.stderr == "nsgroup: uid \(bob.uid) may not create groups: nsgroupd.conf allows only nsg-alice, \(Self.admins) (access.create)\n")
        let raw = try Self.rawError(supervisor, "create", ["name": "bobs"], as: bob)
        #expect(raw.reason == "permission_denied")
        #expect(raw.message == "uid \(bob.uid) may not create groups: nsgroupd.conf allows only nsg-alice, \(Self.admins) (access.create)")
        #expect(try supervisor.groupNames().isEmpty)

        // Alice by name, carol as an admin, and root.
        #expect(try supervisor.nsgroup(["create", "alices"], as: try TestUser.alice()).status == 0)
        #expect(try supervisor.nsgroup(["create", "carols"], as: try TestUser.carol()).status == 0)
        #expect(try supervisor.nsgroup(["create", "roots"]).status == 0)
        #expect(try supervisor.groupNames() == ["alices", "carols", "roots"])
        // Members of someone else's group are not creators.
        #expect(try supervisor.nsgroup(["create", "daves"], as: try TestUser.dave()).status == 125)
    }

    @Test func theCreateRuleAdmitsUnixGroups() throws {
        let supervisor = try TestSupervisor(config: "[access]\ncreate = @nsg-friends\n")
        #expect(try supervisor.nsgroup(["create", "erins"], as: try TestUser.erin()).status == 0)
        let dave = try TestUser.dave()
        let refused = try supervisor.nsgroup(["create", "daves"], as: dave)
        #expect(refused.stderr == "nsgroup: uid \(dave.uid) may not create groups: nsgroupd.conf allows only @nsg-friends, \(Self.admins) (access.create)\n")
        #expect(try supervisor.groupNames() == ["erins"])
    }

    // MARK: Allowed kinds

    @Test func onlyTheAllowedKindsMayBeCreated() throws {
        let supervisor = try TestSupervisor(config: "[access]\nnamespaces = uts, net\n")
        let alice = try TestUser.alice()
        // The default set starts with mnt, the first kind not allowed.
        let refused = try supervisor.nsgroup(["create", "default-kinds"], as: alice)
        #expect(refused.status == 125)
        #expect(refused.stderr == "nsgroup: namespace kind \"mnt\" is not allowed by nsgroupd.conf (access.namespaces = uts, net)\n")
        let raw = try Self.rawError(supervisor, "create", ["name": "default-kinds"], as: alice)
        #expect(raw.reason == "permission_denied")
        let ipc = try supervisor.nsgroup(["create", "with-ipc", "--ns", "net,ipc,uts"], as: alice)
        #expect(ipc.stderr == "nsgroup: namespace kind \"ipc\" is not allowed by nsgroupd.conf (access.namespaces = uts, net)\n")
        #expect(try supervisor.groupNames().isEmpty)

        let allowed = try supervisor.nsgroup(["create", "uts-net", "--ns", "uts,net"], as: alice)
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(try supervisor.nsgroup(["create", "net-only", "--ns", "net"], as: alice).status == 0)
        let kinds = try #require(try supervisor.inspect("uts-net")["namespaces"] as? [String: String])
        #expect(Set(kinds.keys) == ["uts", "net"])

        // Admins and root are not limited.
        let carol = try supervisor.nsgroup(["create", "carols"], as: try TestUser.carol())
        #expect(carol.status == 0, "\(carol.stderr)")
        #expect(try supervisor.nsgroup(["create", "roots"]).status == 0)
        #expect(try supervisor.groupNames() == ["carols", "net-only", "roots", "uts-net"])
    }

    // MARK: Limits

    @Test func sixteenGroupsPerUserByDefault() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        for index in 1...16 {
            let created = try supervisor.nsgroup(["create", "a\(index)"], as: alice)
            #expect(created.status == 0, "create a\(index): \(created.stderr)")
        }
        let refused = try supervisor.nsgroup(["create", "a17"], as: alice)
        #expect(refused.status == 125)
        #expect(refused.stderr == "nsgroup: uid \(alice.uid) owns 16 groups, the most allowed (limits.groups-per-user = 16)\n")
        let raw = try Self.rawError(supervisor, "create", ["name": "a17"], as: alice)
        #expect(raw.reason == "limit_exceeded")
        // Someone else's groups do not count against her, nor hers against others.
        #expect(try supervisor.nsgroup(["create", "bobs"], as: try TestUser.bob()).status == 0)

        #expect(try supervisor.nsgroup(["destroy", "a3"], as: alice).status == 0)
        let again = try supervisor.nsgroup(["create", "a17"], as: alice)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try supervisor.nsgroup(["create", "a18"], as: alice).status == 125)

        // Root is not bound by per-user limits.
        for index in 1...17 {
            let created = try supervisor.nsgroup(["create", "r\(index)", "--ns", "uts"])
            #expect(created.status == 0, "create r\(index): \(created.stderr)")
        }
        #expect(try supervisor.groupNames().count == 16 + 1 + 17)
    }

    /// Admins have more access, not more quota; root has no per-user quota.
    @Test func perUserLimitsBindAdminsButNotRoot() throws {
        let supervisor = try TestSupervisor(config: "[limits]\ngroups-per-user = 1\n")
        let carol = try TestUser.carol()
        #expect(try supervisor.nsgroup(["create", "carol1"], as: carol).status == 0)
        let refused = try supervisor.nsgroup(["create", "carol2"], as: carol)
        #expect(refused.stderr == "nsgroup: uid \(carol.uid) owns 1 group, the most allowed (limits.groups-per-user = 1)\n")
        for index in 1...3 { #expect(try supervisor.nsgroup(["create", "root\(index)"]).status == 0) }
        #expect(try supervisor.groupNames() == ["carol1", "root1", "root2", "root3"])
    }

    /// Twenty creates at once: the limit holds exactly.
    @Test func aBurstOfCreatesStopsAtTheLimit() throws {
        let supervisor = try TestSupervisor(config: "[limits]\ngroups-per-user = 5\n")
        let bob = try TestUser.bob()
        var processes: [(Process, Pipe, Pipe)] = []
        defer {
            for (process, _, _) in processes where process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
        }
        for index in 0..<20 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=\(bob.uid)", "--regid=\(bob.gid)", "--init-groups", "--",
                                 Products.nsgroup, "--socket", supervisor.socketPath, "create", "burst\(index)"]
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            process.standardInput = FileHandle.nullDevice
            processes.append((process, out, err))
        }
        for (process, _, _) in processes { try process.run() }
        var succeeded = 0
        for (process, out, err) in processes {
            process.waitUntilExit()
            let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            if process.terminationStatus == 0 {
                succeeded += 1
                #expect(stdout.hasPrefix("created group burst"), "\(stdout)")
            } else {
                #expect(process.terminationStatus == 125, "nsgroup's own failure (README, Exit codes)")
                #expect(stderr == "nsgroup: uid \(bob.uid) owns 5 groups, the most allowed (limits.groups-per-user = 5)\n")
            }
        }
        #expect(succeeded == 5)
        let listed = try #require(Self.listedNames(try supervisor.nsgroup(["list", "--json"], as: bob).stdout))
        #expect(listed.count == 5)
        #expect(listed.allSatisfy { $0.hasPrefix("burst") })
        #expect(try supervisor.groupNames().count == 5)
        #expect(try Self.rawError(supervisor, "create", ["name": "burst-more"], as: bob).reason == "limit_exceeded")
    }

    @Test func theGlobalLimitBindsEveryone() throws {
        let supervisor = try TestSupervisor(config: "[limits]\ngroups = 3\n")
        #expect(try supervisor.nsgroup(["create", "alices"], as: try TestUser.alice()).status == 0)
        #expect(try supervisor.nsgroup(["create", "bobs"], as: try TestUser.bob()).status == 0)
        #expect(try supervisor.nsgroup(["create", "roots"]).status == 0)
        let message = "there are 3 groups, the most allowed (limits.groups = 3)"
        for caller in [PolicyCaller.root, .carol, .alice, .dave] {
            let refused = try supervisor.nsgroup(["create", "fourth"], as: try caller.user())
            #expect(refused.status == 125, "\(caller)")
            #expect(refused.stderr == "nsgroup: \(message)\n", "\(caller)")
        }
        let client = try RPCClient(socketPath: supervisor.socketPath)
        let error = serverError { () throws(ClientError) in try client.call("create", CreateParams(name: "fourth").json) }
        #expect(error?.reason == .limitExceeded)
        #expect(error?.message == message)
        #expect(try supervisor.groupNames() == ["alices", "bobs", "roots"])

        #expect(try supervisor.nsgroup(["destroy", "bobs"]).status == 0)
        #expect(try supervisor.nsgroup(["create", "fourth"], as: try TestUser.dave()).status == 0)
        #expect(try supervisor.groupNames() == ["alices", "fourth", "roots"])
    }

    @Test func sessionsPerUser() throws {
        let supervisor = try TestSupervisor(config: "[limits]\nsessions-per-user = 2\n")
        let alice = try TestUser.alice()
        try Self.aliceSharedGroup(supervisor, "box")
        #expect(try supervisor.nsgroup(["create", "other"], as: alice).status == 0)

        var sessions: [Process] = []
        defer {
            for session in sessions where session.isRunning {
                session.terminate()
                session.waitUntilExit()
            }
        }
        sessions.append(try supervisor.startEnter("box", ["sleep", "300"], as: alice))
        #expect(eventually { Self.sessionCount(supervisor, "box") == 1 })
        sessions.append(try supervisor.startEnter("box", ["sleep", "300"], as: alice))
        #expect(eventually { Self.sessionCount(supervisor, "box") == 2 })

        // The third is refused, in this group or any other.
        let message = "uid \(alice.uid) has 2 sessions running, the most allowed (limits.sessions-per-user = 2)"
        for group in ["box", "other"] {
            let refused = try supervisor.nsgroup(["enter", group, "--", "true"], as: alice)
            #expect(refused.status == 125)
            #expect(refused.stderr == "nsgroup: \(message)\n")
        }
        let raw = try Self.rawError(supervisor, "enter", ["name": "box", "argv": ["true"], "tty": true], as: alice)
        #expect(raw.reason == "limit_exceeded")
        #expect(Self.sessionCount(supervisor, "box") == 2)
        // Others have their own count.
        #expect(try supervisor.nsgroup(["enter", "box", "--", "true"], as: try TestUser.dave()).status == 0)
        #expect(try supervisor.nsgroup(["enter", "box", "--", "true"]).status == 0)

        // One ends: its slot is free again.
        let first = sessions[0]
        first.terminate()
        first.waitUntilExit()
        #expect(first.terminationStatus == 128 + SIGTERM)
        #expect(eventually { Self.sessionCount(supervisor, "box") == 1 })
        let again = try supervisor.nsgroup(["enter", "box", "--", "true"], as: alice)
        #expect(again.status == 0, "\(again.stderr)")
    }

    // MARK: Reloading

    @Test func sighupReloadsThePolicyAndKeepsItWhenTheFileIsBroken() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        #expect(try supervisor.nsgroup(["create", "bob-before"], as: bob).status == 0)
        let holderBefore = try supervisor.holderPID("bob-before")

        try Self.writeConfig(supervisor, "[access]\ncreate = nsg-alice\n")
        #expect(kill(supervisor.pid, SIGHUP) == 0)
        // Until the signal is handled bob may still get some in; each try has its own name.
        var attempt = 0
        let refusedNow = try eventually {
            attempt += 1
            return try supervisor.nsgroup(["create", "bob-try\(attempt)"], as: bob).status == 125
        }
        #expect(refusedNow, "bob may still create after the reload")
        let refused = try supervisor.nsgroup(["create", "bob-after"], as: bob)
        #expect(refused.stderr == "nsgroup: uid \(bob.uid) may not create groups: nsgroupd.conf allows only nsg-alice, \(Self.admins) (access.create)\n")
        #expect(try supervisor.nsgroup(["create", "alice-after"], as: alice).status == 0)
        #expect(eventually(timeoutSeconds: 10) { ((try? Self.reloadRecords(supervisor, result: "ok")) ?? []).count == 1 })
        // No restart: the same process, and the groups it had.
        #expect(supervisor.process?.isRunning == true)
        #expect(try supervisor.holderPID("bob-before") == holderBefore)

        // A file that does not parse is refused; the policy in force stays.
        try Self.writeConfig(supervisor, "[access]\nbogus = 1\n")
        #expect(kill(supervisor.pid, SIGHUP) == 0)
        let refusedReload = eventually(timeoutSeconds: 10) { ((try? Self.reloadRecords(supervisor, result: "refused")) ?? []).count == 1 }
        #expect(refusedReload, "no refused reload in the journal")
        let record = try #require(try Self.reloadRecords(supervisor, result: "refused").first)
        #expect(record["NSGROUP_REASON"] == #"\#(supervisor.configPath):2: unknown key "bogus" in [access]; keys there are admin-group, create, namespaces, tmpfs-paths"#)
        #expect(record["PRIORITY"] == "3")
        #expect(try supervisor.nsgroup(["create", "bob-broken"], as: bob).status == 125)
        #expect(try supervisor.nsgroup(["create", "alice-broken"], as: alice).status == 0)
        #expect(supervisor.process?.isRunning == true)
        #expect(try supervisor.nsgroup(["version"], as: bob).status == 0)

        // A missing file (it was named with --config) is refused the same way.
        try FileManager.default.removeItem(atPath: supervisor.configPath)
        #expect(kill(supervisor.pid, SIGHUP) == 0)
        #expect(eventually(timeoutSeconds: 10) { ((try? Self.reloadRecords(supervisor, result: "refused")) ?? []).count == 2 })
        #expect(try supervisor.nsgroup(["create", "bob-missing"], as: bob).status == 125)

        // And a good file again takes effect.
        try Self.writeConfig(supervisor, "")
        #expect(kill(supervisor.pid, SIGHUP) == 0)
        #expect(eventually(timeoutSeconds: 10) { ((try? Self.reloadRecords(supervisor, result: "ok")) ?? []).count == 2 })
        #expect(try supervisor.nsgroup(["create", "bob-last"], as: bob).status == 0)
    }

    // MARK: Start-up

    @Test func aBrokenConfigurationStopsStartUp() throws {
        let supervisor = try TestSupervisor(start: false, config: "[limits]\ngroups = 5\n\n[access]\ncreate = nsg-no-such-user\n")
        let result = try Self.runBounded(Products.nsgroupd, supervisor.arguments)
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr == "nsgroupd: bad configuration: \(supervisor.configPath):5: access.create: no user named \"nsg-no-such-user\"\n")
        #expect(!FileManager.default.fileExists(atPath: supervisor.socketPath), "it listened before refusing")

        try Self.writeConfig(supervisor, "[access]\nbogus = 1\n")
        let unknownKey = try Self.runBounded(Products.nsgroupd, supervisor.arguments)
        #expect(unknownKey.status == 1)
        #expect(unknownKey.stderr == "nsgroupd: bad configuration: \(supervisor.configPath):2: unknown key \"bogus\" in [access]; keys there are admin-group, create, namespaces, tmpfs-paths\n")
    }

    @Test func aNamedConfigurationMustExistAndNotBeASymlink() throws {
        let supervisor = try TestSupervisor(start: false)
        try FileManager.default.removeItem(atPath: supervisor.configPath)
        let missing = try Self.runBounded(Products.nsgroupd, supervisor.arguments)
        #expect(missing.status == 1)
        #expect(missing.stderr == "nsgroupd: bad configuration: \(supervisor.configPath): cannot read: No such file or directory\n")

        let real = supervisor.directory + "/real.conf"
        try Self.writeConfig(supervisor, "")
        try FileManager.default.moveItem(atPath: supervisor.configPath, toPath: real)
        #expect(symlink(real, supervisor.configPath) == 0)
        let linked = try Self.runBounded(Products.nsgroupd, supervisor.arguments)
        #expect(linked.status == 1)
        #expect(linked.stderr == "nsgroupd: bad configuration: \(supervisor.configPath): cannot read: Too many levels of symbolic links\n")
        #expect(!FileManager.default.fileExists(atPath: supervisor.socketPath))
    }
}
