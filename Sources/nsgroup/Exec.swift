import ArgumentParser

/// `nsgroup exec NAME COMMAND…`: enter with a command, which exec requires.
struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command inside a group: enter, with a command required.",
        discussion: "The same as `nsgroup enter NAME COMMAND…`, with the same options and exit status; a missing command is a usage error.")

    @OptionGroup var enter: Enter

    func validate() throws {
        if enter.command.isEmpty { throw ValidationError("exec needs a command: nsgroup exec NAME COMMAND [ARGUMENTS…]") }
    }

    func run() {
        enter.run()
    }
}
