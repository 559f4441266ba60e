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

    public let socketPath: String
    private let socket: FileDescriptor
    private var framer = LineFramer(maxLineLength: 256 << 20)
    private var nextID: Int64 = 1
    private var notifications: [(method: String, params: JSONValue)] = []
    private var readBuffer = [UInt8](repeating: 0, count: 1 << 16)

    public init(socketPath: String) throws(ClientError) {
        self.socketPath = socketPath
        do {
            socket = try UnixSocket.connect(path: socketPath)
        } catch {
            throw .unreachable(path: socketPath, error)
        }
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
        let id = nextID
        nextID += 1
        let request = Request(id: .number(JSONNumber(id)), method: method, params: params)
        try sendLine(request.json.line, descriptors: descriptors)
        while true {
            let (message, received) = try readMessage()
            switch message {
            case .notification(let method, let params):
                received.closeAll()
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
                if error.rawValue == EPIPE || error.rawValue == ECONNRESET { throw .disconnected }
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
                if error.rawValue == ECONNRESET { throw .disconnected }
                throw .io(error)
            }
            if received.count == 0 {
                for fd in received.descriptors { close(fd) }
                throw .disconnected
            }
            readBuffer.withUnsafeBytes { raw in
                framer.append(UnsafeRawBufferPointer(rebasing: raw[0..<received.count]),
                              descriptors: received.descriptors, truncated: received.truncated)
            }
        }
    }
}
