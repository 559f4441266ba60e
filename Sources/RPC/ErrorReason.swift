/// The stable reason of every error the protocol can return: the string in an
/// error's `data.reason`. Clients branch on these, never on messages.
public enum ErrorReason: String, Sendable, CaseIterable {
    /// The line is not valid JSON (or not UTF-8, or nested too deep, or has a duplicate key).
    case parseError = "parse_error"
    /// Valid JSON, but not a JSON-RPC 2.0 request.
    case invalidRequest = "invalid_request"
    /// A line longer than the server accepts; the connection is closed after this error.
    case lineTooLong = "line_too_long"
    case methodNotFound = "method_not_found"
    /// A parameter is missing, has the wrong type or value, or is unknown.
    case invalidParams = "invalid_params"
    /// A group name that does not match ^[a-z0-9][a-z0-9_.-]{0,62}$.
    case invalidName = "invalid_name"
    case notFound = "not_found"
    case alreadyExists = "already_exists"
    case permissionDenied = "permission_denied"
    case limitExceeded = "limit_exceeded"
    /// The kernel refused a step of a valid request; data.step and data.errno say which and why.
    case operationFailed = "operation_failed"
    /// `enter` into a group that is frozen: thaw it first.
    case frozen = "frozen"
    /// A fault of the supervisor itself.
    case internalError = "internal"

    /// The JSON-RPC error code: the standard ones where JSON-RPC defines the
    /// case, otherwise one from the implementation-defined range.
    public var code: Int {
        switch self {
        case .parseError: return -32700
        case .invalidRequest, .lineTooLong: return -32600
        case .methodNotFound: return -32601
        case .invalidParams, .invalidName: return -32602
        case .internalError: return -32603
        case .notFound: return -32001
        case .alreadyExists: return -32002
        case .permissionDenied: return -32003
        case .limitExceeded: return -32004
        case .operationFailed: return -32005
        case .frozen: return -32006
        }
    }
}
