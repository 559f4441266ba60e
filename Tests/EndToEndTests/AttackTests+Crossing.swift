import Foundation
import Glibc
import Testing

/// One user against another's sessions and groups: signals, attach after a name is
/// re-created, and what refusals give away.
extension AttackTests {
    /// A member (`session`, `pid`, …) of the only session running in a group, once it shows.
    static func onlySession(_ supervisor: TestSupervisor, _ group: String, _ member: String,
                            sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
        var sessions: [[String: Any]] = []
        let appeared = eventually {
            sessions = (try? supervisor.inspect(group)["sessions"] as? [[String: Any]]) ?? []
            return sessions.count == 1
        }
        try #require(appeared, "no session appeared in \(group)", sourceLocation: sourceLocation)
        return try #require(sessions[0][member] as? Int, sourceLocation: sourceLocation)
    }

    /// The owner may signal her own sessions only: not root's, nor a member's.
    @Test func theOwnerCannotSignalRootsSession() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "box", "--member", "nsg-dave"], as: alice).status == 0)
        let rootSession = try BackgroundProcess(Products.nsgroup, ["--socket", supervisor.socketPath, "enter", "box", "--", "sleep", "300"],
                                                log: supervisor.directory + "/root-session.log")
        let id = try Self.onlySession(supervisor, "box", "session")
        for signal in [SIGSTOP, SIGKILL] {
            let refused = try PolicyTests.rawError(supervisor, "signal", ["name": "box", "session": id, "signal": Int(signal)], as: alice)
            #expect(refused.reason == "permission_denied")
            #expect(refused.message == "uid \(alice.uid) may not signal session \(id) of group \"box\": only the session's own user, root and members of nsgroup-admin may")
        }
        usleep(200_000)
        #expect(rootSession.isRunning)
        let state = try String(contentsOfFile: "/proc/\(try #require(try supervisor.inspect("box")["sessions"] as? [[String: Any]]).first!["pid"] as! Int)/stat", encoding: .utf8)
        #expect(state.split(separator: ")").last?.split(separator: " ").first == "S", "root's session was stopped: \(state)")
        // Root may signal its own.
        #expect(try PolicyTests.rawError(supervisor, "signal", ["name": "box", "session": id, "signal": Int(SIGTERM)], as: nil).reason == nil)
        #expect(eventually { !rootSession.isRunning })
    }

    /// After alice's group is destroyed and someone else makes one of the same name, her
    /// ended session is not theirs to read, whoever they are.
    @Test func attachAfterRecreationFindsNothing() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "x"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["enter", "x", "--", "sh", "-c", "exit 42"], as: alice).status == 42)
        // Before: alice herself may read how her session 1 ended.
        #expect(try PolicyTests.rawError(supervisor, "attach", ["name": "x", "session": 1], as: alice).reason == nil)
        #expect(try supervisor.nsgroup(["destroy", "x"], as: alice).status == 0)
        for user in [try TestUser.bob(), try TestUser.carol()] {
            #expect(try supervisor.nsgroup(["create", "x"], as: user).status == 0)
            let attached = try PolicyTests.rawError(supervisor, "attach", ["name": "x", "session": 1], as: user)
            #expect(attached.reason == "not_found", "\(user.name) read another group's session: \(attached)")
            #expect(attached.message == "group \"x\" has no session 1")
            #expect(try supervisor.nsgroup(["destroy", "x"], as: user).status == 0)
        }
    }

    /// A stranger cannot tell a group he may not see from one that does not exist.
    @Test(arguments: ["inspect", "destroy", "enter", "share", "signal", "attach"])
    func strangersGetNotFoundForGroupsTheyMayNotSee(_ method: String) throws {
        let supervisor = try TestSupervisor()
        #expect(try supervisor.nsgroup(["create", "secret"], as: try TestUser.alice()).status == 0)
        let bob = try TestUser.bob()
        var replies: [String: (reason: String?, message: String?)] = [:]
        for name in ["secret", "nothing"] {
            var params: [String: Any] = ["name": name]
            switch method {
            case "enter": params["tty"] = true
            case "share": params["members"] = ["nsg-bob"]
            case "signal": params["session"] = 1; params["signal"] = Int(SIGTERM)
            case "attach": params["session"] = 1
            default: break
            }
            replies[name] = try PolicyTests.rawError(supervisor, method, params, as: bob)
        }
        #expect(replies["secret"]?.reason == "not_found")
        #expect(replies["nothing"]?.reason == "not_found")
        #expect(replies["secret"]?.message == "no group named \"secret\"")
        #expect(replies["nothing"]?.message == "no group named \"nothing\"")
        // The owner's members still get the real reason.
        if method == "destroy" {
            #expect(try supervisor.nsgroup(["share", "secret", "nsg-dave"], as: try TestUser.alice()).status == 0)
            let member = try PolicyTests.rawError(supervisor, "destroy", ["name": "secret"], as: try TestUser.dave())
            #expect(member.reason == "permission_denied")
        }
    }
}
