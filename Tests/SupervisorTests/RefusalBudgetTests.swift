import Foundation
import Glibc
import Logging
import Testing
@testable import Supervisor
import POSIX
import RPC

/// The per-person budget of refusal records (RefusalBudget) and the records it lets through
/// or sums up (RefusalRecords).
@Suite struct RefusalBudgetTests {
    /// /etc/subuid for these tests: daemon owns 100000…165535.
    private static func subordinates(_ scratch: ScratchDirectory) throws -> (owners: SubordinateOwners, daemon: uid_t) {
        let daemon = try #require(UserDatabase.user(named: "daemon")).uid
        let path = scratch.path + "/subuid"
        try Data("daemon:100000:65536\n".utf8).write(to: URL(fileURLWithPath: path))
        return (SubordinateOwners(path: path), daemon)
    }

    private static let missing = RefusalBudget.Kind(.method(.inspect), .notFound)

    @Test func aPersonGetsNRecordsOneByOneThenTheRestAreCountedExactly() throws {
        let scratch = try ScratchDirectory()
        let budget = RefusalBudget(limits: .init(perInterval: 3, interval: 10), subordinates: try Self.subordinates(scratch).owners)
        let admitted = (0..<1000).map { i in budget.admit(1007, Self.missing, now: 100 + Double(i) / 1000) }
        #expect(admitted.prefix(3).allSatisfy { $0 }, "the first 3 are written")
        #expect(admitted.dropFirst(3).allSatisfy { !$0 }, "the rest are held back")
        #expect(budget.endedIntervals(now: 109.9).isEmpty, "the interval has not ended")
        let summaries = budget.endedIntervals(now: 110)
        #expect(summaries == [RefusalBudget.Summary(person: 1007, heldBack: 997, kinds: [Self.missing: 997], uids: [1007],
                                                    moreUIDs: false, seconds: 10)])
        #expect(summaries.first?.kindsField == "inspect/not_found=997")
        #expect(budget.peopleCount == 0, "the person is forgotten once summed up")
        // A new interval: N one by one again.
        #expect(budget.admit(1007, Self.missing, now: 111))
    }

    @Test func peopleHaveBudgetsOfTheirOwn() throws {
        let scratch = try ScratchDirectory()
        let budget = RefusalBudget(limits: .init(perInterval: 1, interval: 5), subordinates: try Self.subordinates(scratch).owners)
        #expect(budget.admit(1007, Self.missing, now: 0))
        #expect(!budget.admit(1007, Self.missing, now: 0))
        #expect(budget.admit(1008, Self.missing, now: 1), "another person's refusal is still written")
        #expect(!budget.admit(1008, Self.missing, now: 1))
        #expect(budget.admit(0, Self.missing, now: 1), "and root's")
        let summaries = budget.endedIntervals(now: 5.5)
        #expect(summaries.map(\.person) == [1007], "1008's interval began a second later")
        #expect(budget.endedIntervals(now: 6).map(\.person) == [1008], "root held nothing back: no summary")
        #expect(budget.peopleCount == 0)
    }

    @Test func refusalsAreTalliedByOperationAndReasonAndUnknownMethodsAreOther() throws {
        let scratch = try ScratchDirectory()
        let budget = RefusalBudget(limits: .init(perInterval: 1, interval: 60), subordinates: try Self.subordinates(scratch).owners)
        #expect(budget.admit(1007, .init(.connect, .limitExceeded), now: 0))
        // Many different method names a client made up: all are `other`.
        for i in 0..<5000 {
            let operation = RefusedOperation(method: "made-up-\(i)-" + String(repeating: "x", count: i % 300))
            #expect(operation == .other)
            _ = budget.admit(1007, .init(operation, .methodNotFound), now: 1)
        }
        for _ in 0..<3 { _ = budget.admit(1007, .init(RefusedOperation(method: "enter"), .permissionDenied), now: 2) }
        _ = budget.admit(1007, .init(.line, .parseError), now: 3)
        _ = budget.admit(1007, .init(.receive, .limitExceeded), now: 3)
        _ = budget.admit(1007, .init(.connect, .limitExceeded), now: 3)
        let summary = try #require(budget.takeAll(now: 4.2).first)
        #expect(summary.kinds.count == 5, "one entry per kind, whatever the method names were")
        #expect(summary.heldBack == 5006)
        #expect(summary.kindsField
                == "connect/limit_exceeded=1 enter/permission_denied=3 line/parse_error=1 other/method_not_found=5000 receive/limit_exceeded=1")
        #expect(summary.seconds == 5, "cut short at shutdown: the seconds it ran, rounded up")
        #expect(RefusedOperation(method: "inspect") == .method(.inspect))
        #expect(RefusedOperation(method: "Inspect") == .other)
    }

    @Test func subordinateUIDsAreChargedToTheirOwner() throws {
        let scratch = try ScratchDirectory()
        let (owners, daemon) = try Self.subordinates(scratch)
        let budget = RefusalBudget(limits: .init(perInterval: 2, interval: 60), subordinates: owners)
        #expect(budget.admit(100_007, Self.missing, now: 0))
        #expect(budget.admit(daemon, Self.missing, now: 0))
        #expect(!budget.admit(100_008, Self.missing, now: 0), "the owner's budget is spent, by the owner and a subordinate uid")
        #expect(!budget.admit(100_007, Self.missing, now: 0))
        #expect(!budget.admit(100_007, Self.missing, now: 0))
        #expect(!budget.admit(daemon, Self.missing, now: 0))
        #expect(budget.peopleCount == 1)
        let summary = try #require(budget.endedIntervals(now: 60).first)
        #expect(summary.person == daemon)
        #expect(summary.heldBack == 4)
        #expect(summary.uids == [daemon, 100_007, 100_008].sorted())
        #expect(!summary.moreUIDs)
    }

    @Test func theUIDsOfASummaryAreBounded() throws {
        let scratch = try ScratchDirectory()
        let (owners, daemon) = try Self.subordinates(scratch)
        let budget = RefusalBudget(limits: .init(perInterval: 1, interval: 60), subordinates: owners)
        for uid in 100_000..<(100_000 + 1000) { _ = budget.admit(uid_t(uid), Self.missing, now: 0) }
        let summary = try #require(budget.endedIntervals(now: 60).first)
        #expect(summary.person == daemon)
        #expect(summary.heldBack == 999)
        #expect(summary.uids.count == RefusalBudget.maxUIDs)
        #expect(summary.moreUIDs)
    }

    @Test func aSummaryOnlyWhenSomethingWasHeldBackAndQuietPeopleAreDropped() throws {
        let scratch = try ScratchDirectory()
        let budget = RefusalBudget(limits: .init(perInterval: 50, interval: 2), subordinates: try Self.subordinates(scratch).owners)
        for uid in uid_t(2000)..<2100 {
            for _ in 0..<50 { #expect(budget.admit(uid, Self.missing, now: 10)) }
        }
        #expect(budget.peopleCount == 100)
        #expect(budget.endedIntervals(now: 11).isEmpty)
        #expect(budget.peopleCount == 100, "the interval is still running")
        #expect(budget.endedIntervals(now: 12).isEmpty, "nothing was held back: no summary")
        #expect(budget.peopleCount == 0, "and nobody is kept")
        #expect(budget.takeAll(now: 13).isEmpty)
    }

    @Test func newLimitsApplyToRunningIntervals() throws {
        let scratch = try ScratchDirectory()
        let budget = RefusalBudget(limits: .init(perInterval: 5, interval: 60), subordinates: try Self.subordinates(scratch).owners)
        for _ in 0..<2 { #expect(budget.admit(1007, Self.missing, now: 0)) }
        budget.limits = .init(perInterval: 2, interval: 3)  // a reload
        #expect(!budget.admit(1007, Self.missing, now: 1))
        #expect(budget.endedIntervals(now: 3).first?.heldBack == 1)
    }

    // MARK: The records

    @Test func recordsAreWrittenOneByOneThenSummedUp() throws {
        let scratch = try ScratchDirectory()
        let (owners, daemon) = try Self.subordinates(scratch)
        let log = CapturedLog()
        var policy = Policy()
        policy.refusalsPerInterval = 2
        let refusals = RefusalRecords(audit: Audit(logger: log.logger, subordinates: owners), policies: PolicyHolder(policy),
                                      subordinates: owners)
        let caller = PeerCredentials(pid: getpid(), uid: 100_003, gid: 100_003, groups: [])
        for _ in 0..<10 {
            refusals.record(.other, .methodNotFound, level: .info, "Refused nope from uid \(caller.uid)", caller: caller,
                            fields: [AuditField.operation: "nope", AuditField.result: "method_not_found"])
        }
        refusals.record(.method(.enter), .permissionDenied, level: .notice, "Refused enter", caller: caller, fields: [:])
        #expect(log.entries.count == 2)
        #expect(log.entries.allSatisfy { $0.metadata[AuditField.messageID] == AuditEvent.requestRefused.messageID })
        #expect(log.entries.first?.metadata[AuditField.operation] == "nope", "the record one by one keeps its fields")
        refusals.writeAll()
        #expect(log.entries.count == 3)
        let summary = try #require(log.entries.last)
        #expect(summary.level == .notice)
        #expect(summary.metadata[AuditField.messageID] == AuditEvent.refusalsSummarized.messageID)
        #expect(summary.metadata[AuditField.callerUID] == String(daemon), "charged to the range's owner")
        #expect(summary.metadata[AuditField.heldBack] == "9")
        #expect(summary.metadata[AuditField.refusals] == "enter/permission_denied=1 other/method_not_found=8")
        #expect(summary.metadata[AuditField.operation] == "refuse")
        #expect(summary.metadata[AuditField.result] == "held_back")
        #expect(summary.metadata[AuditField.interval] == "1")
        #expect(summary.lists[AuditField.uids] == ["100003"], "a subordinate uid is named")
        #expect(summary.message == "uid \(daemon) had 9 more refusals in 1 s than are recorded one by one (audit.refusals-per-interval = 2): enter/permission_denied=1 other/method_not_found=8; from uids 100003")
        refusals.writeAll()
        #expect(log.entries.count == 3, "nothing is summed up twice")
    }
}

/// A swift-log handler that keeps what is logged: message, level, single and repeated fields.
final class CapturedLog: @unchecked Sendable {
    struct Entry {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
        let lists: [String: [String]]
    }

    private let lock = NSLock()
    private var kept: [Entry] = []

    var entries: [Entry] { lock.withLock { kept } }

    var logger: Logger { Logger(label: "test") { _ in Handler(log: self) } }

    fileprivate func append(_ entry: Entry) { lock.withLock { kept.append(entry) } }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?,
                 source: String, file: String, function: String, line: UInt) {
            var single: [String: String] = [:]
            var lists: [String: [String]] = [:]
            for (key, value) in metadata.merging(explicit ?? [:], uniquingKeysWith: { $1 }) {
                switch value {
                case .string(let text): single[key] = text
                case .array(let values): lists[key] = values.map { "\($0)" }
                default: single[key] = "\(value)"
                }
            }
            log.append(Entry(level: level, message: "\(message)", metadata: single, lists: lists))
        }
    }
}
