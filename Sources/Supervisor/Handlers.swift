import RPC

extension Supervisor {
    func version(_ context: RequestContext) throws(RPCError) -> Reply {
        try ParamsReader(context.request.params, method: "version").finish()
        return .result(VersionResult(server: configuration.serverName, protocolVersion: protocolVersion,
                              methods: MethodName.allCases.map(\.rawValue)).json)
    }

    func list(_ context: RequestContext) throws(RPCError) -> Reply {
        try ParamsReader(context.request.params, method: "list").finish()
        let visible = groups.values
            .filter { policy.mayUse(context.caller, $0) }
            .sorted { $0.name < $1.name }
        // ListResult(groups:).json, from each group's kept description.
        return .result(.object(["groups": .array(visible.map(\.infoJSON))]))
    }

    func inspect(_ context: RequestContext) throws(RPCError) -> Reply {
        let params = try NameParams(params: context.request.params, method: "inspect")
        let group = try group(params.name, context, action: "inspect", manage: false)
        return .result(group.infoJSON)
    }
}
