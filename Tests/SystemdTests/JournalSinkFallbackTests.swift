import Glibc
import Logging
import Synchronization
import Testing
@testable import Systemd

/// The stderr fallback, written to a SOCK_SEQPACKET socket pair instead of fd 2: every write(2)
/// arrives as one message, so the tests can check that each record is exactly one write.
@Suite("Journal sink stderr fallback")
struct JournalSinkFallbackTests {
    /// Reads every message (one per write) waiting on `fd`.
    static func messages(_ fd: Int32) -> [String] {
        var out: [String] = []
        while let bytes = TestSupport.readAvailable(fd) {
            out.append(String(decoding: bytes, as: UTF8.self))
        }
        return out
    }

    static let warningPrefix =
        "nsgroupd-test: WARNING: journald is not reachable at /run/systemd/journal/socket ("
    static let warningSuffix = "); audit records go to stderr, auditing is degraded\n"

    @Test func forcedStderrWritesOneLinePerRecordAndWarnsOnce() throws {
        let (mine, theirs) = TestSupport.makeSocketPair(type: Int32(SOCK_SEQPACKET.rawValue))
        defer { close(mine); close(theirs) }
        let sink = JournalSink(
            identifier: "nsgroupd-test", forceStderr: true, stderrFD: theirs,
            initiallyReachable: true, sender: { _ in
                Issue.record("a forced-stderr sink must not try journald")
                return 0
            }
        )
        #expect(sink.isJournal == false)
        var logger = Logger(label: "fallback") { JournalLogHandler(label: $0, identifier: "nsgroupd-test", sink: sink) }
        logger[metadataKey: "NSGROUP_NAME"] = "web"
        logger.info("first")
        logger.error("second\nwith a newline", metadata: ["NSGROUP_DETAIL": "a\nb\\c"])
        logger.notice("third")

        let written = Self.messages(mine)
        #expect(written.count == 4, "one warning and three records, each one write: \(written)")
        let warnings = written.filter { $0.hasPrefix(Self.warningPrefix) }
        #expect(warnings.count == 1)
        #expect(warnings.first?.hasSuffix(Self.warningSuffix) == true)
        #expect(written.first == warnings.first, "the warning comes first")

        let records = written.filter { !$0.hasPrefix(Self.warningPrefix) }
        #expect(records.count == 3)
        for record in records {
            #expect(record.hasSuffix("\n"))
            #expect(record.dropLast().contains("\n") == false, "a record is one line: \(record)")
            #expect(record.hasPrefix("nsgroupd-test[\(getpid())]: "))
            #expect(record.contains(" NSGROUP_NAME=web"))
            #expect(!record.contains("SYSLOG_IDENTIFIER="))
        }
        #expect(records[0].hasPrefix("nsgroupd-test[\(getpid())]: info first "))
        #expect(records[1].hasPrefix("nsgroupd-test[\(getpid())]: error second\\nwith a newline "))
        #expect(records[1].contains(" NSGROUP_DETAIL=a\\nb\\\\c"))
        #expect(records[1].contains(" CODE_FILE="))
        #expect(records[2].hasPrefix("nsgroupd-test[\(getpid())]: notice third "))
    }

    @Test func fallsBackWhileJournaldIsGoneAndComesBack() throws {
        let (mine, theirs) = TestSupport.makeSocketPair(type: Int32(SOCK_SEQPACKET.rawValue))
        defer { close(mine); close(theirs) }
        // A journald stand-in that is down for the 1st, 2nd and 4th record.
        let journal = Mutex<(calls: Int, accepted: [[(name: String, value: String)]])>((0, []))
        let sink = JournalSink(
            identifier: "nsgroupd-test", forceStderr: false, stderrFD: theirs,
            initiallyReachable: true, sender: { fields in
                journal.withLock { state in
                    state.calls += 1
                    if [1, 2, 5].contains(state.calls) { return -ECONNREFUSED }
                    state.accepted.append(fields)
                    return 0
                }
            }
        )
        func record(_ text: String) -> [(name: String, value: String)] {
            [("MESSAGE", text), ("PRIORITY", "6"), ("NSGROUP_N", text)]
        }
        #expect(sink.isJournal)

        sink.send(record("r1"))  // call 1: refused -> warning + line
        #expect(sink.isJournal == false)
        sink.send(record("r2"))  // call 2: refused -> line only
        var written = Self.messages(mine)
        #expect(written.count == 3)
        #expect(written.first == Self.warningPrefix + "Connection refused" + Self.warningSuffix)
        #expect(written.dropFirst().map { $0.hasPrefix("nsgroupd-test[\(getpid())]: info r") } == [true, true])

        sink.send(record("r3"))  // call 3: accepted; call 4: the recovery notice
        #expect(sink.isJournal)
        #expect(Self.messages(mine).isEmpty)
        let accepted = journal.withLock { $0.accepted.map { Dictionary($0, uniquingKeysWith: { a, _ in a }) } }
        #expect(accepted.count == 2)
        #expect(accepted.first?["NSGROUP_N"] == "r3")
        #expect(accepted.last?["NSGROUP_STDERR_RECORDS"] == "2")
        #expect(accepted.last?["MESSAGE"]?.hasPrefix("journald is reachable again") == true)

        sink.send(record("r4"))  // call 5: refused again -> a new warning for the new outage
        written = Self.messages(mine)
        #expect(written.count == 2)
        #expect(written.first?.hasPrefix(Self.warningPrefix) == true)
        #expect(written.last?.hasPrefix("nsgroupd-test[\(getpid())]: info r4 NSGROUP_N=r4") == true)
        #expect(sink.isJournal == false)
    }

    @Test func concurrentSendersGetOneWarning() async throws {
        let (mine, theirs) = TestSupport.makeSocketPair(type: Int32(SOCK_SEQPACKET.rawValue))
        defer { close(mine); close(theirs) }
        let sink = JournalSink(
            identifier: "nsgroupd-test", forceStderr: false, stderrFD: theirs,
            initiallyReachable: true, sender: { _ in -ENOENT }
        )
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<4 {
                group.addTask {
                    for index in 0..<10 {
                        sink.send([("MESSAGE", "t\(task) \(index)"), ("PRIORITY", "3")])
                    }
                }
            }
        }
        let written = Self.messages(mine)
        #expect(written.count == 41)
        #expect(written.filter { $0.hasPrefix(Self.warningPrefix) }.count == 1)
        #expect(written.first?.contains("(No such file or directory)") == true)
    }

    @Test func escapingControlCharacters() {
        #expect(JournalSink.escaped("a\nb\r\tc\\d\u{1}e") == "a\\nb\\r\\tc\\\\d\\x01e")
        #expect(JournalSink.escaped("plain ünïcode") == "plain ünïcode")
    }
}
