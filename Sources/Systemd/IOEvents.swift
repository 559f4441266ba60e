import CSystemd  // sys/epoll.h comes in through sd-event.h

/// The epoll event bits an I/O source waits for, or that it reports as having happened.
///
/// `hangup` and `error` are always reported by the kernel, whether asked for or not.
public struct IOEvents: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// `EPOLLIN`: data to read, or a connection to accept.
    public static let readable = IOEvents(rawValue: EPOLLIN.rawValue)
    /// `EPOLLOUT`: writing will not block.
    public static let writable = IOEvents(rawValue: EPOLLOUT.rawValue)
    /// `EPOLLRDHUP`: the peer shut down its writing half.
    public static let readHangup = IOEvents(rawValue: EPOLLRDHUP.rawValue)
    /// `EPOLLHUP`: hang-up (always reported).
    public static let hangup = IOEvents(rawValue: EPOLLHUP.rawValue)
    /// `EPOLLERR`: an error condition (always reported).
    public static let error = IOEvents(rawValue: EPOLLERR.rawValue)
    /// `EPOLLPRI`: an exceptional condition, such as out-of-band data.
    public static let priority = IOEvents(rawValue: EPOLLPRI.rawValue)

    public var description: String {
        let names: [(IOEvents, String)] = [
            (.readable, "readable"), (.writable, "writable"), (.readHangup, "readHangup"),
            (.hangup, "hangup"), (.error, "error"), (.priority, "priority"),
        ]
        var parts = names.filter { contains($0.0) }.map(\.1)
        let known = names.reduce(into: IOEvents()) { $0.formUnion($1.0) }
        let rest = rawValue & ~known.rawValue
        if rest != 0 { parts.append("0x" + String(rest, radix: 16)) }
        return "[" + parts.joined(separator: ", ") + "]"
    }
}
