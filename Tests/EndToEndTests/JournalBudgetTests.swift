import Foundation
import Glibc
import RPC
import Supervisor
import Testing

/// The per-person budget of refusal records, against the real journald: a person's refusals
/// beyond audit.refusals-per-interval are summed up in refusals-summarized records with the
/// exact count, and nobody else's records are lost to them.
@Suite struct JournalBudgetTests {
    /// The journal helpers of JournalTests (records of one supervisor, told apart by NSGROUP_SOCKET).
    private let journal = JournalTests()

    private static func id(_ event: AuditEvent) -> String { "MESSAGE_ID=\(event.messageID)" }

    /// A python3 client: on one connection, pipelines `first` requests for a method that does
    /// not exist and reads every reply (a thread sends while the main one reads), prints
    /// `half N` (N: the error replies), waits for a line on stdin, then does the same with
    /// `second` more and prints `done N` with the errors in all.
    static let flood = """
        import socket, sys, threading
        path, first, second = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        pending = b""
        def burst(start, n):
            global pending
            lines = b"".join(b'{"jsonrpc":"2.0","id":%d,"method":"nope"}\\n' % i for i in range(start, start + n))
            sender = threading.Thread(target=s.sendall, args=(lines,))
            sender.start()
            got = errors = 0
            while got < n:
                chunk = s.recv(1 << 20)
                if not chunk:
                    sys.exit("the connection closed after %d replies" % got)
                parts = (pending + chunk).split(b"\\n")
                pending = parts.pop()
                got += len(parts)
                errors += sum(b'"method_not_found"' in part for part in parts)
            sender.join()
            return errors
        errors = burst(0, first)
        print("half %d" % errors, flush=True)
        sys.stdin.readline()
        errors += burst(first, second)
        print("done %d" % errors, flush=True)
        """

    /// Reads one line the flood client printed (or what there was when it ended).
    private static func line(from pipe: Pipe) -> String {
        var data = Data()
        while !data.contains(UInt8(ascii: "\n")) {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            data += chunk
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The one-by-one request-refused records of the flood and every refusals-summarized record of `user`.
    private func floodRecords(_ supervisor: TestSupervisor, _ user: TestUser) throws
        -> (oneByOne: [[String: String]], summaries: [[String: String]]) {
        let oneByOne = try journal.records(supervisor, [Self.id(.requestRefused), "NSGROUP_CALLER_UID=\(user.uid)",
                                                        "NSGROUP_OPERATION=nope"], count: 0)
        let summaries = try journal.records(supervisor, [Self.id(.refusalsSummarized), "NSGROUP_CALLER_UID=\(user.uid)"],
                                            count: 0)
        return (oneByOne, summaries)
    }

    private static func heldBack(_ summaries: [[String: String]]) -> Int {
        summaries.reduce(0) { $0 + (Int($1["NSGROUP_HELD_BACK"] ?? "") ?? 0) }
    }

    /// 10,000 refused requests from one person make 20 records one by one and summaries that
    /// count the other 9,980 exactly; meanwhile another person's refusal, a line that is not
    /// a request, and the flooding person's accepted create are each recorded on their own.
    /// Before the budget, the flood wrote 10,000 records (as many as journald's rate limit
    /// lets one service write in 30 s).
    @Test func aFloodOfRefusalsIsSummedUpExactlyAndOthersStillOnTheRecord() throws {
        try JournalTests.requireJournald()
        let perInterval = 20
        let total = 10_000
        let supervisor = try TestSupervisor(config: "[audit]\nrefusals-per-interval = \(perInterval)\nrefusal-interval = 2\n")
        let bob = try TestUser.bob()
        let alice = try TestUser.alice()
        let dave = try TestUser.dave()

        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        client.arguments = ["--reuid=\(bob.uid)", "--regid=\(bob.gid)", "--init-groups", "--",
                            "/usr/bin/python3", "-I", "-c", Self.flood, supervisor.socketPath, String(total / 2), String(total / 2)]
        let output = Pipe()
        let input = Pipe()
        let errors = Pipe()
        client.standardOutput = output
        client.standardInput = input
        client.standardError = errors
        try client.run()
        defer { if client.isRunning { client.terminate() } }
        let half = Self.line(from: output)
        try #require(half == "half \(total / 2)", "the first half of the flood was not all refused: \(half)")

        // The budget is spent: the flooding person's accepted request is still on the record,
        // as are someone else's refusal and a line that is not a request.
        #expect(try supervisor.nsgroup(["create", "budget-kept"], as: bob).status == 0)
        #expect(try supervisor.nsgroup(["inspect", "budget-none"], as: alice).status == 125)
        let badLine = try run("/usr/bin/python3", ["-I", "-c", PolicyTests.rawClient, supervisor.socketPath], as: dave,
                              stdin: Data("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\n".utf8))
        #expect(badLine.stdout.contains("parse_error"), "\(badLine.stdout) \(badLine.stderr)")

        try input.fileHandleForWriting.write(contentsOf: Data("go\n".utf8))
        let done = Self.line(from: output)
        client.waitUntilExit()
        let clientErrors = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        try #require(done == "done \(total)", "the flood was not all refused: \(done) \(clientErrors)")

        // Every refusal of the flood is counted, one by one or in a summary, once the last
        // interval has ended (2 s, and the once-a-second tick).
        var records = try floodRecords(supervisor, bob)
        try waitUntil("the flood's records to count \(total) refusals (\(records.oneByOne.count) one by one, \(Self.heldBack(records.summaries)) held back)",
                      timeoutSeconds: 20) {
            records = try floodRecords(supervisor, bob)
            return records.oneByOne.count + Self.heldBack(records.summaries) >= total
        }
        usleep(3_500_000)  // an interval and a tick more: nothing else may come
        records = try floodRecords(supervisor, bob)
        let oneByOne = records.oneByOne.count
        let held = Self.heldBack(records.summaries)
        #expect(oneByOne + held == total, "\(oneByOne) one by one and \(held) held back")
        // Normally the flood fits in one interval: 20 and 9,980. Under load it may span
        // more; each interval that held refusals back had written exactly 20 first.
        #expect(!records.summaries.isEmpty)
        #expect(oneByOne >= perInterval * records.summaries.count && oneByOne <= perInterval * (records.summaries.count + 1),
                "\(oneByOne) records one by one for \(records.summaries.count) summaries")
        if records.summaries.count == 1 {
            #expect(oneByOne == perInterval)
            #expect(held == total - perInterval)
        }
        for summary in records.summaries {
            #expect(summary["SYSLOG_IDENTIFIER"] == "nsgroupd")
            #expect(summary["PRIORITY"] == "5")
            #expect(summary["NSGROUP_OPERATION"] == "refuse")
            #expect(summary["NSGROUP_RESULT"] == "held_back")
            #expect(summary["NSGROUP_INTERVAL"] == "2")
            #expect(summary["NSGROUP_UIDS"] == nil, "only bob's own uid: not listed")
            let count = summary["NSGROUP_HELD_BACK"] ?? "?"
            #expect(summary["NSGROUP_REFUSALS"] == "other/method_not_found=\(count)")
            #expect(summary["MESSAGE"] == "uid \(bob.uid) had \(count) more refusals in 2 s than are recorded one by one (audit.refusals-per-interval = \(perInterval)): other/method_not_found=\(count)")
        }
        #expect(records.oneByOne.allSatisfy { $0["NSGROUP_RESULT"] == "method_not_found" && $0["NSGROUP_REFUSAL"] == "invalid" })

        // Meanwhile, the others' records were written one by one.
        let accepted = try journal.one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=create", "NSGROUP_NAME=budget-kept"])
        #expect(accepted["NSGROUP_CALLER_UID"] == "\(bob.uid)")
        let other = try journal.one(supervisor, "requestRefused", ["NSGROUP_CALLER_UID=\(alice.uid)", "NSGROUP_NAME=budget-none"])
        #expect(other["NSGROUP_RESULT"] == "not_found")
        let line = try journal.one(supervisor, "requestRefused", ["NSGROUP_CALLER_UID=\(dave.uid)", "NSGROUP_OPERATION=line"])
        #expect(line["NSGROUP_RESULT"] == "parse_error")
        #expect(line["NSGROUP_REFUSAL"] == "invalid")
        #expect(line["PRIORITY"] == "6")
        #expect(line["MESSAGE"]?.hasPrefix("Refused a line from uid \(dave.uid): parse error") == true, "\(line)")

        #expect(try supervisor.nsgroup(["destroy", "budget-kept"], as: bob).status == 0)
    }

    /// A reload applies new budget values, and what is held back when the supervisor stops is
    /// summed up before it stops.
    @Test func aReloadSetsTheBudgetAndShutdownWritesWhatIsPending() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let erin = try TestUser.erin()
        try Data("[audit]\nrefusals-per-interval = 2\nrefusal-interval = 3600\n".utf8)
            .write(to: URL(fileURLWithPath: supervisor.configPath))
        kill(supervisor.pid, SIGHUP)
        _ = try journal.one(supervisor, "policyReloaded", ["NSGROUP_RESULT=ok"])
        for _ in 0..<5 { #expect(try supervisor.nsgroup(["inspect", "budget-absent"], as: erin).status == 125) }
        #expect(try supervisor.nsgroup(["destroy", "budget-absent"], as: erin).status == 125)
        let oneByOne = try journal.records(supervisor, [Self.id(.requestRefused), "NSGROUP_CALLER_UID=\(erin.uid)"], count: 2)
        #expect(try journal.records(supervisor, [Self.id(.refusalsSummarized)], count: 0).isEmpty, "the interval runs an hour")
        supervisor.stop()
        _ = try journal.one(supervisor, "supervisorStopped")
        let summary = try journal.one(supervisor, "refusalsSummarized", ["NSGROUP_CALLER_UID=\(erin.uid)"])
        #expect(oneByOne.count == 2)
        #expect(summary["NSGROUP_HELD_BACK"] == "4")
        #expect(summary["NSGROUP_REFUSALS"] == "destroy/not_found=1 inspect/not_found=3")
        #expect(Int(summary["NSGROUP_INTERVAL"] ?? "") ?? 0 >= 1)
        #expect(try journal.records(supervisor, [Self.id(.requestRefused), "NSGROUP_CALLER_UID=\(erin.uid)"], count: 0).count == 2)
    }
}
