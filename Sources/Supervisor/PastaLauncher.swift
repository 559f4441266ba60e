#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import Namespaces
import POSIX
import RPC
import Systemd

/// What a group with `network` "pasta" records: the ports it publishes and
/// its pasta process (pid 0 when none runs), recognised again after a
/// restart by pid and start time.
package struct PastaRecord: Sendable, Equatable {
    package var publish: [PublishedPort]
    package var pid: pid_t = 0
    /// Clock ticks since boot (/proc/PID/stat field 22).
    package var startTime: UInt64 = 0

    package init(publish: [PublishedPort]) {
        self.publish = publish
    }

    var json: JSONValue {
        .object(["publish": .array(publish.map(\.json)), "pid": .number(JSONNumber(pid)),
                 "startTime": .number(JSONNumber(startTime))])
    }

    init(json: JSONValue) throws(RPCError) {
        var r = try ParamsReader(json, method: "pasta")
        var publish: [PublishedPort] = []
        for var entry in try r.objectArray("publish") ?? [] { publish.append(try PublishedPort(reader: &entry)) }
        guard publish.count <= PastaLauncher.maxPublished, Set(publish).count == publish.count else {
            throw .invalidParams("pasta: \"publish\" holds duplicates or too many ports")
        }
        self.publish = publish
        pid = pid_t(try r.integer("pid", in: 0...Int64(Int32.max)) ?? 0)
        startTime = UInt64(try r.integer("startTime", in: 0...Int64.max) ?? 0)
        try r.finish()
    }
}

/// pasta(1) while it runs for a group: the supervisor's child when it started
/// it (reaped here), else one an earlier supervisor started (init reaps it).
final class PastaProcess {
    let pidfd: Pidfd
    let adopted: Bool
    var watch: EventSource?

    init(pidfd: consuming Pidfd, adopted: Bool) {
        self.pidfd = pidfd
        self.adopted = adopted
    }
}

/// Starts pasta for a group with `network` "pasta" (create) and takes it back
/// after a restart. pasta is the host's /usr/bin/pasta, started as the owner's
/// own `enter` is: in the group's user namespace as its root (the owner's uid
/// outside; supplementary groups the owner's, set before joining; no_new_privs;
/// whatever capabilities it keeps are the group's namespace's, none of the
/// host's), but in the host's mount and net namespaces, in the group's cgroup
/// (leaf "pasta": counted against the owner's limits, ended by destroy's
/// cgroup.kill). It then joins the group's net namespace, which its user
/// namespace owns, and opens the tap device there.
///
/// Why inside the user namespace: the supervisor (root) makes the group's user
/// namespace, so host root owns it, and a process of the owner's outside it
/// has no capability in it and cannot setns into it or its net namespace
/// (pasta's own `--userns` or PID form fails with EPERM). A net namespace of
/// the host's user namespace is out of any unprivileged pasta's reach, so
/// `--net pasta` needs `user`.
final class PastaLauncher {
    static let executable = "/usr/bin/pasta"
    /// The tap device pasta opens, as the owner, inside the group's namespaces.
    static let tunDevice = "/dev/net/tun"
    static let maxPublished = 32

    private let loop: EventLoop
    private let launches: Launches
    private let reaper: Reaper
    private let containment: Containment
    private let registry: GroupRegistry
    private let audit: Audit

    init(loop: EventLoop, launches: Launches, reaper: Reaper, containment: Containment, registry: GroupRegistry, audit: Audit) {
        self.loop = loop
        self.launches = launches
        self.reaper = reaper
        self.containment = containment
        self.registry = registry
        self.audit = audit
    }

    /// pasta's command line: in the foreground (its pid is the one watched),
    /// quiet, configuring the group's interface, forwarding exactly the
    /// published ports from 127.0.0.1 (none by default: pasta would otherwise
    /// forward every port bound inside, on every address) and no port of the
    /// host's into the group's loopback. Connections to the gateway address
    /// reach the host's loopback (pasta's default mapping).
    /// The group's net namespace is pasta's stdin (`--netns /proc/self/fd/0`):
    /// no path a pid could be reused for, no descriptor but stdio across exec.
    static func arguments(publish: [PublishedPort]) -> [String] {
        func spec(_ proto: PublishedPort.Proto) -> String {
            let ports = publish.filter { $0.proto == proto }
            if ports.isEmpty { return "none" }
            return ports.map { "127.0.0.1/\($0.host):\($0.port)" }.joined(separator: ",")
        }
        return ["pasta", "--foreground", "--quiet", "--config-net",
                "--tcp-ports", spec(.tcp), "--udp-ports", spec(.udp),
                "--tcp-ns", "none", "--udp-ns", "none",
                "--netns", "/proc/self/fd/0", "--netns-only"]
    }

    /// What this host lacks for pasta, or nil when it has it all (describe's `pasta`): pasta
    /// opens the tap device as the owner, so it must be open to users, as Debian's udev makes it.
    static var missing: RPCError? {
        hostLacks(device: tunDevice, executable: executable, for: "\"network\" pasta", package: "passt")
    }

    /// The create-time rules of `network` and `publish`, for a group of these kinds
    /// asked for by `caller`: the published ports, checked, or nil for no pasta.
    static func check(network: GroupNetwork?, publish: [PublishedPort], kinds: Set<NamespaceKind>,
                      caller: uid_t) throws(RPCError) -> PastaRecord? {
        guard network == .pasta else {
            if network == .loopback, !kinds.contains(.net) {
                throw RPCError(.invalidParams, "create: \"network\" needs a net namespace (add net to \"namespaces\")")
            }
            if !publish.isEmpty {
                throw RPCError(.invalidParams, "create: \"publish\" needs \"network\" pasta")
            }
            return nil
        }
        guard kinds.contains(.net), kinds.contains(.user) else {
            throw RPCError(.invalidParams, "create: \"network\" pasta needs the net and user namespaces (add net,user to \"namespaces\"): pasta runs as the group's owner inside the group's user namespace, which must own its net namespace")
        }
        if publish.count > maxPublished {
            throw RPCError(.invalidParams, "create: \"publish\" lists \(publish.count) ports, more than \(maxPublished)")
        }
        var seen = Set<String>()
        for port in publish {
            if caller != 0, port.host < 1024 {
                throw RPCError(.invalidParams, "create: \"publish\" host port \(port.host) is below 1024: only root may publish one")
            }
            guard seen.insert("\(port.host)/\(port.proto.rawValue)").inserted else {
                throw RPCError(.invalidParams, "create: \"publish\" lists host port \(port.host)/\(port.proto.rawValue) twice")
            }
        }
        if let missing = missing { throw missing }
        // pasta, started in the foreground, says nothing when it cannot bind a port: it ends,
        // and the group would be left without its network. A port taken now is refused here
        // (a port taken between this and pasta's bind still ends pasta, which is logged).
        for port in publish where Self.isTaken(port) {
            throw RPCError(.operationFailed, "create: host port \(port.host)/\(port.proto.rawValue) is in use on 127.0.0.1, so pasta could not publish it")
        }
        return PastaRecord(publish: publish)
    }

    /// Whether 127.0.0.1:`port.host` cannot be bound now, as pasta binds it (SO_REUSEADDR,
    /// so that a connection in TIME_WAIT does not count): a bind that fails with EADDRINUSE.
    static func isTaken(_ port: PublishedPort) -> Bool {
        let fd = socket(AF_INET, Int32(port.proto == .tcp ? SOCK_STREAM.rawValue : SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(port.host).bigEndian
        address.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return result < 0 && errno == EADDRINUSE
    }

    /// Starts pasta for `group` as its owner `owner`; `done` runs on the loop
    /// once pasta has exec'd (nil) or failed (why). The record of the group
    /// then has pasta's pid and start time.
    func start(_ group: Group, owner: PeerCredentials, loginUID: UInt32?, timeoutSeconds: Int,
               done: @escaping (RPCError?) -> Void) {
        let name = group.name
        guard let record = group.record.pasta else { return done(nil) }
        func failure(_ error: SpawnError) -> RPCError { RPCError.operationFailed("cannot create group \"\(name)\": starting pasta", error) }
        var spec = SessionSpec(uid: 0, gid: 0, groups: owner.groups, cwd: "/", cwdFallback: false,
                               executable: Self.executable, argv: Self.arguments(publish: record.publish),
                               environment: ["PATH=/usr/bin:/bin"], searchPath: "", controllingTerminal: false)
        spec.userNamespaceRoot = true
        spec.loginUID = loginUID
        let leaf = containment.pastaNode(of: group)
        let launch: SessionLaunch
        do {
            let null = try FileDescriptor.open("/dev/null", O_RDWR)
            let net = try FileDescriptor.open("/proc/\(group.record.holderPID)/ns/net", O_RDONLY)
            // Only the user namespace is entered (after which the holder is checked to have been alive
            // throughout): pasta's sockets are the host's, and it reaches the group's net namespace itself.
            let user = try NamespaceFiles(holder: group.holder, kinds: [.user])
            let cgroup = try containment.preparePasta(leaf)
            launch = try SessionLaunch.start(spec, namespaces: user, stdio: (net.rawValue, null.rawValue, null.rawValue),
                                             cgroup: cgroup.session)
            withExtendedLifetime(cgroup) {}
        } catch let error as SpawnError {
            containment.discard(leaf)
            return done(failure(error))
        } catch {
            containment.discard(leaf)
            return done(RPCError(.internalError, "cannot create group \"\(name)\": starting pasta: \(error)"))
        }
        func ended(_ state: SessionLaunch.State) {
            if let first = launch.takeFirstChild() { reaper.reap(first) }
            guard case .started = state, let pidfd = launch.takeSession() else {
                if let process = launch.takeSession() { reaper.kill(process) }
                try? leaf.killAll()
                containment.discard(leaf)
                if case .failed(let error) = state { return done(failure(error)) }
                return done(RPCError(.internalError, "cannot create group \"\(name)\": pasta did not start"))
            }
            let pid = pidfd.pid
            group.record.pasta?.pid = pid
            group.record.pasta?.startTime = (try? ProcFS.startTime(pid: pid)) ?? 0
            let process = PastaProcess(pidfd: pidfd, adopted: false)
            do {
                try watch(process, of: group)
                try registry.save(group.record)
            } catch {
                reaper.kill(borrowing: process.pidfd)
                return done(RPCError(.internalError, "cannot create group \"\(name)\": pasta \(pid): \(error)"))
            }
            done(nil)
        }
        do {
            try launches.watch(.session, channel: launch.channel.rawValue, chargedTo: group.record.cgroupUser,
                               timeoutSeconds: timeoutSeconds,
                               readable: {
                                   let state = launch.advance()
                                   if case .running = state { return false }
                                   ended(state)
                                   return true
                               },
                               expired: { ended(launch.timeOut(after: timeoutSeconds)) })
        } catch {
            launch.kill()
            ended(.failed(SpawnError(step: .killed, errno: Errno(rawValue: ECANCELED))))
        }
    }

    /// After a restart: the recorded pasta, if that very process still runs in
    /// the group's cgroup, is watched again; otherwise the record says none runs.
    /// A second pasta is never started: the first lives on in the group's cgroup.
    func adopt(_ group: Group) {
        guard let record = group.record.pasta, record.pid != 0 else { return }
        let leaf = containment.pastaNode(of: group)
        if let pidfd = try? Pidfd.open(pid: record.pid), (try? ProcFS.startTime(pid: record.pid)) == record.startTime,
           unifiedCgroup(ofProcess: record.pid) == leaf.unifiedPath, pidfd.isAlive {
            let process = PastaProcess(pidfd: pidfd, adopted: true)
            do {
                try watch(process, of: group)
                return
            } catch {
                audit.logger.error("Failed to watch pasta \(record.pid) of group \(group.name): \(error), ignoring")
                return
            }
        }
        audit.logger.warning("pasta \(record.pid) of group \(group.name) ended while the supervisor was down")
        group.record.pasta?.pid = 0
        try? registry.save(group.record)
    }

    /// Reaps pasta when it ends (destroy's cgroup.kill, or on its own) and says so.
    private func watch(_ process: PastaProcess, of group: Group) throws {
        group.pasta = process
        // The process is held by its watch until it ends (and is reaped), whatever became of the group.
        process.watch = try loop.addIO(fd: process.pidfd.rawValue, events: .readable) { [weak self, weak group] _ in
            process.watch?.cancel()
            process.watch = nil
            let status = process.adopted ? nil : ((try? process.pidfd.reap()) ?? nil)
            guard let self, let group else { return }
            if group.pasta === process { group.pasta = nil }
            guard !group.destroying, self.registry[group.name] === group else { return }
            self.audit.logger.warning("pasta \(process.pidfd.pid) of group \(group.name) ended\(status.map { " (\($0))" } ?? ""): the group has no outside network now")
            group.record.pasta?.pid = 0
            try? self.registry.save(group.record)
        }
    }
}
