#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Client
import RPC

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print what happens to the groups you may see, as it happens.",
        discussion: """
            Groups created, destroyed (and why) and failed (their holder died), frozen and \
            thawed, shared and unshared (who was added or removed, and the members after); \
            processes the kernel killed for want of memory (at the group's memory limit); sessions started and ended, with their exit status. Runs until interrupted. \
            When the connection is lost, says so on stderr and connects again, asking for the \
            events it missed; when nsgroupd no longer has them (it restarted, or too many \
            happened meanwhile) it says so; exits with 125 if it is not back within a minute.
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print each event as the protocol's JSON object, one per line.")
    var json = false

    func run() {
        let status = withClient(global) { first throws(ClientError) -> Int32 in
            var client = first
            // Where this run of nsgroupd's events stands, to ask for what is missed on reconnecting.
            var resume = SubscribeParams()
            func note(_ result: JSONValue) {
                if let seq = result["seq"]?.int64Value { resume.since = UInt64(seq) }
                resume.instance = result["instance"]?.stringValue
                if resume.instance == nil { resume.since = nil }
            }
            note(try client.call("subscribe").result)
            while true {
                while let (method, params) = try client.nextNotification() {
                    guard method == NotificationName.event.rawValue else { continue }
                    if let seq = params["seq"]?.int64Value { resume.since = UInt64(seq) }
                    if params["type"]?.stringValue == "gap" {
                        let why = params["reason"]?.stringValue == "restart" ? "nsgroupd restarted" : "nsgroupd no longer holds them"
                        printNote("some events were missed: \(why)", label: "")
                    }
                    // Each line goes out as it comes (one write), even into a pipe. A gap, which
                    // names no group, is no EventNotification: only --json shows it.
                    if json {
                        writeLine(params.serialized())
                    } else if let event = try? EventNotification(json: params) {
                        writeLine(Output.visible(Self.describe(event), oneLine: true))
                    }
                }
                // The supervisor stopped or restarted: subscribe again on a new connection.
                printNote("lost the connection to nsgroupd; reconnecting", label: "")
                let asked = resume
                guard let again = reconnecting(client.endpoint, { (candidate: RPCClient) -> RPCClient? in
                    // A server that takes no "since" (an older one) refuses it: a plain subscribe then.
                    if let reply = try? candidate.call("subscribe", asked.json) { note(reply.result); return candidate }
                    if let reply = try? candidate.call("subscribe") { note(reply.result); return candidate }
                    return nil
                }) else {
                    printError("nsgroupd did not come back within \(reconnectSeconds) s", reason: CLIReason.disconnected)
                    return ExitStatus.failure
                }
                printNote("reconnected to nsgroupd", label: "")
                client = again
            }
        }
        Glibc.exit(status)
    }

    static func describe(_ e: EventNotification) -> String {
        var line = "\(e.time)  \(e.kind.rawValue.padding(to: 16))\(e.group)"
        switch e.kind {
        case .groupCreated, .groupFailed, .groupFrozen, .groupThawed:
            line += " (owner \(userName(e.owner)))"
        case .groupDestroyed:
            line += " (owner \(userName(e.owner)))"
            switch e.reason.flatMap(EventNotification.DestroyReason.init(rawValue:)) {
            case .request?: line += ": on request"
            case .lifetime?: line += ": its lifetime ended"
            case .idle?: line += ": idle, no session for its idle time"
            case nil: if let reason = e.reason { line += ": \(reason)" }
            }
        case .groupOOM:
            line += " (owner \(userName(e.owner))): out of memory, a process was killed"
            if let kills = e.oomKills { line += " (\(kills) OOM kill\(kills == 1 ? "" : "s") so far)" }
        case .groupShared, .groupUnshared:
            let shared = e.kind == .groupShared
            line += " (owner \(userName(e.owner))): \(shared ? "shared with" : "no longer shared with") "
                + ((shared ? e.added : e.removed) ?? []).joined(separator: ", ")
            // A removed member who may no longer see the group is not told who still may.
            if let members = e.members { line += "; members: " + (members.isEmpty ? "none" : members.joined(separator: ", ")) }
        case .sessionStarted:
            line += " session \(e.session ?? 0) pid \(e.pid ?? 0) user \(e.uid.map(userName) ?? "unknown"): \((e.argv ?? []).joined(separator: " "))"
        case .sessionEnded:
            let how = e.signal.map { "killed by signal \($0)" } ?? e.code.map { "exit \($0)" } ?? "exit status unknown"
            line += " session \(e.session ?? 0) pid \(e.pid ?? 0): \(how)"
        }
        return line
    }
}

/// How long `events` and `enter` wait for a supervisor that went away to come back.
let reconnectSeconds = 60

/// After the connection to the supervisor dropped: connects again every 0.1 s, for up
/// to reconnectSeconds, and hands each new connection to `body`, until it returns a
/// result (nil: try again). nil when no supervisor took us back in time.
func reconnecting<T>(_ endpoint: Endpoint, _ body: (RPCClient) -> T?) -> T? {
    for _ in 0..<(reconnectSeconds * 10) {
        if let client = try? RPCClient(endpoint: endpoint), let result = body(client) { return result }
        usleep(100_000)
    }
    return nil
}

/// One line to stdout in one write(2), unbuffered.
func writeLine(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = writeAll(1, UnsafeRawBufferPointer($0)) }
}
