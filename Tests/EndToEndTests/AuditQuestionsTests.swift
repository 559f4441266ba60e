import Foundation
import Glibc
import Supervisor
import Testing

/// The README's table of questions an administrator asks, each answered by a `journalctl`
/// command: every command in the table is run here, word for word (with the scenario's users
/// and ids put in, and this supervisor's records picked out), and its answer checked. A row
/// added to the README without a check here, or a check whose row is gone, fails.
@Suite struct AuditQuestionsTests {
    /// The rows between the README's audit-questions markers: (question, command).
    static func questions() throws -> [(question: String, command: String)] {
        let readme = try String(contentsOfFile: Products.repositoryRoot + "/README.md", encoding: .utf8)
        guard let start = readme.range(of: "<!-- audit-questions"),
              let end = readme.range(of: "<!-- /audit-questions -->") else {
            throw HarnessError("README.md has no audit-questions table")
        }
        return readme[start.upperBound..<end.lowerBound].split(separator: "\n").compactMap { line in
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count == 4, cells[2].hasPrefix("`journalctl"), cells[2].hasSuffix("`") else { return nil }
            return (cells[1], String(cells[2].dropFirst().dropLast()))
        }
    }

    @Test func everyQuestionInTheReadmeIsAnsweredByItsCommand() throws {
        try JournalTests.requireJournald()
        let journal = JournalTests()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        // "uid 1007" in the README: a user who probes groups that are not theirs.
        let prober = try TestUser.erin()

        // The scenario: alice makes lab and shares it with bob; bob runs a command and
        // leaves a second one running; the prober tries three things; alice destroys lab.
        #expect(try supervisor.nsgroup(["create", "lab", "--ns", "uts,ipc"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["share", "lab", bob.name], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["enter", "lab", "--", "sh", "-c", "echo hi"], as: bob).stdout == "hi\n")
        let sleeper = try supervisor.startEnter("lab", ["sleep", "300"], as: bob)
        defer { if sleeper.isRunning { sleeper.terminate() } }
        let started = try journal.one(supervisor, "sessionStarted", ["NSGROUP_ARGV=sleep 300"])
        let sleepID = try #require(started["NSGROUP_SESSION_ID"])
        #expect(try supervisor.nsgroup(["inspect", "lab"], as: prober).status != 0)
        #expect(try supervisor.nsgroup(["destroy", "lab"], as: prober).status != 0)
        #expect(try supervisor.nsgroup(["enter", "lab", "--", "id"], as: prober).status != 0)
        #expect(try supervisor.nsgroup(["destroy", "lab"], as: alice).status == 0)
        _ = try journal.records(supervisor, ["MESSAGE_ID=\(AuditEvent.sessionEnded.messageID)", "NSGROUP_SESSION_ID=\(sleepID)"])

        /// What each question's answer must be: the lines journalctl printed.
        let checks: [String: ([String]) -> Void] = [
            "Who entered group `lab` yesterday, and what did they run?": { lines in
                #expect(lines.count == 2, "\(lines)")
                #expect(lines.first?.hasSuffix("in group lab for uid \(bob.uid) (\(bob.name)): sh -c echo hi") == true, "\(lines)")
                #expect(lines.last?.hasSuffix("in group lab for uid \(bob.uid) (\(bob.name)): sleep 300") == true, "\(lines)")
            },
            "Who gave bob access, to which groups, and when?": { lines in
                #expect(lines.count == 1, "\(lines)")
                #expect(lines.first?.hasSuffix("Accepted share of group lab from uid \(alice.uid) (\(alice.name)): added \(bob.name) (uid \(bob.uid))") == true, "\(lines)")
                // short-iso: the time is on the line.
                #expect(lines.first?.first?.isNumber == true, "\(lines)")
            },
            "What did uid 1007 try that was refused?": { lines in
                #expect(lines.count == 3, "\(lines)")
                #expect(lines.allSatisfy { $0.contains("from uid \(prober.uid) (\(prober.name)): ") }, "\(lines)")
                #expect(lines.map { $0.split(separator: " ").prefix(2).joined(separator: " ") } == ["Refused inspect", "Refused destroy", "Refused enter"])
            },
            "What happened in one session, from its request to its end?": { lines in
                #expect(lines.count == 3, "\(lines)")
                #expect(lines.first?.hasPrefix("Accepted enter of group lab from uid \(bob.uid)") == true, "\(lines)")
                #expect(lines.dropFirst().first?.hasPrefix("Started session") == true, "\(lines)")
                #expect(lines.last?.contains("killed by signal 9 when uid \(alice.uid) (\(alice.name)) destroyed the group") == true, "\(lines)")
            },
            "Who destroyed `lab`, and which sessions did that end?": { lines in
                #expect(lines.count == 2, "\(lines)")
                #expect(lines.contains { $0.contains("when uid \(alice.uid) (\(alice.name)) destroyed the group") }, "\(lines)")
                #expect(lines.contains("Destroyed group lab at the request of uid \(alice.uid) (\(alice.name))"), "\(lines)")
            },
            "What did the policy refuse today?": { lines in
                // The three probes of a group that exists but is not the prober's to see.
                #expect(lines.count == 3, "\(lines)")
                #expect(lines.allSatisfy { $0.hasPrefix("Refused ") && $0.contains("from uid \(prober.uid) (\(prober.name)): ") }, "\(lines)")
            },
        ]

        let questions = try Self.questions()
        #expect(Set(questions.map(\.question)) == Set(checks.keys), "the README's questions and this test's checks differ")
        for (question, command) in questions {
            guard let check = checks[question] else { continue }
            // The README's example users and ids, made this scenario's; and only this supervisor's records.
            var line = command
                .replacingOccurrences(of: "=bob ", with: "=\(bob.name) ")
                .replacingOccurrences(of: "NSGROUP_CALLER_UID=1007", with: "NSGROUP_CALLER_UID=\(prober.uid)")
            if let id = line.range(of: #"NSGROUP_SESSION_ID=[0-9a-f]{32}"#, options: .regularExpression) {
                line.replaceSubrange(id, with: "NSGROUP_SESSION_ID=\(sleepID)")
            }
            line += " NSGROUP_SOCKET=\(supervisor.socketPath) --no-pager"
            let result = try run("/bin/sh", ["-c", line])
            #expect(result.status == 0, "\(line): \(result.stderr)")
            let lines = result.stdout.split(separator: "\n").map(String.init)
            // Without the socket match the command would be the README's; with it, the records must be there.
            #expect(!lines.isEmpty, "\(question): \(line) printed nothing")
            check(lines)
        }
    }
}
