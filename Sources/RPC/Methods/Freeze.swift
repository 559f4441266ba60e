/// `freeze {name}` and `thaw {name}` → `{name, frozen}`: the group's state
/// once the kernel has stopped (or let go) every process in its cgroup.
/// Freezing a frozen group, or thawing a running one, changes nothing and is
/// answered the same way.
public struct FreezeResult: Sendable, Equatable {
    public var name: String
    /// True after `freeze`, false after `thaw`.
    public var frozen: Bool

    public init(name: String, frozen: Bool) {
        self.name = name
        self.frozen = frozen
    }

    public var json: JSONValue {
        .object(["name": .string(name), "frozen": .bool(frozen)])
    }

    public init(json: JSONValue) throws(RPCError) {
        var r = try ParamsReader(json, method: "freeze result")
        name = try r.requiredString("name")
        guard let frozen = try r.bool("frozen") else { throw .invalidParams("freeze result: \"frozen\" is required") }
        self.frozen = frozen
    }
}
