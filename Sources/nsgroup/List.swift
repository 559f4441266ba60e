#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Client
import POSIX
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

    @Flag(help: "List every host of $XDG_CONFIG_HOME/nsgroup/hosts (~/.config/nsgroup/hosts): one [user@]host[:port] per line, \"local\" for this machine.")
    var fleet = false

    func run() {
        let endpoints = fleet ? Fleet.hostsFromFile() + global.hosts : global.hosts
        if fleet || endpoints.count > 1 { return runFleet(endpoints) }
        let result = withClient(global) { client throws(ClientError) in try client.call("list").result }
        if json { return printJSON(result) }
        let groups: [GroupInfo]
        do { groups = try ListResult(json: result).groups } catch { failBadReply(error) }
        if quiet { return groups.forEach { print($0.name) } }
        let now = Timestamp.now()
        printTable([Self.header] + groups.map { Self.row($0, now: now) }, legend: !noLegend)
    }

    static let header = ["NAME", "OWNER", "NAMESPACES", "PID", "STATE", "MEM", "PIDS", "AGE"]

    /// A group's row of the table.
    static func row(_ g: GroupInfo, now: Int64) -> [String] {
        let age = Timestamp.parse(g.created).map { formatAge(now - $0) } ?? "?"
        // "-" where the host does not count it (or the server does not say).
        let memory = g.usage?.memory.map(Units.size) ?? "-"
        let pids = g.usage?.pids.map { String($0) } ?? "-"
        return [g.name, g.ownerName, g.namespaces.map(\.kind).joined(separator: ","), String(g.holder),
                g.frozen ? "frozen" : "running", memory, pids, age]
    }

    /// Several hosts: each gets its request at once (every ssh connects meanwhile) and the
    /// answers are read in order, so the slowest host sets the time, not the sum. A host that
    /// cannot be reached is said on stderr, naming it; the others are listed all the same, and
    /// the status is 125 then. With --json: `{"hosts":[{"host":…,"groups":[…]}, {"host":…,
    /// "error":{"reason":…,"message":…}}]}`.
    private func runFleet(_ endpoints: [Endpoint]) {
        var asked: [(name: String, result: Result<(RPCClient, Int64), ClientError>)] = []
        for endpoint in endpoints {
            let name = endpoint.host?.description ?? "local"
            do throws(ClientError) {
                let client = try RPCClient(endpoint: endpoint, batch: true)
                asked.append((name, .success((client, try client.send("list")))))
            } catch {
                asked.append((name, .failure(error)))
            }
        }
        var answers: [(name: String, result: Result<JSONValue, ClientError>)] = []
        for (name, pending) in asked {
            answers.append((name, pending.flatMap { client, id in
                Result { () throws(ClientError) -> JSONValue in try client.reply(to: id).result }
            }))
        }
        var failed = false
        var hosts: [JSONValue] = []
        var rows = [["HOST"] + Self.header]
        let now = Timestamp.now()
        for (name, result) in answers {
            let groups: [GroupInfo]
            let reply: JSONValue
            do throws(ClientError) {
                reply = try result.get()
                do { groups = try ListResult(json: reply).groups } catch { throw .protocolViolation("\(error)") }
            } catch {
                failed = true
                hosts.append(["host": .string(name), "error": ["reason": .string(CLIReason.of(error)), "message": .string(describe(error))]])
                if !json { printError("\(name): \(describe(error))", reason: CLIReason.of(error)) }
                continue
            }
            hosts.append(["host": .string(name), "groups": reply.objectValue?["groups"] ?? .array([])])
            for g in groups {
                if quiet { print("\(name) \(g.name)"); continue }
                rows.append([name] + Self.row(g, now: now))
            }
        }
        if json {
            printJSON(["hosts": .array(hosts)])
        } else if !quiet {
            printTable(rows, legend: !noLegend)
        }
        if failed { Glibc.exit(ExitStatus.failure) }
    }
}

/// The hosts of a fleet: $XDG_CONFIG_HOME/nsgroup/hosts, or ~/.config/nsgroup/hosts.
enum Fleet {
    static var hostsFile: String {
        if let config = getenv("XDG_CONFIG_HOME"), config.pointee == UInt8(ascii: "/") {
            return String(cString: config) + "/nsgroup/hosts"
        }
        let home = getenv("HOME").map { String(cString: $0) } ?? UserDatabase.user(uid: getuid())?.home ?? "/"
        return home + "/.config/nsgroup/hosts"
    }

    /// One host per line, `#` comments and blank lines left out; "local" is this machine.
    static func hostsFromFile() -> [Endpoint] {
        let path = hostsFile
        let text: String
        do {
            text = try ProcFS.readText(path, limit: 1 << 20)
        } catch {
            fail("--fleet: cannot read \(path): \(error)", reason: CLIReason.usage, code: ExitStatus.usage)
        }
        var endpoints: [Endpoint] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? "").trimmed
            if line.isEmpty { continue }
            if line == "local" {
                endpoints.append(.socket(GlobalOptions.socketPath(explicit: nil)))
            } else if let host = RemoteHost(parsing: line) {
                endpoints.append(.remote(host))
            } else {
                fail("\(path):\(number + 1): \"\(line)\" is not [user@]host[:port] or local", reason: CLIReason.usage, code: ExitStatus.usage)
            }
        }
        if endpoints.isEmpty { fail("--fleet: \(path) names no host", reason: CLIReason.usage, code: ExitStatus.usage) }
        return endpoints
    }
}

/// Columns padded to their widest cell, two spaces apart.
func printTable(_ rows: [[String]], legend: Bool = true) {
    guard let columns = rows.first?.count else { return }
    // A cell is one line: nothing in it (a name from another host) may start a row of its own.
    let rows = (legend ? rows : Array(rows.dropFirst())).map { $0.map { Output.visible($0, oneLine: true) } }
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
