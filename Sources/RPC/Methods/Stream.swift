/// Streamed stdio (PROTOCOL.md §8.18): a session entered with `"stdio": "stream"` has its
/// stdin, stdout and stderr (or its terminal) carried on the connection that entered it,
/// as base64 in `write` requests and `output` notifications, for a client that cannot
/// pass descriptors (over SSH, from a language without SCM_RIGHTS).
public enum StreamLimits {
    /// The most input bytes the server holds for one session that the session has not
    /// taken yet: what a client may send before `window` notifications give it more.
    public static let window = 32 << 10
    /// The most bytes one `output` notification carries.
    public static let maxOutputChunk = 16 << 10
}

/// How `enter` gives the session its stdio.
public enum StdioMode: String, Sendable, CaseIterable {
    /// Descriptors passed beside the request (`"tty": false`) or the reply (the pty master).
    case descriptors
    /// Carried on the connection: `write`, `resize`, `output`, `window`.
    case stream
}

/// `write {session, data?, eof?}` → `{}`: input for a streamed session of this connection.
public struct WriteParams: Sendable, Equatable {
    public var session: UInt64
    /// The bytes (sent as base64); may be empty.
    public var data: [UInt8]
    /// Closes the session's stdin once `data` has gone in (not for a terminal).
    public var eof: Bool

    public init(session: UInt64, data: [UInt8] = [], eof: Bool = false) {
        self.session = session
        self.data = data
        self.eof = eof
    }

    public init(params: JSONValue?) throws(RPCError) {
        var r = try ParamsReader(params, method: "write")
        guard let session = try r.integer("session", in: 1...Int64.max) else {
            throw .invalidParams("write: \"session\" is required")
        }
        self.session = UInt64(session)
        let text = try r.string("data")
        eof = try r.bool("eof") ?? false
        try r.finish()
        guard text != nil || eof else { throw .invalidParams("write: \"data\" or \"eof\" is required") }
        if let text {
            // Decoded only up to what could fit a window: a longer string is refused unread.
            guard text.utf8.count <= Base64.encodedLength(StreamLimits.window) else {
                throw .invalidParams("write: \"data\" holds more than the \(StreamLimits.window) bytes a session's window can take")
            }
            guard let bytes = Base64.decode(text) else {
                throw .invalidParams("write: \"data\" must be base64 (RFC 4648, standard alphabet, with padding)")
            }
            // The length check lets through one byte more than a window (its last group of four).
            guard bytes.count <= StreamLimits.window else {
                throw .invalidParams("write: \"data\" holds more than the \(StreamLimits.window) bytes a session's window can take")
            }
            data = bytes
        } else {
            data = []
        }
    }

    public var json: JSONValue {
        var o: JSONObject = ["session": .number(JSONNumber(session)), "data": .string(Base64.encode(data))]
        if eof { o["eof"] = .bool(true) }
        return .object(o)
    }
}

/// `resize {session, rows, columns}` → `{}`: the window size of a streamed session's terminal.
public struct ResizeParams: Sendable, Equatable {
    public var session: UInt64
    public var rows: UInt16
    public var columns: UInt16

    public init(session: UInt64, rows: UInt16, columns: UInt16) {
        self.session = session
        self.rows = rows
        self.columns = columns
    }

    public init(params: JSONValue?) throws(RPCError) {
        var r = try ParamsReader(params, method: "resize")
        let session = try r.integer("session", in: 1...Int64.max)
        let rows = try r.integer("rows", in: 0...Int64(UInt16.max))
        let columns = try r.integer("columns", in: 0...Int64(UInt16.max))
        try r.finish()
        guard let session, let rows, let columns else {
            throw .invalidParams("resize: \"session\", \"rows\" and \"columns\" are required")
        }
        self.session = UInt64(session)
        self.rows = UInt16(rows)
        self.columns = UInt16(columns)
    }

    public var json: JSONValue {
        .object(["session": .number(JSONNumber(session)), "rows": .number(JSONNumber(Int(rows))),
                 "columns": .number(JSONNumber(Int(columns)))])
    }
}

/// `output {session, fd, data}` or `{session, fd, eof: true}`: bytes a streamed session
/// wrote on its stdout (fd 1; its terminal) or stderr (fd 2), or the end of one of them.
public struct OutputNotification: Sendable, Equatable {
    public var session: UInt64
    public var fd: Int32
    public var data: [UInt8]
    public var eof: Bool

    public init(session: UInt64, fd: Int32, data: [UInt8] = [], eof: Bool = false) {
        self.session = session
        self.fd = fd
        self.data = data
        self.eof = eof
    }

    /// The notification's line, with its newline, built straight from the bytes read: the
    /// base64 goes into the line as it is encoded, with no JSON value or escaping pass in
    /// between (nothing in it, digits or base64, needs escaping). The same bytes as
    /// `Response.notification(method: "output", params: json).line`; a test holds them to it.
    public static func line(session: UInt64, fd: Int32, data: UnsafeRawBufferPointer) -> [UInt8] {
        let head = Array(#"{"jsonrpc":"2.0","method":"output","params":{"session":\#(session),"fd":\#(fd),"data":""#.utf8)
        let tail = Array(#""}}"#.utf8) + [0x0A]
        let encoded = Base64.encodedLength(data.count)
        return [UInt8](unsafeUninitializedCapacity: head.count + encoded + tail.count) { out, count in
            let raw = UnsafeMutableRawBufferPointer(out)
            head.withUnsafeBytes { raw.copyMemory(from: $0) }
            Base64.encode(data, into: UnsafeMutableRawBufferPointer(rebasing: raw[head.count...]))
            tail.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: raw[(head.count + encoded)...]).copyMemory(from: $0) }
            count = head.count + encoded + tail.count
        }
    }

    public var json: JSONValue {
        var o: JSONObject = ["session": .number(JSONNumber(session)), "fd": .number(JSONNumber(Int(fd)))]
        if eof { o["eof"] = .bool(true) } else { o["data"] = .string(Base64.encode(data)) }
        return .object(o)
    }

    public init(json: JSONValue) throws(RPCError) {
        guard let session = json["session"]?.int64Value, session > 0, let fd = json["fd"]?.int64Value, fd == 1 || fd == 2 else {
            throw RPCError(.internalError, "malformed output notification")
        }
        self.session = UInt64(session)
        self.fd = Int32(fd)
        eof = json["eof"]?.boolValue ?? false
        if let text = json["data"]?.stringValue {
            guard let bytes = Base64.decode(text) else { throw RPCError(.internalError, "output notification: data is not base64") }
            data = bytes
        } else {
            guard eof else { throw RPCError(.internalError, "malformed output notification") }
            data = []
        }
    }
}

/// `window {session, bytes}` or `{session, closed: true}`: the session took `bytes` more of
/// its input, which the client may now send; or its input is gone (it closed its stdin or
/// ended), and nothing more may be written.
public struct WindowNotification: Sendable, Equatable {
    public var session: UInt64
    public var bytes: Int
    public var closed: Bool

    public init(session: UInt64, bytes: Int = 0, closed: Bool = false) {
        self.session = session
        self.bytes = bytes
        self.closed = closed
    }

    public var json: JSONValue {
        var o: JSONObject = ["session": .number(JSONNumber(session))]
        if closed { o["closed"] = .bool(true) } else { o["bytes"] = .number(JSONNumber(bytes)) }
        return .object(o)
    }

    public init(json: JSONValue) throws(RPCError) {
        guard let session = json["session"]?.int64Value, session > 0 else { throw RPCError(.internalError, "malformed window notification") }
        self.session = UInt64(session)
        closed = json["closed"]?.boolValue ?? false
        bytes = Int(json["bytes"]?.int64Value ?? 0)
    }
}
