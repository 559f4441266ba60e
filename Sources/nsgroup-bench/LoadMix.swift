#if canImport(Glibc)
import Glibc
#endif
import Client
import RPC

/// One pass of the load mix that `load` runs once and `soak` runs again and
/// again: `clients` threads, each on a connection of its own, each running
/// the ten-operation cycle below until it has done `operations` or the
/// deadline has passed.
///
/// Operation i of a client (c is the client's number, r = i / 10 its round):
///
/// | i % 10 | request |
/// |---|---|
/// | 0, 9 | `list` |
/// | 1 | `create PREFIX c<c>-<r>`: a name nobody else uses; must succeed |
/// | 2 | `inspect` of the shared group |
/// | 3, 8 | `enter` the shared group, `true`, tty false, with the client's own /dev/null as stdin, stdout and stderr (passed over the socket); then wait for its `exited` notification, code 0 |
/// | 4 | `list`, which must show the group made at 1 (a client sees its own writes) |
/// | 5 | `create PREFIX r<c / racers>-<r>`: the same name as the other clients of its racing team, sent at the same moment (they meet at a gate first); exactly one create of each name may succeed, every other must get `already_exists` |
/// | 6 | `inspect` of the group made at 1 |
/// | 7 | `destroy` of the group made at 1, in even rounds only; in odd rounds it stays, so that groups made by clients are left for the checks |
///
/// Enters go through RPC, not through the `nsgroup` CLI: the pass measures
/// the daemon under concurrent clients, not 64 forks of the CLI on 2 cores
/// (the CLI's enter is what `nsgroup-bench enter` times); the descriptor
/// passing, the session and its `exited` notification are the same.
struct LoadPass: Sendable {
    var socketPath: String
    var clients: Int
    var operations: Int
    /// CLOCK_MONOTONIC nanoseconds after which no client starts an operation.
    var deadline: UInt64
    /// Soak: reaching the deadline is how a pass ends. Load: it is a failure.
    var deadlineEndsPass: Bool
    var racers: Int
    var namespaces: [String]?
    /// Every group this pass makes has a name starting with it.
    var prefix: String
    /// How long a client waits for any one reply before it gives up on its connection.
    var replyTimeoutSeconds: Int = 30

    var sharedGroup: String { prefix + "shared" }

    static let mixDescription = "per 10 operations: list ×3, create, inspect ×2, enter -- true ×2 (RPC, the client's /dev/null passed as stdio, waiting for `exited`), raced create, destroy (even rounds)"

    /// Creates the shared group, runs the clients, and returns what they saw.
    func run() throws -> LoadOutcome {
        let client = try RPCClient(socketPath: socketPath)
        _ = try client.call("create", CreateParams(name: sharedGroup, namespaces: namespaces).json)
        let gates = Gates()
        let pass = self
        let start = monotonicNanoseconds()
        let tallies = ClientThreads.run(clients) { index in pass.client(index, gates: gates) }
        return LoadOutcome(pass: self, tallies: tallies, nanoseconds: monotonicNanoseconds() - start)
    }

    /// How many clients race for the names of team `team`.
    func teamSize(_ team: Int) -> Int { min(racers, clients - team * racers) }

    private func client(_ index: Int, gates: Gates) -> ClientTally {
        var tally = ClientTally()
        let client: RPCClient
        do {
            client = try RPCClient(socketPath: socketPath)
        } catch {
            tally.connectionLost = "connect: \(error)"
            return tally
        }
        var timeout = timeval(tv_sec: replyTimeoutSeconds, tv_usec: 0)
        setsockopt(client.descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client.descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { if devNull >= 0 { close(devNull) } }

        /// One request, counted; nil when it failed (a server error is counted as answered).
        func call(_ method: String, _ params: JSONValue?, descriptors: [Int32] = []) -> Result<JSONValue, ClientError> {
            tally.requests += 1
            do {
                let reply = try client.call(method, params, descriptors: descriptors)
                tally.replies += 1
                return .success(reply.result)
            } catch {
                if case .server = error { tally.replies += 1 } else { tally.connectionLost = "\(method): \(error)" }
                return .failure(error)
            }
        }
        func expectSuccess(_ what: String, _ result: Result<JSONValue, ClientError>) -> JSONValue? {
            switch result {
            case .success(let value): return value
            case .failure(let error):
                tally.note("\(what): \(error)")
                return nil
            }
        }

        /// Enters the shared group and waits for the process's `exited` notification.
        func enter() {
            let params = EnterParams(name: sharedGroup, argv: ["true"], tty: false).json
            let result: EnterResult
            switch call("enter", params, descriptors: [devNull, devNull, devNull]) {
            case .success(let value):
                guard let parsed = try? EnterResult(json: value) else {
                    tally.note("enter: malformed result")
                    return
                }
                result = parsed
            case .failure(let error):
                tally.note("enter \(sharedGroup): \(error)")
                return
            }
            tally.enters += 1
            while true {
                let notification: (method: String, params: JSONValue)?
                do {
                    notification = try client.nextNotification()
                } catch {
                    tally.connectionLost = "waiting for exited of session \(result.session): \(error)"
                    return
                }
                guard let notification else {
                    tally.connectionLost = "the connection closed before exited of session \(result.session)"
                    return
                }
                guard notification.method == "exited",
                      let exited = try? ExitedNotification(json: notification.params), exited.session == result.session
                else { continue }
                tally.exits += 1
                if exited.code != 0 {
                    tally.note("enter -- true: session \(result.session) ended with " + (exited.code.map { "status \($0)" } ?? "signal \(exited.signal ?? 0)"))
                }
                return
            }
        }

        var own: String?
        var i = 0
        while i < operations, tally.connectionLost == nil, !Interrupt.requested {
            if monotonicNanoseconds() >= deadline {
                if !deadlineEndsPass { tally.ranOutOfTime = true }
                break
            }
            let round = i / 10
            switch i % 10 {
            case 0, 9:
                if let value = expectSuccess("list", call("list", nil)), (try? ListResult(json: value)) == nil {
                    tally.note("list: malformed result")
                }
            case 1:
                let name = prefix + "c\(index)-\(round)"
                if expectSuccess("create \(name)", call("create", CreateParams(name: name, namespaces: namespaces).json)) != nil {
                    own = name
                    tally.believed.insert(name)
                }
            case 2:
                if let value = expectSuccess("inspect \(sharedGroup)", call("inspect", NameParams(name: sharedGroup).json)),
                   value["name"]?.stringValue != sharedGroup {
                    tally.note("inspect \(sharedGroup): the reply names another group")
                }
            case 3, 8:
                enter()
            case 4:
                if let value = expectSuccess("list", call("list", nil)), let own {
                    let names = (try? ListResult(json: value))?.groups.map(\.name) ?? []
                    if !names.contains(own) { tally.note("list right after creating \(own) does not show it") }
                }
            case 5:
                let team = index / racers
                let name = prefix + "r\(team)-\(round)"
                // A pass that ends at its deadline leaves some teams short: wait no longer than that.
                let now = monotonicNanoseconds()
                let wait = deadlineEndsPass ? min(2_000_000_000, (deadline > now ? deadline - now : 0) + 50_000_000) : 2_000_000_000
                gates.arrive(name, expected: teamSize(team), timeoutNanoseconds: wait)
                switch call("create", CreateParams(name: name, namespaces: namespaces).json) {
                case .success:
                    tally.raceWins.append(name)
                case .failure(.server(let error)) where error.reason == .alreadyExists:
                    tally.raceLosses.append(name)
                case .failure(let error):
                    tally.note("raced create \(name): \(error)")
                }
            case 6:
                if let own, let value = expectSuccess("inspect \(own)", call("inspect", NameParams(name: own).json)),
                   value["name"]?.stringValue != own {
                    tally.note("inspect \(own): the reply names another group")
                }
            default:  // 7
                if let name = own, round % 2 == 0 {
                    if expectSuccess("destroy \(name)", call("destroy", NameParams(name: name).json)) != nil {
                        tally.believed.remove(name)
                    }
                }
                own = nil
            }
            tally.operations += 1
            i += 1
        }
        return tally
    }
}

/// What one client of a pass did and saw.
struct ClientTally: Sendable {
    var operations = 0
    var requests = 0
    /// Replies received: results and server errors alike.
    var replies = 0
    var enters = 0
    var exits = 0
    var unexpected: [String] = []
    var unexpectedCount = 0
    /// Groups this client made and has not destroyed: what it believes exists.
    var believed: Set<String> = []
    var raceWins: [String] = []
    var raceLosses: [String] = []
    var ranOutOfTime = false
    /// Why the connection could no longer be used, if it broke.
    var connectionLost: String?

    mutating func note(_ what: String) {
        unexpectedCount += 1
        if unexpected.count < 5 { unexpected.append(what) }
    }
}

/// A check's verdict, printed as one PASS, FAIL or SKIP line.
struct Check: Sendable {
    var name: String
    /// nil: could not be checked here (SKIP).
    var passed: Bool?
    var detail: String

    var line: String { "\(passed == nil ? "SKIP" : passed! ? "PASS" : "FAIL")  \(name): \(detail)" }
}

/// The clients' results of one pass, and the checks made of them.
struct LoadOutcome: Sendable {
    var pass: LoadPass
    var tallies: [ClientTally]
    var nanoseconds: UInt64

    var operations: Int { tallies.reduce(0) { $0 + $1.operations } }
    var requests: Int { tallies.reduce(0) { $0 + $1.requests } }

    /// The checks made while the pass's groups still exist: the clients'
    /// view, `list`, and the holder processes. `supervisorPID` nil skips the
    /// check of the supervisor's children.
    func checks(supervisorPID: pid_t?) -> [Check] {
        var checks: [Check] = []
        let replies = tallies.reduce(0) { $0 + $1.replies }
        let lost = tallies.compactMap(\.connectionLost)
        checks.append(Check(name: "every request answered", passed: replies == requests && lost.isEmpty,
                            detail: "\(requests) requests, \(replies) replies" + (lost.isEmpty ? "" : "; \(lost.count) connection(s) broke, first: \(lost[0])")))
        let enters = tallies.reduce(0) { $0 + $1.enters }
        let exits = tallies.reduce(0) { $0 + $1.exits }
        checks.append(Check(name: "every enter got its exited notification", passed: enters == exits,
                            detail: "\(enters) sessions started, \(exits) exited notifications"))
        let unexpectedCount = tallies.reduce(0) { $0 + $1.unexpectedCount }
        let examples = tallies.flatMap(\.unexpected).prefix(3)
        checks.append(Check(name: "every operation had its expected outcome", passed: unexpectedCount == 0,
                            detail: unexpectedCount == 0 ? "\(operations) operations"
                                : "\(unexpectedCount) did not, e.g. " + examples.joined(separator: "; ")))

        // Raced creates: exactly one winner per name, everyone else already_exists.
        var wins: [String: Int] = [:]
        var attempts: [String: Int] = [:]
        for tally in tallies {
            for name in tally.raceWins { wins[name, default: 0] += 1; attempts[name, default: 0] += 1 }
            for name in tally.raceLosses { attempts[name, default: 0] += 1 }
        }
        let badRaces = attempts.keys.sorted().filter { wins[$0, default: 0] != 1 }
        let contested = attempts.values.filter { $0 > 1 }.count
        checks.append(Check(name: "raced creates: exactly one winner per name", passed: badRaces.isEmpty,
                            detail: "\(attempts.count) names, \(attempts.values.reduce(0, +)) creates, \(contested) names contested"
                                + (badRaces.isEmpty ? "" : "; wrong winner count for " + badRaces.prefix(3).map { "\($0) (\(wins[$0, default: 0]) winners)" }.joined(separator: ", "))))

        // What the clients believe exists against what the supervisor lists.
        var believed = Set<String>([pass.sharedGroup])
        for tally in tallies { believed.formUnion(tally.believed); believed.formUnion(tally.raceWins) }
        let groups: [GroupInfo]
        do {
            groups = try GroupOps.list(pass.socketPath)
        } catch {
            checks.append(Check(name: "no group lost or doubled", passed: false, detail: "list failed: \(error)"))
            return checks
        }
        let ours = groups.filter { $0.name.hasPrefix(pass.prefix) }.map(\.name)
        let listed = Set(ours)
        let doubled = ours.count - listed.count
        let missing = believed.subtracting(listed).sorted()
        let extra = listed.subtracting(believed).sorted()
        checks.append(Check(name: "no group lost or doubled (clients' view == list)",
                            passed: doubled == 0 && missing.isEmpty && extra.isEmpty,
                            detail: "clients believe \(believed.count) exist, list shows \(ours.count)"
                                + (doubled > 0 ? "; \(doubled) listed twice" : "")
                                + (missing.isEmpty ? "" : "; missing: " + missing.prefix(5).joined(separator: ", "))
                                + (extra.isEmpty ? "" : "; unexpected: " + extra.prefix(5).joined(separator: ", "))))
        checks.append(holderCheck(groups, supervisorPID: supervisorPID))
        if !pass.deadlineEndsPass {
            let late = tallies.filter(\.ranOutOfTime).count
            checks.append(Check(name: "finished within the time bound", passed: late == 0,
                                detail: late == 0 ? "\(formatSeconds(nanoseconds))" : "\(late) clients ran out of time"))
        }
        return checks
    }

    /// Every listed holder is a live nsgroup-holder for that group (and a
    /// child of the supervisor), and there is no nsgroup-holder that `list`
    /// does not show: neither a child of the supervisor nor, wherever it
    /// runs, one named for a group of this pass (a holder the supervisor
    /// lost track of is reparented, so its parent alone would not tell).
    private func holderCheck(_ groups: [GroupInfo], supervisorPID: pid_t?) -> Check {
        var problems: [String] = []
        for group in groups {
            let argv = ProcessProbe.commandLine(group.holder)
            if !ProcessProbe.isAlive(group.holder) || argv.isEmpty {
                problems.append("\(group.name): holder \(group.holder) is not running")
            } else if !(argv[0].hasSuffix("nsgroup-holder") && argv.count > 1 && argv[1] == group.name) {
                problems.append("\(group.name): pid \(group.holder) runs \(argv.prefix(2).joined(separator: " "))")
            } else if let supervisorPID, ProcessProbe.parentPID(group.holder) != supervisorPID {
                problems.append("\(group.name): holder \(group.holder) is not the supervisor's child")
            }
        }
        let listedHolders = Set(groups.map(\.holder))
        var children = 0
        for pid in ProcessProbe.allProcesses() {
            let argv = ProcessProbe.commandLine(pid)
            guard argv.first?.hasSuffix("nsgroup-holder") == true else { continue }
            let isChild = supervisorPID != nil && ProcessProbe.parentPID(pid) == supervisorPID
            if isChild { children += 1 }
            let named = argv.count > 1 && argv[1].hasPrefix(pass.prefix)
            if (isChild || named) && !listedHolders.contains(pid) {
                problems.append("holder \(pid) (\(argv.count > 1 ? argv[1] : "?")) is not listed")
            }
        }
        let scope = supervisorPID.map { "\(children) nsgroup-holder children of pid \($0)" } ?? "supervisor pid unknown: its children not counted"
        return Check(name: "list matches the holder processes", passed: problems.isEmpty,
                     detail: "\(groups.count) listed, \(scope)"
                         + (problems.isEmpty ? ", each alive and listed, none unlisted" : "; " + problems.prefix(3).joined(separator: "; ")))
    }
}

func formatSeconds(_ nanoseconds: UInt64) -> String {
    formatFixed(Double(nanoseconds) / 1e9, 1) + " s"
}
