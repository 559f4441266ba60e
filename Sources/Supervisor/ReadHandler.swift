import POSIX
import RPC

/// `version`, `list` and `inspect`: the reads. They change nothing, and
/// `list` touches no disk: each group keeps its description (Group.infoJSON),
/// to which its usage is added from its cgroup (kernel files, Containment.describe).
final class ReadHandler {
    private let serverName: String
    private let registry: GroupRegistry
    private let containment: Containment

    init(serverName: String, registry: GroupRegistry, containment: Containment) {
        self.serverName = serverName
        self.registry = registry
        self.containment = containment
    }

    func version() -> Reply {
        .result(VersionResult(server: serverName, protocolVersion: protocolVersion,
                              methods: MethodName.allCases.map(\.rawValue)).json)
    }

    func list(_ context: RequestContext) -> Reply {
        let visible = registry.visible(to: context.caller)
        // ListResult(groups:).json, from each group's kept description.
        return .result(.object(["groups": .array(visible.map { containment.describe($0, detailed: false) })]))
    }

    func inspect(_ params: NameParams, _ context: RequestContext) throws(RPCError) -> Reply {
        let group = try registry.group(params.name, caller: context.caller, action: "inspect", manage: false)
        return .result(containment.describe(group, detailed: true))
    }
}
