/// An error as the protocol carries it:
/// `{"code":-32001,"message":"no group named \"web\"","data":{"reason":"not_found"}}`.
/// `details` are further members of `data` (for operation_failed: step and errno).
public struct RPCError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: ErrorReason
    public let message: String
    public let details: JSONObject

    public init(_ reason: ErrorReason, _ message: String, details: JSONObject = JSONObject()) {
        self.reason = reason
        self.message = message
        self.details = details
    }

    public var code: Int { reason.code }
    public var description: String { message }

    public var json: JSONValue {
        var data = JSONObject()
        data["reason"] = .string(reason.rawValue)
        for (key, value) in details where key != "reason" { data[key] = value }
        return .object(["code": .number(JSONNumber(code)), "message": .string(message), "data": .object(data)])
    }

    /// Reads an error object as a client receives it. An unknown reason (from a
    /// newer server) falls back to the one its code implies, or internal.
    public init?(json: JSONValue) {
        guard let object = json.objectValue,
              let message = object["message"]?.stringValue,
              let code = object["code"]?.int64Value
        else { return nil }
        var details = object["data"]?.objectValue ?? JSONObject()
        let named = details["reason"]?.stringValue.flatMap(ErrorReason.init(rawValue:))
        details["reason"] = nil
        let byCode = ErrorReason.allCases.first { Int64($0.code) == code }
        self.init(named ?? byCode ?? .internalError, message, details: details)
    }
}

extension RPCError {
    public static func invalidParams(_ message: String) -> RPCError { RPCError(.invalidParams, message) }
    public static func notFound(group name: String) -> RPCError { RPCError(.notFound, "no group named \"\(name)\"") }
}
