import ArgumentParser
import Client
import RPC

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Show the client's, the supervisor's and the protocol's versions.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print the protocol's result as JSON.")
    var json = false

    func run() {
        let result = withClient(global) { client throws(ClientError) in try client.call("version").result }
        if json { return printJSON(result) }
        let server = (try? VersionResult(json: result))
        print("client:   nsgroup \(nsgroupVersion) (protocol \(protocolVersion))")
        print("server:   \(server?.server ?? "?") (protocol \(server?.protocolVersion ?? 0))")
    }
}
