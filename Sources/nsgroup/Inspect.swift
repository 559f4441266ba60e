import ArgumentParser
import Client
import RPC

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show everything about one group, namespace ids included.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The group's name.")
    var name: String

    @Flag(help: "Print the protocol's result as JSON.")
    var json = false

    func run() {
        let result = withClient(global) { client throws(ClientError) in
            try client.call("inspect", NameParams(name: name).json).result
        }
        if json { return printJSON(result) }
        let g: GroupInfo
        do { g = try GroupInfo(json: result) } catch { fail("unexpected reply from nsgroupd: \(error)") }
        let age = Timestamp.parse(g.created).map { " (" + formatAge(Timestamp.now() - $0) + " ago)" } ?? ""
        print("Name:        \(g.name)")
        print("Owner:       \(g.ownerName) (\(g.owner))")
        print("Holder:      \(g.holder)")
        print("Created:     \(g.created)\(age)")
        if let hostname = g.hostname { print("Hostname:    \(hostname)") }
        if !g.tmpfs.isEmpty { print("Tmpfs:       \(g.tmpfs.joined(separator: ", "))") }
        if !g.binds.isEmpty { print("Binds:       \(g.binds.joined(separator: ", "))") }
        if !g.members.isEmpty { print("Members:     \(g.members.joined(separator: ", "))") }
        if let uidMap = g.uidMap { print("UID map:     \(uidMap.joined(separator: "; "))") }
        if let gidMap = g.gidMap { print("GID map:     \(gidMap.joined(separator: "; "))") }
        if let boot = g.boottimeOffset, let mono = g.monotonicOffset {
            print("Clocks:      boottime \(boot > 0 ? "+" : "")\(boot) s, monotonic \(mono > 0 ? "+" : "")\(mono) s")
        }
        if let netns = g.netnsName { print("Netns:       /run/netns/\(netns)") }
        print("Namespaces:")
        for ns in g.namespaces { print("  \(ns.kind.padding(to: 8))\(ns.id)") }
        if !g.sessions.isEmpty {
            print("Sessions:")
            for s in g.sessions {
                print("  \(String(s.session).padding(to: 6))pid \(String(s.pid).padding(to: 8))uid \(String(s.uid).padding(to: 7))\(s.tty ? "tty " : "    ")\(s.started)  \(s.argv.joined(separator: " "))")
            }
        }
    }
}
