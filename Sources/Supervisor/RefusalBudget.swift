#if canImport(Glibc)
import Glibc
#endif
import POSIX
import RPC

/// What a refused request asked for, as the tally of held-back refusals names it: a method of
/// the protocol, `connect` (a connection over the caps), `receive` (buffered requests over
/// connections.buffer-per-user), `line` (a line that is not a request at all), or `other` (a
/// method the protocol does not have). A method name a client chose is never kept, so that a
/// tally has a bounded number of entries whatever a client sends.
enum RefusedOperation: Hashable, Comparable, CustomStringConvertible {
    case method(MethodName)
    case connect, receive, line, other

    /// The operation of a request that named `method`: that method if the protocol has it, else `other`.
    init(method: String) {
        self = MethodName(rawValue: method).map { .method($0) } ?? .other
    }

    /// The operation `description` names; nil for any other text (the state directory's
    /// tallies of refusals held back are read back with it).
    init?(name: String) {
        switch name {
        case "connect": self = .connect
        case "receive": self = .receive
        case "line": self = .line
        case "other": self = .other
        default:
            guard let method = MethodName(rawValue: name) else { return nil }
            self = .method(method)
        }
    }

    var description: String {
        switch self {
        case .method(let name): name.rawValue
        case .connect: "connect"
        case .receive: "receive"
        case .line: "line"
        case .other: "other"
        }
    }

    static func < (lhs: RefusedOperation, rhs: RefusedOperation) -> Bool { lhs.description < rhs.description }
}

/// How many refusals of each person are written to the journal one by one, and the count of
/// the rest.
///
/// Why: every refused request used to be one `request-refused` record. A client sending
/// refused requests in a loop writes some 20,000 records a second; under journald's per-unit
/// rate limit that drops everybody else's records (a create, an enter, a refusal of someone
/// else), and without one, rotation erases the history an audit needs. What such a flood
/// tells an administrator is who sent how many of what, and that is what a summary keeps.
///
/// A person (SubordinateOwners.chargedUID: a subordinate uid counts as its range's owner)
/// gets `limits.perInterval` records one by one in each interval of `limits.interval`
/// seconds, which starts with their first refusal. Past that their refusals are counted, in
/// all and by kind (operation and reason); when the interval ends (`endedIntervals`, asked once
/// a second) a summary is due if any were held back, and the person is forgotten either way:
/// their next refusal starts a new interval. Memory is bounded by the people refused within
/// the last interval, each with a bounded tally (RefusedOperation, ErrorReason, at most
/// `maxUIDs` uids).
///
/// Owned by the event loop; no locks.
final class RefusalBudget {
    /// audit.refusals-per-interval and audit.refusal-interval (seconds).
    struct Limits: Equatable {
        var perInterval: Int
        var interval: Int
    }

    /// One kind of refusal in a tally: what was asked and the protocol's error reason.
    struct Kind: Hashable, Comparable, CustomStringConvertible {
        let operation: RefusedOperation
        let reason: ErrorReason

        init(_ operation: RefusedOperation, _ reason: ErrorReason) {
            self.operation = operation
            self.reason = reason
        }

        /// `enter/permission_denied`.
        var description: String { "\(operation)/\(reason.rawValue)" }

        /// The kind `description` names; nil for any other text.
        init?(name: String) {
            guard let slash = name.firstIndex(of: "/"),
                  let operation = RefusedOperation(name: String(name[..<slash])),
                  let reason = ErrorReason(rawValue: String(name[name.index(after: slash)...]))
            else { return nil }
            self.init(operation, reason)
        }

        static func < (lhs: Kind, rhs: Kind) -> Bool { lhs.description < rhs.description }
    }

    /// What one person's interval held back: the record `refusals-summarized` says this.
    struct Summary: Equatable {
        /// The person refusals are charged to.
        let person: uid_t
        /// Refusals counted and not written one by one.
        let heldBack: Int
        /// The same, by kind.
        let kinds: [Kind: Int]
        /// The uids the held-back refusals came from, in order (the person's own, or
        /// subordinate uids of theirs); at most `maxUIDs`.
        let uids: [uid_t]
        /// Some held-back refusals came from uids beyond those `maxUIDs`.
        let moreUIDs: Bool
        /// How long the interval ran: `limits.interval`, or less when it was cut short (shutdown).
        let seconds: Int

        /// `enter/permission_denied=3 other/method_not_found=9990`: kinds in name order.
        var kindsField: String {
            kinds.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
    }

    /// How many uids one summary names; past that it says there were more.
    static let maxUIDs = 32

    /// One person's interval.
    private struct Entry {
        /// Monotonic seconds of the refusal that started it.
        let started: Double
        var written = 0
        var heldBack = 0
        var kinds: [Kind: Int] = [:]
        var uids: Set<uid_t> = []
        var moreUIDs = false
    }

    /// Read at each refusal and each tick: a reload applies to intervals already running.
    var limits: Limits
    private let subordinates: SubordinateOwners
    private var entries: [uid_t: Entry] = [:]
    /// Moves whenever what is held back changes: a refusal held back, or a person with
    /// refusals held back forgotten. RefusalRecords writes the tallies to the state directory
    /// when it moved since the last write.
    private(set) var heldBackChanges = 0

    init(limits: Limits, subordinates: SubordinateOwners) {
        self.limits = limits
        self.subordinates = subordinates
    }

    /// How many people have an interval running.
    var peopleCount: Int { entries.count }

    /// Counts one refusal of `uid`'s at `now` (monotonic seconds): true when its record is to
    /// be written one by one, false when it is held back (counted for the summary).
    func admit(_ uid: uid_t, _ kind: Kind, now: Double) -> Bool {
        let person = subordinates.chargedUID(uid)
        var entry = entries[person] ?? Entry(started: now)
        defer { entries[person] = entry }
        if entry.written < limits.perInterval {
            entry.written += 1
            return true
        }
        entry.heldBack += 1
        heldBackChanges += 1
        entry.kinds[kind, default: 0] += 1
        if entry.uids.count < Self.maxUIDs || entry.uids.contains(uid) {
            entry.uids.insert(uid)
        } else {
            entry.moreUIDs = true
        }
        return false
    }

    /// The summaries of the intervals that have ended by `now`, by person; every person whose
    /// interval ended is forgotten, whether anything was held back or not.
    func endedIntervals(now: Double) -> [Summary] {
        let ended = entries.filter { now - $0.value.started >= Double(limits.interval) }
        for person in ended.keys { entries[person] = nil }
        if ended.values.contains(where: { $0.heldBack > 0 }) { heldBackChanges += 1 }
        return ended.sorted { $0.key < $1.key }.compactMap { person, entry in
            Self.summary(person, entry, seconds: limits.interval)
        }
    }

    /// The summaries of every interval still running, cut short at `now` (shutdown); everyone
    /// is forgotten.
    func takeAll(now: Double) -> [Summary] {
        let running = entries
        entries = [:]
        if running.values.contains(where: { $0.heldBack > 0 }) { heldBackChanges += 1 }
        return running.sorted { $0.key < $1.key }.compactMap { person, entry in
            let elapsed = Int((now - entry.started).rounded(.up))
            return Self.summary(person, entry, seconds: min(max(elapsed, 1), limits.interval))
        }
    }

    /// The summaries so far of every interval still running that held refusals back, each
    /// with how long it has run by `now` (at least 1 s); nobody is forgotten. What the state
    /// directory keeps of them in case the supervisor is killed before they end (RefusalRecords).
    func heldBack(now: Double) -> [Summary] {
        entries.sorted { $0.key < $1.key }.compactMap { person, entry in
            Self.summary(person, entry, seconds: max(Int((now - entry.started).rounded(.up)), 1))
        }
    }

    /// The summary of an interval, or nil when nothing was held back.
    private static func summary(_ person: uid_t, _ entry: Entry, seconds: Int) -> Summary? {
        guard entry.heldBack > 0 else { return nil }
        return Summary(person: person, heldBack: entry.heldBack, kinds: entry.kinds, uids: entry.uids.sorted(),
                       moreUIDs: entry.moreUIDs, seconds: seconds)
    }
}
