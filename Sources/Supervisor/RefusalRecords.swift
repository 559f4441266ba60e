import Logging
import POSIX
import RPC

/// Writes the supervisor's refusals to the journal through the RefusalBudget: each as a
/// `request-refused` record while its person is within audit.refusals-per-interval, else only
/// counted; and, for each person whose audit.refusal-interval ended with refusals held back,
/// one `refusals-summarized` record (once a second from the Listener's sweep, and for every
/// interval still running at shutdown).
///
/// Every refusal the supervisor records passes here: requests refused on the way to a handler
/// or by it (Supervisor.record), connections over the caps and buffered requests over budget
/// (Listener), and lines that are not requests (Connection, through the Listener). Accepted
/// requests and lifecycle records never do: they are not budgeted.
final class RefusalRecords {
    private let audit: Audit
    private let policies: PolicyHolder
    private let budget: RefusalBudget

    init(audit: Audit, policies: PolicyHolder, subordinates: SubordinateOwners) {
        self.audit = audit
        self.policies = policies
        budget = RefusalBudget(limits: Self.limits(policies.current), subordinates: subordinates)
    }

    private static func limits(_ policy: Policy) -> RefusalBudget.Limits {
        RefusalBudget.Limits(perInterval: policy.refusalsPerInterval, interval: policy.refusalInterval)
    }

    /// One refusal of `caller`'s: a request-refused record with these fields if its person is
    /// within budget, else counted towards their summary by `operation` and `reason`. The
    /// message is only made (and escaped) for a record that is written.
    func record(_ operation: RefusedOperation, _ reason: ErrorReason, level: Logger.Level, _ message: @autoclosure () -> AuditText,
                caller: PeerCredentials, fields: [String: String], lists: [String: [String]] = [:]) {
        budget.limits = Self.limits(policies.current)
        guard budget.admit(caller.uid, RefusalBudget.Kind(operation, reason), now: monotonicSeconds()) else { return }
        audit.record(.requestRefused, level: level, message(), caller: caller, fields: fields, lists: lists)
    }

    /// Writes the summaries of the intervals that have ended (called once a second).
    func writeEndedIntervals() {
        budget.limits = Self.limits(policies.current)
        for summary in budget.endedIntervals(now: monotonicSeconds()) { write(summary) }
    }

    /// Writes the summaries of every interval still running (shutdown).
    func writeAll() {
        for summary in budget.takeAll(now: monotonicSeconds()) { write(summary) }
    }

    private func write(_ summary: RefusalBudget.Summary) {
        let kinds = summary.kindsField
        // The uids are named when they are not just the person's own.
        let uids = summary.uids == [summary.person] && !summary.moreUIDs ? [] : summary.uids.map { String($0) }
        var message: AuditText = "uid \(summary.person) had \(counted(summary.heldBack, "more refusal")) in \(summary.seconds) s than are recorded one by one (audit.refusals-per-interval = \(policies.current.refusalsPerInterval)): \(kinds)"
        if !uids.isEmpty {
            message = message + "; from uids \(uids.joined(separator: " "))" + (summary.moreUIDs ? " and others" : "")
        }
        audit.record(.refusalsSummarized, level: .notice, message,
                     fields: [AuditField.operation: "refuse", AuditField.result: "held_back",
                              AuditField.callerUID: String(summary.person), AuditField.heldBack: String(summary.heldBack),
                              AuditField.refusals: kinds, AuditField.interval: String(summary.seconds)],
                     lists: [AuditField.uids: uids])
    }
}
