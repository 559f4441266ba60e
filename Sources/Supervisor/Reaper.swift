#if canImport(Glibc)
import Glibc
#endif
import POSIX
import Systemd

/// Children the supervisor no longer waits for but must still reap: the first
/// child of every enter, and the processes of a launch that failed, timed out
/// or lost its client (killed, but a process in the middle of a slow file
/// operation may take a while to die). Each is reaped at once if it is gone,
/// else when its pidfd becomes readable; the loop never waits for one.
final class Reaper {
    private final class Child {
        var pidfd: Pidfd?
        var watch: EventSource?
        init(_ pidfd: consuming Pidfd) { self.pidfd = consume pidfd }
    }

    private let loop: EventLoop
    private var watched: [ObjectIdentifier: Child] = [:]
    private let logger: (String) -> Void

    init(loop: EventLoop, logger: @escaping (String) -> Void) {
        self.loop = loop
        self.logger = logger
    }

    /// SIGKILL, then reaped as `reap` does.
    func kill(_ pidfd: consuming Pidfd) {
        try? pidfd.signal(SIGKILL)
        reap(pidfd)
    }

    /// SIGKILL to a child whose pidfd stays with its owner (a group's holder, a
    /// session): reaped at once if it is already gone, else through a pidfd of the
    /// Reaper's own (an unreaped child's pid cannot be reused, so it is the same process).
    func kill(borrowing pidfd: borrowing Pidfd) {
        try? pidfd.signal(SIGKILL)
        if (try? pidfd.reap()) == nil, let own = try? Pidfd.open(pid: pidfd.pid) {
            reap(own)
        }
    }

    func reap(_ pidfd: consuming Pidfd) {
        if (try? pidfd.reap()) != nil { return }
        let child = Child(pidfd)
        let key = ObjectIdentifier(child)
        do {
            child.watch = try loop.addIO(fd: child.pidfd?.rawValue ?? -1, events: .readable) { [weak self, weak child] _ in
                guard let self, let child else { return }
                if (try? child.pidfd?.reap()) == nil, child.pidfd?.isAlive == true { return }
                child.watch?.cancel()
                self.watched[ObjectIdentifier(child)] = nil
            }
            watched[key] = child
        } catch {
            // No event source: this child stays a zombie until the supervisor exits.
            logger("Cannot watch pid \(child.pidfd?.pid ?? 0) to reap it: \(error)")
        }
    }
}
