import ArgumentParser
import Client
import RPC

struct Ps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps",
        abstract: "List every process in a group: the holder's and every session's.",
        discussion: """
            PID is the pid on the host, NSPID the pid inside the group's pid namespace (the \
            same without one). SESSION is the session a process belongs to, "holder" for the \
            group's holder. COMMAND is the command line, [name] when it is empty.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The group's name.", completion: Completion.groupName)
    var name: String

    @Flag(help: "Print the protocol's result as JSON.")
    var json = false

    @Flag(name: .customLong("no-legend"), help: "Leave out the header line.")
    var noLegend = false

    func run() {
        let result = withClient(global) { client throws(ClientError) in
            try client.call("processes", NameParams(name: name).json).result
        }
        if json { return printJSON(result) }
        let processes: [ProcessInfo]
        do { processes = try ProcessesResult(json: result).processes } catch { failBadReply(error) }
        printTable(Self.rows(processes), legend: !noLegend)
    }

    static func rows(_ processes: [ProcessInfo]) -> [[String]] {
        var rows = [["PID", "NSPID", "USER", "SESSION", "COMMAND"]]
        for p in processes {
            rows.append([String(p.pid), String(p.nspid), p.user ?? String(p.uid), p.session.map { String($0) } ?? "holder", p.command])
        }
        return rows
    }
}
