import Client
import Foundation
import RPC
import Testing

/// Replays every transcript in protocol/examples against a fresh supervisor.
///
/// Each line of a transcript is an object with one member: "send" (a request,
/// sent as one line), "sendRaw" (bytes sent as they are), "expect" (the next
/// line received must match) or "expectClosed" (the server closes next).
/// Matching is exact, with placeholders "$int", "$string", "$timestamp",
/// "$nsid" and "$any" (see protocol/PROTOCOL.md).
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
        let supervisor = try TestSupervisor()
        let client = try RPCClient(socketPath: supervisor.socketPath)
        let text = try String(contentsOfFile: Self.examplesDirectory + "/" + file, encoding: .utf8)
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let step = try JSONParser.parse(String(line))
            let place = "\(file):\(index + 1)"
            if let request = step["send"] {
                try client.sendLine(request.line)
            } else if let raw = step["sendRaw"]?.stringValue {
                try client.sendLine(Array(raw.utf8))
            } else if let expected = step["expect"] {
                let received = try client.readLine()
                let actual = try JSONParser.parse(received.bytes)
                let mismatch = Self.mismatch(expected: expected, actual: actual, path: "$")
                #expect(mismatch == nil, "\(place): \(mismatch ?? "") in \(actual.serialized())")
            } else if step["expectClosed"] != nil {
                #expect(throws: ClientError.self, "\(place): the server should close the connection") {
                    _ = try client.readLine()
                }
            } else {
                Issue.record("\(place): unknown step \(step.serialized())")
            }
        }
        #expect(try supervisor.groupNames().isEmpty, "\(file) must destroy what it creates")
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
