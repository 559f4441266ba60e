import RPC
import POSIX

/// How a request ends: a result (maybe with descriptors to pass beside it),
/// an error, or later, once something the handler started has finished.
enum Reply {
    /// A result, with descriptors to pass beside it and notifications to send right after it.
    case result(JSONValue, descriptors: ReceivedDescriptors? = nil, followedBy: [JSONValue] = [])
    case error(RPCError)
    /// The handler keeps the PendingReply and completes it later; the
    /// connection answers nothing else until then.
    case deferred
}

/// The finished form of a deferred reply.
enum PendingReply {
    case result(JSONValue)
    case error(RPCError)
}
