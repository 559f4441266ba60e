import Client
import Foundation
import Glibc
import POSIX
import RPC
import Supervisor
import Testing

/// What an administrator needs to follow one session or one group through the journal:
/// session numbers that are never given twice (not even across a restart), a random id for
/// each session and each instance of a group, and session-ended records that say when the
/// session started, how long it ran, on what, and what ended it.
@Suite struct JournalSessionTests {
    let journal = JournalTests()

    static func isRandomID(_ text: String?) -> Bool {
        guard let text else { return false }
        return text.count == 32 && text.allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }

    /// The session-started record of the one session of `supervisor` that ran `argv`.
    func started(_ supervisor: TestSupervisor, argv: String,
                 sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: String] {
        try journal.one(supervisor, "sessionStarted", ["NSGROUP_ARGV=\(argv)"], sourceLocation: sourceLocation)
    }

    /// The session-ended record of the session a session-started record is about.
    func ended(_ supervisor: TestSupervisor, _ started: [String: String],
               sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: String] {
        let session = try #require(started["NSGROUP_SESSION"], sourceLocation: sourceLocation)
        return try journal.one(supervisor, "sessionEnded", ["NSGROUP_SESSION=\(session)"], sourceLocation: sourceLocation)
    }

    /// What every session-ended record says of the session a session-started record is about.
    func expectSameSession(_ ended: [String: String], _ started: [String: String],
                           sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(ended["NSGROUP_SESSION_ID"] == started["NSGROUP_SESSION_ID"], sourceLocation: sourceLocation)
        #expect(Self.isRandomID(ended["NSGROUP_SESSION_ID"]), sourceLocation: sourceLocation)
        #expect(ended["NSGROUP_GROUP_ID"] == started["NSGROUP_GROUP_ID"], sourceLocation: sourceLocation)
        #expect(Self.isRandomID(ended["NSGROUP_GROUP_ID"]), sourceLocation: sourceLocation)
        #expect(ended["NSGROUP_SESSION_STARTED"] == started["NSGROUP_SESSION_STARTED"], sourceLocation: sourceLocation)
        #expect(ended["NSGROUP_TTY"] == "stdio", sourceLocation: sourceLocation)
    }

    /// A supervisor restarted on the same state directory goes on numbering where the last
    /// stopped: two "session 1" records of one group would be two different sessions.
    @Test func sessionNumbersAndIdsAreNotReusedAfterARestart() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "numbered"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["enter", "numbered", "--", "echo", "before"], as: alice).status == 0)
        let first = try started(supervisor, argv: "echo before")
        #expect(try supervisor.nsgroup(["destroy", "numbered"], as: alice).status == 0)

        supervisor.stop()
        try supervisor.start()
        #expect(try supervisor.groupNames() == [])

        #expect(try supervisor.nsgroup(["create", "numbered"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["enter", "numbered", "--", "echo", "after"], as: alice).status == 0)
        let second = try started(supervisor, argv: "echo after")

        let before = try #require(first["NSGROUP_SESSION"].flatMap(UInt64.init))
        let after = try #require(second["NSGROUP_SESSION"].flatMap(UInt64.init))
        #expect(before == 1, "a fresh state directory counts from 1")
        #expect(after > before, "session \(after) after the restart repeats a number given before it")
        #expect(Self.isRandomID(first["NSGROUP_SESSION_ID"]) && Self.isRandomID(second["NSGROUP_SESSION_ID"]))
        #expect(first["NSGROUP_SESSION_ID"] != second["NSGROUP_SESSION_ID"])
        #expect(Self.isRandomID(first["NSGROUP_GROUP_ID"]) && Self.isRandomID(second["NSGROUP_GROUP_ID"]))
        #expect(first["NSGROUP_GROUP_ID"] != second["NSGROUP_GROUP_ID"])
        // The enter's own record names the session it started.
        let accepted = try journal.one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=enter", "NSGROUP_SESSION=\(after)"])
        #expect(accepted["NSGROUP_SESSION_ID"] == second["NSGROUP_SESSION_ID"])
        #expect(accepted["NSGROUP_GROUP_ID"] == second["NSGROUP_GROUP_ID"])
    }

    /// A session that exits by itself: its code, its start, how long it ran, on what.
    @Test func aSessionThatExitsSaysSoWithItsStartAndDuration() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "exiting"], as: alice).status == 0)
        let before = Timestamp.now()
        #expect(try supervisor.nsgroup(["enter", "exiting", "--", "sh", "-c", "sleep 0.3; exit 3"], as: alice).status == 3)
        let after = Timestamp.now()
        let start = try started(supervisor, argv: "sh -c sleep 0.3; exit 3")
        let end = try ended(supervisor, start)
        expectSameSession(end, start)
        #expect(end["NSGROUP_ENDED_BY"] == "exit")
        #expect(end["NSGROUP_EXIT_CODE"] == "3")
        #expect(end["NSGROUP_SIGNAL"] == nil)
        #expect(end["NSGROUP_ENDED_BY_UID"] == nil)
        let startedAt = try #require(end["NSGROUP_SESSION_STARTED"].flatMap(Timestamp.parse))
        #expect((before...after).contains(startedAt))
        let duration = try #require(end["NSGROUP_DURATION_USEC"].flatMap(UInt64.init))
        #expect(duration >= 250_000 && duration < UInt64(after - before + 1) * 1_000_000, "\(duration) µs")
        let message = try #require(end["MESSAGE"])
        #expect(message.hasPrefix("Session \(start["NSGROUP_SESSION"]!) (pid \(start["NSGROUP_SESSION_PID"]!)) in group exiting ended: exited with code 3, after "), "\(message)")
        #expect(message.range(of: #", after [0-9]+ ms$"#, options: .regularExpression) != nil, "\(message)")
    }

    /// A session its owner stopped through nsgroupd with SIGTERM (`signal`, which the CLI
    /// sends for a SIGTERM it gets): a catchable signal, which the program might have survived
    /// and someone else sent again, so the record does not say the request ended it; it says
    /// who had sent which signal through nsgroupd, and how long before the end.
    @Test func aSessionEndedByASignalRequestNamesWhoSentIt() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "signalled"], as: alice).status == 0)
        let client = try supervisor.startEnter("signalled", ["sleep", "301"], as: alice)
        defer { if client.isRunning { client.terminate(); client.waitUntilExit() } }
        let start = try started(supervisor, argv: "sleep 301")
        // The client forwards the SIGTERM it gets as a `signal` request, as alice.
        kill(client.processIdentifier, SIGTERM)
        client.waitUntilExit()
        #expect(client.terminationStatus == 128 + SIGTERM)
        let end = try ended(supervisor, start)
        expectSameSession(end, start)
        #expect(end["NSGROUP_ENDED_BY"] == "signal")
        #expect(end["NSGROUP_ENDED_BY_UID"] == nil)
        #expect(end["NSGROUP_SIGNAL_SENT"] == nil)
        #expect(end["NSGROUP_SIGNAL"] == "\(SIGTERM)")
        #expect(end["NSGROUP_SIGNAL_REQUEST_UID"] == "\(alice.uid)")
        #expect(end["NSGROUP_SIGNAL_REQUEST_SIGNAL"] == "\(SIGTERM)")
        let duration = try #require(end["NSGROUP_DURATION_USEC"].flatMap(UInt64.init))
        let before = try #require(end["NSGROUP_SIGNAL_REQUEST_USEC"].flatMap(UInt64.init))
        #expect(before < 2_000_000 && before <= duration, "sent \(before) µs before the end of a session that ran \(duration) µs")
        let message = end["MESSAGE"] ?? ""
        #expect(message.contains("ended: killed by signal 15 (uid \(alice.uid) (\(alice.name)) had sent signal 15 through nsgroupd "), "\(message)")
        #expect(message.range(of: #" before\), after [0-9.]+ m?s$"#, options: .regularExpression) != nil, "\(message)")
        let request = try journal.one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=signal", "NSGROUP_NAME=signalled"])
        #expect(request["NSGROUP_SESSION"] == start["NSGROUP_SESSION"])
        #expect(request["NSGROUP_SESSION_ID"] == start["NSGROUP_SESSION_ID"])
        #expect(request["NSGROUP_GROUP_ID"] == start["NSGROUP_GROUP_ID"])
    }

    /// A session a `signal` request sent SIGKILL, which no program can survive: the request
    /// ended it, and the record names who sent it.
    @Test func aSessionASIGKILLRequestEndedNamesWhoSentIt() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "killed"], as: alice).status == 0)
        let client = try supervisor.startEnter("killed", ["sleep", "306"], as: alice)
        defer { if client.isRunning { client.terminate(); client.waitUntilExit() } }
        let start = try started(supervisor, argv: "sleep 306")
        let session = try #require(start["NSGROUP_SESSION"].flatMap(UInt64.init))
        // Root (an admin) kills alice's session through nsgroupd.
        let root = try RPCClient(socketPath: supervisor.socketPath)
        _ = try root.call("signal", ["name": "killed", "session": .number(JSONNumber(session)),
                                     "signal": .number(JSONNumber(SIGKILL))])
        client.waitUntilExit()
        #expect(client.terminationStatus == 128 + SIGKILL)
        let end = try ended(supervisor, start)
        expectSameSession(end, start)
        #expect(end["NSGROUP_ENDED_BY"] == "signal-request")
        #expect(end["NSGROUP_ENDED_BY_UID"] == "0")
        #expect(end["NSGROUP_SIGNAL_SENT"] == "\(SIGKILL)")
        #expect(end["NSGROUP_SIGNAL"] == "\(SIGKILL)")
        #expect(end["NSGROUP_SIGNAL_REQUEST_UID"] == nil)
        #expect(end["NSGROUP_DURATION_USEC"].flatMap(UInt64.init) != nil)
        #expect(end["MESSAGE"]?.contains("ended: killed by signal 9 sent by uid 0 (root), after ") == true, "\(end["MESSAGE"] ?? "")")
    }

    /// A session killed by a signal nobody sent through nsgroupd.
    @Test func aSessionKilledFromOutsideSaysSignal() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "outside"], as: alice).status == 0)
        let client = try supervisor.startEnter("outside", ["sleep", "304"], as: alice)
        defer { if client.isRunning { client.terminate(); client.waitUntilExit() } }
        let start = try started(supervisor, argv: "sleep 304")
        kill(pid_t(try #require(start["NSGROUP_SESSION_PID"].flatMap(Int32.init))), SIGKILL)
        client.waitUntilExit()
        let end = try ended(supervisor, start)
        expectSameSession(end, start)
        #expect(end["NSGROUP_ENDED_BY"] == "signal")
        #expect(end["NSGROUP_SIGNAL"] == "\(SIGKILL)")
        #expect(end["NSGROUP_ENDED_BY_UID"] == nil)
        #expect(end["NSGROUP_SIGNAL_SENT"] == nil)
    }

    /// A session that went with its group, destroyed by someone else than its user (an admin).
    @Test func aSessionEndedByADestroyNamesWhoDestroyed() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let carol = try TestUser.carol()  // in nsgroup-admin
        #expect(try supervisor.nsgroup(["create", "destroyed"], as: alice).status == 0)
        let client = try supervisor.startEnter("destroyed", ["sleep", "302"], as: alice)
        defer { if client.isRunning { client.terminate(); client.waitUntilExit() } }
        let start = try started(supervisor, argv: "sleep 302")
        #expect(try supervisor.nsgroup(["destroy", "destroyed"], as: carol).status == 0)
        client.waitUntilExit()
        let end = try ended(supervisor, start)
        expectSameSession(end, start)
        #expect(end["NSGROUP_ENDED_BY"] == "destroy")
        #expect(end["NSGROUP_ENDED_BY_UID"] == "\(carol.uid)")
        #expect(end["NSGROUP_SIGNAL"] == "\(SIGKILL)")
        #expect(end["MESSAGE"]?.contains("ended: killed by signal 9 when uid \(carol.uid) (\(carol.name)) destroyed the group, after ") == true, "\(end["MESSAGE"] ?? "")")
        // The destroy's own record and the group's last one name the same instance.
        let request = try journal.one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=destroy", "NSGROUP_NAME=destroyed"])
        #expect(request["NSGROUP_GROUP_ID"] == start["NSGROUP_GROUP_ID"])
        let destroyed = try journal.one(supervisor, "groupDestroyed", ["NSGROUP_NAME=destroyed"])
        #expect(destroyed["NSGROUP_GROUP_ID"] == start["NSGROUP_GROUP_ID"])
    }

    /// A session whose group's lifetime ran out.
    @Test func aSessionOfAnExpiredGroupSaysWhy() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "brief", "--lifetime", "2s"], as: alice).status == 0)
        let client = try supervisor.startEnter("brief", ["sleep", "305"], as: alice)
        defer { if client.isRunning { client.terminate(); client.waitUntilExit() } }
        let start = try started(supervisor, argv: "sleep 305")
        client.waitUntilExit()
        let end = try ended(supervisor, start)
        expectSameSession(end, start)
        #expect(end["NSGROUP_ENDED_BY"] == "expired")
        #expect(end["NSGROUP_REASON"] == "lifetime")
        #expect(end["NSGROUP_ENDED_BY_UID"] == nil)
    }

    /// A session that ended while no supervisor ran: recorded when the next one starts, with
    /// the same ids, its start and its terminal, but no duration and no status (neither is known).
    @Test func aSessionThatEndsWhileTheSupervisorIsDownSaysSupervisorDown() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "downtime"], as: alice).status == 0)
        let client = try supervisor.startEnter("downtime", ["sleep", "303"], as: alice)
        let start = try started(supervisor, argv: "sleep 303")
        let pid = pid_t(try #require(start["NSGROUP_SESSION_PID"].flatMap(Int32.init)))
        supervisor.stop()
        kill(pid, SIGKILL)
        // The client would wait a while for a supervisor to reattach to.
        kill(client.processIdentifier, SIGKILL)
        client.waitUntilExit()
        try supervisor.start()
        let end = try ended(supervisor, start)
        expectSameSession(end, start)
        #expect(end["NSGROUP_ENDED_BY"] == "supervisor-down")
        #expect(end["NSGROUP_RESULT"] == "ended_while_down")
        #expect(end["NSGROUP_DURATION_USEC"] == nil)
        #expect(end["NSGROUP_EXIT_CODE"] == nil)
        #expect(end["MESSAGE"] == "Session \(start["NSGROUP_SESSION"]!) (pid \(pid)) in group downtime ended while the supervisor was down; how is not known")
        // The group taken back is the same instance.
        let adopted = try journal.one(supervisor, "groupAdopted", ["NSGROUP_NAME=downtime"])
        #expect(adopted["NSGROUP_GROUP_ID"] == start["NSGROUP_GROUP_ID"])
    }

    /// A group and session recorded by an earlier version, without ids, get them when taken
    /// back, and keep them: the state file is saved with them, and the session's end names it.
    @Test func aGroupAndSessionRecordedWithoutIdsGetThemWhenTakenBack() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "older"], as: alice).status == 0)
        let client = try supervisor.startEnter("older", ["sleep", "306"], as: alice)
        defer { if client.isRunning { kill(client.processIdentifier, SIGKILL); client.waitUntilExit() } }
        let start = try started(supervisor, argv: "sleep 306")
        supervisor.stop()
        // The record as a version before the ids wrote it.
        let file = supervisor.stateDirectory + "/groups/older.json"
        func stored() throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any])
        }
        var record = try stored()
        #expect(record["groupID"] as? String == start["NSGROUP_GROUP_ID"])
        record["groupID"] = nil
        var sessions = try #require(record["sessions"] as? [[String: Any]])
        #expect(sessions.count == 1)
        #expect(sessions[0]["sessionID"] as? String == start["NSGROUP_SESSION_ID"])
        sessions[0]["sessionID"] = nil
        record["sessions"] = sessions
        try JSONSerialization.data(withJSONObject: record).write(to: URL(fileURLWithPath: file))
        #expect(chmod(file, 0o600) == 0)
        try supervisor.start()

        let adopted = try journal.one(supervisor, "groupAdopted", ["NSGROUP_NAME=older"])
        let groupID = try #require(adopted["NSGROUP_GROUP_ID"])
        #expect(Self.isRandomID(groupID))
        #expect(groupID != start["NSGROUP_GROUP_ID"])
        let saved = try stored()
        #expect(saved["groupID"] as? String == groupID)
        let sessionID = try #require((saved["sessions"] as? [[String: Any]])?.first?["sessionID"] as? String)
        #expect(Self.isRandomID(sessionID))
        #expect(sessionID != start["NSGROUP_SESSION_ID"])

        // Its end: the new ids, the status unknown (not this supervisor's child).
        kill(pid_t(try #require(start["NSGROUP_SESSION_PID"].flatMap(Int32.init))), SIGTERM)
        client.waitUntilExit()
        let end = try ended(supervisor, start)
        #expect(end["NSGROUP_SESSION_ID"] == sessionID)
        #expect(end["NSGROUP_GROUP_ID"] == groupID)
        #expect(end["NSGROUP_ENDED_BY"] == "unknown")
        #expect(end["NSGROUP_EXIT_CODE"] == nil)
        #expect(end["NSGROUP_SESSION_STARTED"] == start["NSGROUP_SESSION_STARTED"])
        #expect(end["NSGROUP_DURATION_USEC"].flatMap(UInt64.init) != nil, "its start is known from /proc")
    }

    /// A group destroyed and created again under its name is another instance: every record
    /// of each carries its own id.
    @Test func aGroupCreatedAgainUnderItsNameHasAnotherID() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "again"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["destroy", "again"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["create", "again"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["share", "again", "nsg-dave"], as: alice).status == 0)

        let created = try journal.records(supervisor, ["MESSAGE_ID=\(JournalTests.messageIDs["groupCreated"]!)", "NSGROUP_NAME=again"], count: 2)
        let first = try #require(created.first?["NSGROUP_GROUP_ID"])
        let second = try #require(created.last?["NSGROUP_GROUP_ID"])
        #expect(Self.isRandomID(first) && Self.isRandomID(second))
        #expect(first != second)
        let destroyed = try journal.one(supervisor, "groupDestroyed", ["NSGROUP_NAME=again"])
        #expect(destroyed["NSGROUP_GROUP_ID"] == first)
        let creates = try journal.records(supervisor, ["MESSAGE_ID=\(JournalTests.messageIDs["requestAccepted"]!)",
                                                       "NSGROUP_OPERATION=create", "NSGROUP_NAME=again"], count: 2)
        #expect(creates.map { $0["NSGROUP_GROUP_ID"] } == [first, second])
        let shared = try journal.one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=share", "NSGROUP_NAME=again"])
        #expect(shared["NSGROUP_GROUP_ID"] == second)
        // A refused create names the group that is in the way.
        #expect(try supervisor.nsgroup(["create", "again"], as: alice).status != 0)
        let refused = try journal.one(supervisor, "requestRefused", ["NSGROUP_OPERATION=create", "NSGROUP_NAME=again"])
        #expect(refused["NSGROUP_GROUP_ID"] == second)
    }
}
