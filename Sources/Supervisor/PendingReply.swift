import POSIX
import RPC

/// How a request ends: a result (maybe with descriptors to pass beside it),
/// an error, or later, once something the handler started has finished.
enum Reply {
    /// A result, with descriptors to pass beside it and notifications to send right after it.
    case result(JSONValue, descriptors: ReceivedDescriptors? = nil, followedBy: [JSONValue] = [])
    case error(RPCError)
    /// The handler took a Completion (RequestContext.later) and finishes it
    /// when its work is done; the connection answers nothing else until then.
    case deferred
}

/// A request answered later: destroy waits for the holder to be reaped,
/// enter and create for their child to report. The handler keeps it and
/// finishes it once; finishing journals the decision as dispatch does for
/// an answer given at once, then answers on the connection. If the client
/// closes its connection first, `onCancel` runs (once) so that the handler
/// can stop what it started; finishing afterwards still journals.
final class Completion {
    private weak var connection: Connection?
    private let journal: (Result<Void, RPCError>) -> Void
    private(set) var isFinished = false
    /// What to stop when the client goes away before the answer.
    var onCancel: (() -> Void)?

    init(connection: Connection, journal: @escaping (Result<Void, RPCError>) -> Void) {
        self.connection = connection
        self.journal = journal
    }

    /// Whether the client is still there to hear the answer.
    var isCancelled: Bool { connection.map { $0.isClosed } ?? true }

    /// Journals and answers; a second call does nothing.
    func finish(_ reply: Reply) {
        guard !isFinished else { return }
        isFinished = true
        onCancel = nil
        switch reply {
        case .result: journal(.success(()))
        case .error(let error): journal(.failure(error))
        case .deferred: preconditionFailure("a completion finishes with a result or an error")
        }
        connection?.complete(reply)
    }

    /// The connection closed while this was pending.
    func cancel() {
        let cancel = onCancel
        onCancel = nil
        cancel?()
    }
}
