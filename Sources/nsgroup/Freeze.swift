import ArgumentParser
import Client
import RPC

struct Freeze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "freeze",
        abstract: "Stop every process in a group until it is thawed.",
        discussion: """
            The kernel stops them where they are (the cgroup freezer), without a signal they \
            could see or catch. Nobody can enter a frozen group. Freezing a frozen group is no error.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The group's name.", completion: Completion.groupName)
    var name: String

    @Flag(help: "Print the protocol's result as JSON: {\"name\":…,\"frozen\":true}.")
    var json = false

    func run() {
        let result = withClient(global) { client throws(ClientError) in try client.call("freeze", NameParams(name: name).json).result }
        if json { printJSON(result) }
    }
}

struct Thaw: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "thaw",
        abstract: "Let the processes of a frozen group go on.",
        discussion: "Thawing a group that is not frozen is no error.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The group's name.", completion: Completion.groupName)
    var name: String

    @Flag(help: "Print the protocol's result as JSON: {\"name\":…,\"frozen\":false}.")
    var json = false

    func run() {
        let result = withClient(global) { client throws(ClientError) in try client.call("thaw", NameParams(name: name).json).result }
        if json { printJSON(result) }
    }
}
