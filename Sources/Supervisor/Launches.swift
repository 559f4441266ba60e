#if canImport(Glibc)
import Glibc
#endif
import POSIX
import Systemd

/// Children on their way: every `enter` between its clone and the moment its
/// program runs (or fails), every `create` between the clone of its holder
/// and the holder's "set up". The loop never waits for one: each launch's
/// status channel is an event source, and what arrives is handed to whoever
/// started it. A launch that has not ended within `limits.spawn-timeout` is
/// taken off the watch and its owner told to end it (kill, answer, reap
/// through the Reaper). The places where a launch can wait on something a
/// user controls are all in the children: a session's terminal path in the
/// group's tree, its directory, its program's path and file (a lease, FUSE, a
/// hung NFS server); a holder's tmpfs targets and bind sources.
///
/// Enters still under way count towards sessions-per-user with the sessions
/// that run (`count(.session, chargedTo:)`); a create under way holds its name
/// and counts towards the group limits through GroupRegistry.reserve. So a
/// burst of concurrent requests cannot pass a limit together.
final class Launches {
    enum Kind { case session, holder }

    /// A watched launch; the owner keeps it to stop watching (`finish`).
    final class Ticket {
        let kind: Kind
        let chargedUID: uid_t
        fileprivate let deadline: Double
        fileprivate var source: EventSource?
        fileprivate let expired: () -> Void

        fileprivate init(kind: Kind, chargedUID: uid_t, deadline: Double, expired: @escaping () -> Void) {
            self.kind = kind
            self.chargedUID = chargedUID
            self.deadline = deadline
            self.expired = expired
        }
    }

    private let loop: EventLoop
    private var watched: [ObjectIdentifier: Ticket] = [:]
    /// Once a second while anything is watched: the spawn timeout.
    private var clock: EventSource?

    init(loop: EventLoop) {
        self.loop = loop
    }

    /// Launches of this kind charged to this person that have not ended yet.
    func count(_ kind: Kind, chargedTo uid: uid_t) -> Int {
        watched.values.reduce(0) { $0 + ($1.kind == kind && $1.chargedUID == uid ? 1 : 0) }
    }

    /// Watches `channel` (the launch's status pipe or socket): `readable` runs on
    /// the loop whenever it is, and returns true once the launch has ended (the
    /// watch then stops). If it has not ended `timeoutSeconds` from now, the
    /// watch stops and `expired` runs instead, once.
    @discardableResult
    func watch(_ kind: Kind, channel: Int32, chargedTo uid: uid_t, timeoutSeconds: Int,
               readable: @escaping () -> Bool, expired: @escaping () -> Void) throws(SystemdError) -> Ticket {
        let ticket = Ticket(kind: kind, chargedUID: uid, deadline: monotonicSeconds() + Double(timeoutSeconds), expired: expired)
        ticket.source = try loop.addIO(fd: channel, events: .readable) { [weak self, weak ticket] _ in
            guard let self, let ticket else { return }
            if readable() { self.finish(ticket) }
        }
        if clock == nil {
            do {
                clock = try loop.addRepeatingTimer(everyMicroseconds: 1_000_000) { [weak self] in self?.expire() }
            } catch {
                ticket.source?.cancel()
                throw error
            }
        }
        watched[ObjectIdentifier(ticket)] = ticket
        return ticket
    }

    /// Stops watching (the owner ended the launch itself).
    func finish(_ ticket: Ticket) {
        guard watched.removeValue(forKey: ObjectIdentifier(ticket)) != nil else { return }
        ticket.source?.cancel()
        ticket.source = nil
        if watched.isEmpty {
            clock?.cancel()
            clock = nil
        }
    }

    private func expire() {
        let now = monotonicSeconds()
        for ticket in Array(watched.values) where now >= ticket.deadline {
            finish(ticket)
            ticket.expired()
        }
    }
}
