#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Client
import RPC

/// Groups created (and destroyed) per second by concurrent clients, against concurrent unshare one-shots.
struct CreateThroughputBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-throughput",
        abstract: "Groups created and destroyed per second by N concurrent clients, against N concurrent `unshare … true` one-shots.",
        discussion: """
            Three ways, each on --clients threads at once for --seconds, interleaved over --rounds \
            (the order rotates); each thread creates a group of the default kinds (mnt, uts, ipc, \
            pid, net, cgroup) and destroys it, again and again, under a name of its own: over a \
            connection held open by root (the supervisor's own rate, the headline); with `nsgroup \
            create` and `nsgroup destroy` run as the unprivileged user (two process starts per \
            group); and the anchor, `unshare -m -u -i -p -n -C -f true` run as root, which makes \
            the same kinds and drops them when true exits. A group counts once destroyed. Goal: \
            RPC/anchor at least 0.5. Exits non-zero if a create or destroy failed or a group is left \
            over, never on a slow figure.
            """)

    @OptionGroup var options: ConcurrentRunOptions

    func run() throws {
        Interrupt.install()
        let o = options
        let outcome = try CreateThroughputRun(seconds: o.seconds, rounds: o.rounds, clients: o.clients, user: o.user, socket: o.socket).run()
        if !outcome.passed { throw ExitCode.failure }
    }
}

struct CreateThroughputRun {
    var seconds: Double
    var rounds: Int
    var clients: Int
    var user: String?
    var socket: String?

    static let unshare = "/usr/bin/unshare"
    static let anchorArguments = ["unshare", "-m", "-u", "-i", "-p", "-n", "-C", "-f", "true"]

    func run() throws -> ThroughputOutcome {
        guard geteuid() == 0 else { throw BenchError("run as root: the anchor (unshare) needs it") }
        let entry = try benchUser(user)
        let identity = (uid: entry.uid, gid: entry.gid)
        let supervisor = try BenchSupervisor(socket: socket)
        let prefix = "bct\(getpid())-"
        defer {
            GroupOps.destroy(prefix: prefix, socketPath: supervisor.socketPath).forEach { printError("nsgroup-bench: clean-up: \($0)") }
            supervisor.stop()
        }
        let socketPath = supervisor.socketPath
        let clients = try (0..<clients).map { _ in try SharedClient(socketPath: socketPath) }
        let nsgroupPath = Binaries.nsgroup
        let nsgroup = ["nsgroup", "--socket", socketPath]

        // Each thread of a way reuses one name: it destroys its group before it makes the next.
        let overRPC: @Sendable (Int) -> String? = { thread in
            let name = prefix + "rpc\(thread)"
            do {
                _ = try clients[thread].client.call("create", CreateParams(name: name).json)
            } catch {
                return "create \(name): \(error)"
            }
            do {
                _ = try clients[thread].client.call("destroy", NameParams(name: name).json)
            } catch {
                return "destroy \(name): \(error)"
            }
            return nil
        }
        let throughCLI: @Sendable (Int) -> String? = { thread in
            let name = prefix + "cli\(thread)"
            for step in ["create", "destroy"] {
                do {
                    let status = try ProgramRunner.run(nsgroupPath, nsgroup + [step, name], as: identity)
                    if status != 0 { return "nsgroup \(step) \(name) exited with \(status)" }
                } catch {
                    return "cannot run nsgroup: \(error)"
                }
            }
            return nil
        }
        let throughUnshare: @Sendable (Int) -> String? = { _ in
            do {
                let status = try ProgramRunner.run(Self.unshare, Self.anchorArguments)
                return status == 0 ? nil : "\(Self.anchorArguments.joined(separator: " ")) exited with \(status)"
            } catch {
                return "cannot run unshare: \(error)"
            }
        }
        let ways = [overRPC, throughCLI, throughUnshare]
        var warm = ConcurrentRates(labels: ["", "", ""])
        try warm.run(rounds: 1, threads: clients.count, seconds: min(0.2, seconds), ways)
        var rates = ConcurrentRates(labels: ["create + destroy over RPC (root, held connections)",
                                             "nsgroup create g; nsgroup destroy g (\(entry.name))",
                                             Self.anchorArguments.joined(separator: " ")])
        try rates.run(rounds: rounds, threads: clients.count, seconds: seconds, ways)

        print("nsgroup-bench create-throughput: \(clients.count) clients at once per way, \(rounds) rounds × \(formatFixed(seconds, 1)) s, interleaved; "
              + "groups of the default kinds; group names start with \(prefix)")
        print(supervisor.stateDescription)
        print("")
        let (rpcRatio, cliRatio) = rates.report(unit: "groups", goal: 0.5, cliNote: "two starts of the nsgroup CLI per group")

        let all = LoopTally.sum(rates.tallies) + LoopTally.sum(warm.tallies)
        var checks = [
            Check(name: "every create and destroy succeeded", passed: all.failures == 0,
                  detail: "\(all.completed) groups created and destroyed" + (all.failures == 0 ? "" : "; " + all.failureText)),
            Check(name: "every way completed groups", passed: rates.tallies.allSatisfy { $0.completed > 0 },
                  detail: rates.tallies.map { String($0.completed) }.joined(separator: ", ")),
        ]
        // A thread stops at its first failure and may leave its group: those
        // are destroyed by the clean-up, but count as a failure here.
        let left = ((try? GroupOps.list(socketPath)) ?? []).filter { $0.name.hasPrefix(prefix) }.map(\.name)
        let holders = holderProcessesNamed(prefix: prefix)
        checks.append(Check(name: "every group destroyed, no holder left", passed: left.isEmpty && holders.isEmpty,
                            detail: left.isEmpty && holders.isEmpty ? "list shows none of the run's groups, no nsgroup-holder runs for one"
                                : "listed: \(left.prefix(5).joined(separator: ", ")); holder pids: \(holders.prefix(5).map(String.init).joined(separator: ", "))"))
        print("")
        for check in checks { print(check.line) }
        let failed = checks.filter { $0.passed == false }.count
        print(failed == 0 ? "create-throughput: PASS (\(checks.count) checks)" : "create-throughput: FAIL (\(failed) of \(checks.count) checks failed)")
        return ThroughputOutcome(passed: failed == 0, rows: [
            SummaryRow(figure: "groups created + destroyed/s, \(clients.count) RPC clients at once vs \(clients.count) `unshare -m -u -i -p -n -C -f true` loops",
                       ours: formatRate(rates.rate(0)), anchor: formatRate(rates.rate(2)), ratio: rpcRatio, goal: "≥ 0.5", met: rpcRatio >= 0.5),
            SummaryRow(figure: "`nsgroup create g; nsgroup destroy g`/s, \(clients.count) CLI loops vs the same unshare loops",
                       ours: formatRate(rates.rate(1)), anchor: formatRate(rates.rate(2)), ratio: cliRatio, goal: "-", met: nil),
        ])
    }
}

/// An RPC connection used by one thread at a time.
final class SharedClient: @unchecked Sendable {
    let client: RPCClient

    init(socketPath: String) throws {
        do {
            client = try RPCClient(socketPath: socketPath)
        } catch {
            throw BenchError("connect: \(error)")
        }
    }
}

/// Pids of nsgroup-holder processes whose group name starts with `prefix`.
func holderProcessesNamed(prefix: String) -> [pid_t] {
    ProcessProbe.allProcesses().filter { pid in
        let argv = ProcessProbe.commandLine(pid)
        return argv.count > 1 && argv[0].hasSuffix("nsgroup-holder") && argv[1].hasPrefix(prefix)
    }
}
