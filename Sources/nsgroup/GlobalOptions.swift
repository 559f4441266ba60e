#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Client
import RPC

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The supervisor's socket (default: $NSGROUP_SOCKET, else /run/nsgroup/nsgroupd.sock).", valueName: "path"))
    var socket: String?

    var socketPath: String { Self.socketPath(explicit: socket) }

    /// `explicit` (a --socket value), else $NSGROUP_SOCKET, else the default.
    static func socketPath(explicit socket: String?) -> String {
        if let socket { return socket }
        if let fromEnvironment = getenv("NSGROUP_SOCKET"), fromEnvironment.pointee != 0 {
            return String(cString: fromEnvironment)
        }
        return RPCClient.defaultSocketPath
    }

    func connect() throws(ClientError) -> RPCClient {
        try RPCClient(socketPath: socketPath)
    }
}

/// Runs a client action, turning its errors into `nsgroup: …` on stderr.
func withClient<T>(_ options: GlobalOptions, _ body: (RPCClient) throws(ClientError) -> T) -> T {
    do {
        let client = try options.connect()
        return try body(client)
    } catch {
        fail(error)
    }
}

func printJSON(_ value: JSONValue) {
    print(value.serialized())
}
