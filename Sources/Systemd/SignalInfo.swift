/// What a signal source reports about one delivered signal (from its `signalfd_siginfo`).
public struct SignalInfo: Sendable, Hashable {
    /// The signal number, e.g. `SIGTERM`.
    public let signal: Int32
    /// The PID of the process that sent it (0 for signals the kernel raised).
    public let senderPID: Int32
    /// The real UID of the sender.
    public let senderUID: UInt32

    public init(signal: Int32, senderPID: Int32, senderUID: UInt32) {
        self.signal = signal
        self.senderPID = senderPID
        self.senderUID = senderUID
    }
}
