#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Client
import POSIX
import RPC

/// How nsgroup reports: text, or (with `--json` anywhere on nsgroup's part of
/// the command line) JSON on stdout and every error as one
/// `{"error":{"reason":…,"message":…}}` line on stderr. Set once in
/// `NSGroup.main`, before parsing, so that parse errors follow it too.
enum Output {
    nonisolated(unsafe) static var json = false
    /// The host a command runs against (`--host`), which every error names: `nsgroup: HOST:
    /// message`, and `"host"` in the JSON error.
    nonisolated(unsafe) static var host: String?

    /// Whether `arguments` (as `NSGroup.withEnterTerminator` returns them) ask
    /// for JSON: a `--json` before the first `--`, so that `--json` in
    /// enter's command is the command's.
    static func wantsJSON(_ arguments: [String]) -> Bool {
        for word in arguments {
            if word == "--" { return false }
            if word == "--json" { return true }
        }
        return false
    }
}

extension Output {
    /// `text` with every control character but newline and tab shown as an escape
    /// (`\x1b`, `\u{9b}`): what nsgroup prints comes partly from others (another host's
    /// supervisor, the argv of another user's process in `ps`), and none of it may drive the
    /// terminal (a title, a cleared screen, a fake prompt). JSON output is escaped as JSON.
    /// `oneLine`: newline and tab are escaped too (a table's cell, a message of another
    /// host's: none may make a line of its own that looks like another's).
    static func visible(_ text: String, oneLine: Bool = false) -> String {
        let escaped = { (scalar: Unicode.Scalar) in isControl(scalar) || (oneLine && (scalar == "\n" || scalar == "\t")) }
        guard text.unicodeScalars.contains(where: escaped) else { return text }
        var shown = ""
        for scalar in text.unicodeScalars {
            if !escaped(scalar) {
                shown.unicodeScalars.append(scalar)
            } else if scalar.value < 0x80 {
                shown += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            } else {
                shown += "\\u{" + String(scalar.value, radix: 16) + "}"
            }
        }
        return shown
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        (scalar.value < 0x20 && scalar != "\n" && scalar != "\t") || (0x7f...0x9f).contains(scalar.value)
    }
}

/// Every line nsgroup prints as text (tables, inspect, messages) goes through
/// `Output.visible`: this shadows the standard library's `print` in the module.
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    Swift.print(Output.visible(items.map { "\($0)" }.joined(separator: separator)), terminator: terminator)
}

/// The reasons of nsgroup's own errors, beside the protocol's (`ErrorReason`:
/// not_found, permission_denied, …) that supervisor refusals carry.
enum CLIReason {
    /// A usage error (exit 64): an unknown option, a missing or malformed argument.
    static let usage = "usage"
    /// No supervisor could be reached at the socket.
    static let unavailable = "unavailable"
    /// The supervisor closed the connection.
    static let disconnected = "disconnected"
    /// The supervisor's reply made no sense to this client, or reading or writing the socket failed.
    static let io = "io"
    /// destroy --all was answered with no: nothing was destroyed.
    static let declined = "declined"
    /// enter: the session ended because its group did (destroyed, expired, its holder died).
    static let groupEnded = "group_ended"
    /// enter: a supervisor restarted meanwhile and no longer knows how the session ended.
    static let statusUnknown = "status_unknown"
    /// Anything else nsgroup could not do (a declined confirmation, a terminal that would not set up).
    static let failed = "failed"

    static func of(_ error: ClientError) -> String {
        switch error {
        case .unreachable: return unavailable
        case .server(let error): return error.reason.rawValue
        case .disconnected: return disconnected
        case .remote: return unavailable
        case .protocolViolation, .io: return io
        }
    }
}

/// The error line: `nsgroup: message`, or with `--json` one JSON object
/// (`extra` are further members of `error`).
func errorLine(_ message: String, reason: String, extra: JSONObject = JSONObject()) -> String {
    guard Output.json else {
        return "nsgroup: \(Output.host.map { "\($0): " } ?? "")\(Output.visible(message, oneLine: Output.host != nil))\n"
    }
    var error: JSONObject = ["reason": .string(reason), "message": .string(message)]
    if let host = Output.host { error["host"] = .string(host) }
    for (key, value) in extra { error[key] = value }
    return JSONValue.object(["error": .object(error)]).serialized() + "\n"
}

/// Prints an error to stderr: `nsgroup: message`, or its JSON object.
func printError(_ message: String, reason: String = CLIReason.failed) {
    var text = errorLine(message, reason: reason)
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// A remark that is no error (share's note about user namespaces, events
/// reconnecting): `nsgroup: note: …` (`label` replaces `note: `), or with
/// `--json` `{"note":{"message":…}}`.
func printNote(_ message: String, label: String = "note: ") {
    var text = Output.json ? JSONValue.object(["note": .object(["message": .string(message)])]).serialized() + "\n"
                           : "nsgroup: \(Output.host.map { "\($0): " } ?? "")\(label)\(Output.visible(message))\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// Prints an error and exits with `code` (by default 125: nsgroup or the supervisor failed).
func fail(_ message: String, reason: String = CLIReason.failed, code: Int32 = ExitStatus.failure) -> Never {
    printError(message, reason: reason)
    Glibc.exit(code)
}

/// Fails for a reply that does not decode.
func failBadReply(_ error: any Error) -> Never {
    fail("unexpected reply from nsgroupd: \(error)", reason: CLIReason.io)
}

/// Fails for a client error: its reason, its message in the CLI's words, its status.
func fail(_ error: ClientError) -> Never {
    fail(describe(error), reason: CLIReason.of(error), code: ExitStatus.of(error))
}

/// A client error's message as the user should read it: protocol members
/// the supervisor names become the options the user typed.
func describe(_ error: ClientError) -> String {
    guard case .server(let rpc) = error else { return error.description }
    // The refusal that asks for trust names the protocol's member beside the flag.
    return FlagNames.rewrite(rpc.message).replacing(" (\"trustOwner\": true)", with: "")
}

/// Which option of the CLI sets which protocol member, per method: one table,
/// used to reword the supervisor's messages (`create: "netnsName" needs a net
/// namespace` reads `create: --netns-name needs a net namespace`).
enum FlagNames {
    static let table: [String: [String: String]] = [
        "create": [
            "namespaces": "--ns", "hostname": "--hostname", "tmpfs": "--tmpfs", "binds": "--bind",
            "members": "--member", "monotonicOffset": "--monotonic-offset", "boottimeOffset": "--boottime-offset",
            "netnsName": "--netns-name", "network": "--net", "publish": "--publish", "memory": "--memory", "pids": "--pids", "cpuWeight": "--cpu-weight",
            "cpus": "--cpus", "lifetime": "--lifetime", "idle": "--idle", "name": "the group's name",
            "privateTmp": "--private-tmp", "privateHome": "--private-home", "home": "--home", "root": "--root", "persist": "--persist",
        ],
        "enter": [
            "argv": "the command", "cwd": "--cwd", "env": "--env", "tty": "--tty", "trustOwner": "--trust-owner",
            "name": "the group's name",
        ],
        "share": ["members": "the users and @groups", "name": "the group's name"],
        "unshare": ["members": "the users and @groups", "name": "the group's name"],
    ]

    /// `message` with each `"member"` of its method (the word before the
    /// first `:`) replaced by the option; messages of other methods unchanged.
    static func rewrite(_ message: String) -> String {
        guard let colon = message.firstIndex(of: ":"), let names = table[String(message[..<colon])] else { return message }
        var text = message
        for (member, flag) in names {
            text = text.replacing("\"\(member)\"", with: flag)
        }
        return text
    }
}

/// `nsg-alice (1001)`, or the uid alone where the host knows no such user.
/// Looked up here, for display only (NSS, as the supervisor does), once per uid.
func userName(_ uid: UInt32) -> String {
    if let known = UserNames.cache[uid] { return known }
    let text = UserDatabase.user(uid: uid).map { "\($0.name) (\(uid))" } ?? String(uid)
    UserNames.cache[uid] = text
    return text
}

private enum UserNames {
    nonisolated(unsafe) static var cache: [UInt32: String] = [:]
}

/// Refuses a comma-separated list with an empty item (`--ns mnt,,uts`, a
/// trailing comma): a usage error before anything is sent.
func checkCommaList(_ value: String, option: String) throws(ValidationError) {
    if value.split(separator: ",", omittingEmptySubsequences: false).contains(where: { $0.isEmpty }) {
        throw ValidationError("\(option) has an empty item in \"\(value)\": separate the items with single commas")
    }
}

/// Whether `name` is a valid environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
func isEnvironmentName(_ name: Substring) -> Bool {
    guard let first = name.utf8.first, first == UInt8(ascii: "_") || isLetter(first) else { return false }
    return name.utf8.allSatisfy { $0 == UInt8(ascii: "_") || isLetter($0) || ($0 >= 0x30 && $0 <= 0x39) }
}

private func isLetter(_ c: UInt8) -> Bool { (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) }
