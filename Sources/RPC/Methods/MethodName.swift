/// The methods of protocol version 1.
public enum MethodName: String, CaseIterable, Sendable {
    case version
    case describe
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
    case write
    case resize

    /// How many descriptors a request may carry beside it: `enter` with
    /// `tty: false` carries exactly the caller's stdin, stdout and stderr.
    public var acceptsDescriptors: Bool { self == .enter }

    /// Methods that only read: they change nothing on the server.
    public var isRead: Bool {
        self == .version || self == .describe || self == .list || self == .inspect || self == .processes
    }

    /// The parameters this method's decoder reads (`Call.init`), in that order: the one
    /// table `describe` reports. A test sends each of them to the server.
    public var parameters: [MethodParameter] {
        switch self {
        case .version, .describe, .list:
            []
        case .subscribe:
            [.optional("types"), .optional("groups"), .optional("since"), .optional("instance")]
        case .unsubscribe:
            [.required("subscription")]
        case .inspect, .destroy, .freeze, .thaw, .processes:
            [.required("name")]
        case .create:
            [.required("name"), .optional("namespaces"), .optional("hostname"), .optional("tmpfs"),
             .optional("binds"), .optional("members"), .optional("monotonicOffset"), .optional("boottimeOffset"),
             .optional("netnsName"), .optional("network"), .optional("publish"), .optional("limits"),
             .optional("lifetime"), .optional("idle"), .optional("privateTmp"), .optional("privateHome"),
             .optional("home"), .optional("root"), .optional("persist")]
        case .enter:
            [.required("name"), .optional("argv"), .optional("cwd"), .optional("env"), .required("tty"),
             .optional("rows"), .optional("columns"), .optional("trustOwner"), .optional("stdio")]
        case .write:
            [.required("session"), .optional("data"), .optional("eof")]
        case .resize:
            [.required("session"), .required("rows"), .required("columns")]
        case .signal:
            [.required("name"), .required("session"), .required("signal")]
        case .share, .unshare:
            [.required("name"), .required("members")]
        case .attach:
            [.required("name"), .required("session")]
        }
    }
}

/// One named parameter of a method.
public struct MethodParameter: Sendable, Equatable {
    public var name: String
    public var required: Bool

    public static func required(_ name: String) -> MethodParameter { MethodParameter(name: name, required: true) }
    public static func optional(_ name: String) -> MethodParameter { MethodParameter(name: name, required: false) }
}

/// Notifications the server sends.
public enum NotificationName: String, Sendable {
    /// A process started by `enter` on this connection ended.
    case exited
    /// Something happened to a group the subscriber may see (`subscribe`).
    case event
    /// Bytes a streamed session wrote, or the end of its stdout or stderr.
    case output
    /// A streamed session took input (more may be sent), or its input is gone.
    case window
}

/// The protocol version this code speaks: `protocolVersion`.`protocolMinor`. The major
/// number rises only with an incompatible change, the minor one with additions (PROTOCOL.md §12).
public let protocolVersion = 1
public let protocolMinor = 1

/// The release of nsgroup these binaries belong to.
public let nsgroupVersion = "0.1.0"

/// Where the supervisor listens unless told otherwise, and where clients look (PROTOCOL.md §1).
public let defaultSocketPath = "/run/nsgroup/nsgroupd.sock"
