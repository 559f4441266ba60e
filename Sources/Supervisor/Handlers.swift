import RPC

extension Supervisor {
    func version() -> Reply {
        .result(VersionResult(server: configuration.serverName, protocolVersion: protocolVersion,
                              methods: MethodName.allCases.map(\.rawValue)).json)
    }

    func list(_ context: RequestContext) -> Reply {
        let visible = groups.values
            .filter { policy.mayUse(context.caller, $0) }
            .sorted { $0.name < $1.name }
        // ListResult(groups:).json, from each group's kept description.
        return .result(.object(["groups": .array(visible.map(\.infoJSON))]))
    }

    func inspect(_ params: NameParams, _ context: RequestContext) throws(RPCError) -> Reply {
        let group = try group(params.name, context, action: "inspect", manage: false)
        return .result(group.infoJSON)
    }
}
