import ArgumentParser
import RPC

@main
struct NSGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nsgroup",
        abstract: "Create, list, inspect, enter and destroy named namespace groups.",
        discussion: """
            Talks to the nsgroupd supervisor over its Unix socket. Groups belong to the \
            user who created them and outlive any shell.
            """,
        version: nsgroupVersion,
        subcommands: [Create.self, List.self, Inspect.self, Ps.self, Enter.self, Share.self, Unshare.self, Freeze.self, Thaw.self,
                      Destroy.self, Events.self, Version.self])

    // Declared here too so that `nsgroup --socket PATH list` works as well as
    // `nsgroup list --socket PATH`; subcommands read the same values.
    @OptionGroup var global: GlobalOptions
}
