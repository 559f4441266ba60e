import ArgumentParser
import Client
import RPC

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a group and start its holder.",
        discussion: """
            The group belongs to you. Its namespaces live until you destroy it, its lifetime \
            ends, or it has been without a session for its idle time. Limits the server's \
            configuration sets apply whether or not you ask for any: inspect shows those in force.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The group's name: 1-63 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit.")
    var name: String

    @Option(name: .customLong("ns"), help: ArgumentHelp(
        "Namespace kinds, comma-separated (default: mnt,uts,ipc,pid,net,cgroup).", valueName: "kinds"), completion: Completion.namespaceKinds)
    var namespaces: String?

    @Option(help: ArgumentHelp("Hostname inside the group (needs uts; default: the group's name).", valueName: "name"))
    var hostname: String?

    @Option(help: ArgumentHelp("Mount a tmpfs (nosuid, nodev) at this path inside the group (needs mnt), with options size=N[k|m|g|%] and mode=OCTAL. Repeatable.", valueName: "path[:size=..,mode=..]"))
    var tmpfs: [String] = []

    @Option(help: ArgumentHelp("Bind a host path onto a path inside (needs mnt; root and admins only; nosuid, nodev). Repeatable.", valueName: "src:dst[:ro]"))
    var bind: [String] = []

    @Flag(name: .customLong("private-tmp"), help: "Fresh tmpfs mounts on /tmp and /var/tmp inside (mode 1777, nosuid, nodev; needs mnt).")
    var privateTmp = false

    @Flag(name: .customLong("private-home"), help: "An empty tmpfs of yours (mode 0700) on your home directory inside (needs mnt).")
    var privateHome = false

    @Option(help: ArgumentHelp("Bind this directory of yours (an absolute path, no symlinks) onto your home directory inside (needs mnt; implies --private-home).", valueName: "dir"),
            completion: .directory)
    var home: String?

    @Option(name: .customLong("boottime-offset"), parsing: .unconditional, help: ArgumentHelp("Shift CLOCK_BOOTTIME (and /proc/uptime) inside by this many seconds (needs time).", valueName: "seconds"))
    var boottimeOffset: Int64?

    @Option(name: .customLong("monotonic-offset"), parsing: .unconditional, help: ArgumentHelp("Shift CLOCK_MONOTONIC inside by this many seconds (needs time).", valueName: "seconds"))
    var monotonicOffset: Int64?

    @Option(name: .customLong("netns-name"), help: ArgumentHelp("Publish the net namespace at /run/netns/NAME for ip netns (needs net; root and admins only).", valueName: "name"))
    var netnsName: String?

    @Option(name: .customLong("net"), help: ArgumentHelp("The group's network (needs net): none, loopback only (the default), or pasta, a connection to the host's network through pasta(1) running as you (needs user too).", valueName: "none|pasta"))
    var network: String?

    @Option(help: ArgumentHelp("Forward this port of the host's 127.0.0.1 to a port inside (needs --net pasta; host ports below 1024 only for root). Repeatable.", valueName: "hostport:port[/tcp|/udp]"))
    var publish: [String] = []

    @Option(help: ArgumentHelp("The group's root: host, the host's own (the default), or overlay, a copy-on-write view of it where you are root and what you change stays inside (needs mnt and user; without --ns, user is added).", valueName: "host|overlay"),
            completion: .list(["host", "overlay"]))
    var root: String?

    @Option(help: ArgumentHelp("Keep an overlay root's changes in upper/ and work/ of this directory of yours, for this group and later ones (needs --root overlay).", valueName: "dir"),
            completion: .directory)
    var persist: String?

    @Option(name: .customLong("member"), help: ArgumentHelp("Let this user (or @group) enter too. Repeatable.", valueName: "user|@group"), completion: Completion.member)
    var members: [String] = []

    @Option(help: ArgumentHelp("The most memory the group may use: bytes, or a whole number with K, M, G or T (powers of 1024), e.g. 512M.", valueName: "size"),
            transform: LimitArguments.memory)
    var memory: UInt64?

    @Option(help: ArgumentHelp("The most processes and threads the group may have at once.", valueName: "count"),
            transform: LimitArguments.pids)
    var pids: UInt64?

    @Option(name: .customLong("cpu-weight"), help: ArgumentHelp("The group's share of contended CPU time relative to other groups, 1 to 10000 (100 is the default share).", valueName: "weight"),
            transform: LimitArguments.cpuWeight)
    var cpuWeight: UInt64?

    @Option(help: ArgumentHelp("The most CPU time the group may use, in CPUs: 0.5 is half of one, 2 is two.", valueName: "cpus"),
            transform: LimitArguments.cpus)
    var cpus: Double?

    @Option(help: ArgumentHelp("Destroy the group this long after it is created: seconds, or e.g. 90s, 30m, 1h30m, 2d.", valueName: "duration"),
            transform: LimitArguments.duration)
    var lifetime: Int64?

    @Option(help: ArgumentHelp("Destroy the group once it has been this long without a running session (same units as --lifetime).", valueName: "duration"),
            transform: LimitArguments.duration)
    var idle: Int64?

    @Flag(help: "Print the protocol's result as JSON.")
    var json = false

    func validate() throws {
        if let namespaces { try checkCommaList(namespaces, option: "--ns") }
        for mount in tmpfs {
            // PATH:size=..,mode=..: the options after the first colon are a comma list.
            if let colon = mount.firstIndex(of: ":") { try checkCommaList(String(mount[mount.index(after: colon)...]), option: "--tmpfs") }
        }
        if let root, GroupRoot(rawValue: root) == nil {
            throw ValidationError("--root must be host or overlay, not \"\(root)\"")
        }
        if let network, GroupNetwork(rawValue: network) == nil {
            throw ValidationError("--net must be none or pasta, not \"\(network)\"")
        }
        for port in publish where PublishedPort(parsing: port) == nil {
            throw ValidationError("--publish takes HOSTPORT:PORT[/tcp|/udp] with ports from 1 to 65535, not \"\(port)\"")
        }
    }

    func run() {
        let kinds = namespaces.map { $0.split(separator: ",").map { String($0) } }
        var params = CreateParams(name: name, namespaces: kinds, hostname: hostname, tmpfs: tmpfs, binds: bind,
                                  members: members, monotonicOffset: monotonicOffset, boottimeOffset: boottimeOffset,
                                  netnsName: netnsName)
        params.network = network.flatMap(GroupNetwork.init(rawValue:))
        params.publish = publish.compactMap(PublishedPort.init(parsing:))
        params.limits = GroupLimits(memory: memory, pids: pids, cpuWeight: cpuWeight, cpus: cpus)
        params.lifetime = lifetime
        params.idle = idle
        params.privateTmp = privateTmp
        params.privateHome = privateHome
        params.home = home
        params.root = root.flatMap(GroupRoot.init(rawValue:)) ?? .host
        params.persist = persist
        let result = withClient(global) { client throws(ClientError) in try client.call("create", params.json).result }
        if json { return printJSON(result) }
        let group = (try? GroupInfo(json: result))
        print("created group \(group?.name ?? name) (holder \(group?.holder ?? 0))")
    }
}
