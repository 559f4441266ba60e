#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import POSIX
import RPC
import Systemd

/// `freeze`, `thaw` and `processes`: what a group's cgroup offers beyond
/// limits and kill-all.
final class CgroupHandler {
    private let registry: GroupRegistry
    private let containment: Containment
    private let bus: EventBus
    private let names: NameService
    private let policies: PolicyHolder
    /// Reads what the processes of a group run, off the loop: /proc/PID/cmdline
    /// reads the process's memory, and a process whose memory waits (a page
    /// of a FUSE file its owner serves) makes the reader wait too. Its own
    /// worker thread, so that such a wait holds up only other `processes`
    /// calls, each at most `readerLimits.timeout`, and never a name lookup.
    private let reader: NameService

    static let readerLimits = NameService.Limits(timeout: 2, maxOutstanding: 16)

    init(registry: GroupRegistry, containment: Containment, bus: EventBus, names: NameService, policies: PolicyHolder,
         loop: EventLoop) throws(SupervisorError) {
        self.policies = policies
        self.registry = registry
        self.containment = containment
        self.bus = bus
        self.names = names
        reader = try NameService(loop: loop, limits: Self.readerLimits, lookup: { _ in .unknown })
    }

    /// `freeze {name}` / `thaw {name}`: the owner and admins. Every process
    /// of the group stops (cgroup.freeze) or goes on; freezing a frozen group
    /// (or thawing a running one) changes nothing and is no error.
    ///
    /// Freezing stops every session in the group, as SIGSTOP would: the owner
    /// may not signal the sessions of others (EnterHandler.checkControl), so
    /// she may not freeze a group while someone else's session runs there
    /// either. Admins may.
    func freeze(_ params: NameParams, _ context: RequestContext, frozen: Bool) throws(RPCError) -> Reply {
        let action = frozen ? "freeze" : "thaw"
        let caller = context.caller
        let group = try registry.group(params.name, caller: caller, action: action, manage: true)
        guard !group.destroying else { throw .notFound(group: params.name) }
        if frozen, !group.frozen, !policies.current.isAdmin(caller),
           let other = group.sessions.values.sorted(by: { $0.id < $1.id }).first(where: { $0.uid != caller.uid }) {
            throw RPCError(.permissionDenied, "uid \(caller.uid) may not freeze group \"\(group.name)\" while session \(other.id) of uid \(other.uid) runs in it: freezing stops it, and only \(Policy.listed(["its own user"] + policies.current.admins)) may stop a session")
        }
        do throws(CgroupError) {
            try containment.setFrozen(frozen, group)
        } catch {
            throw RPCError.operationFailed("cannot \(action) group \"\(params.name)\"", error)
        }
        if group.frozen != frozen {
            group.frozen = frozen
            bus.groupEvent(frozen ? .groupFrozen : .groupThawed, group)
        } else {
            context.details.changedNothing = true
        }
        return .result(FreezeResult(name: group.name, frozen: frozen).json)
    }

    /// `processes {name}`: whoever may inspect the group. The pids come from
    /// its cgroup (every process of the group, whoever started it); what each
    /// runs and as whom is read off the loop, and a process that is no longer
    /// in the group by then (its pid reused) is left out.
    func processes(_ params: NameParams, _ context: RequestContext) throws(RPCError) -> Reply {
        let group = try registry.group(params.name, caller: context.caller, action: "inspect", manage: false)
        // Each pid with its leaf and the cgroup it was found in (the group's, or a guest's).
        let found = containment.nodes(of: group).flatMap { node in
            node.processes().map { (pid: $0.pid, leaf: $0.leaf, prefix: node.unifiedPath) }
        }
        let pids = found.map(\.pid)
        let leaves = found.map(\.leaf)
        let prefixes = found.map(\.prefix)
        let inPidNamespace = group.record.kinds.contains(.pid)
        let name = group.name
        let completion = context.later()
        reader.run({ () -> [ProcessInfo] in
            pids.indices.compactMap { index in
                ProcessReading.read(pid: pids[index], leaf: leaves[index], cgroupPrefix: prefixes[index],
                                    inPidNamespace: inPidNamespace)
            }.sorted { $0.pid < $1.pid }
        }, completion: { [weak self] read in
            guard let self else { return }
            guard let read else {
                completion.finish(.error(RPCError.operationFailed(
                    "cannot list the processes of group \"\(name)\": reading them did not finish within \(Int(Self.readerLimits.timeout)) s (a process whose memory cannot be read holds up the reader, or it has too many lists to read)",
                    step: .readProcesses, errno: .timedOut)))
                return
            }
            let queries = Set(read.map { NameQuery.user(uid: $0.uid) })
            self.names.lookUp(queries) { answers in
                let named = read.map { process in
                    var process = process
                    process.user = answers[.user(uid: process.uid)]?.userEntry?.name
                    return process
                }
                completion.finish(.result(ProcessesResult(name: name, processes: named).json))
            }
        })
        return .deferred
    }
}

/// /proc, read on the reader's worker thread for `processes`.
enum ProcessReading {
    static func read(pid: pid_t, leaf: String, cgroupPrefix: String, inPidNamespace: Bool) -> ProcessInfo? {
        guard let status = try? ProcFS.readText("/proc/\(pid)/status", limit: 8192) else { return nil }
        var uid: UInt32?
        var nspid = pid
        var comm = ""
        for line in status.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard let key = fields.first else { continue }
            switch key {
            case "Name:": comm = fields.dropFirst().joined(separator: " ")
            case "Uid:": uid = fields.count > 1 ? UInt32(fields[1]) : nil
            case "NSpid:": if inPidNamespace, fields.count > 2, let inside = pid_t(fields[2]) { nspid = inside }
            default: break
            }
        }
        guard let uid else { return nil }
        var arguments: [String] = []
        if let raw = try? ProcFS.readText("/proc/\(pid)/cmdline", limit: ProcessInfo.maxCommandBytes + 1) {
            arguments = raw.split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
            if arguments.last == "" { arguments.removeLast() }
        }
        let command = ProcessInfo.command(argv: arguments, name: comm)
        // Still the process that was listed: in the group's cgroup.
        guard let cgroup = unifiedCgroup(ofProcess: pid), cgroup == cgroupPrefix || cgroup.hasPrefix(cgroupPrefix + "/") else {
            return nil
        }
        let session = leaf.hasPrefix("session-") ? UInt64(leaf.dropFirst("session-".count)) : nil
        return ProcessInfo(pid: pid, nspid: nspid, uid: uid, user: nil, session: session, command: command)
    }
}
