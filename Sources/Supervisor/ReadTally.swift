import RPC

/// The read-only requests a person had accepted (`version`, `list`, `inspect`, …, and those
/// that changed nothing), kept to be written as one `reads-summarized` journal record
/// (ReadRecords says when).
///
/// Why not one record per read: a client looping on `list` would make journald's rate limit
/// (10,000 records per 30 s per service by default) suppress the records that matter — a
/// create, an enter, a refusal by somebody else — and would cost journald more CPU than the
/// request costs nsgroupd. Reads change nothing; who read, how often and which groups they
/// inspected is what an audit needs, and the summary keeps exactly that. Refused reads are
/// still recorded one by one.
struct ReadTally {
    /// How many group names one record lists; past that it says how many more there were.
    static let maxNames = 32

    private(set) var counts: [MethodName: Int] = [:]
    private(set) var names: Set<String> = []
    private(set) var namesLeftOut = 0
    /// Monotonic seconds of the first read since the last record.
    private(set) var since: Double?

    mutating func add(_ method: MethodName, name: String?, now: Double) {
        counts[method, default: 0] += 1
        if since == nil { since = now }
        guard let name, !names.contains(name) else { return }
        if names.count < Self.maxNames { names.insert(name) } else { namesLeftOut += 1 }
    }

    /// `inspect=3 list=1000 version=1`: methods in name order.
    var countsField: String {
        counts.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: " ")
    }

    /// The inspected groups in name order, then `+N more` when some were left out.
    var namesField: String {
        (names.sorted() + (namesLeftOut > 0 ? ["+\(namesLeftOut) more"] : [])).joined(separator: " ")
    }

    var total: Int { counts.values.reduce(0, +) }
}
