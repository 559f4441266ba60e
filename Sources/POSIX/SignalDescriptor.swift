#if canImport(Glibc)
import Glibc
#endif
import CPOSIX

/// Signals taken synchronously through a signalfd (signalfd(2)) instead of
/// handlers, so they can wait in poll(2) beside other descriptors.
public struct SignalDescriptor: ~Copyable {
    public let descriptor: FileDescriptor

    /// Blocks `signals` in the calling thread and opens a signalfd for them.
    public init(_ signals: [Int32]) throws(Errno) {
        let fd = signals.withUnsafeBufferPointer { ns_signalfd($0.baseAddress, $0.count) }
        if fd < 0 { throw Errno.current }
        descriptor = FileDescriptor(adopting: fd)
    }

    public var rawValue: Int32 { descriptor.rawValue }

    /// The next pending signal, or nil when none is.
    public func next() -> Int32? {
        let signal = ns_signalfd_next(descriptor.rawValue)
        return signal > 0 ? signal : nil
    }
}
