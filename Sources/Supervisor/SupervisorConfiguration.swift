import RPC

/// How a supervisor is set up: paths and limits.
public struct SupervisorConfiguration: Sendable {
    public static let defaultSocketPath = RPC.defaultSocketPath
    public static let defaultStateDirectory = "/run/nsgroup"

    public var socketPath: String
    public var stateDirectory: String
    /// The holder program (nsgroup-holder).
    public var holderPath: String
    /// What `version` reports as the server.
    public var serverName: String
    /// nsgroupd.conf; `configRequired` when it was named explicitly (--config).
    public var configPath: String
    public var configRequired: Bool
    /// The directory nsgroupd makes below its own cgroup for its tree
    /// (`--cgroup-dir`); nil: none when its own cgroup is not the root (a
    /// systemd unit with Delegate=yes: the unit's cgroup is the tree), else
    /// "nsgroupd".
    public var cgroupDirectory: String?
    /// Whether the supervisor moves itself into its tree's `supervisor` leaf
    /// (always, but for tests that run a supervisor inside the test process).
    public var joinSupervisorLeaf = true
    /// Whether groups may be units of systemd's where the host allows it (GroupUnits);
    /// `--no-units` keeps every group below nsgroupd's own cgroup.
    public var units = true

    public init(socketPath: String = defaultSocketPath, stateDirectory: String = defaultStateDirectory,
                holderPath: String, serverName: String,
                configPath: String? = nil) {
        self.socketPath = socketPath
        self.stateDirectory = stateDirectory
        self.holderPath = holderPath
        self.serverName = serverName
        self.configPath = configPath ?? PolicyFile.defaultPath
        self.configRequired = configPath != nil
    }
}
