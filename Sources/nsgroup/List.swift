import ArgumentParser
import Client
import RPC

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the groups you may see (root: all of them).",
        aliases: ["ls"])

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print the protocol's result as JSON.")
    var json = false

    @Flag(name: [.customShort("q"), .long], help: "Print only the groups' names, one per line.")
    var quiet = false

    @Flag(name: .customLong("no-legend"), help: "Leave out the header line.")
    var noLegend = false

    func run() {
        let result = withClient(global) { client throws(ClientError) in try client.call("list").result }
        if json { return printJSON(result) }
        let groups: [GroupInfo]
        do { groups = try ListResult(json: result).groups } catch { failBadReply(error) }
        if quiet { return groups.forEach { print($0.name) } }
        let now = Timestamp.now()
        var rows = [["NAME", "OWNER", "NAMESPACES", "PID", "STATE", "MEM", "PIDS", "AGE"]]
        for g in groups {
            let age = Timestamp.parse(g.created).map { formatAge(now - $0) } ?? "?"
            // "-" where the host does not count it (or the server does not say).
            let memory = g.usage?.memory.map(Units.size) ?? "-"
            let pids = g.usage?.pids.map { String($0) } ?? "-"
            rows.append([g.name, g.ownerName, g.namespaces.map(\.kind).joined(separator: ","), String(g.holder),
                         g.frozen ? "frozen" : "running", memory, pids, age])
        }
        printTable(rows, legend: !noLegend)
    }
}

/// Columns padded to their widest cell, two spaces apart.
func printTable(_ rows: [[String]], legend: Bool = true) {
    guard let columns = rows.first?.count else { return }
    let rows = legend ? rows : Array(rows.dropFirst())
    let widths = (0..<columns).map { c in rows.map { $0[c].count }.max() ?? 0 }
    for row in rows {
        var line = ""
        for (c, cell) in row.enumerated() {
            line += c == columns - 1 ? cell : cell.padding(to: widths[c] + 2)
        }
        print(line)
    }
}

func formatAge(_ seconds: Int64) -> String {
    switch max(seconds, 0) {
    case ..<60: return "\(seconds)s"
    case ..<3600: return "\(seconds / 60)m"
    case ..<86400: return "\(seconds / 3600)h"
    default: return "\(seconds / 86400)d"
    }
}

extension String {
    func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
