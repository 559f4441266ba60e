import Foundation
import Glibc
import POSIX
import RPC
import Testing
@testable import Supervisor

/// Reads and requests that changed nothing are summed up per person: written when the
/// person's last connection closes (a few times an interval at most), else once an interval.
@Suite("Read records: summed up per person")
struct ReadRecordsTests {
    func records(interval: Int = 60) -> (ReadRecords, CapturedLog) {
        let log = CapturedLog()
        var policy = Policy()
        policy.readSummaryInterval = interval
        return (ReadRecords(audit: Audit(logger: log.logger), policies: PolicyHolder(policy),
                            subordinates: SubordinateOwners()), log)
    }

    let bob = PeerCredentials(pid: 4242, uid: 1002, gid: 1002, groups: [])

    @Test func aPersonsReadsAreWrittenWhenTheirLastConnectionCloses() {
        let (reads, log) = records()
        reads.count(.list, name: nil, caller: bob, now: 100)
        reads.count(.inspect, name: "web", caller: bob, now: 100.5)
        reads.count(.inspect, name: "web", caller: bob, now: 101)
        reads.connectionClosed(person: bob.uid, stillOpen: true, now: 101)
        #expect(log.entries.isEmpty, "another connection of theirs is open")
        reads.connectionClosed(person: bob.uid, stillOpen: false, now: 102)
        #expect(log.entries.count == 1)
        let record = log.entries[0]
        #expect(record.metadata[AuditField.messageID] == AuditEvent.readsSummarized.messageID)
        #expect(record.metadata[AuditField.reads] == "inspect=2 list=1")
        #expect(record.metadata[AuditField.names] == "web")
        #expect(record.metadata[AuditField.callerUID] == "1002")
        #expect(record.message == "uid 1002 (pid 4242) had 3 reads accepted in 2 s: inspect=2 list=1; about groups web")
        reads.connectionClosed(person: bob.uid, stillOpen: false, now: 103)
        #expect(log.entries.count == 1, "nothing is written twice")
    }

    /// One read per connection, 1,500 connections: the first few closes write at once, the
    /// rest wait for the interval's end, and the count is exact.
    @Test func aConnectionPerReadCannotWriteARecordPerRead() {
        let (reads, log) = records(interval: 60)
        for n in 0..<1500 {
            let now = 100 + Double(n) / 1000
            reads.count(.version, name: nil, caller: bob, now: now)
            reads.connectionClosed(person: bob.uid, stillOpen: false, now: now)
        }
        #expect(log.entries.count == ReadRecords.immediateRecords)
        reads.writeDue(now: 150)
        #expect(log.entries.count == ReadRecords.immediateRecords, "not due yet")
        reads.writeDue(now: 161)
        #expect(log.entries.count == ReadRecords.immediateRecords + 1)
        let total = log.entries.compactMap { $0.metadata[AuditField.reads] }
            .map { Int($0.split(separator: "=")[1])! }.reduce(0, +)
        #expect(total == 1500)
        // Quiet people are forgotten once their last summary is an interval old.
        reads.writeDue(now: 300)
        #expect(reads.peopleCount == 0)
    }

    @Test func openConnectionsAreWrittenOnIntervalAndEverythingAtShutdown() {
        let (reads, log) = records(interval: 5)
        reads.count(.subscribe, name: nil, caller: bob, now: 10)
        reads.writeDue(now: 14)
        #expect(log.entries.isEmpty)
        reads.writeDue(now: 15)
        #expect(log.entries.map { $0.metadata[AuditField.reads] } == ["subscribe=1"])
        let alice = PeerCredentials(pid: 4343, uid: 1001, gid: 1001, groups: [])
        reads.count(.share, name: "lab", caller: alice, now: 16)
        reads.count(.freeze, name: "lab", caller: alice, now: 16)
        reads.writeAll(now: 17)
        #expect(log.entries.last?.metadata[AuditField.reads] == "freeze=1 share=1")
        #expect(log.entries.last?.metadata[AuditField.callerUID] == "1001")
        #expect(reads.peopleCount == 0)
    }
}
