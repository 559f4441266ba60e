#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Client
import POSIX
import RPC

struct Destroy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "destroy",
        abstract: "Destroy groups: kill every process in them and end their namespaces.",
        discussion: """
            With several names, goes on after a group it cannot destroy, reports each one and \
            exits with 125. --all destroys every group you own (root's and an admin's --all: \
            every group); it asks first on a terminal and needs --yes without one.
            """,
        aliases: ["rm"])

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The groups' names.", completion: Completion.groupName)
    var names: [String] = []

    @Flag(help: "Destroy all your groups (root and members of nsgroup-admin: all groups).")
    var all = false

    @Flag(name: [.customShort("y"), .long], help: "Do not ask before destroying with --all.")
    var yes = false

    @Flag(help: "Print the destroyed groups as JSON: {\"name\":…} for one name, an array of them for several or --all.")
    var json = false

    func validate() throws {
        if all && !names.isEmpty { throw ValidationError("--all destroys every group of yours: name no groups with it") }
        if !all && names.isEmpty { throw ValidationError("name a group to destroy (or --all)") }
    }

    func run() {
        let client = withClient(global) { $0 }
        let targets = all ? Self.allTargets(client) : names
        if all && !targets.isEmpty && !yes { confirm(targets) }
        let (done, failures) = callEach(client, method: "destroy", names: targets)
        if json {
            let objects = done.map { JSONValue.object(["name": .string($0.name)]) }
            // One name: its object (nothing when it failed); several or --all: an array of those destroyed.
            if all || names.count > 1 { printJSON(.array(objects)) } else if let one = objects.first { printJSON(one) }
        } else if all && targets.isEmpty {
            print("no groups to destroy")
        }
        exitReporting(failures)
    }

    /// The groups --all means: the caller's own, or for root and members of
    /// nsgroup-admin every group list shows them (which is every group).
    static func allTargets(_ client: RPCClient) -> [String] {
        let groups: [GroupInfo]
        do {
            groups = try ListResult(json: try client.call("list").result).groups
        } catch let error as ClientError {
            fail(error)
        } catch {
            failBadReply(error)
        }
        let uid = getuid()
        if uid == 0 || isInGroup("nsgroup-admin") { return groups.map(\.name) }
        return groups.filter { $0.owner == uid }.map(\.name)
    }

    /// Asks on the terminal; without one, or without a yes, nothing is destroyed.
    private func confirm(_ targets: [String]) {
        guard isatty(0) == 1 else {
            fail("destroy --all asks before it destroys \(targets.count) group\(targets.count == 1 ? "" : "s") and there is no terminal to ask: add --yes",
                 reason: CLIReason.usage, code: ExitStatus.usage)
        }
        var prompt = "Destroy \(targets.count) group\(targets.count == 1 ? "" : "s") (\(Output.visible(targets.joined(separator: ", "), oneLine: true)))? [y/N] "
        prompt.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        let answer = readLine() ?? ""
        guard answer == "y" || answer == "Y" || answer.lowercased() == "yes" else {
            fail("nothing destroyed", reason: CLIReason.declined, code: ExitStatus.failure)
        }
    }
}

/// Whether the caller is in the Unix group `name` (its primary group or a supplementary one).
func isInGroup(_ name: String) -> Bool {
    guard let gid = UserDatabase.groupID(named: name) else { return false }
    if getegid() == gid { return true }
    var groups = [gid_t](repeating: 0, count: Int(NGROUPS_MAX) + 1)
    let count = getgroups(Int32(groups.count), &groups)
    return count > 0 && groups[0..<Int(count)].contains(gid)
}

/// Calls `method` for each name, one after the other on one connection,
/// going on after a name it refuses.
func callEach(_ client: RPCClient, method: String, names: [String]) -> (done: [(name: String, result: JSONValue)], failures: [ClientError]) {
    var done: [(name: String, result: JSONValue)] = []
    var failures: [ClientError] = []
    for name in names {
        do {
            done.append((name, try client.call(method, NameParams(name: name).json).result))
        } catch {
            failures.append(error)
        }
    }
    return (done, failures)
}

/// Reports the failures of a call for several names and exits: 0 without
/// any; 125 with any, after one `nsgroup: ` line each, or with --json one
/// error object (the first failure's reason and message, every failure in
/// `failures`).
func exitReporting(_ failures: [ClientError]) -> Never {
    guard let first = failures.first else { Glibc.exit(ExitStatus.success) }
    if failures.count == 1 { fail(first) }
    if Output.json {
        let each = failures.map { JSONValue.object(["reason": .string(CLIReason.of($0)), "message": .string(describe($0))]) }
        var line = errorLine(describe(first), reason: CLIReason.of(first), extra: ["failures": .array(each)])
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    } else {
        for failure in failures { printError(describe(failure)) }
    }
    Glibc.exit(ExitStatus.failure)
}
