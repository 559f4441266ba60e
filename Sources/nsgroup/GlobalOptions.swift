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

    @Option(name: .long, help: ArgumentHelp(
        "Run against the nsgroupd of another host, through ssh with your own ssh configuration ([user@]host[:port]; default: $NSGROUP_HOST). list takes several.",
        valueName: "host"))
    var host: [String] = []

    var socketPath: String { Self.socketPath(explicit: socket) }

    /// The hosts to run against: --host, else $NSGROUP_HOST, else none (this machine).
    /// "local" is this machine's socket. A host ssh would not take is a usage error.
    var hosts: [Endpoint] {
        var names = host
        if names.isEmpty, let fromEnvironment = getenv("NSGROUP_HOST"), fromEnvironment.pointee != 0 {
            names = [String(cString: fromEnvironment)]
        }
        return names.map { name in
            if name == "local" { return .socket(socketPath) }
            guard let remote = RemoteHost(parsing: name) else {
                fail("--host: \"\(name)\" is not [user@]host[:port]", reason: CLIReason.usage, code: ExitStatus.usage)
            }
            if socket != nil {
                fail("--socket is this machine's and --host another's: give one (the other host's socket is its own nsgroup bridge's, NSGROUP_REMOTE_COMMAND)",
                     reason: CLIReason.usage, code: ExitStatus.usage)
            }
            return .remote(remote)
        }
    }

    /// The one place this command runs against: this machine's socket, or one host. Every
    /// error then names the host.
    var endpoint: Endpoint {
        let all = hosts
        guard all.count <= 1 else {
            fail("only list takes several --host", reason: CLIReason.usage, code: ExitStatus.usage)
        }
        guard let one = all.first else { return .socket(socketPath) }
        if let remote = one.host { Output.host = remote.description }
        return one
    }

    /// Whether the command goes to another host (through ssh, so without descriptors).
    var isRemote: Bool { endpoint.host != nil }

    /// `explicit` (a --socket value), else $NSGROUP_SOCKET, else the default.
    static func socketPath(explicit socket: String?) -> String {
        if let socket { return socket }
        if let fromEnvironment = getenv("NSGROUP_SOCKET"), fromEnvironment.pointee != 0 {
            return String(cString: fromEnvironment)
        }
        return RPCClient.defaultSocketPath
    }

    func connect() throws(ClientError) -> RPCClient {
        try RPCClient(endpoint: endpoint)
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

/// JSON as it is: its strings are escaped as JSON escapes them (what `print` would add to
/// them, for text, would make it no JSON).
func printJSON(_ value: JSONValue) {
    Swift.print(value.serialized())
}
