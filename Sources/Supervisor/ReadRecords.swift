#if canImport(Glibc)
import Glibc
#endif
import POSIX
import RPC

/// Accepted requests that change nothing, summed up per person in `reads-summarized` records
/// instead of one record each: the reads (`version`, `list`, `inspect`, `processes`) and
/// `attach`, which only watches, and a `subscribe`, `share`, `unshare`, `freeze` or `thaw`
/// that found everything as asked already (RequestDetails.changedNothing); and, always,
/// `write` and `resize`, which carry a streamed session's data (Supervisor.carriesData).
///
/// Why per person, not per connection: a client that opens a connection for each read (as
/// every `nsgroup list` does) would otherwise write a record per read, as fast as it can
/// connect; why summed up at all: see ReadTally. The person is the charged uid (a subordinate
/// uid counts as its owner), as for every other per-person bound.
///
/// When a person's tally is written: when their last open connection closes, as long as fewer
/// than `immediateRecords` of their summaries were written in the last read-summary-interval
/// (so a user's `nsgroup list` shows in the journal at once); otherwise, and for connections
/// that stay open, once the first read of the tally is read-summary-interval old (the
/// Listener's once-a-second sweep); and at shutdown. So one person writes at most
/// `immediateRecords` + 1 summaries per interval, whatever they send. An entry goes once it
/// holds no reads and its last summary is older than the interval: memory is bounded by the
/// people active within the last interval.
///
/// Owned by the event loop; no locks.
final class ReadRecords {
    /// How many summaries a person's closing connections may have written at once per interval.
    static let immediateRecords = 4

    private struct Entry {
        var tally = ReadTally()
        /// The credentials of the connection that counted the last read (the record's caller).
        var caller: PeerCredentials
        /// When this person's recent summaries were written (monotonic seconds), oldest first.
        var written: [Double] = []
    }

    private let audit: Audit
    private let policies: PolicyHolder
    private let subordinates: SubordinateOwners
    private var entries: [uid_t: Entry] = [:]

    init(audit: Audit, policies: PolicyHolder, subordinates: SubordinateOwners) {
        self.audit = audit
        self.policies = policies
        self.subordinates = subordinates
    }

    private var interval: Double { Double(policies.current.readSummaryInterval) }

    /// How many people have an entry (tests).
    var peopleCount: Int { entries.count }

    /// Counts one accepted request that changed nothing, of `caller`'s, about group `name` if any.
    func count(_ method: MethodName, name: String?, caller: PeerCredentials, now: Double) {
        let person = subordinates.chargedUID(caller.uid)
        var entry = entries[person] ?? Entry(caller: caller)
        entry.caller = caller
        entry.tally.add(method, name: name, now: now)
        entries[person] = entry
    }

    /// A connection of `person`'s closed; `stillOpen` says whether they have others. Their
    /// tally is written now unless they do, or their summaries this interval are used up.
    func connectionClosed(person: uid_t, stillOpen: Bool, now: Double) {
        guard !stillOpen, var entry = entries[person], entry.tally.since != nil else { return }
        entry.written.removeAll { now - $0 >= interval }
        guard entry.written.count < Self.immediateRecords else {
            entries[person] = entry
            return
        }
        write(person, &entry, now: now)
        entries[person] = entry
    }

    /// Writes the tallies whose first read is an interval old; forgets quiet people (once a second).
    func writeDue(now: Double) {
        for person in Array(entries.keys) {
            guard var entry = entries[person] else { continue }
            if let since = entry.tally.since, now - since >= interval { write(person, &entry, now: now) }
            entry.written.removeAll { now - $0 >= interval }
            entries[person] = entry.tally.since == nil && entry.written.isEmpty ? nil : entry
        }
    }

    /// Writes every tally (shutdown).
    func writeAll(now: Double) {
        for person in entries.keys.sorted() {
            guard var entry = entries[person], entry.tally.since != nil else { continue }
            write(person, &entry, now: now)
        }
        entries = [:]
    }

    private func write(_ person: uid_t, _ entry: inout Entry, now: Double) {
        let tally = entry.tally
        guard let since = tally.since else { return }
        entry.tally = ReadTally()
        entry.written.append(now)
        let caller = entry.caller
        let counts = tally.countsField
        let names = tally.namesField
        var fields = [AuditField.operation: "read", AuditField.result: "ok", AuditField.reads: counts]
        if !names.isEmpty { fields[AuditField.names] = names }
        let seconds = Int((now - since).rounded())
        let inspected: AuditText = names.isEmpty ? "" : "; about groups \(names)"
        audit.record(.readsSummarized,
                     "\(audit.uid(caller.uid)) (pid \(caller.pid)) had \(counted(tally.total, "read")) accepted in \(seconds) s: \(counts)\(inspected)",
                     caller: caller, fields: fields)
    }
}
