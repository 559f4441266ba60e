#if canImport(Glibc)
import Glibc
#endif
import Namespaces
import POSIX
import Systemd

/// Sessions on their way: every `enter` between its clone and the moment its
/// program runs (or fails). The loop never waits for one. Each launch's
/// status channel is an event source; what arrives is handed to the launch,
/// and its end to whoever started it. A launch that has not ended within
/// `limits.spawn-timeout` is killed and ends as failed at once (its children
/// go to the Reaper). The places where a launch can wait on something a user
/// controls are all in its children: the pty's path in the group's tree, the
/// session's directory, the program's path and file (a lease, FUSE, a hung
/// NFS server).
///
/// Pending launches count towards `limits.sessions-per-user` with the
/// running sessions, so that a burst of concurrent enters cannot pass it.
final class Launches {
    /// One launch being watched.
    private final class Pending {
        let launch: SessionLaunch
        let chargedUID: uid_t
        let deadline: Double
        let timeout: Int
        var source: EventSource?
        let done: (SessionLaunch, SessionLaunch.State) -> Void

        init(launch: SessionLaunch, chargedUID: uid_t, timeout: Int, done: @escaping (SessionLaunch, SessionLaunch.State) -> Void) {
            self.launch = launch
            self.chargedUID = chargedUID
            self.timeout = timeout
            self.deadline = monotonicSeconds() + Double(timeout)
            self.done = done
        }
    }

    private let loop: EventLoop
    private let reaper: Reaper
    private var pending: [ObjectIdentifier: Pending] = [:]
    /// Once a second while anything is pending: the spawn timeout.
    private var clock: EventSource?

    init(loop: EventLoop, reaper: Reaper) {
        self.loop = loop
        self.reaper = reaper
    }

    /// Launches charged to this person that have not ended yet.
    func count(chargedTo uid: uid_t) -> Int {
        pending.values.reduce(0) { $0 + ($1.chargedUID == uid ? 1 : 0) }
    }

    var isEmpty: Bool { pending.isEmpty }

    /// Watches a launch until it ends, then calls `done` once, on the loop,
    /// with `.started` (take the session's pidfd and terminal) or `.failed`
    /// (its children are already on their way to the Reaper).
    func watch(_ launch: SessionLaunch, chargedTo uid: uid_t, timeoutSeconds: Int,
               done: @escaping (SessionLaunch, SessionLaunch.State) -> Void) throws(SystemdError) {
        let entry = Pending(launch: launch, chargedUID: uid, timeout: timeoutSeconds, done: done)
        let key = ObjectIdentifier(launch)
        entry.source = try loop.addIO(fd: launch.channel.rawValue, events: .readable) { [weak self, weak entry] _ in
            guard let self, let entry else { return }
            let state = entry.launch.advance()
            if case .running = state { return }
            self.finish(entry, state)
        }
        if clock == nil {
            clock = try loop.addRepeatingTimer(everyMicroseconds: 1_000_000) { [weak self] in self?.expire() }
        }
        pending[key] = entry
    }

    /// Kills a launch (its client went away). It still ends through `done`, as failed.
    func cancel(_ launch: SessionLaunch) {
        guard pending[ObjectIdentifier(launch)] != nil else { return }
        launch.kill()
    }

    private func expire() {
        let now = monotonicSeconds()
        for entry in Array(pending.values) where now >= entry.deadline {
            finish(entry, entry.launch.timeOut(after: entry.timeout))
        }
    }

    private func finish(_ entry: Pending, _ state: SessionLaunch.State) {
        guard pending.removeValue(forKey: ObjectIdentifier(entry.launch)) != nil else { return }
        entry.source?.cancel()
        entry.source = nil
        if pending.isEmpty {
            clock?.cancel()
            clock = nil
        }
        if let first = entry.launch.takeFirstChild() { reaper.reap(first) }
        if case .failed = state, let session = entry.launch.takeSession() {
            try? session.signal(SIGKILL)
            reaper.reap(session)
        }
        entry.done(entry.launch, state)
    }
}
