#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CBench
import Client
import POSIX
import RPC

/// `list` requests per second, nsgroupd against a minimal C line server.
struct ThroughputBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "throughput",
        abstract: "`list` requests per second on 1 and on N connections, against a C echo server on the same kind of socket.",
        discussion: """
            Request-then-wait: each connection has one request outstanding and sends the next \
            when the reply has arrived, as clients do. (Pipelining would measure how well each \
            server batches, not what a request costs.) The anchor (Sources/CBench/echo.c, a forked \
            child) is one thread on epoll, like nsgroupd, and answers each line with nsgroupd's \
            own reply to the same request, byte for byte, so both move the same bytes and the \
            client (a C loop, the same for both) does the same work. The supervisor lists one \
            group. Measurements are interleaved over rounds. Goal: nsgroupd/echo at least 0.5.
            """)

    @Option(help: "Seconds of each measurement.")
    var seconds = 2.0

    @Option(help: "Rounds; each measures every server and connection count once.")
    var rounds = 3

    @Option(help: "Connections of the concurrent figure.")
    var connections = 8

    @Option(help: "Use the supervisor on this socket instead of starting one.")
    var socket: String?

    func validate() throws {
        guard seconds > 0, seconds <= 600, rounds > 0, connections > 1, connections <= 64 else {
            throw ValidationError("--seconds in (0, 600], --rounds > 0, --connections in 2...64")
        }
    }

    func run() throws {
        Interrupt.install()
        _ = try ThroughputRun(seconds: seconds, rounds: rounds, connections: connections, socket: socket).run()
    }
}

struct ThroughputRun {
    var seconds: Double
    var rounds: Int
    var connections: Int
    var socket: String?

    private struct Tally {
        var requests = 0
        var nanoseconds: UInt64 = 0
        var serverCPU: UInt64 = 0
        var journaldCPU: UInt64 = 0
        var rate: Double { Double(requests) / (Double(nanoseconds) / 1e9) }
    }

    func run() throws -> [SummaryRow] {
        guard geteuid() == 0 else { throw BenchError("run as root: the benchmark creates a group to list") }
        let supervisor = try BenchSupervisor(socket: socket)
        let name = "btp\(getpid())-one"
        defer {
            GroupOps.destroy([name], socketPath: supervisor.socketPath).forEach { printError("nsgroup-bench: clean-up: \($0)") }
            supervisor.stop()
        }
        _ = try RPCClient(socketPath: supervisor.socketPath).call("create", CreateParams(name: name).json)
        let reply = try RawRequest.reply(to: RawRequest.list, socketPath: supervisor.socketPath)
        guard reply.starts(with: RawRequest.resultPrefix) else { throw BenchError("unexpected list reply: \(String(decoding: reply, as: UTF8.self))") }

        var template = Array("/tmp/nsgroup-bench-echo-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchError("mkdtemp: \(Errno.current)") }
        let directory = String(cString: made)
        let echoPath = directory + "/echo.sock"
        var echoPID: pid_t = 0
        let spawned = reply.withUnsafeBytes { cbench_echo_spawn(echoPath, $0.baseAddress, $0.count, &echoPID) }
        guard spawned == 0 else {
            rmdir(directory)
            throw BenchError("cannot start the echo server: \(Errno.current)")
        }
        defer {
            kill(echoPID, SIGTERM)
            var status: Int32 = 0
            while waitpid(echoPID, &status, 0) < 0 && errno == EINTR {}
            unlink(echoPath)
            rmdir(directory)
        }

        let journald = journaldPID()
        let servers: [(label: String, path: String, pid: pid_t?)] = [
            ("nsgroupd", supervisor.socketPath, supervisor.serverPID), ("echo", echoPath, echoPID),
        ]
        let counts = [1, connections]
        var tallies = [[Tally]](repeating: [Tally](repeating: Tally(), count: counts.count), count: servers.count)
        for round in 0..<rounds {
            var order: [(Int, Int)] = []
            for c in counts.indices { for s in servers.indices { order.append((s, c)) } }
            if round % 2 == 1 { order.reverse() }
            for (s, c) in order {
                try Interrupt.check()
                let measured = try measure(servers[s].path, connections: counts[c], serverPID: servers[s].pid, journald: journald)
                tallies[s][c].requests += measured.requests
                tallies[s][c].nanoseconds += measured.nanoseconds
                tallies[s][c].serverCPU += measured.serverCPU
                tallies[s][c].journaldCPU += measured.journaldCPU
            }
        }

        print("nsgroup-bench throughput: `list` of 1 group (reply \(reply.count) bytes), request-then-wait, "
              + "\(rounds) rounds × \(formatFixed(seconds, 1)) s per figure, interleaved")
        print("anchor: C line server on epoll (forked child) answering each line with nsgroupd's own reply")
        print(supervisor.stateDescription)
        print("")
        print(padded("", 16) + padded("nsgroupd", 14) + padded("echo (C)", 14) + "ratio nsgroupd/echo")
        var rows: [SummaryRow] = []
        for c in counts.indices {
            let ours = tallies[0][c], anchor = tallies[1][c]
            let ratio = ours.rate / anchor.rate
            let label = counts[c] == 1 ? "1 connection" : "\(counts[c]) connections"
            print(padded(label, 16) + padded(formatRate(ours.rate), 14) + padded(formatRate(anchor.rate), 14)
                  + padded(formatRatio(ratio), 7) + "goal: at least 0.50   \(metText(ratio >= 0.5))")
            rows.append(SummaryRow(figure: "list requests/s, \(label) (request-then-wait)", ours: formatRate(ours.rate),
                                   anchor: "echo " + formatRate(anchor.rate), ratio: ratio, goal: "≥ 0.5", met: ratio >= 0.5))
        }
        print("")
        print("CPU time per request, from /proc/PID/task/*/schedstat:")
        for c in counts.indices {
            let ours = tallies[0][c], anchor = tallies[1][c]
            var line = padded("  " + (counts[c] == 1 ? "1 connection" : "\(counts[c]) connections"), 18)
                + "nsgroupd " + padded(ours.serverCPU > 0 ? formatMicroseconds(Double(ours.serverCPU) / Double(ours.requests)) : "n/a", 11)
                + "echo " + padded(formatMicroseconds(Double(anchor.serverCPU) / Double(anchor.requests)), 11)
            if journald != nil {
                line += "journald (records of nsgroupd's requests) " + formatMicroseconds(Double(ours.journaldCPU) / Double(ours.requests))
            }
            print(line)
        }
        return rows
    }

    private func measure(_ path: String, connections count: Int, serverPID: pid_t?, journald: pid_t?) throws -> Tally {
        let sockets = try (0..<count).map { _ in try RawConnection(path: path) }
        for socket in sockets { _ = try socket.roundTrips(RawRequest.list, expecting: RawRequest.resultPrefix, count: 20) }
        let cpuBefore = cpuTime(serverPID), journaldBefore = cpuTime(journald)
        let start = monotonicNanoseconds() + 20_000_000
        let deadline = start + UInt64(seconds * 1e9)
        let done = ClientThreads.run(count) { index -> Result<Int, BenchError> in
            sleep(untilMonotonic: start)
            do {
                return .success(try sockets[index].roundTrips(RawRequest.list, expecting: RawRequest.resultPrefix,
                                                              count: 1 << 40, deadline: deadline))
            } catch let error as BenchError {
                return .failure(error)
            } catch {
                return .failure(BenchError("\(error)"))
            }
        }
        let end = monotonicNanoseconds()
        var tally = Tally(nanoseconds: end - start)
        for result in done { tally.requests += try result.get() }
        tally.serverCPU = cpuTime(serverPID) &- cpuBefore
        tally.journaldCPU = cpuTime(journald) &- journaldBefore
        return tally
    }
}
