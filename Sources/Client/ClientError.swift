#if canImport(Glibc)
import Glibc
#endif
import POSIX
import RPC

/// Why a call to the supervisor did not give a result.
public enum ClientError: Error, CustomStringConvertible {
    /// The socket could not be reached: no supervisor, or no permission.
    case unreachable(path: String, Errno)
    /// The supervisor answered with an error: its reason (`data.reason`, or the
    /// one its code implies when the reason is new to this client) is what to
    /// branch on, with `data` members such as `needs`; its message is for people.
    case server(RPCError)
    /// The supervisor sent something this client does not understand.
    case protocolViolation(String)
    /// Reading or writing the socket failed.
    case io(Errno)
    /// The supervisor closed the connection.
    case disconnected
    /// Another host's supervisor could not be reached through ssh, or the connection ended:
    /// the host as given, and what ssh or the host said.
    case remote(host: String, String)

    public var description: String {
        switch self {
        case .unreachable(let path, let errno):
            let hint = errno.rawValue == ENOENT || errno.rawValue == ECONNREFUSED ? " (is nsgroupd running?)" : ""
            return "cannot reach nsgroupd at \(path): \(errno)\(hint)"
        case .server(let error):
            return error.message
        case .protocolViolation(let what):
            return "unexpected reply from nsgroupd: \(what)"
        case .io(let errno):
            return "talking to nsgroupd failed: \(errno)"
        case .disconnected:
            return "nsgroupd closed the connection"
        case .remote(_, let message):
            return message
        }
    }
}
