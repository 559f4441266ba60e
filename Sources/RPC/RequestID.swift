/// A request's id, echoed in its response exactly as it was sent.
public enum RequestID: Sendable, Hashable, CustomStringConvertible {
    case number(JSONNumber)
    case string(String)
    case null

    public init?(json: JSONValue) {
        switch json {
        case .number(let n): self = .number(n)
        case .string(let s): self = .string(s)
        case .null: self = .null
        default: return nil
        }
    }

    public var json: JSONValue {
        switch self {
        case .number(let n): return .number(n)
        case .string(let s): return .string(s)
        case .null: return .null
        }
    }

    public var description: String { json.serialized() }
}
