import Logging

/// Journal field names and values: checking and converting names, rendering metadata values,
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

    /// A metadata value as a field value: strings as they are, string-convertibles by their
    /// description, arrays and dictionaries as compact JSON-like text (`["a","b"]`, `{"k":"v"}`,
    /// dictionary keys sorted).
    static func render(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let string):
            return string
        case .stringConvertible(let convertible):
            return convertible.description
        case .array, .dictionary:
            var out = ""
            renderCompact(value, into: &out)
            return out
        }
    }

    private static func renderCompact(_ value: Logger.Metadata.Value, into out: inout String) {
        switch value {
        case .string(let string):
            quote(string, into: &out)
        case .stringConvertible(let convertible):
            quote(convertible.description, into: &out)
        case .array(let values):
            out += "["
            for (index, element) in values.enumerated() {
                if index > 0 { out += "," }
                renderCompact(element, into: &out)
            }
            out += "]"
        case .dictionary(let dictionary):
            out += "{"
            for (index, key) in dictionary.keys.sorted().enumerated() {
                if index > 0 { out += "," }
                quote(key, into: &out)
                out += ":"
                renderCompact(dictionary[key]!, into: &out)
            }
            out += "}"
        }
    }

    /// JSON string quoting.
    private static func quote(_ string: String, into out: inout String) {
        out += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
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
