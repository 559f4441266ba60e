/// A JSON-RPC 2.0 request as the server received it. `id` is nil for a
/// notification (no "id" member): it is executed but never answered.
public struct Request: Sendable {
    public let id: RequestID?
    public let method: String
    public let params: JSONValue?

    public init(id: RequestID?, method: String, params: JSONValue?) {
        self.id = id
        self.method = method
        self.params = params
    }

    public var isNotification: Bool { id == nil }

    /// The request as one line, without the newline.
    public var json: JSONValue {
        var object: JSONObject = ["jsonrpc": "2.0", "method": .string(method)]
        if let params { object["params"] = params }
        if let id { object["id"] = id.json }
        return .object(object)
    }

    /// A request that failed to decode, with the id to answer it with (null
    /// when the id could not be read).
    public struct DecodingFailure: Error, Sendable {
        public let id: RequestID
        public let error: RPCError
        /// The envelope was a valid notification (no "id"): it must not be answered.
        public var isNotification = false
    }

    static let members: Set<String> = ["jsonrpc", "method", "params", "id"]

    /// Decodes one line (without its newline). Strict: the value must be an
    /// object with "jsonrpc":"2.0", a string "method", "params" absent or an
    /// object, "id" absent or a string, number or null, and no other member.
    /// Batches (arrays) are refused.
    public static func decode(line: UnsafeRawBufferPointer) throws(DecodingFailure) -> Request {
        let value: JSONValue
        do {
            value = try JSONParser.parse(line)
        } catch {
            throw DecodingFailure(id: .null, error: RPCError(.parseError, "parse error: \(error)"))
        }
        guard case .object(let object) = value else {
            if case .array = value {
                throw DecodingFailure(id: .null, error: RPCError(.invalidRequest, "batch requests are not supported: send one request per line"))
            }
            throw DecodingFailure(id: .null, error: RPCError(.invalidRequest, "a request must be a JSON object"))
        }
        var id: RequestID?
        if let rawID = object["id"] {
            guard let parsed = RequestID(json: rawID) else {
                throw DecodingFailure(id: .null, error: RPCError(.invalidRequest, "\"id\" must be a string, a number or null"))
            }
            id = parsed
        }
        func fail(_ message: String) -> DecodingFailure {
            DecodingFailure(id: id ?? .null, error: RPCError(.invalidRequest, message))
        }
        guard object["jsonrpc"] == .string("2.0") else { throw fail("\"jsonrpc\" must be \"2.0\"") }
        guard let method = object["method"]?.stringValue else { throw fail("\"method\" must be a string") }
        if let unknown = object.keys.first(where: { !members.contains($0) }) {
            throw fail("unknown member \"\(unknown)\" in request")
        }
        let params = object["params"]
        if let params, params.objectValue == nil {
            throw DecodingFailure(id: id ?? .null, error: RPCError(.invalidParams, "\"params\" must be an object"),
                                  isNotification: id == nil)
        }
        return Request(id: id, method: method, params: params)
    }

    public static func decode(line: [UInt8]) throws(DecodingFailure) -> Request {
        try line.withBytes { (raw) throws(DecodingFailure) -> Request in try decode(line: raw) }
    }
}

/// What a server sends: responses and notifications, each one line.
public enum Response {
    public static func result(id: RequestID, _ result: JSONValue) -> JSONValue {
        .object(["jsonrpc": "2.0", "id": id.json, "result": result])
    }

    public static func error(id: RequestID, _ error: RPCError) -> JSONValue {
        .object(["jsonrpc": "2.0", "id": id.json, "error": error.json])
    }

    public static func notification(method: String, params: JSONValue) -> JSONValue {
        .object(["jsonrpc": "2.0", "method": .string(method), "params": params])
    }
}

/// A message as a client receives it.
public enum IncomingMessage: Sendable {
    case result(id: RequestID, JSONValue)
    case error(id: RequestID, RPCError)
    case notification(method: String, params: JSONValue)

    public static func decode(line: UnsafeRawBufferPointer) throws(RPCError) -> IncomingMessage {
        let value: JSONValue
        do {
            value = try JSONParser.parse(line)
        } catch {
            throw RPCError(.parseError, "the server sent a line that is not JSON: \(error)")
        }
        guard let object = value.objectValue, object["jsonrpc"] == .string("2.0") else {
            throw RPCError(.invalidRequest, "the server sent something that is not JSON-RPC 2.0")
        }
        if let method = object["method"]?.stringValue {
            return .notification(method: method, params: object["params"] ?? .object([:]))
        }
        let id = object["id"].flatMap(RequestID.init(json:)) ?? .null
        if let result = object["result"] { return .result(id: id, result) }
        if let errorValue = object["error"], let error = RPCError(json: errorValue) { return .error(id: id, error) }
        throw RPCError(.invalidRequest, "the server sent a response with neither result nor error")
    }
}

extension JSONValue {
    /// The value serialized as one protocol line, newline included.
    public var line: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        serialize(into: &bytes)
        bytes.append(0x0A)
        return bytes
    }
}
