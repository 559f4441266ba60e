#if canImport(Glibc)
import Glibc
#endif
import Client
import POSIX
import RPC

/// One connection that enters a group again and again over RPC, as `load`
/// does: `tty: false`, its own /dev/null passed as stdin, stdout and stderr,
/// then the wait for the session's `exited` notification. No CLI process is
/// started, so what it costs is the supervisor's. Used by one thread at a time.
final class EnterConnection: @unchecked Sendable {
    private let client: RPCClient
    private let devNull: Int32

    /// `replyTimeoutSeconds` bounds every read: a supervisor that stops
    /// answering is a failure of the run, not a hang.
    init(socketPath: String, replyTimeoutSeconds: Int) throws {
        do {
            client = try RPCClient(socketPath: socketPath)
        } catch {
            throw BenchError("connect: \(error)")
        }
        var timeout = timeval(tv_sec: replyTimeoutSeconds, tv_usec: 0)
        setsockopt(client.descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client.descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard devNull >= 0 else { throw BenchError("open /dev/null: \(Errno.current)") }
    }

    deinit { close(devNull) }

    /// Enters `group` to run `argv` and returns its status as a shell would
    /// report it, once the `exited` notification has come. Throws when the
    /// supervisor refused the enter or the connection broke.
    func run(_ group: String, _ argv: [String]) throws -> Int32 {
        let params = EnterParams(name: group, argv: argv, tty: false).json
        let session: UInt64
        do {
            let reply = try client.call("enter", params, descriptors: [devNull, devNull, devNull])
            session = try EnterResult(json: reply.result).session
        } catch {
            throw BenchError("enter \(group) -- \(argv.joined(separator: " ")): \(error)")
        }
        while true {
            let notification: (method: String, params: JSONValue)?
            do {
                notification = try client.nextNotification()
            } catch {
                throw BenchError("waiting for exited of session \(session): \(error)")
            }
            guard let notification else { throw BenchError("the connection closed before exited of session \(session)") }
            guard notification.method == "exited", let exited = try? ExitedNotification(json: notification.params),
                  exited.session == session
            else { continue }
            return exited.shellStatus
        }
    }
}

/// What a loop of operations on several threads did: how many completed, and
/// the first few that went wrong.
struct LoopTally: Sendable {
    var completed = 0
    var failures = 0
    var examples: [String] = []

    mutating func fail(_ what: String) {
        failures += 1
        if examples.count < 3 { examples.append(what) }
    }

    static func + (a: LoopTally, b: LoopTally) -> LoopTally {
        LoopTally(completed: a.completed + b.completed, failures: a.failures + b.failures,
                  examples: Array((a.examples + b.examples).prefix(3)))
    }

    static func sum(_ tallies: [LoopTally]) -> LoopTally { tallies.reduce(LoopTally(), +) }

    var failureText: String { failures == 0 ? "" : "\(failures) failed, e.g. " + examples.joined(separator: "; ") }
}

/// Runs `operation` on each of `threads` threads from `start` until `deadline`
/// (CLOCK_MONOTONIC ns; an operation under way at the deadline completes and
/// counts). `operation(thread)` returns nil when it succeeded, else what went
/// wrong; a thread whose operation fails stops, so a broken setup does not spin.
func runLoops(threads: Int, from start: UInt64, until deadline: UInt64,
              _ operation: @escaping @Sendable (Int) -> String?) -> LoopTally {
    LoopTally.sum(ClientThreads.run(threads) { index -> LoopTally in
        var tally = LoopTally()
        sleep(untilMonotonic: start)
        while monotonicNanoseconds() < deadline, !Interrupt.requested {
            if let failure = operation(index) {
                tally.fail(failure)
                break
            }
            tally.completed += 1
        }
        return tally
    })
}
