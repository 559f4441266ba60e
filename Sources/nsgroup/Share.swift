import ArgumentParser
import Client
import RPC

struct Share: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "share",
        abstract: "Let more users (or @groups) enter one of your groups.",
        discussion: "Members may see the group in list, inspect it and enter it; only its owner and admins may destroy it or change who shares it.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The group's name.", completion: Completion.groupName)
    var name: String

    @Argument(help: ArgumentHelp("Users and @groups to add.", valueName: "user|@group"), completion: Completion.member)
    var members: [String]

    @Flag(help: "Print the protocol's result (the group, as inspect --json shows it) as JSON.")
    var json = false

    func run() {
        changeSharing(global, method: "share", name: name, members: members, json: json)
    }
}

struct Unshare: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unshare",
        abstract: "Stop letting users (or @groups) enter one of your groups.",
        discussion: "Sessions they already started keep running.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The group's name.", completion: Completion.groupName)
    var name: String

    @Argument(help: ArgumentHelp("Users and @groups to remove.", valueName: "user|@group"), completion: Completion.member)
    var members: [String]

    @Flag(help: "Print the protocol's result (the group, as inspect --json shows it) as JSON.")
    var json = false

    func run() {
        changeSharing(global, method: "unshare", name: name, members: members, json: json)
    }
}

/// share and unshare: send the change, then say who may enter now.
func changeSharing(_ global: GlobalOptions, method: String, name: String, members: [String], json: Bool) {
    let result = withClient(global) { client throws(ClientError) in
        try client.call(method, ShareParams(name: name, members: members).json).result
    }
    let group = try? GroupInfo(json: result)
    let now = group?.members ?? []
    if json {
        printJSON(result)
    } else {
        print(now.isEmpty ? "\(name): only its owner may enter" : "\(name): members \(now.joined(separator: ", "))")
    }
    if method == "share", group?.namespaces.contains(where: { $0.kind == "user" }) == true {
        printNote("""
            \(name) has a user namespace: you are root inside it and control every file a session \
            there runs, so its members must trust you with their accounts. They enter with \
            `nsgroup enter --trust-owner \(name)`; without it they are refused.
            """)
    }
}
