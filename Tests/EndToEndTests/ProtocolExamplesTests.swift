import Client
import Foundation
import Glibc
import POSIX
import RPC
import Testing

/// Replays every transcript in protocol/examples against a fresh supervisor.
///
/// Each line of a transcript is an object with one action: "send" (a request,
/// sent as one line), "sendRaw" (bytes sent as they are), "expect" (the next
/// line received must match), "expectRaw" (the next line received is exactly
/// these bytes) or "expectClosed" (the server closes next). A send may carry
/// "descriptors" (paths, opened and passed with it); an expect may say how many
/// "descriptors" its line arrives with, which stay open until the transcript
/// ends. A first line {"needs": …} names the users, Unix groups and
/// configuration the transcript needs; the replayer creates the users and
/// groups that are missing. Matching is exact, with placeholders "$int",
/// "$string", "$timestamp", "$nsid" and "$any" (see protocol/PROTOCOL.md §14).
@Suite struct ProtocolExamplesTests {
    static let examplesDirectory = Products.repositoryRoot + "/protocol/examples"

    static var transcripts: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: examplesDirectory)) ?? [])
            .filter { $0.hasSuffix(".jsonl") }.sorted()
    }

    @Test func thereAreTranscripts() {
        #expect(Self.transcripts.count >= 4, "protocol/examples should hold the transcripts")
    }

    @Test(arguments: transcripts)
    func replay(_ file: String) throws {
        let text = try String(contentsOfFile: Self.examplesDirectory + "/" + file, encoding: .utf8)
        var steps = try text.split(separator: "\n", omittingEmptySubsequences: true).map { try JSONParser.parse(String($0)) }
        var needs = Needs()
        if let first = steps.first?["needs"] {
            needs = try Needs(first, file: file)
            steps.removeFirst()
            try needs.provide()
        }
        let supervisor = try TestSupervisor(config: needs.config)
        let client = try RPCClient(socketPath: supervisor.socketPath)
        // Descriptors received (a terminal's master above all): closing one early would hang up its session.
        var kept: [ReceivedDescriptors] = []
        defer { for received in kept { received.closeAll() } }
        for (index, step) in steps.enumerated() {
            let place = "\(file):\(index + (needs.given ? 2 : 1))"
            let actions = step.objectValue?.keys.filter { $0 != "descriptors" } ?? []
            guard actions.count == 1, let action = actions.first else {
                Issue.record("\(place): a step has one action, not \(step.serialized())")
                continue
            }
            let descriptors = step["descriptors"]
            switch (action, step[action]!) {
            case ("send", let request):
                try Self.send(client, request.line, descriptors, place: place)
            case ("sendRaw", .string(let raw)):
                try Self.send(client, Array(raw.utf8), descriptors, place: place)
            case ("expect", let expected):
                let received = try client.readLine()
                kept.append(ReceivedDescriptors(received.descriptors))
                let actual = try JSONParser.parse(received.bytes)
                let mismatch = Self.mismatch(expected: expected, actual: actual, path: "$")
                #expect(mismatch == nil, "\(place): \(mismatch ?? "") in \(actual.serialized())")
                Self.checkCount(received, descriptors, place: place)
            case ("expectRaw", .string(let expected)):
                let received = try client.readLine()
                kept.append(ReceivedDescriptors(received.descriptors))
                #expect(received.bytes == Array(expected.utf8),
                        "\(place): received \(String(decoding: received.bytes, as: UTF8.self))")
                Self.checkCount(received, descriptors, place: place)
            case ("expectClosed", _):
                #expect(throws: ClientError.self, "\(place): the server should close the connection") {
                    _ = try client.readLine()
                }
            default:
                Issue.record("\(place): unknown step \(step.serialized())")
            }
        }
        #expect(try supervisor.groupNames().isEmpty, "\(file) must destroy what it creates")
    }

    /// Every link within PROTOCOL.md (`](#anchor)`) names a heading, by GitHub's rule for
    /// anchors: lower case, punctuation other than '-' and '_' dropped, spaces as '-', and
    /// "-1", "-2", … after a repeated one.
    @Test func everyAnchorInTheDocumentResolves() throws {
        let text = try String(contentsOfFile: Products.repositoryRoot + "/protocol/PROTOCOL.md", encoding: .utf8)
        var anchors: Set<String> = []
        var seen: [String: Int] = [:]
        var inFence = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") { inFence.toggle() }
            guard !inFence, let hashes = line.firstIndex(of: " "), line[..<hashes].allSatisfy({ $0 == "#" }), hashes > line.startIndex else { continue }
            let slug = String(line[line.index(after: hashes)...].lowercased().compactMap { c -> Character? in
                c == " " ? "-" : (c.isLetter || c.isNumber || c == "-" || c == "_") ? c : nil
            })
            let count = seen[slug, default: 0]
            seen[slug] = count + 1
            anchors.insert(count == 0 ? slug : "\(slug)-\(count)")
        }
        #expect(anchors.contains("9-the-group-object"))
        var links = 0
        var rest = Substring(text)
        while let start = rest.range(of: "](#") {
            let tail = rest[start.upperBound...]
            guard let end = tail.firstIndex(of: ")") else { break }
            let anchor = String(tail[..<end])
            links += 1
            #expect(anchors.contains(anchor), "PROTOCOL.md links to #\(anchor), which no heading has")
            rest = tail[end...]
        }
        #expect(links > 50)
    }

    /// Sends a line with the files a step's "descriptors" names, opened read-write; our copies close once sent.
    static func send(_ client: RPCClient, _ line: [UInt8], _ paths: JSONValue?, place: String) throws {
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        for path in paths?.arrayValue ?? [] {
            guard let path = path.stringValue else { throw HarnessError("\(place): \"descriptors\" of a send are paths") }
            let fd = open(path, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { throw HarnessError("\(place): open \(path): \(Errno.current)") }
            fds.append(fd)
        }
        try client.sendLine(line, descriptors: fds)
    }

    /// An expect's "descriptors" is how many the line must arrive with; without it they are not counted.
    static func checkCount(_ received: LineFramer.Line, _ count: JSONValue?, place: String) {
        guard let count else { return }
        #expect(Int64(received.descriptors.count) == count.int64Value,
                "\(place): \(received.descriptors.count) descriptors instead of \(count.serialized())")
    }

    /// What a transcript needs of the host (its first line, {"needs": …}): users
    /// and Unix groups that are created when missing, names and ids that must not
    /// exist, and the supervisor's configuration.
    struct Needs {
        /// Unix groups, created (groupadd) when missing.
        var groups: [String] = []
        /// Users, created (useradd --create-home) when missing, each added to the Unix groups listed for it.
        var users: [(name: String, groups: [String])] = []
        /// Users and Unix groups (by name, or by id in decimal) that must not exist.
        var absentUsers: [String] = []
        var absentGroups: [String] = []
        /// The text of nsgroupd.conf ("" for the defaults).
        var config = ""
        var given = false

        init() {}

        init(_ value: JSONValue, file: String) throws {
            given = true
            guard let object = value.objectValue else { throw HarnessError("\(file): \"needs\" is an object") }
            for (key, member) in object {
                switch key {
                case "groups": groups = member.arrayValue?.compactMap(\.stringValue) ?? []
                case "users":
                    for (name, list) in member.objectValue ?? JSONObject() {
                        users.append((name, list.arrayValue?.compactMap(\.stringValue) ?? []))
                    }
                case "absent":
                    absentUsers = member["users"]?.arrayValue?.compactMap(\.stringValue) ?? []
                    absentGroups = member["groups"]?.arrayValue?.compactMap(\.stringValue) ?? []
                case "config": config = member.stringValue ?? ""
                default: throw HarnessError("\(file): unknown member \"\(key)\" of \"needs\"")
                }
            }
        }

        /// One replay at a time changes /etc/passwd and /etc/group (useradd locks them and fails if busy).
        static let accounts = NSLock()

        func provide() throws {
            Self.accounts.lock()
            defer { Self.accounts.unlock() }
            for group in groups + users.flatMap(\.groups) where getgrnam(group) == nil {
                try Self.run("/usr/sbin/groupadd", [group])
            }
            for (name, memberships) in users {
                if getpwnam(name) == nil { try Self.run("/usr/sbin/useradd", ["--create-home", "--shell", "/bin/bash", name]) }
                if !memberships.isEmpty { try Self.run("/usr/sbin/usermod", ["-a", "-G", memberships.joined(separator: ","), name]) }
            }
            for user in absentUsers {
                let exists = UInt32(user).map { getpwuid($0) != nil } ?? (getpwnam(user) != nil)
                if exists { throw HarnessError("the transcript needs no user \(user), but this host has one") }
            }
            for group in absentGroups {
                let exists = UInt32(group).map { getgrgid($0) != nil } ?? (getgrnam(group) != nil)
                if exists { throw HarnessError("the transcript needs no group \(group), but this host has one") }
            }
        }

        static func run(_ program: String, _ arguments: [String]) throws {
            let result = try EndToEndTests.run(program, arguments)
            guard result.status == 0 else { throw HarnessError("\(program) \(arguments.joined(separator: " ")): \(result.stderr)") }
        }
    }

    /// Where `actual` differs from `expected`, or nil when it matches.
    static func mismatch(expected: JSONValue, actual: JSONValue, path: String) -> String? {
        if case .string(let pattern) = expected, pattern.hasPrefix("$") {
            let ok: Bool
            switch pattern {
            case "$any": ok = true
            case "$int": ok = actual.int64Value != nil
            case "$string": ok = actual.stringValue != nil
            case "$timestamp": ok = actual.stringValue.flatMap(Timestamp.parse) != nil
            case "$nsid":
                ok = actual.stringValue.map { s in s.range(of: #"^[a-z]+:\[[0-9]+\]$"#, options: .regularExpression) != nil } ?? false
            default: return "\(path): unknown placeholder \(pattern)"
            }
            return ok ? nil : "\(path): \(actual.serialized()) is not \(pattern)"
        }
        switch (expected, actual) {
        case (.object(let e), .object(let a)):
            if Set(e.keys) != Set(a.keys) {
                return "\(path): members \(a.keys.sorted()) instead of \(e.keys.sorted())"
            }
            for (key, value) in e {
                if let m = mismatch(expected: value, actual: a[key]!, path: path + "." + key) { return m }
            }
            return nil
        case (.array(let e), .array(let a)):
            guard e.count == a.count else { return "\(path): \(a.count) elements instead of \(e.count)" }
            for (i, pair) in zip(e, a).enumerated() {
                if let m = mismatch(expected: pair.0, actual: pair.1, path: "\(path)[\(i)]") { return m }
            }
            return nil
        case (.number(let e), .number(let a)):
            return e.lexeme == a.lexeme || (e.doubleValue != nil && e.doubleValue == a.doubleValue) ? nil : "\(path): \(a) instead of \(e)"
        default:
            return expected == actual ? nil : "\(path): \(actual.serialized()) instead of \(expected.serialized())"
        }
    }
}
