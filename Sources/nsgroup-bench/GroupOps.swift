#if canImport(Glibc)
import Glibc
#endif
import Client
import RPC
import Synchronization

/// Set by SIGINT, SIGTERM or SIGHUP: every loop of the benchmark checks it
/// and stops, so that its clean-up (destroying the groups it made, stopping
/// its supervisor) still runs. The handler only stores the flag.
let interruptRequested = Atomic<Bool>(false)

enum Interrupt {
    static func install() {
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { _ in interruptRequested.store(true, ordering: .relaxed) }
            sigemptyset(&action.sa_mask)
            action.sa_flags = 0
            sigaction(signal, &action, nil)
        }
    }

    static var requested: Bool { interruptRequested.load(ordering: .relaxed) }

    static func check() throws {
        if requested { throw BenchError("interrupted") }
    }
}

/// Group chores on a supervisor, done over RPC as the benchmark's own user (root).
enum GroupOps {
    static func list(_ socketPath: String) throws -> [GroupInfo] {
        let client = try RPCClient(socketPath: socketPath)
        return try ListResult(json: try client.call("list").result).groups
    }

    /// Creates `names`, split over `connections` connections used at once.
    /// Throws the first failure, after every attempt has ended.
    static func create(_ names: [String], namespaces: [String]?, socketPath: String, connections: Int = 4) throws {
        let slices = split(names, into: connections)
        let failures = ClientThreads.run(slices.count) { index -> String? in
            do {
                let client = try RPCClient(socketPath: socketPath)
                for name in slices[index] {
                    if Interrupt.requested { return "interrupted" }
                    _ = try client.call("create", CreateParams(name: name, namespaces: namespaces).json)
                }
                return nil
            } catch {
                return "create: \(error)"
            }
        }
        if let failure = failures.compactMap({ $0 }).first { throw BenchError(failure) }
    }

    /// Destroys every group whose name starts with `prefix` (every group when
    /// it is nil), on up to `connections` connections at once. Returns what
    /// could not be destroyed, as messages; a group already gone is no failure.
    @discardableResult
    static func destroy(prefix: String?, socketPath: String, connections: Int = 8) -> [String] {
        let names: [String]
        do {
            names = try list(socketPath).map(\.name).filter { prefix == nil || $0.hasPrefix(prefix!) }
        } catch {
            return ["list: \(error)"]
        }
        return destroy(names, socketPath: socketPath, connections: connections)
    }

    @discardableResult
    static func destroy(_ names: [String], socketPath: String, connections: Int = 8) -> [String] {
        let slices = split(names, into: connections)
        return ClientThreads.run(slices.count) { index -> [String] in
            var failures: [String] = []
            guard let client = try? RPCClient(socketPath: socketPath) else { return ["cannot connect to \(socketPath)"] }
            for name in slices[index] {
                do throws(ClientError) {
                    _ = try client.call("destroy", NameParams(name: name).json)
                } catch .server(let error) where error.reason == .notFound {
                    continue
                } catch {
                    failures.append("destroy \(name): \(error)")
                }
            }
            return failures
        }.flatMap { $0 }
    }

    private static func split(_ names: [String], into parts: Int) -> [[String]] {
        guard !names.isEmpty else { return [] }
        let count = max(1, min(parts, names.count))
        var slices = Array(repeating: [String](), count: count)
        for (index, name) in names.enumerated() { slices[index % count].append(name) }
        return slices
    }
}
