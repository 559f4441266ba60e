// Compact JSON writer (Swift standard library only).
//
// Output is one line: no spaces, and never a raw newline byte (every LF/CR inside strings is
// escaped), so a serialized value can be framed by '\n' on the wire.

extension JSONValue {
    /// Compact single-line JSON text for this value.
    public func serialized() -> String {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(256)
        serialize(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    /// Appends the compact UTF-8 JSON text for this value to `buffer`.
    ///
    /// Object members are written in insertion order, numbers as their lexeme. In strings,
    /// `"` and `\` are escaped, as are U+0000-U+001F (`\b \f \n \r \t` in short form, the rest
    /// as `\u00xx`), DEL (`\u007f`), U+2028 and U+2029; all other characters are raw UTF-8.
    public func serialize(into buffer: inout [UInt8]) {
        switch self {
        case .null:
            _JSONWriter.appendASCII("null", to: &buffer)
        case .bool(let b):
            _JSONWriter.appendASCII(b ? "true" : "false", to: &buffer)
        case .number(let n):
            buffer.append(contentsOf: n.lexeme.utf8)
        case .string(let s):
            _JSONWriter.appendString(s, to: &buffer)
        case .array(let elements):
            buffer.append(UInt8(ascii: "["))
            var first = true
            for element in elements {
                if !first { buffer.append(UInt8(ascii: ",")) }
                first = false
                element.serialize(into: &buffer)
            }
            buffer.append(UInt8(ascii: "]"))
        case .object(let object):
            buffer.append(UInt8(ascii: "{"))
            var first = true
            for (key, value) in object.entries {
                if !first { buffer.append(UInt8(ascii: ",")) }
                first = false
                _JSONWriter.appendString(key, to: &buffer)
                buffer.append(UInt8(ascii: ":"))
                value.serialize(into: &buffer)
            }
            buffer.append(UInt8(ascii: "}"))
        }
    }
}

internal enum _JSONWriter {
    @inline(__always)
    static func appendASCII(_ s: StaticString, to buffer: inout [UInt8]) {
        buffer.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    private static let hexDigits: StaticString = "0123456789abcdef"

    /// Appends `s` as a quoted, escaped JSON string.
    static func appendString(_ s: String, to buffer: inout [UInt8]) {
        var s = s
        buffer.append(UInt8(ascii: "\""))
        s.withUTF8 { utf8 in
            guard let p = utf8.baseAddress else { return }
            let n = utf8.count
            var runStart = 0
            var i = 0
            @inline(__always) func flush(_ upTo: Int, _ buffer: inout [UInt8]) {
                if upTo > runStart {
                    buffer.append(contentsOf: UnsafeBufferPointer(start: p + runStart, count: upTo - runStart))
                }
            }
            while i < n {
                let b = p[i]
                if b >= 0x20 && b != 0x22 && b != 0x5C && b != 0x7F && b != 0xE2 {
                    i += 1
                    continue
                }
                if b == 0xE2 {
                    // U+2028 / U+2029 are E2 80 A8 / E2 80 A9 (input is valid UTF-8).
                    if i + 2 < n && p[i + 1] == 0x80 && (p[i + 2] == 0xA8 || p[i + 2] == 0xA9) {
                        flush(i, &buffer)
                        appendASCII(p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", to: &buffer)
                        i += 3
                        runStart = i
                    } else {
                        i += 1
                    }
                    continue
                }
                flush(i, &buffer)
                switch b {
                case 0x22: appendASCII("\\\"", to: &buffer)
                case 0x5C: appendASCII("\\\\", to: &buffer)
                case 0x0A: appendASCII("\\n", to: &buffer)
                case 0x0D: appendASCII("\\r", to: &buffer)
                case 0x09: appendASCII("\\t", to: &buffer)
                case 0x08: appendASCII("\\b", to: &buffer)
                case 0x0C: appendASCII("\\f", to: &buffer)
                default:
                    // Other C0 controls and DEL.
                    appendASCII("\\u00", to: &buffer)
                    let hex = hexDigits.utf8Start
                    buffer.append(hex[Int(b >> 4)])
                    buffer.append(hex[Int(b & 0x0F)])
                }
                i += 1
                runStart = i
            }
            flush(n, &buffer)
        }
        buffer.append(UInt8(ascii: "\""))
    }
}
