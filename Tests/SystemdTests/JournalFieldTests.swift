import Logging
import Testing
@testable import Systemd

@Suite("Journal fields")
struct JournalFieldTests {
    @Test(arguments: [
        ("NSGROUP_NAME", "NSGROUP_NAME"),
        ("MESSAGE_ID", "MESSAGE_ID"),
        ("nsgroup.name", "NSGROUP_NAME"),
        ("request-id", "REQUEST_ID"),
        ("1st", "X_1ST"),
        ("_SYSTEMD_UNIT", "X__SYSTEMD_UNIT"),
        ("", "X_"),
        ("héllo wörld", "H_LLO_W_RLD"),
    ])
    func keysBecomeValidFieldNames(key: String, expected: String) {
        #expect(JournalField.sanitizedName(key) == expected)
        #expect(JournalField.isValidName(expected) || expected == "X_")
    }

    @Test func longKeysAreTruncatedTo64Bytes() {
        let long = String(repeating: "a", count: 100)
        let name = JournalField.sanitizedName(long)
        #expect(name == String(repeating: "A", count: 64))
        #expect(JournalField.isValidName(name))
        #expect(!JournalField.isValidName(String(repeating: "A", count: 65)))
    }

    @Test func scalarsAreOneField() {
        func only(_ value: Logger.Metadata.Value) -> [String] { JournalField.fields("F", value).map { "\($0.name)=\($0.value)" } }
        #expect(only("plain\nvalue") == ["F=plain\nvalue"])
        #expect(only(.stringConvertible(42)) == ["F=42"])
    }

    /// No JSON: an array repeats the field, a dictionary makes a field per key.
    @Test func arraysAndDictionariesBecomeFieldsOfTheirOwn() {
        func fields(_ value: Logger.Metadata.Value) -> [String] { JournalField.fields("NSGROUP_F", value).map { "\($0.name)=\($0.value)" } }
        #expect(fields(["a", "b\"c"]) == ["NSGROUP_F=a", #"NSGROUP_F=b"c"#])
        #expect(fields(["z": "1", "a b": ["x", .stringConvertible(2)], "nested": ["k": "v"]])
            == ["NSGROUP_F_A_B=x", "NSGROUP_F_A_B=2", "NSGROUP_F_NESTED_K=v", "NSGROUP_F_Z=1"])
        #expect(fields(.dictionary([:])).isEmpty)
        #expect(fields(.array([])).isEmpty)
        let long = JournalField.fields(String(repeating: "L", count: 60), ["key": "v"])
        #expect(long.map(\.name) == [String(repeating: "L", count: 60) + "_KEY"])
        #expect(JournalField.fields(String(repeating: "L", count: 62), ["key": "v"]).first?.name.utf8.count == 64)
    }

    @Test func levelsMapToSyslogPriorities() {
        let expected: [Logger.Level: Int] = [
            .trace: 7, .debug: 7, .info: 6, .notice: 5, .warning: 4, .error: 3, .critical: 2,
        ]
        for (level, priority) in expected {
            #expect(JournalField.priority(of: level) == priority)
        }
    }

    @Test func handlerMergesMetadataAndRenamesClashingKeys() {
        let sink = JournalSink(identifier: "test", forceStderr: true)
        var handler = JournalLogHandler(label: "test.label", identifier: "test-ident", sink: sink)
        handler.metadata = ["NSGROUP_A": "handler", "NSGROUP_B": "handler"]
        handler[metadataKey: "NSGROUP_C"] = "handler"
        #expect(handler[metadataKey: "NSGROUP_C"] == "handler")
        let event = LogEvent(
            level: .error,
            message: "boom",
            metadata: ["NSGROUP_B": "call", "MESSAGE": "sneaky", "lower key": "v", "NSGROUP_LIST": ["1", "2"]],
            source: nil,
            file: "File.swift",
            function: "f()",
            line: 12
        )
        let fields = handler.fields(for: event)
        func value(_ name: String) -> [String] { fields.filter { $0.name == name }.map(\.value) }
        #expect(value("MESSAGE") == ["boom"])
        #expect(value("X_MESSAGE") == ["sneaky"])
        #expect(value("PRIORITY") == ["3"])
        #expect(value("SYSLOG_IDENTIFIER") == ["test-ident"])
        #expect(value("CODE_FILE") == ["File.swift"])
        #expect(value("CODE_LINE") == ["12"])
        #expect(value("CODE_FUNC") == ["f()"])
        #expect(value("SWIFT_LOG_LABEL") == ["test.label"])
        #expect(value("NSGROUP_A") == ["handler"])
        #expect(value("NSGROUP_B") == ["call"])
        #expect(value("NSGROUP_C") == ["handler"])
        #expect(value("LOWER_KEY") == ["v"])
        #expect(value("NSGROUP_LIST") == ["1", "2"])
        #expect(fields.allSatisfy { JournalField.isValidName($0.name) })
    }

    @Test func metadataProviderSitsBetweenHandlerAndCall() {
        let sink = JournalSink(identifier: "test", forceStderr: true)
        var handler = JournalLogHandler(
            label: "l", sink: sink,
            metadataProvider: Logger.MetadataProvider { ["NSGROUP_P": "provider", "NSGROUP_Q": "provider"] }
        )
        handler.metadata = ["NSGROUP_P": "handler"]
        let event = LogEvent(
            level: .info, message: "m", metadata: ["NSGROUP_Q": "call"],
            source: nil, file: "f", function: "g", line: 1
        )
        let fields = handler.fields(for: event)
        #expect(fields.first { $0.name == "NSGROUP_P" }?.value == "provider")
        #expect(fields.first { $0.name == "NSGROUP_Q" }?.value == "call")
    }
}

@Suite("Message text")
struct MessageTextTests {
    @Test(arguments: [
        ("plain text, é and 日本", "plain text, é and 日本"),
        ("a\nb", "a\\nb"),
        ("tab\there\r", "tab\\there\\r"),
        ("nul\u{0}end", "nul\\000end"),
        ("esc\u{1b}[2J", "esc\\033[2J"),
        ("del\u{7f}", "del\\177"),
        ("back\\slash", "back\\\\slash"),
        ("bell\u{07}vt\u{0b}ff\u{0c}bs\u{08}", "bell\\avt\\vff\\fbs\\b"),
        ("line\u{2028}sep", "line\\342\\200\\250sep"),
        ("rtl\u{202e}txt", "rtl\\342\\200\\256txt"),
        ("c1\u{85}", "c1\\302\\205"),
        ("\"quotes\" stay", "\"quotes\" stay"),
    ])
    func userTextIsEscapedAsCescapeDoes(_ text: String, _ expected: String) {
        #expect(MessageText.escaped(text) == expected)
        #expect(!MessageText.escaped(text).unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f })
    }
}
