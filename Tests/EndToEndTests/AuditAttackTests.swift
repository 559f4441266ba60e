import Foundation
import Glibc
import RPC
import Supervisor
import Testing

/// The red team's attacks on the audit trail, against the real supervisor and the real
/// journald: a hostile local user trying to forge a record, hide one, drown the journal in
/// records, or make a record lie. Each test says what the correct behaviour is; those that
/// hold show a defence JournalFieldsTests, JournalBudgetTests and JournalSessionTests do not
/// already show.
@Suite struct AuditAttackTests {
    private let journal = JournalTests()

    private static func id(_ event: AuditEvent) -> String { "MESSAGE_ID=\(event.messageID)" }

    /// A python3 client. `pipeline N`: on one connection, sends the request line on stdin N
    /// times (a thread sends while the main one reads) and reads the N replies.
    /// `connections N`: opens N connections one after another, each sending the line once,
    /// reading its reply and closing. Prints how many replies came.
    static let repeater = """
        import socket, sys, threading
        path, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
        line = sys.stdin.buffer.read()
        def replies(s, n):
            pending, got = b"", 0
            while got < n:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                parts = (pending + chunk).split(b"\\n")
                pending = parts.pop()
                got += sum(1 for part in parts if b'"id"' in part)
            return got
        def connect():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        got = 0
        if mode == "pipeline":
            s = connect()
            sender = threading.Thread(target=s.sendall, args=(line * count,))
            sender.start()
            got = replies(s, count)
            sender.join()
        else:
            for _ in range(count):
                s = connect()
                s.sendall(line)
                got += replies(s, 1)
                s.close()
        print(got, flush=True)
        """

    /// Sends `request` (method and params) `count` times as `user` (`pipeline` or
    /// `connections`, see `repeater`); returns how many replies came.
    @discardableResult
    static func repeated(_ supervisor: TestSupervisor, _ method: String, _ params: [String: Any], count: Int,
                         mode: String = "pipeline", as user: TestUser) throws -> Int {
        var line = try JSONSerialization.data(withJSONObject: ["jsonrpc": "2.0", "id": 1, "method": method, "params": params])
        line.append(UInt8(ascii: "\n"))
        let result = try run("/usr/bin/python3", ["-I", "-c", repeater, supervisor.socketPath, mode, String(count)],
                             as: user, stdin: line)
        guard result.status == 0, let got = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw HarnessError("the repeating client failed: \(result.stdout) \(result.stderr)")
        }
        return got
    }

    /// Sends raw bytes (one or more request lines) on one connection as `user` and returns
    /// what came back before the first newline-terminated reply.
    @discardableResult
    static func raw(_ supervisor: TestSupervisor, _ bytes: [UInt8], as user: TestUser? = nil) throws -> String {
        try run("/usr/bin/python3", ["-I", "-c", PolicyTests.rawClient, supervisor.socketPath], as: user,
                stdin: Data(bytes)).stdout
    }

    /// The records matching `matches`, each as journalctl's JSON line, with every field
    /// (repeated ones as arrays); waits (bounded) for at least `count`.
    func jsonRecords(_ supervisor: TestSupervisor, _ matches: [String], count: Int = 1) throws -> [(line: String, fields: [String: Any])] {
        _ = try journal.records(supervisor, matches, count: count)
        let result = try run("/usr/bin/journalctl", ["-o", "json", "--no-pager", "--all",
                                                     "NSGROUP_SOCKET=\(supervisor.socketPath)"] + matches)
        return result.stdout.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]).map { (String(line), $0) }
        }
    }

    // MARK: Hiding

    /// Hiding a refusal: journald drops a whole entry that has more than 1024 fields, and a
    /// request record repeats NSGROUP_TMPFS, NSGROUP_BIND and NSGROUP_MEMBER_REQUESTED once per
    /// value asked, before anything checked how many there may be. So bob pads a create or a
    /// probing share with 2,000 values: it is refused, the budget counts its record as
    /// written, and journald throws the record away. No trace at all.
    ///
    /// Correct: a request record keeps at most a bounded number of values of a repeated field
    /// (and says how many there were, and that it cut them), so that every record fits
    /// journald's limits; the refusal is on the record.
    @Test func paddingAListCannotMakeJournaldDropTheRefusal() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        #expect(try supervisor.nsgroup(["create", "padded-lab", "--ns", "uts"], as: alice).status == 0)

        let created = try PolicyTests.rawError(supervisor, "create", ["name": "padded-create", "namespaces": ["mnt"],
                                                      "tmpfs": Array(repeating: "/mnt", count: 2000)], as: bob)
        #expect(created.reason == "invalid_params", "\(created)")
        let shared = try PolicyTests.rawError(supervisor, "share", ["name": "padded-lab",
                                                     "members": Array(repeating: "nsg-bob", count: 2000)], as: bob)
        #expect(shared.reason == "not_found", "\(shared)")

        let create = try journal.one(supervisor, "requestRefused", ["NSGROUP_NAME=padded-create", "NSGROUP_CALLER_UID=\(bob.uid)"])
        #expect(create["NSGROUP_RESULT"] == "invalid_params")
        let share = try jsonRecords(supervisor, [Self.id(.requestRefused), "NSGROUP_NAME=padded-lab",
                                                 "NSGROUP_CALLER_UID=\(bob.uid)"]).last
        #expect(share?.fields["NSGROUP_RESULT"] as? String == "not_found")
        #expect(share?.fields["NSGROUP_REFUSAL"] as? String == "policy")
        // journald keeps one of identical values of a field: the count says how many were asked.
        let field = share?.fields["NSGROUP_MEMBER_REQUESTED"]
        let members = field as? [String] ?? (field as? String).map { [$0] } ?? []
        #expect(!members.isEmpty && members.count <= 64, "\(members.count) values kept")
        #expect(members.allSatisfy { $0 == "nsg-bob" })
        #expect(share?.fields["NSGROUP_MEMBER_REQUESTED_COUNT"] as? String == "2000")
        #expect(share?.fields["NSGROUP_MEMBER_REQUESTED_TRUNCATED"] as? String == "1")
    }

    /// The budget counts records, not bytes: each of a person's 50 refusals a minute could
    /// carry a hostname, a netns name, tmpfs and bind specs of up to a whole request line
    /// (1 MiB), none of them checked before the record was made. Bob writes a megabyte of
    /// journal per refused create.
    ///
    /// Correct: every value a request record keeps is cut, as NSGROUP_ARGV is at 4096 bytes,
    /// and says so (NAME_TRUNCATED=1); a record has a bounded size whatever the request.
    @Test func aRefusedCreateCannotWriteAMegabyteRecord() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let bob = try TestUser.bob()
        let long = String(repeating: "h", count: 200_000)
        let refused = try PolicyTests.rawError(supervisor, "create", [
            "name": "huge-fields", "namespaces": ["mnt", "uts"], "hostname": long, "netnsName": long,
            "tmpfs": ["/" + long], "binds": ["/" + long + ":/x"],
        ], as: bob)
        #expect(refused.reason != nil, "\(refused)")
        let record = try #require(try jsonRecords(supervisor, [Self.id(.requestRefused), "NSGROUP_NAME=huge-fields"]).last)
        #expect(record.line.utf8.count < 32 << 10, "the record is \(record.line.utf8.count) bytes")
        for field in ["NSGROUP_HOSTNAME", "NSGROUP_NETNS_NAME", "NSGROUP_TMPFS", "NSGROUP_BIND"] {
            let value = record.fields[field] as? String ?? ""
            #expect(!value.isEmpty && value.utf8.count <= 4096, "\(field) is \(value.utf8.count) bytes")
            #expect(record.fields[field + "_TRUNCATED"] as? String == "1", "\(field) says it was cut")
        }
    }

    /// The budget of refusals lives only in the supervisor's memory: what it held back when it
    /// is killed (SIGKILL, OOM killer, a crash: anything but SIGTERM) is never summed up. A
    /// person whose refusals were held back for most of an interval leaves no count of them.
    ///
    /// Correct: held-back counts survive the supervisor: e.g. kept in the state directory
    /// (written at most once a second while they change, as the session counter is kept),
    /// and the next supervisor writes the refusals-summarized records of what the last one
    /// left, saying the interval was cut short by its end.
    @Test func refusalsHeldBackAreSummedUpEvenIfTheSupervisorIsKilled() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor(config: "[audit]\nrefusals-per-interval = 2\nrefusal-interval = 3600\n")
        let erin = try TestUser.erin()
        #expect(try Self.repeated(supervisor, "inspect", ["name": "killed-none"], count: 10, as: erin) == 10)
        _ = try journal.records(supervisor, [Self.id(.requestRefused), "NSGROUP_CALLER_UID=\(erin.uid)"], count: 2)
        supervisor.stop(signal: SIGKILL)
        try supervisor.start()
        supervisor.stop()
        _ = try journal.records(supervisor, [Self.id(.supervisorStopped)])
        let summaries = try journal.records(supervisor, [Self.id(.refusalsSummarized), "NSGROUP_CALLER_UID=\(erin.uid)"],
                                            count: 0)
        let held = summaries.reduce(0) { $0 + (Int($1["NSGROUP_HELD_BACK"] ?? "") ?? 0) }
        #expect(held == 8, "8 refusals were held back; the journal counts \(held)")
    }

    // MARK: Drowning

    /// The budget binds refusals and reads, but an accepted request that changes nothing is
    /// one record each, unbounded: `subscribe` again on a subscribed connection (any user, no
    /// group needed), `share` of someone already a member ("added nobody"), `freeze` of a
    /// frozen group, and `processes` (a read, but answered later, so recorded one by one).
    /// Some 20,000 such requests a second from one person fill journald's rate limit for the
    /// service (10,000 records per 30 s by default), which then drops everybody's records,
    /// and fill the disk, whose rotation drops history.
    ///
    /// Correct: an accepted request that changes nothing is counted, like a read, and summed
    /// up (at most a few records per person and read-summary-interval); one that does change
    /// something is bounded by a per-person rate, past which it is refused (and refusals
    /// are budgeted).
    @Test(arguments: ["subscribe", "share", "freeze", "processes"])
    func acceptedRequestsThatChangeNothingCannotFloodTheJournal(_ method: String) throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let dave = try TestUser.dave()
        let name = "cheap-\(method)"
        #expect(try supervisor.nsgroup(["create", name, "--ns", "uts", "--member", dave.name], as: alice).status == 0)
        if method == "freeze" { #expect(try supervisor.nsgroup(["freeze", name], as: alice).status == 0) }
        let params: [String: Any] = switch method {
        case "subscribe": [:]
        case "share": ["name": name, "members": [dave.name]]
        default: ["name": name]
        }
        let total = 1500
        #expect(try Self.repeated(supervisor, method, params, count: total, as: alice) == total)
        usleep(1_500_000)
        let written = try journal.records(supervisor, [Self.id(.requestAccepted), "NSGROUP_OPERATION=\(method)",
                                                       "NSGROUP_CALLER_UID=\(alice.uid)"], count: 0)
        #expect(written.count <= 60, "\(total) \(method) requests that changed nothing made \(written.count) records")
    }

    /// Reads are summed up per connection, so a client that opens a connection per read (as
    /// every `nsgroup list` does) writes a reads-summarized record per read: 1,500
    /// connections, 1,500 records, as fast as it can connect. Per-user connection caps do not
    /// help: the connections follow one another.
    ///
    /// Correct: reads are summed up per person (the charged uid, as the refusal budget
    /// counts), in one record per read-summary-interval, whatever the number of connections
    /// they came on.
    @Test func oneReadPerConnectionCannotFloodTheJournal() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let bob = try TestUser.bob()
        let total = 1500
        #expect(try Self.repeated(supervisor, "version", [:], count: total, mode: "connections", as: bob) == total)
        usleep(1_500_000)
        let written = try journal.records(supervisor, [Self.id(.readsSummarized), "NSGROUP_CALLER_UID=\(bob.uid)"], count: 0)
        #expect(written.count <= 5, "\(total) reads on as many connections made \(written.count) records")
    }

    /// A limit on what one record may hold must count bytes (or at least Unicode scalars),
    /// not Characters: a Character is an extended grapheme cluster, and one can be as long as
    /// the request line ("x" and 200,000 combining acute accents is one Character). So the 64
    /// characters of a refused method in MESSAGE and NSGROUP_OPERATION, and the 512 of its
    /// error message, let a single refusal write the whole method name three times over.
    ///
    /// Correct: the limits hold in bytes whatever the text: MESSAGE and NSGROUP_OPERATION
    /// keep a short prefix of the method.
    @Test func aGraphemeClusterCannotStretchTheLimitsOfARecord() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let bob = try TestUser.bob()
        let method = "zalgo" + String(repeating: "\u{0301}", count: 200_000)
        let refused = try PolicyTests.rawError(supervisor, method, [:], as: bob)
        #expect(refused.reason == "method_not_found")
        let record = try journal.one(supervisor, "requestRefused", ["NSGROUP_CALLER_UID=\(bob.uid)", "NSGROUP_RESULT=method_not_found"])
        let message = record["MESSAGE"] ?? ""
        #expect(message.utf8.count <= 4096, "MESSAGE is \(message.utf8.count) bytes")
        #expect(message.utf8.starts(with: "Refused zalgo".utf8))
        #expect((record["NSGROUP_OPERATION"] ?? "").utf8.count <= 256, "NSGROUP_OPERATION is \(record["NSGROUP_OPERATION"]?.utf8.count ?? 0) bytes")
    }

    /// The request record of an enter cuts NSGROUP_ARGV at 4096 bytes, but the session-started
    /// record writes the whole argv twice (MESSAGE and NSGROUP_ARGV) and the session-ended
    /// record once more: 128 KiB of argv makes some 400 KiB of journal per `enter -- true …`,
    /// and an ended session's NSGROUP_ARGV differs from the one the state file (and so a
    /// session taken back after a restart) keeps.
    ///
    /// Correct: session records cut NSGROUP_ARGV as the request record does (and say so with
    /// NSGROUP_ARGV_TRUNCATED=1), and their MESSAGE keeps a bounded part of it.
    @Test func sessionRecordsCutALongArgvAsTheRequestRecordDoes() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "long-argv", "--ns", "uts"], as: alice).status == 0)
        let argument = "long-argv-" + String(repeating: "y", count: 40_000)
        let entered = try supervisor.nsgroup(["enter", "long-argv", "--", "true", argument, argument, argument], as: alice)
        #expect(entered.status == 0, "\(entered.stderr)")
        let started = try journal.one(supervisor, "sessionStarted", ["NSGROUP_NAME=long-argv"])
        let ended = try journal.one(supervisor, "sessionEnded", ["NSGROUP_NAME=long-argv"])
        for (what, record) in [("session-started", started), ("session-ended", ended)] {
            #expect((record["NSGROUP_ARGV"] ?? "").utf8.count <= 4096, "\(what): NSGROUP_ARGV is \(record["NSGROUP_ARGV"]?.utf8.count ?? 0) bytes")
            #expect(record["NSGROUP_ARGV"]?.hasPrefix("true long-argv-yyy") == true, "\(what)")
            #expect(record["NSGROUP_ARGV_TRUNCATED"] == "1", "\(what) says the argv was cut")
            #expect((record["MESSAGE"] ?? "").utf8.count <= 8192, "\(what): MESSAGE is \(record["MESSAGE"]?.utf8.count ?? 0) bytes")
        }
    }

    // MARK: Lying

    /// A not_found about a group that exists is taken for one that hides the group from a
    /// caller who may not see it, and recorded as policy (notice). But a caller who may see
    /// the group gets not_found for other things: a session number that does not exist in her
    /// own group (signal, attach). Her typo is recorded as a policy refusal, at notice, where
    /// `journalctl -p notice` shows it beside real probes.
    ///
    /// Correct: hidden (policy) only when the group exists and the caller may not see it; a
    /// missing session in a group the caller sees is a conflict, at info.
    @Test func aMissingSessionInYourOwnGroupIsNotAPolicyRefusal() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "own-kind", "--ns", "uts"], as: alice).status == 0)
        let signalled = try PolicyTests.rawError(supervisor, "signal", ["name": "own-kind", "session": 987_654, "signal": 15], as: alice)
        #expect(signalled.reason == "not_found")
        let attached = try PolicyTests.rawError(supervisor, "attach", ["name": "own-kind", "session": 987_654], as: alice)
        #expect(attached.reason == "not_found")
        for operation in ["signal", "attach"] {
            let record = try journal.one(supervisor, "requestRefused", ["NSGROUP_OPERATION=\(operation)", "NSGROUP_NAME=own-kind"])
            #expect(record["NSGROUP_REFUSAL"] == "conflict", "\(operation): \(record["NSGROUP_REFUSAL"] ?? "?")")
            #expect(record["PRIORITY"] == "6", "\(operation)")
        }
        // Hold: bob, who may not see the group, is still recorded as a probe (policy, notice).
        let probed = try PolicyTests.rawError(supervisor, "signal", ["name": "own-kind", "session": 1, "signal": 15], as: try TestUser.bob())
        #expect(probed.reason == "not_found")
        let probe = try journal.one(supervisor, "requestRefused", ["NSGROUP_OPERATION=signal", "NSGROUP_NAME=own-kind",
                                                                    "NSGROUP_CALLER_UID=\(try TestUser.bob().uid)"])
        #expect(probe["NSGROUP_REFUSAL"] == "policy")
        #expect(probe["PRIORITY"] == "5")
    }

    /// A session keeps the last `signal` request sent to it, and if it later dies of that
    /// signal number, its session-ended record says the request's sender killed it. But a
    /// program may catch a signal: carol (an admin) asks for SIGTERM, bob's program handles
    /// it and goes on; later bob kills it himself with SIGTERM from outside nsgroupd. The
    /// record says "killed by signal 15 sent by uid <carol>", NSGROUP_ENDED_BY_UID=<carol>:
    /// bob has framed an admin.
    ///
    /// Correct: nsgroupd cannot know who sent the signal that killed a process, so it does not
    /// claim it: NSGROUP_ENDED_BY=signal, with the last request kept apart as what it is (e.g.
    /// NSGROUP_SIGNAL_REQUEST_UID and how long before the end it was sent).
    @Test func aSignalRequestTheSessionSurvivedIsNotBlamedForItsEnd() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let bob = try TestUser.bob()
        let carol = try TestUser.carol()
        #expect(try supervisor.nsgroup(["create", "framed", "--ns", "uts"], as: bob).status == 0)
        // The first SIGTERM is caught (and the handler restores the default); the second kills.
        let script = "trap 'trap - TERM' TERM; while :; do sleep 0.05; done"
        let session = try supervisor.startEnter("framed", ["sh", "-c", script], as: bob)
        defer { if session.isRunning { session.terminate() } }
        let started = try journal.one(supervisor, "sessionStarted", ["NSGROUP_NAME=framed"])
        let number = try #require(started["NSGROUP_SESSION"].flatMap { Int($0) })
        let pid = try #require(started["NSGROUP_SESSION_PID"].flatMap { pid_t($0) })

        let sent = try PolicyTests.rawError(supervisor, "signal", ["name": "framed", "session": number, "signal": Int(SIGTERM)], as: carol)
        #expect(sent.reason == nil, "\(sent)")
        usleep(500_000)
        #expect(kill(pid, 0) == 0, "the session survived carol's SIGTERM")
        #expect(try run("/bin/kill", ["-TERM", String(pid)], as: bob).status == 0)

        let ended = try journal.one(supervisor, "sessionEnded", ["NSGROUP_NAME=framed"])
        #expect(ended["NSGROUP_SIGNAL"] == "\(SIGTERM)")
        #expect(ended["NSGROUP_ENDED_BY_UID"] != "\(carol.uid)", "the record blames carol: \(ended["MESSAGE"] ?? "")")
        #expect(ended["NSGROUP_ENDED_BY"] != "signal-request")
    }

    /// A group-destroyed record says the group was destroyed at someone's request
    /// (NSGROUP_REASON=request) but not whose: only the request-accepted record of the destroy
    /// does, and that one is written when the destroy answers, after the group's processes
    /// are gone (up to 10 s later). A supervisor stopped or killed in between leaves a
    /// destroyed group and no one who destroyed it.
    ///
    /// Correct: the group-destroyed record names who destroyed the group
    /// (NSGROUP_ENDED_BY_UID, as a session-ended record does, and in its MESSAGE).
    @Test func aGroupDestroyedRecordNamesWhoDestroyedIt() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let carol = try TestUser.carol()
        #expect(try supervisor.nsgroup(["create", "whodunit", "--ns", "uts"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["destroy", "whodunit"], as: carol).status == 0)
        let destroyed = try journal.one(supervisor, "groupDestroyed", ["NSGROUP_NAME=whodunit"])
        #expect(destroyed["NSGROUP_REASON"] == "request")
        #expect(destroyed["NSGROUP_ENDED_BY_UID"] == "\(carol.uid)")
        #expect(destroyed["MESSAGE"] == "Destroyed group whodunit at the request of uid \(carol.uid) (\(carol.name))")
    }

    // MARK: Defences that hold

    /// Field values go to journald in its binary-safe form: a newline and `NAME=value` in a
    /// value a user chose (the directory, argv, environment names, a hostname) stays in that
    /// field; it cannot add a field, replace the caller's uid, the priority, the MESSAGE_ID or
    /// the SYSLOG_IDENTIFIER, and does not reach MESSAGE.
    @Test func aNewlineInAValueCannotAddOrReplaceAField() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "injected", "--ns", "uts"], as: alice).status == 0)
        let forged = "\nNSGROUP_CALLER_UID=0\nPRIORITY=0\nSYSLOG_IDENTIFIER=sshd\nMESSAGE_ID=\(AuditEvent.groupDestroyed.messageID)\nMESSAGE=forged"
        let entered = try PolicyTests.rawError(supervisor, "enter", [
            "name": "injected", "tty": true, "cwd": "/nonexistent" + forged, "argv": ["true" + forged],
            "env": ["NAME" + forged.replacingOccurrences(of: "=", with: ":"): "v"],
        ], as: alice)
        #expect(entered.reason != nil, "\(entered)")  // refused: no such directory
        let created = try PolicyTests.rawError(supervisor, "create", ["name": "injected-2", "hostname": "h" + forged], as: alice)
        #expect(created.reason != nil, "\(created)")

        for name in ["injected", "injected-2"] {
            let record = try #require(try jsonRecords(supervisor, [Self.id(.requestRefused), "NSGROUP_NAME=\(name)"]).last)
            #expect(record.fields["NSGROUP_CALLER_UID"] as? String == "\(alice.uid)", "\(name)")
            #expect(record.fields["SYSLOG_IDENTIFIER"] as? String == "nsgroupd", "\(name)")
            #expect(record.fields["MESSAGE_ID"] as? String == AuditEvent.requestRefused.messageID, "\(name)")
            #expect(["4", "5", "6"].contains(record.fields["PRIORITY"] as? String ?? ""), "\(name)")
            let message = record.fields["MESSAGE"] as? String ?? ""
            #expect(!message.contains("\n") && message.hasPrefix("Refused "), "\(name): \(message)")
        }
        let hostnames = try jsonRecords(supervisor, [Self.id(.requestRefused), "NSGROUP_NAME=injected-2"]).last
        #expect(hostnames?.fields["NSGROUP_HOSTNAME"] as? String == "h" + forged, "the raw value stays in its field")
        // Nothing was recorded as sshd, and no group-destroyed record exists.
        #expect(try journal.records(supervisor, [Self.id(.groupDestroyed)], count: 0).isEmpty)
    }

    /// Error messages that echo the client's text (a duplicate key, which the parser names)
    /// and lines that are not text at all (invalid UTF-8, a lone surrogate escape, a NUL
    /// escape in a key) are one escaped line each, never a blob and never a control sequence.
    @Test func parseErrorsThatEchoTheLineCannotForgeOrBlob() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let dave = try TestUser.dave()
        let lines: [[UInt8]] = [
            Array(#"{"jsonrpc":"2.0","id":1,"method":"version","x\n<30>nsgroupd[1]: Accepted destroy\u001b[2J":1,"x\n<30>nsgroupd[1]: Accepted destroy\u001b[2J":2}"#.utf8) + [0x0A],
            Array(#"{"jsonrpc":"2.0","id":1,"method":"vers"#.utf8) + [0xC3, 0x28, 0xFF] + Array(#""}"#.utf8) + [0x0A],
            Array(#"{"jsonrpc":"2.0","id":1,"method":"\ud800"}"#.utf8) + [0x0A],
            Array(#"{"jsonrpc":"2.0","id":1,"method":"version","a\u0000b":1,"a\u0000b":1}"#.utf8) + [0x0A],
        ]
        for line in lines {
            let reply = try Self.raw(supervisor, line, as: dave)
            #expect(reply.contains("parse_error"), "\(reply)")
        }
        let records = try jsonRecords(supervisor, [Self.id(.requestRefused), "NSGROUP_CALLER_UID=\(dave.uid)",
                                                   "NSGROUP_OPERATION=line"], count: lines.count)
        #expect(records.count == lines.count)
        for record in records {
            let message = try #require(record.fields["MESSAGE"] as? String, "MESSAGE is text, not a blob: \(record.line.prefix(300))")
            #expect(message.hasPrefix("Refused a line from uid \(dave.uid): parse error"))
            #expect(message.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F && !(0x80..<0xA0).contains($0.value) },
                    "\(message.debugDescription)")
            #expect(record.fields["NSGROUP_RESULT"] as? String == "parse_error")
        }
    }

    /// Many uids, one person: alice's subordinate uids (40 of them, as a user namespace of
    /// hers can be) share her refusal budget; the summary is charged to her, names at most 32
    /// of the uids and says there were others, and counts every refusal.
    @Test func subordinateUidsShareTheirOwnersRefusalBudget() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor(config: "[audit]\nrefusals-per-interval = 10\nrefusal-interval = 3600\n")
        let alice = try TestUser.alice()
        guard let range = try String(contentsOfFile: "/etc/subuid", encoding: .utf8).split(separator: "\n")
            .first(where: { $0.hasPrefix(alice.name + ":") })?.split(separator: ":"), let first = UInt32(range[1]) else {
            throw HarnessError("\(alice.name) has no range in /etc/subuid: run `make check`, which creates it")
        }
        var line = try JSONSerialization.data(withJSONObject: ["jsonrpc": "2.0", "id": 1, "method": "inspect",
                                                               "params": ["name": "subuid-none"]])
        line.append(UInt8(ascii: "\n"))
        let uids = (0..<40).map { first + 7 + UInt32($0) }
        for uid in uids {
            let result = try run("/usr/bin/setpriv", ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "--",
                                                      "/usr/bin/python3", "-I", "-c", Self.repeater, supervisor.socketPath,
                                                      "pipeline", "3"], stdin: line)
            #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "3", "\(result.stderr)")
        }
        let oneByOne = try journal.records(supervisor, [Self.id(.requestRefused), "NSGROUP_NAME=subuid-none"], count: 10)
        #expect(oneByOne.count == 10)
        #expect(oneByOne.allSatisfy { $0["NSGROUP_CALLER_SUBUID_OWNER"] == "\(alice.uid)" })
        supervisor.stop()
        let summary = try #require(try jsonRecords(supervisor, [Self.id(.refusalsSummarized)]).last)
        #expect(summary.fields["NSGROUP_CALLER_UID"] as? String == "\(alice.uid)")
        #expect(summary.fields["NSGROUP_HELD_BACK"] as? String == "110")
        #expect((summary.fields["NSGROUP_UIDS"] as? [String])?.count == 32)
        #expect((summary.fields["MESSAGE"] as? String)?.hasSuffix(" and others") == true, "\(summary.fields["MESSAGE"] ?? "")")
    }

    /// Connections over the per-user cap are refusals too, and budgeted: a loop of connects
    /// past connections.per-user makes a few records and one summary, not one record each.
    @Test func connectRefusalsAreBudgeted() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor(config: "[connections]\nper-user = 2\n[audit]\nrefusals-per-interval = 5\nrefusal-interval = 3600\n")
        let bob = try TestUser.bob()
        let script = """
            import socket, sys
            held = []
            for _ in range(2):
                s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"version"}\\n'); s.recv(65536); held.append(s)
            refused = 0
            for _ in range(300):
                s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
                refused += b"limit_exceeded" in s.recv(65536)
                s.close()
            print(refused)
            """
        let result = try run("/usr/bin/python3", ["-I", "-c", script, supervisor.socketPath], as: bob)
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "300", "\(result.stdout) \(result.stderr)")
        let oneByOne = try journal.records(supervisor, [Self.id(.requestRefused), "NSGROUP_OPERATION=connect"], count: 5)
        supervisor.stop()
        let summary = try journal.one(supervisor, "refusalsSummarized", ["NSGROUP_CALLER_UID=\(bob.uid)"])
        #expect(oneByOne.count == 5)
        #expect(summary["NSGROUP_REFUSALS"] == "connect/limit_exceeded=295")
    }
}
