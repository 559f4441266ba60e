/// A failure of the supervisor itself rather than of a request (requests fail
/// with `RPCError`): it cannot start, its configuration does not parse, or a
/// state file it reads back is refused. `message` is one line for a person;
/// `kind` is what code branches on.
public struct SupervisorError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The supervisor cannot start: the holder program, the state
        /// directory, the socket, the loop's sources.
        case startup
        /// nsgroupd.conf is refused; `line` is 0 when the file as a whole is
        /// (unreadable, not root's, too large).
        case configuration(path: String, line: Int)
        /// A state file is refused on load; the group it names is dropped.
        case stateFile(StateFileProblem)
    }

    /// Why a state file is not trusted: the raw value is the journal's
    /// NSGROUP_REASON of the record that drops it (the journal catalog lists
    /// them: packaging/catalog/nsgroup.catalog).
    public enum StateFileProblem: String, Sendable, CaseIterable {
        case symlink
        case unreadable
        case notRegular = "not_regular"
        case notRoot = "not_root"
        case writable
        case tooLarge = "too_large"
        case malformed
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The message, after `PATH:LINE: ` (or `PATH: `) for the configuration.
    public var description: String {
        switch kind {
        case .configuration(let path, let line): line > 0 ? "\(path):\(line): \(message)" : "\(path): \(message)"
        case .startup, .stateFile: message
        }
    }

    /// A stable word for the journal: for a state file its problem, else the kind.
    public var reason: String {
        switch kind {
        case .startup: "startup"
        case .configuration: "configuration"
        case .stateFile(let problem): problem.rawValue
        }
    }
}
