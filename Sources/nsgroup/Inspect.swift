import ArgumentParser
import Client
import RPC

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show everything about groups, namespace ids included.",
        discussion: "With several names, prints each (with --json an array); goes on after a group it cannot show and then exits with 125.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The groups' names.", completion: Completion.groupName)
    var names: [String]

    @Flag(help: "Print the protocol's result as JSON (an array of them for several names).")
    var json = false

    func run() {
        let client = withClient(global) { $0 }
        let (done, failures) = callEach(client, method: "inspect", names: names)
        if json {
            // One name: its object (nothing when it failed); several: an array of those shown.
            if names.count > 1 { printJSON(.array(done.map(\.result))) } else if let one = done.first { printJSON(one.result) }
        } else {
            for (index, group) in done.enumerated() {
                if index > 0 { print("") }
                let g: GroupInfo
                do { g = try GroupInfo(json: group.result) } catch { failBadReply(error) }
                Self.show(g)
            }
        }
        exitReporting(failures)
    }

    static func show(_ g: GroupInfo) {
        let age = Timestamp.parse(g.created).map { " (" + formatAge(Timestamp.now() - $0) + " ago)" } ?? ""
        print("Name:        \(g.name)")
        print("Owner:       \(g.ownerName) (\(g.owner))")
        print("Holder:      \(g.holder)")
        print("Created:     \(g.created)\(age)")
        if let hostname = g.hostname { print("Hostname:    \(hostname)") }
        if g.root == .overlay { print("Root:        overlay of the host's, changes \(g.persist.map { "kept in \($0)" } ?? "on a tmpfs, gone with the group")") }
        if !g.tmpfs.isEmpty { print("Tmpfs:       \(g.tmpfs.joined(separator: ", "))") }
        if !g.binds.isEmpty { print("Binds:       \(g.binds.joined(separator: ", "))") }
        if g.privateTmp { print("Private tmp: /tmp, /var/tmp") }
        if g.privateHome { print("Private home: \(g.home.map { "\($0) bound on the owner's home" } ?? "an empty tmpfs")") }
        if !g.members.isEmpty { print("Members:     \(g.members.joined(separator: ", "))") }
        if let uidMap = g.uidMap { print("UID map:     \(uidMap.joined(separator: "; "))") }
        if let gidMap = g.gidMap { print("GID map:     \(gidMap.joined(separator: "; "))") }
        if let boot = g.boottimeOffset, let mono = g.monotonicOffset {
            print("Clocks:      boottime \(boot > 0 ? "+" : "")\(boot) s, monotonic \(mono > 0 ? "+" : "")\(mono) s")
        }
        if let netns = g.netnsName { print("Netns:       /run/netns/\(netns)") }
        if let network = g.network {
            print("Network:     \(network.rawValue)" + (g.pasta.map { " (pid \($0))" } ?? " (not running)"))
            if !g.publish.isEmpty { print("Publish:     \(g.publish.map { "127.0.0.1:\($0.host) -> \($0.port)/\($0.proto.rawValue)" }.joined(separator: ", "))") }
        }
        if let cgroup = g.cgroup { print("Cgroup:      \(cgroup)") }
        print("Frozen:      \(g.frozen ? "yes" : "no")")
        print("Limits:      \(Self.describe(g.limits))")
        if let usage = g.usage.map(Self.describe), !usage.isEmpty { print("Usage:       \(usage)") }
        if let lifetime = g.lifetime {
            var line = Units.duration(lifetime)
            if let expires = g.expires {
                let left = Timestamp.parse(expires).map { $0 - Timestamp.now() }
                line += ", expires \(expires)" + (left.map { $0 > 0 ? " (in \(formatAge($0)))" : " (due now)" } ?? "")
            }
            print("Lifetime:    \(line)")
        }
        if let idle = g.idle { print("Idle:        \(Units.duration(idle)) (destroyed after that long without a session)") }
        print("Namespaces:")
        for ns in g.namespaces { print("  \(ns.kind.padding(to: 8))\(ns.id)") }
        if !g.sessions.isEmpty {
            print("Sessions:")
            let usages = g.sessions.map { $0.usage.map(Self.describe) ?? "" }
            let width = usages.map(\.count).max() ?? 0
            for (s, usage) in zip(g.sessions, usages) {
                let used = width == 0 ? "" : usage.padding(to: width + 2)
                print("  \(String(s.session).padding(to: 6))pid \(String(s.pid).padding(to: 8))user \(userName(s.uid).padding(to: 7)) \(s.tty ? "tty " : "    ")\(s.started)  \(used)\(s.argv.joined(separator: " "))")
            }
        }
    }

    /// "memory 512M, pids 256, cpu weight none, cpus 1.5": every limit, "none" where there is none.
    static func describe(_ limits: GroupLimits) -> String {
        [
            "memory " + (limits.memory.map(Units.exactSize) ?? "none"),
            "pids " + (limits.pids.map { String($0) } ?? "none"),
            "cpu weight " + (limits.cpuWeight.map { String($0) } ?? "none"),
            "cpus " + (limits.cpus.map(Units.cpus) ?? "none"),
        ].joined(separator: ", ")
    }

    /// "memory 12.3M (peak 40.1M), pids 3, cpu 1.23 s": what the host counts, nothing for what it does not.
    static func describe(_ usage: ResourceUsage) -> String {
        var parts: [String] = []
        if let memory = usage.memory {
            parts.append("memory \(Units.size(memory))" + (usage.memoryPeak.map { " (peak \(Units.size($0)))" } ?? ""))
        } else if let peak = usage.memoryPeak {
            parts.append("memory peak \(Units.size(peak))")
        }
        if let pids = usage.pids { parts.append("pids \(pids)") }
        if let cpu = usage.cpuUsec { parts.append("cpu \(Units.cpuTime(microseconds: cpu))") }
        return parts.joined(separator: ", ")
    }
}
