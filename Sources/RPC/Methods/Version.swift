/// `version` → `{server, protocol, minor, methods}`.
public struct VersionResult: Sendable, Equatable {
    public var server: String
    public var protocolVersion: Int
    /// The minor version (1.1 on): 0 from a server that does not say.
    public var minor: Int
    public var methods: [String]

    public init(server: String, protocolVersion: Int, minor: Int = protocolMinor, methods: [String]) {
        self.server = server
        self.protocolVersion = protocolVersion
        self.minor = minor
        self.methods = methods
    }

    public var json: JSONValue {
        .object([
            "server": .string(server),
            "protocol": .number(JSONNumber(protocolVersion)),
            "minor": .number(JSONNumber(minor)),
            "methods": .array(methods.map { .string($0) }),
        ])
    }

    public init(json: JSONValue) throws(RPCError) {
        var r = try ParamsReader(json, method: "version result")
        server = try r.requiredString("server")
        protocolVersion = Int(try r.integer("protocol", in: 0...Int64(Int32.max)) ?? 0)
        minor = Int(try r.integer("minor", in: 0...Int64(Int32.max)) ?? 0)
        methods = try r.stringArray("methods") ?? []
    }
}
