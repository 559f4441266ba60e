import CSystemd
import Glibc

/// One sd-event loop (`sd_event_new`).
///
/// Not Sendable: the loop and every source registered on it belong to the one thread that runs it.
/// Create it, register sources, and call `run()` on that thread; handlers run on it too.
///
/// Sources are owned by the `EventSource` objects returned here, not by the loop: keep them, and drop
/// (or `cancel()`) one to unregister it. Each `EventSource` holds a strong reference to its loop, so the
/// `sd_event` is unref'ed in `deinit` only after the last source is gone, and no source ever touches a
/// freed loop.
public final class EventLoop {
    /// The `sd_event *`.
    let event: OpaquePointer

    /// Creates a new loop (`sd_event_new`).
    public init() throws(SystemdError) {
        var event: OpaquePointer?
        try SystemdError.check(sd_event_new(&event), "sd_event_new")
        guard let event else { throw SystemdError(operation: "sd_event_new", errno: ENOMEM) }
        self.event = event
    }

    deinit {
        sd_event_unref(event)
    }

    // MARK: - Sources

    /// Calls `handler` with the events that happened whenever `fd` is ready for `events`
    /// (`sd_event_add_io`, level-triggered). The fd is not owned: cancel the source before closing it.
    public func addIO(
        fd: Int32,
        events: IOEvents,
        _ handler: @escaping (IOEvents) -> Void
    ) throws(SystemdError) -> EventSource {
        let box = CallbackBox<IOEvents>(handler)
        var source: OpaquePointer?
        let r = sd_event_add_io(event, &source, fd, events.rawValue, { _, _, revents, userdata in
            CallbackBox<IOEvents>.invoke(userdata, IOEvents(rawValue: revents))
        }, box.userdata)
        return try wrap(r, source, box, "sd_event_add_io", oneShot: false)
    }

    /// Calls `handler` each time `signal` is delivered (`sd_event_add_signal`, through a signalfd).
    ///
    /// The signal must already be blocked in every thread of the process: block it with
    /// `pthread_sigmask(SIG_BLOCK, …)` on the main thread before starting any other thread, so that
    /// every thread inherits the mask. Otherwise another thread may take the signal (and its default
    /// action may kill the process). libsystemd checks the calling thread and fails with `EBUSY` if the
    /// signal is not blocked there. Only one source per signal and loop.
    public func addSignal(
        _ signal: Int32,
        _ handler: @escaping (SignalInfo) -> Void
    ) throws(SystemdError) -> EventSource {
        let box = CallbackBox<SignalInfo>(handler)
        var source: OpaquePointer?
        let r = sd_event_add_signal(event, &source, signal, { _, siginfo, userdata in
            guard let siginfo else { return 0 }
            let info = SignalInfo(
                signal: Int32(bitPattern: siginfo.pointee.ssi_signo),
                senderPID: Int32(bitPattern: siginfo.pointee.ssi_pid),
                senderUID: siginfo.pointee.ssi_uid
            )
            return CallbackBox<SignalInfo>.invoke(userdata, info)
        }, box.userdata)
        return try wrap(r, source, box, "sd_event_add_signal", oneShot: false)
    }

    /// A repeating monotonic timer: fires every `microseconds` (at most 1 ms late), first after one
    /// period. Deadlines advance by whole periods from the previous deadline so it does not drift; a
    /// timer that fell behind by more than a period (e.g. a stopped process) skips the missed ticks.
    public func addRepeatingTimer(
        everyMicroseconds microseconds: UInt64,
        _ handler: @escaping () -> Void
    ) throws(SystemdError) -> EventSource {
        guard microseconds > 0 else { throw SystemdError(operation: "sd_event_add_time_relative", errno: EINVAL) }
        let box = CallbackBox<Void>(repeatInterval: microseconds) { _ in handler() }
        var source: OpaquePointer?
        let accuracy = min(1000, microseconds)
        let r = sd_event_add_time_relative(
            event, &source, CLOCK_MONOTONIC, microseconds, accuracy,
            { source, deadline, userdata in
                guard let box = CallbackBox<Void>.from(userdata) else { return 0 }
                if let source {
                    EventLoop.advanceRepeatingTimer(source, deadline: deadline, interval: box.repeatInterval)
                }
                return CallbackBox<Void>.invoke(userdata, ())
            },
            box.userdata
        )
        let wrapped = try wrap(r, source, box, "sd_event_add_time_relative", oneShot: false)
        wrapped.isEnabled = true  // SD_EVENT_ON instead of the timer default SD_EVENT_ONESHOT
        return wrapped
    }

    /// Runs `handler` once on the next iteration (`sd_event_add_defer`, one-shot).
    public func addDefer(_ handler: @escaping () -> Void) throws(SystemdError) -> EventSource {
        let box = CallbackBox<Void> { _ in handler() }
        var source: OpaquePointer?
        let r = sd_event_add_defer(event, &source, { _, userdata in
            CallbackBox<Void>.invoke(userdata, ())
        }, box.userdata)
        return try wrap(r, source, box, "sd_event_add_defer", oneShot: true)
    }

    // MARK: - Watchdog

    /// Pings the service manager's watchdog from the loop when `WATCHDOG_USEC` (and `WATCHDOG_PID`, if
    /// set, naming this process) is in the environment. The first ping is sent at once, then every
    /// half period while the loop runs, through `ServiceManager.notify`, which never blocks (unlike
    /// `sd_event_set_watchdog`'s own pings, which go through sd_notify). Returns whether it is on.
    public func enableWatchdog() throws(SystemdError) -> Bool {
        guard let period = ServiceManager.watchdogIntervalMicroseconds() else { return false }
        ServiceManager.notify("WATCHDOG=1")
        watchdog = try addRepeatingTimer(everyMicroseconds: max(period / 2, 1)) { ServiceManager.notify("WATCHDOG=1") }
        return true
    }

    /// The watchdog's ping timer, while it is on.
    private var watchdog: EventSource?

    // MARK: - Running

    /// Runs the loop until `exit(code:)` (`sd_event_loop`) and returns the exit code.
    public func run() throws(SystemdError) -> Int32 {
        let r = sd_event_loop(event)
        // sd_event_loop returns the exit code itself, which may be negative; tell that apart from an error.
        if sd_event_get_state(event) == Int32(SD_EVENT_FINISHED) {
            var code: Int32 = 0
            if sd_event_get_exit_code(event, &code) >= 0 { return code }
        }
        try SystemdError.check(r, "sd_event_loop")
        return r
    }

    /// Runs one iteration (`sd_event_run`), waiting at most `timeoutMicroseconds` for something to
    /// dispatch (`UInt64.max`: forever). Returns false when the loop has finished (after `exit(code:)`),
    /// true otherwise, also when the timeout passed with nothing to do.
    ///
    /// nsgroupd uses `run()`; this is for tests that drive a supervisor between requests of their own,
    /// which `run()` cannot do: a loop that has exited never runs again.
    public func runOnce(timeoutMicroseconds: UInt64) throws(SystemdError) -> Bool {
        if sd_event_get_state(event) == Int32(SD_EVENT_FINISHED) { return false }
        try SystemdError.check(sd_event_run(event, timeoutMicroseconds), "sd_event_run")
        return sd_event_get_state(event) != Int32(SD_EVENT_FINISHED)
    }

    /// Asks the loop to finish (`sd_event_exit`): `run()` returns `code` after the current iteration.
    /// Does nothing if the loop has already finished.
    public func exit(code: Int32) {
        _ = sd_event_exit(event, code)
    }

    // MARK: - Helpers

    private func wrap(
        _ result: Int32,
        _ source: OpaquePointer?,
        _ box: AnyObject,
        _ operation: String,
        oneShot: Bool
    ) throws(SystemdError) -> EventSource {
        try SystemdError.check(result, operation)
        guard let source else { throw SystemdError(operation: operation, errno: ENOMEM) }
        return EventSource(loop: self, source: source, box: box, oneShot: oneShot)
    }

    /// Moves a repeating timer's deadline one period past the one that just fired, or one period past
    /// now if it fell further behind.
    static func advanceRepeatingTimer(_ source: OpaquePointer, deadline: UInt64, interval: UInt64) {
        guard interval > 0 else { return }
        var now: UInt64 = 0
        if let event = sd_event_source_get_event(source) {
            _ = sd_event_now(event, CLOCK_MONOTONIC, &now)
        }
        var (next, overflow) = deadline.addingReportingOverflow(interval)
        if overflow || next <= now {
            next = now &+ interval
        }
        _ = sd_event_source_set_time(source, next)
    }
}

/// EventLoop belongs to the thread that runs it.
@available(*, unavailable)
extension EventLoop: Sendable {}
