// Strict RFC 8259 JSON parser working directly on UTF-8 bytes (Swift standard library only).
//
// Design notes:
// * Iterative: containers live on an explicit heap-allocated stack, so no input can exhaust the
//   call stack; nesting beyond `maxDepth` is rejected as soon as the offending bracket is seen.
// * Every read is bounds-checked against the input length by hand; nothing derived from the
//   input is force-unwrapped and all offset arithmetic stays within `0...count`.
// * The whole input must be valid UTF-8. Outside strings only ASCII is legal, so UTF-8 is
//   validated explicitly inside strings and any non-ASCII byte elsewhere is an error.

/// A parse failure: what went wrong and the byte offset where it was found.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Byte offset in the input where the problem was found.
    public let offset: Int
    /// A short human sentence, e.g. `duplicate key "name"`.
    public let message: String

    public init(offset: Int, message: String) {
        self.offset = offset
        self.message = message
    }

    public var description: String { "\(message) at byte \(offset)" }
}

/// Entry points of the JSON parser.
public enum JSONParser {
    /// Default limit on array/object nesting.
    public static let defaultMaxDepth = 64

    /// Longest number lexeme accepted, in bytes.
    internal static let maxNumberLength = 256

    /// Parses exactly one JSON value (surrounded by optional whitespace) from `bytes`.
    /// Arrays/objects nested more than `maxDepth` levels deep are rejected (a negative
    /// `maxDepth` is treated as 0, which allows scalars only).
    public static func parse(
        _ bytes: UnsafeRawBufferPointer, maxDepth: Int = defaultMaxDepth
    ) throws(JSONParseError) -> JSONValue {
        guard bytes.count > 0 else {
            throw JSONParseError(offset: 0, message: "empty input")
        }
        return try bytes.withMemoryRebound(to: UInt8.self) { (buf) throws(JSONParseError) -> JSONValue in
            guard let base = buf.baseAddress else { throw JSONParseError(offset: 0, message: "empty input") }
            var parser = _JSONParserState(base: base, count: buf.count, maxDepth: max(0, maxDepth))
            return try parser.parseDocument()
        }
    }

    public static func parse(
        _ bytes: [UInt8], maxDepth: Int = defaultMaxDepth
    ) throws(JSONParseError) -> JSONValue {
        try bytes.withBytes { (raw) throws(JSONParseError) in try parse(raw, maxDepth: maxDepth) }
    }

    public static func parse(
        _ text: String, maxDepth: Int = defaultMaxDepth
    ) throws(JSONParseError) -> JSONValue {
        var text = text
        return try text.withUTF8Bytes { (raw) throws(JSONParseError) in try parse(raw, maxDepth: maxDepth) }
    }
}

// MARK: - Implementation

private enum _JSONByte {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let slash = UInt8(ascii: "/")
    static let comma = UInt8(ascii: ",")
    static let colon = UInt8(ascii: ":")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let minus = UInt8(ascii: "-")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let lf = UInt8(ascii: "\n")
    static let cr = UInt8(ascii: "\r")
}

/// One open container on the explicit parse stack.
private struct _Frame {
    var isObject: Bool
    /// Offset of the opening bracket (for "unterminated ..." errors).
    var openOffset: Int
    var array: [JSONValue] = []
    var object = JSONObject()
    /// Key whose value is currently being parsed (objects only).
    var key: String = ""
}

private struct _JSONParserState {
    let p: UnsafePointer<UInt8>
    let end: Int
    let maxDepth: Int
    var pos = 0
    var frames: [_Frame] = []
    /// Reused buffer for strings containing escapes.
    var scratch: [UInt8] = []

    init(base: UnsafePointer<UInt8>, count: Int, maxDepth: Int) {
        self.p = base
        self.end = count
        self.maxDepth = maxDepth
    }

    @inline(__always)
    func fail(_ message: String, _ offset: Int) -> JSONParseError {
        JSONParseError(offset: offset, message: message)
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while pos < end {
            let b = p[pos]
            if b == _JSONByte.space || b == _JSONByte.lf || b == _JSONByte.cr || b == _JSONByte.tab {
                pos += 1
            } else {
                return
            }
        }
    }

    /// Describes the (unexpected) byte at `offset`, which must be `< end`.
    func unexpected(at offset: Int) -> JSONParseError {
        let b = p[offset]
        if b >= 0x80 {
            guard let (scalar, _) = decodeScalar(at: offset) else {
                return fail("invalid UTF-8", offset)
            }
            return fail("unexpected character '\(Character(scalar))'", offset)
        }
        if b >= 0x21 && b < 0x7F {
            return fail("unexpected character '\(Character(Unicode.Scalar(b)))'", offset)
        }
        return fail("unexpected byte 0x\(hex2(b))", offset)
    }

    func hex2(_ b: UInt8) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: [digits[Int(b >> 4)], digits[Int(b & 0xF)]], as: UTF8.self)
    }

    // MARK: document / values

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        // Loop invariant at `expectValue`: a value must start at `pos` (after whitespace).
        expectValue: while true {
            skipWhitespace()
            guard pos < end else {
                if let top = frames.last {
                    throw fail(top.isObject ? "unterminated object" : "unterminated array", top.openOffset)
                }
                throw fail("empty input", pos)
            }
            var value: JSONValue
            let b = p[pos]
            switch b {
            case _JSONByte.openBracket:
                guard frames.count < maxDepth else {
                    throw fail("nesting deeper than \(maxDepth) levels", pos)
                }
                let open = pos
                pos += 1
                skipWhitespace()
                if pos < end && p[pos] == _JSONByte.closeBracket {
                    pos += 1
                    value = .array([])
                } else {
                    frames.append(_Frame(isObject: false, openOffset: open))
                    continue expectValue
                }
            case _JSONByte.openBrace:
                guard frames.count < maxDepth else {
                    throw fail("nesting deeper than \(maxDepth) levels", pos)
                }
                let open = pos
                pos += 1
                skipWhitespace()
                if pos < end && p[pos] == _JSONByte.closeBrace {
                    pos += 1
                    value = .object(JSONObject())
                } else {
                    frames.append(_Frame(isObject: true, openOffset: open))
                    try parseKeyAndColon()
                    continue expectValue
                }
            case _JSONByte.quote:
                value = .string(try parseString())
            case UInt8(ascii: "t"):
                try expectLiteral("true")
                value = .bool(true)
            case UInt8(ascii: "f"):
                try expectLiteral("false")
                value = .bool(false)
            case UInt8(ascii: "n"):
                try expectLiteral("null")
                value = .null
            case _JSONByte.minus, UInt8(ascii: "0")...UInt8(ascii: "9"):
                value = .number(try parseNumber())
            default:
                throw unexpected(at: pos)
            }

            // A complete value is in `value`: attach it to the enclosing containers, closing
            // as many as the input closes.
            while true {
                let depth = frames.count
                guard depth > 0 else {
                    skipWhitespace()
                    if pos < end {
                        throw fail("unexpected data after the value", pos)
                    }
                    return value
                }
                let top = depth - 1
                skipWhitespace()
                if frames[top].isObject {
                    let key = frames[top].key
                    frames[top].object.appendUnchecked(key, value)
                    guard pos < end else {
                        throw fail("unterminated object", frames[top].openOffset)
                    }
                    let c = p[pos]
                    if c == _JSONByte.comma {
                        let comma = pos
                        pos += 1
                        skipWhitespace()
                        if pos < end && p[pos] == _JSONByte.closeBrace {
                            throw fail("trailing comma in object", comma)
                        }
                        try parseKeyAndColon()
                        continue expectValue
                    } else if c == _JSONByte.closeBrace {
                        pos += 1
                        value = .object(frames.removeLast().object)
                    } else {
                        throw expectedButFound("expected ',' or '}' after object member", at: pos)
                    }
                } else {
                    frames[top].array.append(value)
                    guard pos < end else {
                        throw fail("unterminated array", frames[top].openOffset)
                    }
                    let c = p[pos]
                    if c == _JSONByte.comma {
                        let comma = pos
                        pos += 1
                        skipWhitespace()
                        if pos < end && p[pos] == _JSONByte.closeBracket {
                            throw fail("trailing comma in array", comma)
                        }
                        continue expectValue
                    } else if c == _JSONByte.closeBracket {
                        pos += 1
                        value = .array(frames.removeLast().array)
                    } else {
                        throw expectedButFound("expected ',' or ']' after array element", at: pos)
                    }
                }
            }
        }
    }

    /// `message`, unless the byte at `offset` is itself invalid UTF-8 (reported as such).
    func expectedButFound(_ message: String, at offset: Int) -> JSONParseError {
        if p[offset] >= 0x80 && decodeScalar(at: offset) == nil {
            return fail("invalid UTF-8", offset)
        }
        return fail(message, offset)
    }

    /// Parses `"key"` `:` for the innermost (object) frame, rejecting duplicates.
    /// Leaves `pos` just after the colon.
    mutating func parseKeyAndColon() throws(JSONParseError) {
        let top = frames.count - 1
        skipWhitespace()
        guard pos < end else {
            throw fail("unterminated object", frames[top].openOffset)
        }
        guard p[pos] == _JSONByte.quote else {
            throw expectedButFound("expected a string key in object", at: pos)
        }
        let keyOffset = pos
        let key = try parseString()
        if frames[top].object.contains(key: key) {
            throw fail("duplicate key \"\(printable(key))\"", keyOffset)
        }
        skipWhitespace()
        guard pos < end else {
            throw fail("unterminated object", frames[top].openOffset)
        }
        guard p[pos] == _JSONByte.colon else {
            throw expectedButFound("expected ':' after object key", at: pos)
        }
        pos += 1
        frames[top].key = key
    }

    /// A key for an error message: truncated and with control characters made visible.
    func printable(_ s: String) -> String {
        var out = ""
        var n = 0
        for scalar in s.unicodeScalars {
            if n == 64 {
                out += "..."
                break
            }
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\u" + hex2(0) + hex2(UInt8(scalar.value))
            } else if scalar == "\"" || scalar == "\\" {
                out += "\\" + String(scalar)
            } else {
                out.unicodeScalars.append(scalar)
            }
            n += 1
        }
        return out
    }

    mutating func expectLiteral(_ word: StaticString) throws(JSONParseError) {
        let n = word.utf8CodeUnitCount
        let w = word.utf8Start
        if end - pos >= n {
            var i = 0
            while i < n && p[pos + i] == w[i] { i += 1 }
            if i == n {
                pos += n
                return
            }
        }
        throw fail("invalid literal (expected '\(word)')", pos)
    }

    mutating func parseNumber() throws(JSONParseError) -> JSONNumber {
        let start = pos
        switch _JSONNumberScan.scan(p, from: start, end: end) {
        case .failure(let message, let offset):
            throw fail(message, offset)
        case .ok(let stop):
            guard stop - start <= JSONParser.maxNumberLength else {
                throw fail("number too long", start)
            }
            pos = stop
            let lexeme = String(decoding: UnsafeBufferPointer(start: p + start, count: stop - start), as: UTF8.self)
            return JSONNumber(uncheckedLexeme: lexeme)
        }
    }

    // MARK: strings

    /// Parses a string starting at the opening quote at `pos`; leaves `pos` after the closing quote.
    mutating func parseString() throws(JSONParseError) -> String {
        let open = pos
        pos += 1
        let start = pos
        // Fast path: no escapes. Scan, validating UTF-8, until the closing quote.
        while pos < end {
            let b = p[pos]
            if b == _JSONByte.quote {
                let s = String(decoding: UnsafeBufferPointer(start: p + start, count: pos - start), as: UTF8.self)
                pos += 1
                return s
            } else if b == _JSONByte.backslash {
                break
            } else if b < 0x20 {
                throw controlCharacter(b, at: pos)
            } else if b < 0x80 {
                pos += 1
            } else {
                pos += try validateMultibyte(at: pos)
            }
        }
        guard pos < end else {
            throw fail("unterminated string", open)
        }
        // Slow path: escapes present. Copy what we have, then decode into `scratch`.
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(start: p + start, count: pos - start))
        while pos < end {
            let b = p[pos]
            if b == _JSONByte.quote {
                pos += 1
                return String(decoding: scratch, as: UTF8.self)
            } else if b == _JSONByte.backslash {
                try parseEscape(stringOpen: open)
            } else if b < 0x20 {
                throw controlCharacter(b, at: pos)
            } else if b < 0x80 {
                // Copy a run of plain ASCII at once.
                let runStart = pos
                pos += 1
                while pos < end {
                    let c = p[pos]
                    if c < 0x20 || c >= 0x80 || c == _JSONByte.quote || c == _JSONByte.backslash { break }
                    pos += 1
                }
                scratch.append(contentsOf: UnsafeBufferPointer(start: p + runStart, count: pos - runStart))
            } else {
                let n = try validateMultibyte(at: pos)
                scratch.append(contentsOf: UnsafeBufferPointer(start: p + pos, count: n))
                pos += n
            }
        }
        throw fail("unterminated string", open)
    }

    func controlCharacter(_ b: UInt8, at offset: Int) -> JSONParseError {
        fail("unescaped control character U+00\(hex2(b).uppercased()) in string", offset)
    }

    /// Decodes the escape sequence at `pos` (a backslash) into `scratch`.
    mutating func parseEscape(stringOpen: Int) throws(JSONParseError) {
        let slash = pos
        guard pos + 1 < end else {
            throw fail("unterminated string", stringOpen)
        }
        let e = p[pos + 1]
        pos += 2
        switch e {
        case _JSONByte.quote: scratch.append(_JSONByte.quote)
        case _JSONByte.backslash: scratch.append(_JSONByte.backslash)
        case _JSONByte.slash: scratch.append(_JSONByte.slash)
        case UInt8(ascii: "b"): scratch.append(0x08)
        case UInt8(ascii: "f"): scratch.append(0x0C)
        case UInt8(ascii: "n"): scratch.append(0x0A)
        case UInt8(ascii: "r"): scratch.append(0x0D)
        case UInt8(ascii: "t"): scratch.append(0x09)
        case UInt8(ascii: "u"):
            let unit = try hex4(escapeAt: slash)
            var scalarValue: UInt32
            if unit >= 0xD800 && unit <= 0xDBFF {
                // High surrogate: a \uDC00-\uDFFF escape must follow immediately.
                guard pos + 1 < end, p[pos] == _JSONByte.backslash, p[pos + 1] == UInt8(ascii: "u") else {
                    throw fail("lone high surrogate in \\u escape", slash)
                }
                let lowSlash = pos
                pos += 2
                let low = try hex4(escapeAt: lowSlash)
                guard low >= 0xDC00 && low <= 0xDFFF else {
                    throw fail("lone high surrogate in \\u escape", slash)
                }
                scalarValue = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
            } else if unit >= 0xDC00 && unit <= 0xDFFF {
                throw fail("lone low surrogate in \\u escape", slash)
            } else {
                scalarValue = UInt32(unit)
            }
            appendUTF8(scalarValue)
        default:
            if e < 0x21 || e >= 0x7F {
                throw fail("invalid escape sequence in string", slash)
            }
            throw fail("invalid escape sequence '\\\(Character(Unicode.Scalar(e)))' in string", slash)
        }
    }

    /// Reads four hex digits at `pos` (just after `\u`), advancing past them.
    mutating func hex4(escapeAt slash: Int) throws(JSONParseError) -> UInt16 {
        guard end - pos >= 4 else {
            throw fail("invalid \\u escape (expected 4 hex digits)", slash)
        }
        var v: UInt16 = 0
        for i in 0..<4 {
            let c = p[pos + i]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: throw fail("invalid \\u escape (expected 4 hex digits)", slash)
            }
            v = v << 4 | UInt16(d)
        }
        pos += 4
        return v
    }

    /// Appends the UTF-8 encoding of a valid (non-surrogate, <= U+10FFFF) scalar value.
    mutating func appendUTF8(_ v: UInt32) {
        if v < 0x80 {
            scratch.append(UInt8(v))
        } else if v < 0x800 {
            scratch.append(UInt8(0xC0 | (v >> 6)))
            scratch.append(UInt8(0x80 | (v & 0x3F)))
        } else if v < 0x10000 {
            scratch.append(UInt8(0xE0 | (v >> 12)))
            scratch.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (v & 0x3F)))
        } else {
            scratch.append(UInt8(0xF0 | (v >> 18)))
            scratch.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
            scratch.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (v & 0x3F)))
        }
    }

    // MARK: UTF-8

    /// Validates the multi-byte sequence whose lead byte (>= 0x80) is at `offset` and returns
    /// its length, or throws "invalid UTF-8".
    func validateMultibyte(at offset: Int) throws(JSONParseError) -> Int {
        guard let (_, n) = decodeScalar(at: offset) else {
            throw fail("invalid UTF-8", offset)
        }
        return n
    }

    /// Decodes one well-formed UTF-8 sequence (per the Unicode table of well-formed byte
    /// sequences: no overlongs, no surrogates, nothing above U+10FFFF) at `offset`.
    func decodeScalar(at offset: Int) -> (Unicode.Scalar, Int)? {
        let b0 = p[offset]
        let available = end - offset
        @inline(__always) func cont(_ i: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> UInt32? {
            guard i < available else { return nil }
            let b = p[offset + i]
            guard b >= lo && b <= hi else { return nil }
            return UInt32(b & 0x3F)
        }
        var v: UInt32
        let n: Int
        switch b0 {
        case 0x00...0x7F:
            v = UInt32(b0)
            n = 1
        case 0xC2...0xDF:
            guard let c1 = cont(1) else { return nil }
            v = (UInt32(b0 & 0x1F) << 6) | c1
            n = 2
        case 0xE0...0xEF:
            let lo: UInt8 = b0 == 0xE0 ? 0xA0 : 0x80
            let hi: UInt8 = b0 == 0xED ? 0x9F : 0xBF
            guard let c1 = cont(1, lo, hi), let c2 = cont(2) else { return nil }
            v = (UInt32(b0 & 0x0F) << 12) | (c1 << 6) | c2
            n = 3
        case 0xF0...0xF4:
            let lo: UInt8 = b0 == 0xF0 ? 0x90 : 0x80
            let hi: UInt8 = b0 == 0xF4 ? 0x8F : 0xBF
            guard let c1 = cont(1, lo, hi), let c2 = cont(2), let c3 = cont(3) else { return nil }
            v = (UInt32(b0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3
            n = 4
        default:
            return nil
        }
        guard let scalar = Unicode.Scalar(v) else { return nil }
        return (scalar, n)
    }
}
