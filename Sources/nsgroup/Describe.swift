import ArgumentParser
import Client
import RPC

struct Describe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "Show what the supervisor offers you: kinds you may create, limits left, features.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print the protocol's result as JSON.")
    var json = false

    func run() {
        let result = withClient(global) { client throws(ClientError) in try client.call("describe").result }
        if json { return printJSON(result) }
        do {
            print(Self.text(try DescribeResult(json: result)), terminator: "")
        } catch {
            failBadReply(error)
        }
    }

    /// A few lines: protocol, kinds, limits left (those that bind you), features.
    static func text(_ d: DescribeResult) -> String {
        var lines: [String] = []
        lines.append("protocol:    \(d.major).\(d.minor)")
        let defaults = d.defaultKinds.joined(separator: ",")
        lines.append("may create:  " + (d.allowedKinds.isEmpty ? "nothing" : d.allowedKinds.joined(separator: ",")) + " (default \(defaults))")
        let l = d.limits
        lines.append("groups:      " + left(l.groups, of: "your own") + (l.serverGroups.map { "; \($0.left) of \($0.max) on the server" } ?? ""))
        lines.append("sessions:    " + left(l.sessions, of: "running"))
        lines.append("connections: \(l.connections.left) of \(l.connections.max) left")
        if let tmpfs = l.tmpfsPerUser, let size = l.tmpfsSize {
            lines.append("tmpfs:       \(Units.size(tmpfs.left)) of \(Units.size(tmpfs.max)) left, at most \(Units.size(size)) a mount")
        } else {
            lines.append("tmpfs:       no limit")
        }
        lines.append("per user:    " + (l.perUser.map(limits) ?? "no limit"))
        lines.append("per group:   " + limits(l.perGroup))
        lines.append("line:        at most \(l.maxLine) bytes a request")
        let f = d.features
        let controllers = f.controllers.map { "\($0.name) \($0.place)" }.joined(separator: ", ")
        let flags = [("user namespaces", f.userNamespaces), ("time namespaces", f.timeNamespaces),
                     ("pasta", f.pasta), ("overlay root", f.overlayRoot)]
        lines.append("features:    " + flags.map { "\($0.0) \($0.1 ? "yes" : "no")" }.joined(separator: ", "))
        lines.append("cgroups:     \(f.cgroups) (\(controllers))")
        return lines.map { $0 + "\n" }.joined()
    }

    private static func left(_ allowance: Allowance?, of what: String) -> String {
        guard let allowance else { return "no limit" }
        return "\(allowance.left) of \(allowance.max) left (\(what))"
    }

    private static func limits(_ limits: GroupLimits) -> String {
        var parts: [String] = []
        if let memory = limits.memory { parts.append("memory \(Units.size(memory))") }
        if let pids = limits.pids { parts.append("pids \(pids)") }
        if let cpus = limits.cpus { parts.append("cpus \(Units.cpus(cpus))") }
        return parts.isEmpty ? "no limit" : parts.joined(separator: ", ")
    }
}
