import CSystemd
import Glibc

/// Owns one `sd_event_source`.
///
/// Dropping the last reference, or calling `cancel()`, disables and unrefs the C source and releases
/// the handler (and whatever it captured). So keep the object for as long as the source should live:
/// `_ = try loop.addDefer(…)` cancels the source at once.
///
/// A handler that captures its own `EventSource` strongly forms a reference cycle that lasts until
/// `cancel()` is called; capture it `weak` or make sure it is cancelled.
///
/// Not Sendable: it belongs to the thread that runs its `EventLoop`. It holds a strong reference to
/// that loop, so the `sd_event` outlives every source registered on it.
public final class EventSource {
    /// The loop this source is registered on. Kept so the loop is never freed before its sources.
    let loop: EventLoop
    /// The C source; nil once cancelled.
    private var source: OpaquePointer?
    /// The `CallbackBox` whose address is the C source's userdata; nil once cancelled.
    private var box: AnyObject?
    /// Whether enabling the source again should use `SD_EVENT_ONESHOT` (defer sources).
    private let oneShot: Bool

    init(loop: EventLoop, source: OpaquePointer, box: AnyObject, oneShot: Bool) {
        self.loop = loop
        self.source = source
        self.box = box
        self.oneShot = oneShot
    }

    deinit {
        cancel()
    }

    /// Changes the events an I/O source waits for (`sd_event_source_set_io_events`).
    public func setIOEvents(_ events: IOEvents) throws(SystemdError) {
        let source = try live("sd_event_source_set_io_events")
        try SystemdError.check(sd_event_source_set_io_events(source, events.rawValue), "sd_event_source_set_io_events")
    }

    /// Whether the source can fire. A one-shot source (defer) reads false after it has fired; setting
    /// true re-enables it as one-shot again (`SD_EVENT_ONESHOT`), other sources as `SD_EVENT_ON`.
    /// Setting it on a cancelled source does nothing.
    public var isEnabled: Bool {
        get {
            guard let source else { return false }
            var state: Int32 = 0
            let r = sd_event_source_get_enabled(source, &state)
            return r > 0 && state != Int32(SD_EVENT_OFF)
        }
        set {
            guard let source else { return }
            let state = newValue ? (oneShot ? SD_EVENT_ONESHOT : SD_EVENT_ON) : SD_EVENT_OFF
            // Only fails for a source whose loop has finished; there is nothing useful to do then.
            _ = sd_event_source_set_enabled(source, Int32(state))
        }
    }

    /// Disables and unrefs the C source and releases the handler. Idempotent, and safe to call from
    /// inside the source's own handler: the running handler (and what it captured) stays alive until
    /// it returns, and sd-event defers freeing a source that is being dispatched.
    public func cancel() {
        guard let source else { return }
        self.source = nil
        sd_event_source_disable_unref(source)
        box = nil
    }

    private func live(_ operation: String) throws(SystemdError) -> OpaquePointer {
        guard let source else { throw SystemdError(operation: operation, errno: ECANCELED) }
        return source
    }
}

/// EventSource belongs to the thread of its loop.
@available(*, unavailable)
extension EventSource: Sendable {}
