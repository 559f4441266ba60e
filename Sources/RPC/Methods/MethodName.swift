/// The methods of protocol version 1.
public enum MethodName: String, CaseIterable, Sendable {
    case version
    case create
    case list
    case inspect
    case destroy
    case enter
    case signal
    case share
    case unshare
    case attach
    case subscribe
    case unsubscribe
    case freeze
    case thaw
    case processes

    /// How many descriptors a request may carry beside it: `enter` with
    /// `tty: false` carries exactly the caller's stdin, stdout and stderr.
    public var acceptsDescriptors: Bool { self == .enter }

    /// Methods that only read: they change nothing on the server.
    public var isRead: Bool { self == .version || self == .list || self == .inspect || self == .processes }
}

/// Notifications the server sends.
public enum NotificationName: String, Sendable {
    /// A process started by `enter` on this connection ended.
    case exited
    /// Something happened to a group the subscriber may see (`subscribe`).
    case event
}

/// The protocol version this code speaks.
public let protocolVersion = 1

/// The release of nsgroup these binaries belong to.
public let nsgroupVersion = "0.1.0"

/// Where the supervisor listens unless told otherwise, and where clients look (PROTOCOL.md §1).
public let defaultSocketPath = "/run/nsgroup/nsgroupd.sock"
