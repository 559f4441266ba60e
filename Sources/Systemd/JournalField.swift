import Logging

/// Journal field names and values: checking and converting names, metadata values as fields,
/// and the syslog priorities of swift-log levels.
enum JournalField {
    /// The longest field name journald accepts.
    static let maximumNameLength = 64

    /// Whether `name` is a valid journal field name a client may send: `[A-Z0-9_]`, starting with a
    /// letter (so not a `_TRUSTED` field), at most 64 bytes.
    static func isValidName(_ name: String) -> Bool {
        let bytes = name.utf8
        guard let first = bytes.first, isUpper(first), bytes.count <= maximumNameLength else { return false }
        return bytes.allSatisfy { isUpper($0) || isDigit($0) || $0 == UInt8(ascii: "_") }
    }

    /// Turns any metadata key into a valid field name: ASCII letters uppercased, every other character
    /// but digits and `_` becomes `_`, `X_` is put in front if it does not start with a letter, and the
    /// result is cut to 64 bytes. Valid names come back unchanged.
    static func sanitizedName(_ key: String) -> String {
        if isValidName(key) { return key }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(key.utf8.count + 2)
        for scalar in key.unicodeScalars {
            guard scalar.isASCII else {
                bytes.append(UInt8(ascii: "_"))
                continue
            }
            let byte = UInt8(scalar.value)
            if isLower(byte) {
                bytes.append(byte - 32)
            } else if isUpper(byte) || isDigit(byte) || byte == UInt8(ascii: "_") {
                bytes.append(byte)
            } else {
                bytes.append(UInt8(ascii: "_"))
            }
        }
        if bytes.first.map(isUpper) != true {
            bytes.insert(contentsOf: [UInt8(ascii: "X"), UInt8(ascii: "_")], at: 0)
        }
        if bytes.count > maximumNameLength {
            bytes.removeLast(bytes.count - maximumNameLength)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A metadata entry as journal fields, in the journal's own shape rather than as text in some
    /// other format (the project has one JSON writer, in RPC, and this module does not import it):
    ///
    /// - a string is one field `NAME=string`, a string-convertible one field with its description;
    /// - an array is the field repeated, once per element (journald keeps the values of a
    ///   repeated field as a set: not in the order sent, an identical value once; `journalctl -o
    ///   json` shows them as an array, `journalctl NAME=value` matches any one of them); an empty
    ///   array writes nothing;
    /// - a dictionary is one field per key, `NAME_KEY` (the key converted like any metadata key and
    ///   the whole cut to 64 bytes), keys sorted; an empty dictionary writes nothing.
    ///
    /// Nested values flatten the same way. `name` must be a valid field name already.
    static func fields(_ name: String, _ value: Logger.Metadata.Value) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = []
        append(name, value, to: &fields)
        return fields
    }

    private static func append(_ name: String, _ value: Logger.Metadata.Value, to fields: inout [(name: String, value: String)]) {
        switch value {
        case .string(let string):
            fields.append((name, string))
        case .stringConvertible(let convertible):
            fields.append((name, convertible.description))
        case .array(let values):
            for element in values { append(name, element, to: &fields) }
        case .dictionary(let dictionary):
            for key in dictionary.keys.sorted() {
                append(sanitizedName(name + "_" + key), dictionary[key]!, to: &fields)
            }
        }
    }

    /// The syslog priority of a swift-log level: trace and debug 7, info 6, notice 5, warning 4,
    /// error 3, critical 2.
    static func priority(of level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// The word for a syslog priority, used on the stderr fallback.
    static func levelWord(priority: Int) -> String {
        switch priority {
        case 0: return "emerg"
        case 1: return "alert"
        case 2: return "critical"
        case 3: return "error"
        case 4: return "warning"
        case 5: return "notice"
        case 6: return "info"
        case 7: return "debug"
        default: return "info"
        }
    }

    private static func isUpper(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") }
    private static func isLower(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") }
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}
