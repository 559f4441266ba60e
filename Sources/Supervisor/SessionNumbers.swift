import POSIX

/// Session numbers (the `session` of enter, signal, attach and exited), never given
/// twice while the state directory lasts: across restarts and crashes of the supervisor,
/// so that two journal records of "session 12" are one session. (The state directory is
/// on /run by default, so that is until reboot; journald's _BOOT_ID tells boots apart.)
///
/// The counter lives in the state directory (StateStore.sessionCounterFile). So that an
/// enter does not wait for an fsync on the loop, numbers are reserved in blocks: the file
/// says where the block given out now ends, and is written again only when it is used up.
/// After a crash the rest of that block is skipped. A fresh state directory counts from 1.
final class SessionNumbers {
    /// How many numbers one write of the counter reserves.
    static let blockSize: UInt64 = 256

    private let state: StateStore
    /// The number the next session gets.
    private(set) var next: UInt64
    /// The counter file's number: every number below it may have been given, none at or above it.
    private(set) var reserved: UInt64
    /// Why the counter file was not used at start (it was refused), for a warning; nil if it was.
    let problem: String?
    /// Told when the counter cannot be written (the number is given anyway, but a
    /// supervisor started after a crash could give it again).
    var onSaveFailure: ((Errno) -> Void)?

    /// Reads the counter. A refused file is not a reason not to start: numbers go on
    /// from the highest known to be taken (`noteTaken`: the sessions of the groups taken
    /// back, and what cgroups still hold), and the file is written anew at the first enter.
    init(state: StateStore) {
        self.state = state
        do throws(SupervisorError) {
            next = try state.loadSessionCounter() ?? 1
            problem = nil
        } catch {
            next = 1
            problem = error.message
        }
        reserved = next
    }

    /// The number for a new session: the next of the block, reserving another block
    /// on disk first when this one is used up.
    func take() -> UInt64 {
        if next >= reserved {
            let end = min(next + Self.blockSize, StateStore.maxSessionNumber)
            do throws(Errno) {
                try state.saveSessionCounter(next: end)
                reserved = end
            } catch {
                onSaveFailure?(error)
            }
        }
        defer { next += 1 }
        return next
    }

    /// Numbers given from now on are past `id` (one an earlier supervisor gave).
    func noteTaken(_ id: UInt64) {
        next = max(next, id + 1)
    }
}
