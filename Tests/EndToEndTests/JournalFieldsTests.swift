import Client
import Foundation
import Glibc
import RPC
import Supervisor
import Testing

/// What an investigator reads: every record of a decision names everything the decision was
/// about in fields of its own, text a user chose cannot forge or hide a line, and priorities
/// tell typos from policy. Read back from the real journald with the real journalctl.
@Suite struct JournalFieldsTests {
    let journal = JournalTests()

    /// The records of this supervisor matching `matches`, as journalctl prints them in `format`.
    func printed(_ supervisor: TestSupervisor, _ format: String, _ matches: [String]) throws -> String {
        let result = try run("/usr/bin/journalctl", ["-o", format, "--no-pager", "--all",
                                                     "NSGROUP_SOCKET=\(supervisor.socketPath)"] + matches)
        #expect(result.status == 0, "journalctl: \(result.stderr)")
        return result.stdout
    }

    /// Every value of a field that may repeat, from `journalctl -o json` (one string, or an array).
    func values(_ supervisor: TestSupervisor, _ field: String, _ matches: [String]) throws -> [String] {
        _ = try journal.records(supervisor, matches)
        let lines = try printed(supervisor, "json", matches).split(separator: "\n")
        guard let last = lines.last,
              let object = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any] else { return [] }
        if let one = object[field] as? String { return [one] }
        return object[field] as? [String] ?? []
    }

    @Test func aCreateRecordNamesEveryOption() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let bob = try TestUser.bob()
        // As root, who may bind and publish a net namespace.
        let created = try supervisor.nsgroup([
            "create", "optioned", "--ns", "mnt,uts,ipc,pid,net,time", "--hostname", "box",
            "--tmpfs", "/mnt:size=8m", "--bind", "/usr/share:/srv:ro", "--member", bob.name,
            "--monotonic-offset", "3600", "--boottime-offset=-60", "--netns-name", "nsg-audit-\(getpid())",
            "--memory", "64M", "--pids", "50", "--lifetime", "1h", "--idle", "10m",
        ])
        #expect(created.status == 0, "\(created.stderr)")
        let matches = ["MESSAGE_ID=\(AuditEvent.requestAccepted.messageID)", "NSGROUP_OPERATION=create", "NSGROUP_NAME=optioned"]
        let record = try journal.one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=create", "NSGROUP_NAME=optioned"])
        #expect(record["NSGROUP_NAMESPACES_REQUESTED"] == "mnt uts ipc pid net time")
        #expect(record["NSGROUP_HOSTNAME"] == "box")
        #expect(record["NSGROUP_TMPFS"] == "/mnt:size=8m")
        #expect(record["NSGROUP_BIND"] == "/usr/share:/srv:ro")
        #expect(record["NSGROUP_MONOTONIC_OFFSET"] == "3600")
        #expect(record["NSGROUP_BOOTTIME_OFFSET"] == "-60")
        #expect(record["NSGROUP_NETNS_NAME"] == "nsg-audit-\(getpid())")
        #expect(record["NSGROUP_LIMITS_REQUESTED"] == "memory=64m pids=50")
        #expect(record["NSGROUP_LIMITS"]?.hasPrefix("memory=64m pids=50") == true)
        #expect(record["NSGROUP_LIFETIME"] == "3600")
        #expect(record["NSGROUP_IDLE"] == "600")
        #expect(record["NSGROUP_MEMBER_REQUESTED"] == bob.name)
        #expect(record["NSGROUP_MEMBER_ADDED_UID"] == "\(bob.uid)")
        #expect(record["NSGROUP_MEMBER_ADDED_USER"] == bob.name)
        #expect(record["NSGROUP_MEMBERS"] == bob.name)
        #expect(try values(supervisor, "NSGROUP_TMPFS", matches) == ["/mnt:size=8m"])
        #expect(try supervisor.nsgroup(["destroy", "optioned"]).status == 0)
    }

    @Test func shareAndUnshareRecordsNameWhomTheyAddedAndRemoved() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        let dave = try TestUser.dave()
        #expect(try supervisor.nsgroup(["create", "lab", "--ns", "uts", "--member", bob.name], as: alice).status == 0)
        // bob is a member already: only dave is added.
        #expect(try supervisor.nsgroup(["share", "lab", bob.name, dave.name], as: alice).status == 0)
        let shared = ["MESSAGE_ID=\(AuditEvent.requestAccepted.messageID)", "NSGROUP_OPERATION=share", "NSGROUP_NAME=lab"]
        let share = try journal.one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=share", "NSGROUP_NAME=lab"])
        #expect(share["NSGROUP_CALLER_UID"] == "\(alice.uid)")
        #expect(share["NSGROUP_MEMBER_ADDED_UID"] == "\(dave.uid)")
        #expect(share["NSGROUP_MEMBER_ADDED_USER"] == dave.name)
        #expect(share["MESSAGE"] == "Accepted share of group lab from uid \(alice.uid) (\(alice.name)): added \(dave.name) (uid \(dave.uid))")
        // journald keeps a repeated field's values as a set, not in the order sent.
        #expect(Set(try values(supervisor, "NSGROUP_MEMBER_REQUESTED", shared)) == [bob.name, dave.name])
        #expect(Set(try values(supervisor, "NSGROUP_MEMBERS", shared)) == [bob.name, dave.name])
        #expect(share["NSGROUP_MEMBER_ADDED"] == "\(dave.name):\(dave.uid)")
        // "Who gave dave access?" has one answer.
        let given = try printed(supervisor, "json", ["NSGROUP_MEMBER_ADDED_UID=\(dave.uid)"])
        #expect(given.split(separator: "\n").count == 1)

        #expect(try supervisor.nsgroup(["unshare", "lab", bob.name], as: alice).status == 0)
        let unshare = try journal.one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=unshare", "NSGROUP_NAME=lab"])
        #expect(unshare["NSGROUP_MEMBER_REMOVED_UID"] == "\(bob.uid)")
        #expect(unshare["NSGROUP_MEMBER_REMOVED_USER"] == bob.name)
        #expect(unshare["NSGROUP_MEMBER_REMOVED"] == "\(bob.name):\(bob.uid)")
        #expect(unshare["NSGROUP_MEMBER_ADDED_UID"] == nil)
        #expect(unshare["NSGROUP_MEMBERS"] == dave.name)
    }

    @Test func enterAndSignalRecordsNameWhatWasAskedButNoEnvironmentValue() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "work", "--ns", "uts,ipc"], as: alice).status == 0)
        let secret = "s3cret-\(getpid())"
        let entered = try supervisor.nsgroup(["enter", "work", "--cwd", "/tmp", "--env", "API_TOKEN=\(secret)",
                                              "--env", "LANG=C", "--", "sh", "-c", "exit 0"], as: alice)
        #expect(entered.status == 0, "\(entered.stderr)")
        let matches = ["MESSAGE_ID=\(AuditEvent.requestAccepted.messageID)", "NSGROUP_OPERATION=enter", "NSGROUP_NAME=work"]
        let enter = try journal.one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=enter", "NSGROUP_NAME=work"])
        #expect(enter["NSGROUP_CWD"] == "/tmp")
        #expect(enter["NSGROUP_TTY"] == "stdio")
        #expect(enter["NSGROUP_ARGV"] == "sh -c exit 0")
        #expect(enter["NSGROUP_ARGC"] == "3")
        #expect(Set(try values(supervisor, "NSGROUP_ENV_NAMES", matches)) == ["API_TOKEN", "LANG"])
        // The value is nowhere in the journal.
        let everything = try printed(supervisor, "json", [])
        #expect(!everything.contains(secret))

        // A long argv is cut, and says so.
        let long = String(repeating: "x", count: 10_000)
        #expect(try supervisor.nsgroup(["enter", "work", "--", "true", long], as: alice).status == 0)
        let cut = try journal.one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=enter", "NSGROUP_ARGV_TRUNCATED=1"])
        #expect(cut["NSGROUP_ARGV"]?.utf8.count == 4096)
        #expect(cut["NSGROUP_ARGC"] == "2")

        // signal: which session, which signal, whose session.
        let sleeper = try supervisor.startEnter("work", ["sleep", "60"], as: alice)
        defer { sleeper.terminate() }
        var session: String?
        try waitUntil("the sleep's session to start") {
            session = try journal.records(supervisor, ["MESSAGE_ID=\(AuditEvent.sessionStarted.messageID)", "NSGROUP_ARGV=sleep 60"], count: 0).last?["NSGROUP_SESSION"]
            return session != nil
        }
        let id = try #require(session)
        // Root signals alice's session (the CLI has no signal command; the protocol has).
        let root = try RPCClient(socketPath: supervisor.socketPath)
        _ = try root.call("signal", ["name": "work", "session": .number(JSONNumber(UInt64(id)!)),
                                     "signal": .number(JSONNumber(SIGTERM))])
        let signal = try journal.one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=signal", "NSGROUP_NAME=work"])
        #expect(signal["NSGROUP_SESSION"] == id)
        #expect(signal["NSGROUP_SIGNAL"] == "\(SIGTERM)")
        #expect(signal["NSGROUP_SESSION_UID"] == "\(alice.uid)")
        #expect(signal["NSGROUP_SESSION_PID"].flatMap(Int.init) != nil)
    }

    /// A method name (or an argv) with a newline, a NUL or an escape sequence in it prints as
    /// one line that says what it is; the raw value stays in its field.
    @Test(arguments: ["x\n<30>Jan  1 00:00:00 nsgroupd[1]: Accepted destroy from uid 0", "x\u{0}y", "x\u{1b}[2Jy\u{2028}z"])
    func textAUserChoseCannotForgeALine(_ method: String) throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let client = try RPCClient(socketPath: supervisor.socketPath)
        let error = serverError { () throws(ClientError) in _ = try client.call(method) }
        #expect(error?.reason == .methodNotFound)
        let matches = ["MESSAGE_ID=\(AuditEvent.requestRefused.messageID)", "NSGROUP_RESULT=method_not_found"]
        _ = try journal.records(supervisor, matches)
        let cat = try printed(supervisor, "cat", matches)
        #expect(cat.split(separator: "\n", omittingEmptySubsequences: false).count == 2, "one line and its end: \(cat.debugDescription)")
        #expect(cat.hasPrefix("Refused x"))
        #expect(!cat.contains("blob data"))
        #expect(cat.unicodeScalars.allSatisfy { $0 == "\n" || ($0.value >= 0x20 && $0.value != 0x7f && $0 != "\u{2028}") })
        // In JSON the MESSAGE is a string (not a byte array, as a blob would be), on one line.
        let json = try printed(supervisor, "json", matches)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let message = try #require(object["MESSAGE"] as? String)
        #expect(!message.contains("\n"))
        #expect(message.contains("\\"))
        #expect(object["NSGROUP_REFUSAL"] as? String == "invalid")
        #expect(object["PRIORITY"] as? String == "6")
    }

    /// `journalctl -p notice` shows what the policy refused, not typos; the record says which it was.
    @Test func refusalsArePrioritisedByWhatTheyAre() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        #expect(try supervisor.nsgroup(["create", "private", "--ns", "uts"], as: alice).status == 0)
        // A typo: a group that does not exist. A probe: a group that exists but is not bob's to see.
        #expect(try supervisor.nsgroup(["inspect", "no-such"], as: bob).status != 0)
        #expect(try supervisor.nsgroup(["inspect", "private"], as: bob).status != 0)
        #expect(try supervisor.nsgroup(["destroy", "private"], as: bob).status != 0)
        let client = try RPCClient(socketPath: supervisor.socketPath)
        #expect(serverError { () throws(ClientError) in _ = try client.call("create", ["name": "x", "bogus": true]) }?.reason == .invalidParams)
        let refused = "MESSAGE_ID=\(AuditEvent.requestRefused.messageID)"
        let typo = try journal.one(supervisor, "requestRefused", ["NSGROUP_NAME=no-such"])
        #expect(typo["PRIORITY"] == "6")
        #expect(typo["NSGROUP_REFUSAL"] == "conflict")
        let probe = try journal.one(supervisor, "requestRefused", ["NSGROUP_NAME=private", "NSGROUP_OPERATION=inspect"])
        #expect(probe["PRIORITY"] == "5")
        #expect(probe["NSGROUP_REFUSAL"] == "policy")
        let bad = try journal.one(supervisor, "requestRefused", ["NSGROUP_RESULT=invalid_params"])
        #expect(bad["PRIORITY"] == "6")
        #expect(bad["NSGROUP_REFUSAL"] == "invalid")
        // At notice and above: only the two policy refusals of bob.
        _ = try journal.records(supervisor, [refused, "NSGROUP_CALLER_UID=\(bob.uid)"], count: 3)
        let notices = try printed(supervisor, "json", ["-p", "notice", refused])
            .split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(notices.count == 2)
        #expect(notices.allSatisfy { $0["NSGROUP_REFUSAL"] as? String == "policy" && $0["NSGROUP_NAME"] as? String == "private" })
    }

    /// The decision comes first, then what it made: "Accepted enter" before "Started session",
    /// "Accepted create" before "Created group".
    @Test func recordsFollowTheOrderOfWhatHappened() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "ordered", "--ns", "uts"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["enter", "ordered", "--", "true"], as: alice).status == 0)
        _ = try journal.records(supervisor, ["MESSAGE_ID=\(AuditEvent.sessionEnded.messageID)"])
        let ids = try printed(supervisor, "json", ["NSGROUP_NAME=ordered"]).split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]).flatMap { record -> String? in
                guard let id = record["MESSAGE_ID"] as? String,
                      let event = AuditEvent.allCases.first(where: { $0.messageID == id }) else { return nil }
                return "\(event.rawValue):\(record["NSGROUP_OPERATION"] as? String ?? "")"
            }
        }
        #expect(ids == ["request-accepted:create", "group-created:create",
                        "request-accepted:enter", "session-started:enter", "session-ended:enter"])
    }
}
