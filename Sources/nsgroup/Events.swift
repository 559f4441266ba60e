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
            thawed; processes the kernel killed for want of memory (at the group's memory \
            limit); sessions started and ended, with their exit status. Runs until interrupted \
            or until nsgroupd goes away.
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print each event as the protocol's JSON object, one per line.")
    var json = false

    func run() {
        let status = withClient(global) { client throws(ClientError) -> Int32 in
            _ = try client.call("subscribe")
            while let (method, params) = try client.nextNotification() {
                guard method == NotificationName.event.rawValue else { continue }
                // Each line goes out as it comes (one write), even into a pipe.
                if json {
                    writeLine(params.serialized())
                } else if let event = try? EventNotification(json: params) {
                    writeLine(Self.describe(event))
                }
            }
            printError("nsgroupd closed the connection", reason: CLIReason.disconnected)
            return ExitStatus.failure
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
        case .sessionStarted:
            line += " session \(e.session ?? 0) pid \(e.pid ?? 0) uid \(e.uid.map(userName) ?? "0"): \((e.argv ?? []).joined(separator: " "))"
        case .sessionEnded:
            let how = e.signal.map { "killed by signal \($0)" } ?? e.code.map { "exit \($0)" } ?? "exit status unknown"
            line += " session \(e.session ?? 0) pid \(e.pid ?? 0): \(how)"
        }
        return line
    }
}

/// One line to stdout in one write(2), unbuffered.
func writeLine(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = writeAll(1, UnsafeRawBufferPointer($0)) }
}
