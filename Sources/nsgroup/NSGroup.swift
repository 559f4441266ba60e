#if canImport(Glibc)
import Glibc
#endif
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
        subcommands: [Create.self, List.self, Inspect.self, Ps.self, Enter.self, Exec.self, Copy.self, Share.self, Unshare.self, Freeze.self,
                      Thaw.self, Destroy.self, Events.self, Describe.self, Version.self, Bridge.self])

    // Declared here too so that `nsgroup --socket PATH list` works as well as
    // `nsgroup list --socket PATH`; subcommands read the same values.
    @OptionGroup var global: GlobalOptions

    /// Parses and runs as swift-argument-parser's own `main` does, but with
    /// nsgroup's error style: one `nsgroup: message` line on stderr, a hint
    /// instead of the usage for a usage error, and the statuses of `ExitStatus`.
    static func main() {
        var command: any ParsableCommand
        let arguments = withEnterTerminator(Array(CommandLine.arguments.dropFirst()))
        Output.json = Output.wantsJSON(arguments)
        do {
            command = try parseAsRoot(arguments)
        } catch {
            exit(afterParsing: error)
        }
        do {
            try command.run()
        } catch {
            exit(afterParsing: error)
        }
        Glibc.exit(ExitStatus.success)
    }

    /// The arguments, with `Enter.withTerminator` applied to those after `enter` (or `exec`).
    static func withEnterTerminator(_ arguments: [String]) -> [String] {
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let word = arguments[index]
            if word == "enter" || word == "exec" {
                return Array(arguments[...index]) + Enter.withTerminator(Array(arguments[(index + 1)...]))
            }
            if !word.hasPrefix("-") || word == "--" { return arguments }
            index += word == "--socket" || word == "--host" ? 2 : 1
        }
        return arguments
    }

    private static func exit(afterParsing error: any Error) -> Never {
        let code = exitCode(for: error)
        // --help, --version, help SUBCOMMAND: their text on stdout.
        if code == .success {
            print(fullMessage(for: error))
            Glibc.exit(ExitStatus.success)
        }
        var text = message(for: error).trimmingWhitespace
        if text.hasPrefix("Error: ") { text.removeFirst("Error: ".count) }
        guard code == .validationFailure else {
            // A status a run asked for (ExitCode) says no more; anything else is nsgroup's failure.
            if let asked = error as? ExitCode { Glibc.exit(asked.rawValue) }
            fail(text.isEmpty ? "\(error)" : text)
        }
        let hint = "Try '\(usageCommand)--help'."
        var lines = Output.json
            ? errorLine(text.isEmpty ? "invalid arguments" : text, reason: CLIReason.usage, extra: ["hint": .string(hint)])
            : errorLine(text.isEmpty ? "invalid arguments" : text, reason: CLIReason.usage) + errorLine(hint, reason: CLIReason.usage)
        lines.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        Glibc.exit(ExitStatus.usage)
    }

    /// `nsgroup SUBCOMMAND ` of the command line, or `nsgroup ` without one.
    private static var usageCommand: String {
        let names = configuration.subcommands.flatMap { [$0._commandName] + $0.configuration.aliases }
        guard let subcommand = CommandLine.arguments.dropFirst().first(where: { names.contains($0) }) else { return "nsgroup " }
        return "nsgroup \(subcommand) "
    }
}

extension String {
    fileprivate var trimmingWhitespace: String {
        var text = Substring(self)
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }
}
