import Logging
import POSIX
import RPC
import Systemd

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
///
/// What is held back would live only in memory until its interval ends, and a supervisor
/// killed meanwhile (SIGKILL, a crash, the watchdog) would take up to a whole interval of
/// refusals with it: a prober could hide behind a crash. So the tallies of intervals still
/// running are kept in the state directory (StateStore.refusalsHeldBackFile): written from
/// the once-a-second sweep when they changed since the last write, and, when nothing was
/// written in the last second, right after the requests that held one back (a deferred
/// event on the loop, after the requests read together: so the burst that starts a flood is
/// on disk as soon as it was handled, not up to a second later). The write is on the loop,
/// and bounded: one small file, at most twice a second, and only while refusals are being
/// held back (never one per refusal; a flood costs one write a second). The file is
/// removed when nothing is held back any more, and at shutdown once `writeAll` has summed
/// everything up. The next supervisor writes the summaries of what the file holds
/// (`writeHeldBackBeforeStop`). Refusals held back since the last write before a kill (at
/// most about the last second's) are still lost.
final class RefusalRecords {
    private let audit: Audit
    private let policies: PolicyHolder
    private let budget: RefusalBudget
    /// Where the tallies of refusals held back are kept; nil: nowhere (tests of the records alone).
    private let state: StateStore?
    /// Runs the write that follows the requests that held refusals back; nil: only the sweep writes.
    private let loop: EventLoop?
    /// The deferred write, once made (re-armed, one-shot, while none is due).
    private var saveSource: EventSource?
    private var saveDue = false
    /// budget.heldBackChanges when the file was last brought up to date.
    private var savedChanges = 0
    /// When (monotonic seconds) the file was last written or removed, or last failed to be.
    private var lastSave = -Double.infinity
    /// The last write failed and was reported: the next failure is not, until one succeeds.
    private var saveFailed = false

    init(audit: Audit, policies: PolicyHolder, subordinates: SubordinateOwners, state: StateStore? = nil,
         loop: EventLoop? = nil) {
        self.audit = audit
        self.policies = policies
        self.state = state
        self.loop = loop
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
        let now = monotonicSeconds()
        guard budget.admit(caller.uid, RefusalBudget.Kind(operation, reason), now: now) else {
            if now - lastSave >= 1 { saveSoon() }
            return
        }
        audit.record(.requestRefused, level: level, message(), caller: caller, fields: fields, lists: lists)
    }

    /// Writes the summaries of the intervals that have ended (called once a second), then
    /// brings the file of those still running up to date if they changed since it was written.
    /// A supervisor killed between the two leaves a summary in the file that the next one
    /// writes again: counted twice rather than lost.
    func writeEndedIntervals() {
        budget.limits = Self.limits(policies.current)
        for summary in budget.endedIntervals(now: monotonicSeconds()) { write(summary) }
        saveHeldBack()
    }

    /// Writes the summaries of every interval still running (shutdown), and removes the file
    /// of those held back: nothing is left to sum up.
    func writeAll() {
        for summary in budget.takeAll(now: monotonicSeconds()) { write(summary) }
        saveHeldBack()
    }

    /// At start: writes the summaries of the refusals an earlier supervisor held back and had
    /// not summed up when it stopped (killed, or crashed) as it left them in the state
    /// directory, each saying so (NSGROUP_REASON=supervisor_stopped), and removes the file. A
    /// file that is refused (StateStore.loadRefusalsHeldBack) is reported, trusted in nothing,
    /// and removed.
    func writeHeldBackBeforeStop() {
        guard let state else { return }
        do throws(SupervisorError) {
            guard let left = try state.loadRefusalsHeldBack() else { return }
            for summary in left.summaries { write(summary, stoppedAt: left.written) }
        } catch {
            audit.logger.warning("Ignored the refusals held back \(state.directory)/groups/\(StateStore.refusalsHeldBackFile): \(error.message); refusals an earlier supervisor held back and did not sum up are not recorded",
                                 metadata: [AuditField.reason: .string("refusals_held_back_refused")])
        }
        do throws(Errno) {
            try state.removeRefusalsHeldBack()
        } catch {
            audit.logger.warning("Cannot remove \(state.directory)/groups/\(StateStore.refusalsHeldBackFile): \(error); the next start may sum its refusals up again")
        }
    }

    /// Writes the file soon: after the requests being handled now, which may hold back more.
    private func saveSoon() {
        guard let loop, state != nil, !saveDue else { return }
        if let saveSource {
            saveSource.isEnabled = true
        } else if let source = try? loop.addDefer({ [weak self] in
            self?.saveDue = false
            self?.saveHeldBack()
        }) {
            saveSource = source
        } else {
            return
        }
        saveDue = true
    }

    /// Writes the tallies of the intervals still running that held refusals back, or removes
    /// the file when there are none; nothing when they did not change since the last time.
    private func saveHeldBack() {
        guard let state, budget.heldBackChanges != savedChanges else { return }
        let now = monotonicSeconds()
        let changes = budget.heldBackChanges
        let tallies = budget.heldBack(now: now)
        lastSave = now
        do throws(Errno) {
            if tallies.isEmpty {
                try state.removeRefusalsHeldBack()
            } else {
                try state.saveRefusalsHeldBack(HeldBackRefusals(written: Timestamp.now(), summaries: tallies))
            }
            savedChanges = changes
            saveFailed = false
        } catch {
            if !saveFailed {
                audit.logger.warning("Cannot write \(state.directory)/groups/\(StateStore.refusalsHeldBackFile): \(error); refusals held back are summed up when their interval ends, but not if the supervisor is killed before",
                                     metadata: [AuditField.reason: .string("refusals_held_back_unsaved")])
            }
            saveFailed = true
        }
    }

    /// One `refusals-summarized` record; `stoppedAt`: of an earlier supervisor that stopped
    /// before the interval ended, the time (wall clock) the summary was last written down.
    private func write(_ summary: RefusalBudget.Summary, stoppedAt: Int64? = nil) {
        let kinds = summary.kindsField
        // The uids are named when they are not just the person's own.
        let uids = summary.uids == [summary.person] && !summary.moreUIDs ? [] : summary.uids.map { String($0) }
        var message: AuditText = "uid \(summary.person) had \(counted(summary.heldBack, "more refusal")) in \(summary.seconds) s than are recorded one by one (audit.refusals-per-interval = \(policies.current.refusalsPerInterval)): \(kinds)"
        if !uids.isEmpty {
            message = message + "; from uids \(uids.joined(separator: " "))" + (summary.moreUIDs ? " and others" : "")
        }
        var fields = [AuditField.operation: "refuse", AuditField.result: "held_back",
                      AuditField.callerUID: String(summary.person), AuditField.heldBack: String(summary.heldBack),
                      AuditField.refusals: kinds, AuditField.interval: String(summary.seconds)]
        if let stoppedAt {
            message = message + "; the supervisor stopped before the interval ended (counted until \(Timestamp.format(secondsSinceEpoch: stoppedAt)))"
            fields[AuditField.reason] = "supervisor_stopped"
        }
        audit.record(.refusalsSummarized, level: .notice, message, fields: fields, lists: [AuditField.uids: uids])
    }
}
