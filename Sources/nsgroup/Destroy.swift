import ArgumentParser
import Client
import RPC

struct Destroy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "destroy",
        abstract: "Destroy a group: kill every process in it and end its namespaces.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The group's name.", completion: Completion.groupName)
    var name: String

    func run() {
        _ = withClient(global) { client throws(ClientError) in try client.call("destroy", NameParams(name: name).json) }
    }
}
