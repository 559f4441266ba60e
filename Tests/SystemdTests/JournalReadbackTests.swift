import Foundation
import Logging
import Testing
@testable import Systemd

/// Records sent through `JournalLogHandler` are read back from the real journal with journalctl.
///
/// Needs a running journald. On a machine where systemd is not PID 1, start a standalone one first:
/// `setsid /lib/systemd/systemd-journald </dev/null >/dev/null 2>&1 &`. Without it this suite fails.
@Suite("Journal read-back")
struct JournalReadbackTests {
    static let journaldHint =
        "journald is not running: nothing accepts connections on \(JournalSink.journalSocketPath). "
        + "Start it with `setsid /lib/systemd/systemd-journald </dev/null >/dev/null 2>&1 &` "
        + "(the socket appears within a second; `journalctl -n1` then works)."

    @Test func recordIsReadBackWithAllItsFields() throws {
        try #require(JournalSink.journalSocketAcceptsConnections(), Comment(rawValue: Self.journaldHint))

        let id = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let sink = JournalSink(identifier: "nsgroupd-test")
        #expect(sink.isJournal)
        var logger = Logger(label: "nsgroup.tests") { label in
            JournalLogHandler(label: label, identifier: "nsgroupd-test", sink: sink)
        }
        logger.logLevel = .trace
        logger[metadataKey: "NSGROUP_HANDLER_FIELD"] = "from-handler"
        logger[metadataKey: "NSGROUP_OVERRIDDEN"] = "handler"
        let line = #line + 1
        logger.warning("read-back test \(id)", metadata: [
            "NSGROUP_TEST_ID": "\(id)",
            "NSGROUP_OVERRIDDEN": "call",
            "NSGROUP_MULTILINE": "first line\nsecond line\n",
            "nsgroup.test-key": "sanitized",
            "NSGROUP_LIST": ["a", "b"],
        ])
        #expect(sink.isJournal)

        let entry = try #require(try Self.waitForEntry(field: "NSGROUP_TEST_ID", value: id),
                                 "the record did not show up in journalctl within 5 s")
        #expect(entry["MESSAGE"] == "read-back test \(id)")
        #expect(entry["PRIORITY"] == "4")
        #expect(entry["SYSLOG_IDENTIFIER"] == "nsgroupd-test")
        #expect(entry["NSGROUP_HANDLER_FIELD"] == "from-handler")
        #expect(entry["NSGROUP_OVERRIDDEN"] == "call")
        #expect(entry["NSGROUP_MULTILINE"] == "first line\nsecond line\n")
        #expect(entry["NSGROUP_TEST_KEY"] == "sanitized")
        #expect(entry["NSGROUP_LIST"] == "a|b", "an array is the field twice")
        #expect(entry["SWIFT_LOG_LABEL"] == "nsgroup.tests")
        #expect(entry["CODE_FILE"]?.hasSuffix("JournalReadbackTests.swift") == true)
        #expect(entry["CODE_LINE"] == String(line))
        #expect(entry["CODE_FUNC"]?.hasPrefix("recordIsReadBackWithAllItsFields") == true)
        #expect(entry["_PID"] == String(getpid()))
    }

    @Test func sinkSendsBinarySafeValues() throws {
        try #require(JournalSink.journalSocketAcceptsConnections(), Comment(rawValue: Self.journaldHint))
        let id = UUID().uuidString.lowercased()
        let sink = JournalSink(identifier: "nsgroupd-test")
        let big = String(repeating: "x", count: 100_000) + "\nend"
        sink.send([
            ("MESSAGE", "big value"), ("PRIORITY", "6"), ("SYSLOG_IDENTIFIER", "nsgroupd-test"),
            ("NSGROUP_TEST_ID", id), ("NSGROUP_BIG", big), ("lower", "converted"),
        ])
        #expect(sink.isJournal)
        let entry = try #require(try Self.waitForEntry(field: "NSGROUP_TEST_ID", value: id),
                                 "the record did not show up in journalctl within 5 s")
        #expect(entry["MESSAGE"] == "big value")
        #expect(entry["NSGROUP_BIG"] == big)
        #expect(entry["LOWER"] == "converted")
    }

    /// Polls `journalctl -o json --no-pager FIELD=value` (50 ms apart, up to 5 s) for the one entry.
    static func waitForEntry(field: String, value: String) throws -> [String: String]? {
        let deadline = Date().addingTimeInterval(5)
        repeat {
            if let entry = try journalEntries(match: "\(field)=\(value)").first { return entry }
            Thread.sleep(forTimeInterval: 0.05)
        } while Date() < deadline
        return nil
    }

    static func journalEntries(match: String) throws -> [[String: String]] {
        let process = Process()
        let candidates = ["/usr/bin/journalctl", "/bin/journalctl"]
        let path = candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["-o", "json", "--no-pager", "--all", match]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
            .split(separator: "\n")
            .compactMap { line in
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                else { return nil }
                return object.compactMapValues(Self.fieldString)
            }
    }

    /// journalctl's JSON gives a field as a string, as an array of byte values (binary data), or as an
    /// array of those when the field occurs more than once (then the values are joined with "|").
    static func fieldString(_ value: Any) -> String? {
        if let string = value as? String { return string }
        if let bytes = value as? [Int] { return String(decoding: bytes.map { UInt8(truncatingIfNeeded: $0) }, as: UTF8.self) }
        if let many = value as? [Any] { return many.compactMap(fieldString).joined(separator: "|") }
        return nil
    }
}
