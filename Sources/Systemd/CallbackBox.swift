/// Holds the Swift closure of one event source. Its address is the `userdata` of the C source.
///
/// The owning `EventSource` keeps the only long-lived strong reference; the C side only has the
/// unretained pointer. A C callback turns that pointer back into a strong local reference for the
/// duration of the call (see `invoke`), so a handler that cancels or drops its own source cannot free
/// the box, or the closure's captures, while it is still running.
final class CallbackBox<Argument> {
    let handler: (Argument) -> Void
    /// For a repeating timer: its period in microseconds. Zero for every other kind of source.
    let repeatInterval: UInt64

    init(repeatInterval: UInt64 = 0, _ handler: @escaping (Argument) -> Void) {
        self.handler = handler
        self.repeatInterval = repeatInterval
    }

    /// The pointer handed to libsystemd as `userdata`. It does not retain the box.
    var userdata: UnsafeMutableRawPointer {
        Unmanaged.passUnretained(self).toOpaque()
    }

    /// The box behind a `userdata` pointer, as a new strong reference.
    static func from(_ userdata: UnsafeMutableRawPointer?) -> CallbackBox<Argument>? {
        guard let userdata else { return nil }
        return Unmanaged<CallbackBox<Argument>>.fromOpaque(userdata).takeUnretainedValue()
    }

    /// Calls the handler for the box behind `userdata`, keeping the box alive until the handler returns.
    /// Always returns 0: a negative return would make sd-event disable the source behind our back.
    static func invoke(_ userdata: UnsafeMutableRawPointer?, _ argument: Argument) -> Int32 {
        guard let box = from(userdata) else { return 0 }
        withExtendedLifetime(box) {
            box.handler(argument)
        }
        return 0
    }
}
