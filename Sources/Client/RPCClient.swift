#if canImport(Glibc)
import Glibc
#endif
import POSIX
import RPC

/// A blocking JSON-RPC client on the supervisor's socket, for short-lived
/// processes (the CLI, the benchmark). One request at a time; notifications
/// that arrive while a reply is awaited are kept for `nextNotification()`.
public final class RPCClient {
    public static let defaultSocketPath = RPC.defaultSocketPath
    /// Notifications kept while a reply is awaited (streamed output is at most 16 KiB each).
    static let maxQueuedNotifications = 4096

    /// Where the supervisor is: a socket here, or a host reached through ssh.
    public let endpoint: Endpoint
    private let socket: FileDescriptor
    /// The ssh that carries the connection to another host's supervisor.
    private let tunnel: SSHTunnel?
    private var framer = LineFramer(maxLineLength: 256 << 20)
    private var nextID: Int64 = 1
    private var notifications: [(method: String, params: JSONValue)] = []
    private var readBuffer = [UInt8](repeating: 0, count: 1 << 16)

    public convenience init(socketPath: String) throws(ClientError) {
        try self.init(endpoint: .socket(socketPath))
    }

    /// Connects to the supervisor's socket, or starts ssh to the host (which connects as it
    /// goes: a host that cannot be reached shows as the first call's `.remote` error).
    /// `batch`: ssh without prompts (a fleet of hosts asked at once).
    public init(endpoint: Endpoint, batch: Bool = false) throws(ClientError) {
        self.endpoint = endpoint
        switch endpoint {
        case .socket(let path):
            do {
                socket = try UnixSocket.connect(path: path)
            } catch {
                throw .unreachable(path: path, error)
            }
            tunnel = nil
        case .remote(let host):
            let tunnel = try SSHTunnel(host: host, batch: batch)
            do {
                socket = try tunnel.socket.duplicate()
            } catch {
                throw .io(error)
            }
            self.tunnel = tunnel
        }
    }

    /// The connection's end: `.disconnected` for the supervisor's socket; over ssh, what ssh
    /// and the host said, naming the host.
    private func ended() -> ClientError {
        tunnel?.failure() ?? .disconnected
    }

    /// The socket, for poll(2) alongside other descriptors.
    public var descriptor: Int32 { socket.rawValue }

    /// A reply: the result, and any descriptors the server passed beside it.
    public struct Reply {
        public let result: JSONValue
        public let descriptors: ReceivedDescriptors
    }

    /// Sends one request (with `descriptors` passed beside its first byte) and
    /// waits for its reply. A server error is thrown as `.server`.
    public func call(_ method: String, _ params: JSONValue? = nil, descriptors: [Int32] = []) throws(ClientError) -> Reply {
        try reply(to: send(method, params, descriptors: descriptors))
    }

    /// Sends one request and returns its id, for `reply(to:)`: several clients (one per host)
    /// can each have a request under way at once.
    public func send(_ method: String, _ params: JSONValue? = nil, descriptors: [Int32] = []) throws(ClientError) -> Int64 {
        let id = nextID
        nextID += 1
        let request = Request(id: .number(JSONNumber(id)), method: method, params: params)
        try sendLine(request.json.line, descriptors: descriptors)
        return id
    }

    /// Waits for the reply to the request `id` (the last one sent).
    public func reply(to id: Int64) throws(ClientError) -> Reply {
        while true {
            let (message, received) = try readMessage()
            switch message {
            case .notification(let method, let params):
                received.closeAll()
                // Kept for nextNotification(), within bounds: a server (another host's) that
                // sends nothing but notifications must not fill this process's memory.
                guard notifications.count < Self.maxQueuedNotifications else {
                    throw .protocolViolation("more than \(Self.maxQueuedNotifications) notifications without the reply to request \(id)")
                }
                notifications.append((method, params))
            case .result(let replyID, let value):
                guard replyID == .number(JSONNumber(id)) else { throw .protocolViolation("reply to request \(replyID), expected \(id)") }
                return Reply(result: value, descriptors: received)
            case .error(let replyID, let error):
                guard replyID == .number(JSONNumber(id)) || replyID == .null else { throw .protocolViolation("error for request \(replyID), expected \(id)") }
                throw .server(error)
            }
        }
    }

    /// Sends a notification: a request without an id, which the server carries out and
    /// never answers.
    public func notify(_ method: String, _ params: JSONValue? = nil) throws(ClientError) {
        try sendLine(Request(id: nil, method: method, params: params).json.line)
    }

    /// Sends raw bytes as they are (for tests of the protocol itself).
    public func sendLine(_ bytes: [UInt8], descriptors: [Int32] = []) throws(ClientError) {
        var offset = 0
        while offset < bytes.count {
            let sent: Int
            do {
                sent = try bytes.withBytes { (raw) throws(Errno) -> Int in
                    try UnixSocket.send(socket.rawValue, UnsafeRawBufferPointer(rebasing: raw[offset...]),
                                        descriptors: offset == 0 ? descriptors : [])
                }
            } catch {
                if error.rawValue == EPIPE || error.rawValue == ECONNRESET { throw ended() }
                throw .io(error)
            }
            offset += sent
        }
    }

    /// The next notification, waiting for it; nil when the server closes the connection.
    public func nextNotification() throws(ClientError) -> (method: String, params: JSONValue)? {
        if !notifications.isEmpty { return notifications.removeFirst() }
        while true {
            let message: IncomingMessage
            do {
                message = try readMessage().0
            } catch .disconnected {
                return nil
            }
            if case .notification(let method, let params) = message { return (method, params) }
        }
    }

    /// Whether a message is already buffered here, so poll(2) on the socket
    /// would not show it: read it before waiting.
    public var hasBufferedInput: Bool { !notifications.isEmpty || framer.hasCompleteFrame }

    /// Reads the next complete line as a message, with its descriptors.
    public func readMessage() throws(ClientError) -> (IncomingMessage, ReceivedDescriptors) {
        let line = try readLine()
        let descriptors = ReceivedDescriptors(line.descriptors)
        do {
            let message = try line.bytes.withBytes { (raw) throws(RPCError) -> IncomingMessage in
                try IncomingMessage.decode(line: raw)
            }
            return (message, descriptors)
        } catch {
            throw .protocolViolation(error.message)
        }
    }

    /// The next raw line from the server.
    public func readLine() throws(ClientError) -> LineFramer.Line {
        while true {
            switch framer.next() {
            case .line(let line)?: return line
            case .tooLong?: throw .protocolViolation("a reply line is too long")
            case nil: break
            }
            let received: UnixSocket.Received
            do {
                received = try readBuffer.withMutableBytes { (raw) throws(Errno) -> UnixSocket.Received in
                    try UnixSocket.receive(socket.rawValue, into: raw)
                }
            } catch {
                if error.rawValue == ECONNRESET { throw ended() }
                throw .io(error)
            }
            if received.count == 0 {
                for fd in received.descriptors { close(fd) }
                throw ended()
            }
            readBuffer.withUnsafeBytes { raw in
                framer.append(UnsafeRawBufferPointer(rebasing: raw[0..<received.count]),
                              descriptors: received.descriptors, truncated: received.truncated)
            }
        }
    }
}
