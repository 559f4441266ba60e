import Foundation
import Glibc
import Logging
import Testing
@testable import Supervisor
import POSIX
import RPC
import Systemd

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

    // MARK: The refusals held back, in the state directory

    /// Records with refusals of `caller` (the first `perInterval` written one by one), their
    /// tallies kept in `store`.
    private static func records(_ scratch: ScratchDirectory, _ log: CapturedLog, store: StateStore, loop: EventLoop? = nil,
                                perInterval: Int = 2) throws -> RefusalRecords {
        var policy = Policy()
        policy.refusalsPerInterval = perInterval
        policy.refusalInterval = 3600
        let owners = try Self.subordinates(scratch).owners
        return RefusalRecords(audit: Audit(logger: log.logger, subordinates: owners), policies: PolicyHolder(policy),
                              subordinates: owners, state: store, loop: loop)
    }

    private static func refuse(_ refusals: RefusalRecords, _ count: Int, uid: uid_t = 1007) {
        let caller = PeerCredentials(pid: getpid(), uid: uid, gid: uid, groups: [])
        for _ in 0..<count {
            refusals.record(.method(.inspect), .notFound, level: .info, "Refused inspect", caller: caller, fields: [:])
        }
    }

    /// What the tallies' file says was held back, by person (nil: no file).
    private static func onDisk(_ store: StateStore) throws -> [uid_t: Int]? {
        try store.loadRefusalsHeldBack().map { Dictionary(uniqueKeysWithValues: $0.tallies.map { ($0.person, $0.heldBack) }) }
    }

    /// A supervisor killed before the interval ended: the next one sums up what the file held,
    /// with the exact counts, says why, and removes the file.
    @Test func refusalsHeldBackOutliveAKilledSupervisor() throws {
        let scratch = try ScratchDirectory()
        let store = try StateStore(directory: scratch.path)
        let log = CapturedLog()
        let killed = try Self.records(scratch, log, store: store)
        Self.refuse(killed, 10)
        Self.refuse(killed, 3, uid: 1008)
        #expect(try Self.onDisk(store) == nil, "without a loop, only the sweep writes")
        killed.writeEndedIntervals()
        #expect(try Self.onDisk(store) == [1007: 8, 1008: 1])
        let before = try #require(try store.loadRefusalsHeldBack())
        killed.writeEndedIntervals()
        #expect(try store.loadRefusalsHeldBack() == before, "nothing changed, nothing written")
        #expect(log.entries.count == 4, "4 written one by one, nothing summed up yet")
        // killed here: a new supervisor starts.
        let next = try Self.records(scratch, log, store: try StateStore(directory: scratch.path))
        next.writeHeldBackBeforeStop()
        let summaries = log.entries.dropFirst(4)
        #expect(summaries.map { $0.metadata[AuditField.callerUID] } == ["1007", "1008"])
        #expect(summaries.map { $0.metadata[AuditField.heldBack] } == ["8", "1"])
        #expect(summaries.allSatisfy { $0.metadata[AuditField.messageID] == AuditEvent.refusalsSummarized.messageID })
        #expect(summaries.allSatisfy { $0.metadata[AuditField.reason] == "supervisor_stopped" })
        #expect(summaries.first?.metadata[AuditField.refusals] == "inspect/not_found=8")
        #expect(summaries.first?.message.contains("; the supervisor stopped before the interval ended (counted until 20") == true,
                "\(summaries.first?.message ?? "")")
        #expect(ScratchDirectory.entries(scratch.path + "/groups") == [], "the file is removed")
        next.writeHeldBackBeforeStop()
        #expect(log.entries.count == 6, "nothing is summed up twice")
    }

    /// A clean stop sums everything up itself, and leaves no file behind; an interval that
    /// ends takes its tally out of the file, and the last one the file.
    @Test func theFileGoesWhenNothingIsHeldBack() throws {
        let scratch = try ScratchDirectory()
        let store = try StateStore(directory: scratch.path)
        let log = CapturedLog()
        let refusals = try Self.records(scratch, log, store: store)
        Self.refuse(refusals, 5)
        refusals.writeEndedIntervals()
        #expect(try Self.onDisk(store) == [1007: 3])
        refusals.writeAll()
        #expect(log.entries.last?.metadata[AuditField.heldBack] == "3")
        #expect(log.entries.last?.metadata[AuditField.reason] == nil)
        #expect(ScratchDirectory.entries(scratch.path + "/groups") == [])
    }

    /// The burst that starts a flood is written right after the requests being handled (on
    /// the loop, not per refusal); what follows within the second waits for the sweep.
    @Test func aFloodIsWrittenDownAsItStartsThenOnceASecond() throws {
        let scratch = try ScratchDirectory()
        let store = try StateStore(directory: scratch.path)
        let log = CapturedLog()
        let loop = try EventLoop()
        let refusals = try Self.records(scratch, log, store: store, loop: loop)
        Self.refuse(refusals, 10)
        #expect(try Self.onDisk(store) == nil, "not while the requests are handled")
        _ = try loop.runOnce(timeoutMicroseconds: 0)
        #expect(try Self.onDisk(store) == [1007: 8])
        Self.refuse(refusals, 5)
        _ = try loop.runOnce(timeoutMicroseconds: 0)
        #expect(try Self.onDisk(store) == [1007: 8], "written at most once a second but by the sweep")
        refusals.writeEndedIntervals()
        #expect(try Self.onDisk(store) == [1007: 13])
    }

    /// A file that is not trusted: a warning, nothing from it summed up, and it is removed.
    @Test func aForgedFileIsReportedAndRemoved() throws {
        let scratch = try ScratchDirectory()
        let store = try StateStore(directory: scratch.path)
        try store.saveRefusalsHeldBack(HeldBackRefusals(written: 100, tallies: [
            .init(person: 0, heldBack: 5, kinds: [Self.missing: 5], uids: [0], moreUIDs: false, started: 90),
        ]))
        let path = scratch.path + "/groups/" + StateStore.refusalsHeldBackFile
        #expect(chmod(path, 0o666) == 0)
        let log = CapturedLog()
        try Self.records(scratch, log, store: store).writeHeldBackBeforeStop()
        #expect(log.entries.count == 1)
        let warning = try #require(log.entries.first)
        #expect(warning.level == .warning)
        #expect(warning.metadata[AuditField.reason] == "refusals_held_back_refused")
        #expect(warning.message.contains("it is writable by others than root (mode 666)"), "\(warning.message)")
        #expect(ScratchDirectory.entries(scratch.path + "/groups") == [])
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
