import Testing
import RPC
import TestSupport

// MARK: - Helpers

/// Parses and returns the error, or nil if parsing succeeded.
private func jsonFailure(_ bytes: [UInt8], maxDepth: Int = JSONParser.defaultMaxDepth) -> JSONParseError? {
    do {
        _ = try JSONParser.parse(bytes, maxDepth: maxDepth)
        return nil
    } catch {
        return error
    }
}

private func jsonFailure(_ text: String, maxDepth: Int = JSONParser.defaultMaxDepth) -> JSONParseError? {
    jsonFailure(Array(text.utf8), maxDepth: maxDepth)
}

/// `"` + bytes + `"` as raw input bytes.
private func jsonQuoted(_ inner: [UInt8]) -> [UInt8] {
    [0x22] + inner + [0x22]
}

/// A parse-error expectation: input, a distinctive part of the message, and the offset.
struct JSONErrorCase: Sendable, CustomTestStringConvertible {
    let input: [UInt8]
    let message: String
    let offset: Int
    let label: String

    init(_ text: String, _ message: String, _ offset: Int) {
        self.input = Array(text.utf8)
        self.message = message
        self.offset = offset
        self.label = text
    }

    init(bytes: [UInt8], _ message: String, _ offset: Int, _ label: String) {
        self.input = bytes
        self.message = message
        self.offset = offset
        self.label = label
    }

    var testDescription: String { "\(label.debugDescription) -> \(message)" }
}

private func checkJSONError(_ c: JSONErrorCase, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let error = jsonFailure(c.input) else {
        Issue.record("expected failure for \(c.testDescription)", sourceLocation: sourceLocation)
        return
    }
    #expect(error.message.contains(c.message), "message was: \(error.message)", sourceLocation: sourceLocation)
    #expect(error.offset == c.offset, "offset for \(error.message)", sourceLocation: sourceLocation)
    #expect(error.description == "\(error.message) at byte \(error.offset)", sourceLocation: sourceLocation)
}

// MARK: - Parsing valid documents

@Suite("JSON parsing: valid input")
struct JSONParsingValidTests {
    @Test func scalars() throws {
        #expect(try JSONParser.parse("null") == .null)
        #expect(try JSONParser.parse("true") == .bool(true))
        #expect(try JSONParser.parse("false") == .bool(false))
        #expect(try JSONParser.parse("0") == .number(JSONNumber(0)))
        #expect(try JSONParser.parse("-12") == .number(JSONNumber(-12)))
        #expect(try JSONParser.parse("\"hi\"") == .string("hi"))
        #expect(try JSONParser.parse("\"\"") == .string(""))
        #expect(try JSONParser.parse("[]") == .array([]))
        #expect(try JSONParser.parse("{}") == .object(JSONObject()))
    }

    @Test func whitespaceAroundAndInside() throws {
        let v = try JSONParser.parse(" \t\r\n{ \"a\" :\n[ 1 ,\t2 ] , \"b\"\r:{ } }\n\n")
        #expect(v == ["a": [1, 2], "b": .object([:])])
    }

    @Test func nestedStructure() throws {
        let text = #"{"id":7,"name":"web","tags":["a","b"],"limits":{"mem":null,"cpu":1.5},"ok":true}"#
        let v = try JSONParser.parse(text)
        #expect(v["id"]?.int64Value == 7)
        #expect(v["name"]?.stringValue == "web")
        #expect(v["tags"]?.arrayValue == ["a", "b"])
        #expect(v["limits"]?["mem"]?.isNull == true)
        #expect(v["limits"]?["cpu"] == .number(JSONNumber(lexeme: "1.5")!))
        #expect(v["ok"]?.boolValue == true)
        #expect(v["missing"] == nil)
        #expect(v.objectValue?.keys == ["id", "name", "tags", "limits", "ok"])
    }

    @Test func allEntryPointsAgree() throws {
        let text = #"[1,"x",{"k":[true,null]}]"#
        let bytes = Array(text.utf8)
        let fromString = try JSONParser.parse(text)
        let fromArray = try JSONParser.parse(bytes)
        let fromRaw = try bytes.withUnsafeBytes { raw throws(JSONParseError) in try JSONParser.parse(raw) }
        #expect(fromString == fromArray)
        #expect(fromArray == fromRaw)
    }

    @Test func emptyRawBuffer() {
        do {
            _ = try JSONParser.parse(UnsafeRawBufferPointer(start: nil, count: 0))
            Issue.record("expected failure")
        } catch {
            #expect(error == JSONParseError(offset: 0, message: "empty input"))
        }
    }

    @Test func stringEscapes() throws {
        let v = try JSONParser.parse(#""\"\\\/\b\f\n\r\t\u0041\u00e9\u00E9\u20ac""#)
        #expect(v == .string("\"\\/\u{8}\u{C}\n\r\tA\u{E9}\u{E9}\u{20AC}"))
    }

    @Test func escapedNulYieldsNul() throws {
        let v = try JSONParser.parse(#""a\u0000b""#)
        #expect(v.stringValue.map { Array($0.utf8) } == [0x61, 0x00, 0x62])
    }

    @Test func nonBMPRawAndEscapedAreEqual() throws {
        let raw = try JSONParser.parse("\"x\u{1F600}y\u{10FFFF}\"")
        let escaped = try JSONParser.parse(#""x\ud83d\ude00y\uDBFF\uDFFF""#)
        #expect(raw == escaped)
        #expect(raw.stringValue.map { Array($0.utf8) } == Array("x\u{1F600}y\u{10FFFF}".utf8))
        #expect(raw.stringValue?.unicodeScalars.map(\.value) == [0x78, 0x1F600, 0x79, 0x10FFFF])
    }

    @Test func multibyteUTF8Boundaries() throws {
        // Smallest and largest scalars of each UTF-8 length, plus the edges around surrogates.
        let scalars: [UInt32] = [0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF]
        for value in scalars {
            let s = String(Character(Unicode.Scalar(value)!))
            #expect(try JSONParser.parse(jsonQuoted(Array(s.utf8))) == .string(s), "U+\(String(value, radix: 16))")
        }
    }

    @Test func mixedEscapesAndRawText() throws {
        let v = try JSONParser.parse("\"é\\n\u{1F600}\\t plain \\u00e9\"")
        #expect(v == .string("é\n\u{1F600}\t plain é"))
    }

    @Test func numberLexemesAreKept() throws {
        for lexeme in ["0", "-0", "1.50", "1E+2", "1e-2", "0.0e-0", "-123.456e789", "12345678901234567890123"] {
            let v = try JSONParser.parse(lexeme)
            #expect(v == .number(JSONNumber(lexeme: lexeme)!))
            #expect(v.serialized() == lexeme)
        }
    }

    @Test func numberLengthLimit() throws {
        let ok = "-" + String(repeating: "9", count: 255)
        #expect(try JSONParser.parse(ok).serialized() == ok)
        let long = "[" + String(repeating: "1", count: 257) + "]"
        #expect(jsonFailure(long) == JSONParseError(offset: 1, message: "number too long"))
    }

    @Test func sameKeyInDifferentObjectsIsFine() throws {
        let v = try JSONParser.parse(#"{"a":{"a":1},"b":[{"a":2},{"a":3}]}"#)
        #expect(v["a"]?["a"]?.int64Value == 1)
    }

    @Test func largeObject() throws {
        let members = (0..<500).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        let v = try JSONParser.parse("{" + members + "}")
        let object = try #require(v.objectValue)
        #expect(object.count == 500)
        #expect(object.keys == (0..<500).map { "k\($0)" })
        #expect(object["k321"]?.int64Value == 321)
    }

    @Test func depthExactlyAtLimit() throws {
        let arrays = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(try JSONParser.parse(arrays).serialized() == arrays)
        let objects = String(repeating: "{\"a\":", count: 63) + "{}" + String(repeating: "}", count: 63)
        #expect(try JSONParser.parse(objects).serialized() == objects)
        let mixed = String(repeating: "[{\"k\":", count: 32) + "1" + String(repeating: "}]", count: 32)
        #expect(try JSONParser.parse(mixed).serialized() == mixed)
        let custom = String(repeating: "[", count: 3) + String(repeating: "]", count: 3)
        #expect(try JSONParser.parse(custom, maxDepth: 3).serialized() == custom)
        let deep = String(repeating: "[", count: 1000) + "7" + String(repeating: "]", count: 1000)
        #expect(try JSONParser.parse(deep, maxDepth: 1000).serialized() == deep)
    }

    @Test func maxDepthZeroAllowsOnlyScalars() throws {
        #expect(try JSONParser.parse("\"x\"", maxDepth: 0) == "x")
        #expect(jsonFailure("[]", maxDepth: 0) == JSONParseError(offset: 0, message: "nesting deeper than 0 levels"))
        #expect(jsonFailure("{}", maxDepth: -5) == JSONParseError(offset: 0, message: "nesting deeper than 0 levels"))
    }
}

// MARK: - Parse errors

@Suite("JSON parsing: errors")
struct JSONParsingErrorTests {
    static let structural: [JSONErrorCase] = [
        JSONErrorCase("", "empty input", 0),
        JSONErrorCase("  \n\t\r ", "empty input", 6),
        JSONErrorCase("1 2", "unexpected data after the value", 2),
        JSONErrorCase("{} []", "unexpected data after the value", 3),
        JSONErrorCase("\"a\"\"b\"", "unexpected data after the value", 3),
        JSONErrorCase("nullx", "unexpected data after the value", 4),
        JSONErrorCase("0x10", "unexpected data after the value", 1),
        JSONErrorCase("[1,]", "trailing comma in array", 2),
        JSONErrorCase("[1, \n]", "trailing comma in array", 2),
        JSONErrorCase("{\"a\":1,}", "trailing comma in object", 6),
        JSONErrorCase("[,1]", "unexpected character ','", 1),
        JSONErrorCase("[1,,2]", "unexpected character ','", 3),
        JSONErrorCase("[1 2]", "expected ',' or ']' after array element", 3),
        JSONErrorCase("[1}", "expected ',' or ']' after array element", 2),
        JSONErrorCase("{\"a\":1 \"b\":2}", "expected ',' or '}' after object member", 7),
        JSONErrorCase("{\"a\":1]", "expected ',' or '}' after object member", 6),
        JSONErrorCase("{\"a\" 1}", "expected ':' after object key", 5),
        JSONErrorCase("{\"a\"=1}", "expected ':' after object key", 4),
        JSONErrorCase("{1:2}", "expected a string key in object", 1),
        JSONErrorCase("{\"a\":1,2}", "expected a string key in object", 7),
        JSONErrorCase("{'a':1}", "expected a string key in object", 1),
        JSONErrorCase("{\"a\":}", "unexpected character '}'", 5),
        JSONErrorCase("]", "unexpected character ']'", 0),
        JSONErrorCase("\"abc", "unterminated string", 0),
        JSONErrorCase("[\"abc\\\"]", "unterminated string", 1),
        JSONErrorCase("\"ab\\", "unterminated string", 0),
        JSONErrorCase("[", "unterminated array", 0),
        JSONErrorCase("  [1,2", "unterminated array", 2),
        JSONErrorCase("[1,2,", "unterminated array", 0),
        JSONErrorCase("[[1],[2]", "unterminated array", 0),
        JSONErrorCase("{", "unterminated object", 0),
        JSONErrorCase("{\"a\"", "unterminated object", 0),
        JSONErrorCase("{\"a\":", "unterminated object", 0),
        JSONErrorCase("{\"a\":1", "unterminated object", 0),
        JSONErrorCase("{\"a\":1,", "unterminated object", 0),
        JSONErrorCase("[{\"a\":[]}", "unterminated array", 0),
        JSONErrorCase("tru", "invalid literal (expected 'true')", 0),
        JSONErrorCase("[fals]", "invalid literal (expected 'false')", 1),
        JSONErrorCase("nul", "invalid literal (expected 'null')", 0),
        JSONErrorCase("nulL", "invalid literal (expected 'null')", 0),
        JSONErrorCase("True", "unexpected character 'T'", 0),
        JSONErrorCase("undefined", "unexpected character 'u'", 0),
        JSONErrorCase("é", "unexpected character 'é'", 0),
    ]

    static let numbers: [JSONErrorCase] = [
        JSONErrorCase("01", "leading zeros are not allowed", 0),
        JSONErrorCase("[-007]", "leading zeros are not allowed", 1),
        JSONErrorCase("00.5", "leading zeros are not allowed", 0),
        JSONErrorCase("+1", "unexpected character '+'", 0),
        JSONErrorCase(".5", "unexpected character '.'", 0),
        JSONErrorCase("NaN", "unexpected character 'N'", 0),
        JSONErrorCase("-NaN", "expected a digit after '-'", 1),
        JSONErrorCase("Infinity", "unexpected character 'I'", 0),
        JSONErrorCase("-Infinity", "expected a digit after '-'", 1),
        JSONErrorCase("-", "expected a digit after '-'", 1),
        JSONErrorCase("- 1", "expected a digit after '-'", 1),
        JSONErrorCase("1.", "expected a digit after the decimal point", 2),
        JSONErrorCase("1.e5", "expected a digit after the decimal point", 2),
        JSONErrorCase("1e", "expected a digit in the exponent", 2),
        JSONErrorCase("1e+", "expected a digit in the exponent", 3),
        JSONErrorCase("1E-x", "expected a digit in the exponent", 3),
        JSONErrorCase("0x1F", "unexpected data after the value", 1),
        JSONErrorCase("1.5.5", "unexpected data after the value", 3),
        JSONErrorCase("[" + String(repeating: "1", count: 257) + "]", "number too long", 1),
        JSONErrorCase("0." + String(repeating: "0", count: 300), "number too long", 0),
    ]

    static let strings: [JSONErrorCase] = [
        JSONErrorCase("\"a\nb\"", "unescaped control character U+000A in string", 2),
        JSONErrorCase("\"\t\"", "unescaped control character U+0009 in string", 1),
        JSONErrorCase("[\"ok\",\"\u{1F}\"]", "unescaped control character U+001F in string", 7),
        JSONErrorCase(bytes: jsonQuoted([0x61, 0x00]), "unescaped control character U+0000 in string", 2, "\"a<NUL>\""),
        JSONErrorCase("{\"a\rb\":1}", "unescaped control character U+000D in string", 3),
        JSONErrorCase(#""\x""#, "invalid escape sequence '\\x' in string", 1),
        JSONErrorCase(#""ab\'""#, "invalid escape sequence '\\'' in string", 3),
        JSONErrorCase(#""\U0041""#, "invalid escape sequence '\\U' in string", 1),
        JSONErrorCase(#""\0""#, "invalid escape sequence '\\0' in string", 1),
        JSONErrorCase("\"\\\n\"", "invalid escape sequence in string", 1),
        JSONErrorCase(#""\u12""#, "invalid \\u escape", 1),
        JSONErrorCase(#""\u12G4""#, "invalid \\u escape", 1),
        JSONErrorCase(#""\u""#, "invalid \\u escape", 1),
        JSONErrorCase(#""\u 123""#, "invalid \\u escape", 1),
        JSONErrorCase(#""\uD800""#, "lone high surrogate", 1),
        JSONErrorCase(#""\udbff""#, "lone high surrogate", 1),
        JSONErrorCase(#""x\uDC00""#, "lone low surrogate", 2),
        JSONErrorCase(#""\uDFFF\uD800""#, "lone low surrogate", 1),
        JSONErrorCase(#""\uD800\u0041""#, "lone high surrogate", 1),
        JSONErrorCase(#""\uD800\uD800""#, "lone high surrogate", 1),
        JSONErrorCase(#""\uD800x""#, "lone high surrogate", 1),
        JSONErrorCase(#""\uD800\n""#, "lone high surrogate", 1),
        JSONErrorCase(#""\uD800\uDC0""#, "invalid \\u escape", 7),
        JSONErrorCase(#""\uD800"#, "lone high surrogate", 1),
    ]

    static let utf8: [JSONErrorCase] = [
        JSONErrorCase(bytes: jsonQuoted([0x80]), "invalid UTF-8", 1, "lone continuation byte"),
        JSONErrorCase(bytes: jsonQuoted([0x61, 0xBF, 0x61]), "invalid UTF-8", 2, "stray continuation byte"),
        JSONErrorCase(bytes: jsonQuoted([0xC0, 0xAF]), "invalid UTF-8", 1, "overlong 2-byte C0"),
        JSONErrorCase(bytes: jsonQuoted([0xC1, 0xBF]), "invalid UTF-8", 1, "overlong 2-byte C1"),
        JSONErrorCase(bytes: jsonQuoted([0xE0, 0x80, 0xAF]), "invalid UTF-8", 1, "overlong 3-byte"),
        JSONErrorCase(bytes: jsonQuoted([0xE0, 0x9F, 0xBF]), "invalid UTF-8", 1, "overlong 3-byte U+07FF"),
        JSONErrorCase(bytes: jsonQuoted([0xF0, 0x80, 0x80, 0xAF]), "invalid UTF-8", 1, "overlong 4-byte"),
        JSONErrorCase(bytes: jsonQuoted([0xF0, 0x8F, 0xBF, 0xBF]), "invalid UTF-8", 1, "overlong 4-byte U+FFFF"),
        JSONErrorCase(bytes: jsonQuoted([0xED, 0xA0, 0x80]), "invalid UTF-8", 1, "UTF-8 encoded high surrogate"),
        JSONErrorCase(bytes: jsonQuoted([0xED, 0xBF, 0xBF]), "invalid UTF-8", 1, "UTF-8 encoded low surrogate"),
        JSONErrorCase(bytes: jsonQuoted([0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]), "invalid UTF-8", 1, "CESU-8 pair"),
        JSONErrorCase(bytes: jsonQuoted([0xF4, 0x90, 0x80, 0x80]), "invalid UTF-8", 1, "U+110000"),
        JSONErrorCase(bytes: jsonQuoted([0xF5, 0x80, 0x80, 0x80]), "invalid UTF-8", 1, "F5 lead"),
        JSONErrorCase(bytes: jsonQuoted([0xF8, 0x88, 0x80, 0x80, 0x80]), "invalid UTF-8", 1, "5-byte form"),
        JSONErrorCase(bytes: jsonQuoted([0xFE]), "invalid UTF-8", 1, "FE"),
        JSONErrorCase(bytes: jsonQuoted([0xFF]), "invalid UTF-8", 1, "FF"),
        JSONErrorCase(bytes: jsonQuoted([0xC3]), "invalid UTF-8", 1, "truncated 2-byte before quote"),
        JSONErrorCase(bytes: jsonQuoted([0xE2, 0x82]), "invalid UTF-8", 1, "truncated 3-byte before quote"),
        JSONErrorCase(bytes: jsonQuoted([0xF0, 0x9F, 0x98]), "invalid UTF-8", 1, "truncated 4-byte before quote"),
        JSONErrorCase(bytes: [0x22, 0x61, 0xF0, 0x9F, 0x98], "invalid UTF-8", 2, "truncated at end of input"),
        JSONErrorCase(bytes: [0x22, 0xC3], "invalid UTF-8", 1, "truncated lead at end of input"),
        JSONErrorCase(bytes: jsonQuoted([0xE2, 0x28, 0xA1]), "invalid UTF-8", 1, "bad second byte"),
        JSONErrorCase(bytes: Array("{\"".utf8) + [0xFF] + Array("\":1}".utf8), "invalid UTF-8", 2, "in key"),
        JSONErrorCase(bytes: Array("\"\\n".utf8) + [0xC0, 0x80, 0x22], "invalid UTF-8", 3, "after an escape"),
        JSONErrorCase(bytes: [0xFF], "invalid UTF-8", 0, "FF outside string"),
        JSONErrorCase(bytes: [0xEF, 0xBB, 0xBF, 0x31], "unexpected character", 0, "byte-order mark"),
        JSONErrorCase(bytes: Array("[1,".utf8) + [0xC3, 0x28] + [0x5D], "invalid UTF-8", 3, "invalid in array"),
        JSONErrorCase(bytes: Array("[1".utf8) + [0x80] + [0x5D], "invalid UTF-8", 2, "invalid after element"),
        JSONErrorCase(bytes: Array("1 ".utf8) + [0xFF], "unexpected data after the value", 2, "garbage after value"),
    ]

    static let nulOutsideStrings: [JSONErrorCase] = [
        JSONErrorCase(bytes: [0x00], "unexpected byte 0x00", 0, "NUL alone"),
        JSONErrorCase(bytes: Array("[1,".utf8) + [0x00, 0x5D], "unexpected byte 0x00", 3, "NUL as element"),
        JSONErrorCase(bytes: Array("[1".utf8) + [0x00, 0x5D], "expected ',' or ']' after array element", 2, "NUL after element"),
        JSONErrorCase(bytes: Array("{\"a\"".utf8) + [0x00] + Array(":1}".utf8), "expected ':' after object key", 4, "NUL before colon"),
        JSONErrorCase(bytes: Array("true".utf8) + [0x00], "unexpected data after the value", 4, "NUL after value"),
        JSONErrorCase(bytes: [0x00] + Array("1".utf8), "unexpected byte 0x00", 0, "NUL before value"),
        JSONErrorCase(bytes: [0x0B, 0x31], "unexpected byte 0x0b", 0, "vertical tab is not whitespace"),
        JSONErrorCase(bytes: [0x0C, 0x31], "unexpected byte 0x0c", 0, "form feed is not whitespace"),
    ]

    @Test(arguments: structural) func structuralErrors(_ c: JSONErrorCase) { checkJSONError(c) }
    @Test(arguments: numbers) func numberErrors(_ c: JSONErrorCase) { checkJSONError(c) }
    @Test(arguments: strings) func stringErrors(_ c: JSONErrorCase) { checkJSONError(c) }
    @Test(arguments: utf8) func invalidUTF8(_ c: JSONErrorCase) { checkJSONError(c) }
    @Test(arguments: nulOutsideStrings) func controlBytesOutsideStrings(_ c: JSONErrorCase) { checkJSONError(c) }

    @Test func duplicateKeys() {
        #expect(jsonFailure(#"{"a":1,"a":2}"#) == JSONParseError(offset: 7, message: #"duplicate key "a""#))
        #expect(jsonFailure(#"{"a":1,"b":2,"a":3}"#)?.message == #"duplicate key "a""#)
        #expect(jsonFailure(#"{"a":{"x":1,"x":2}}"#) == JSONParseError(offset: 12, message: #"duplicate key "x""#))
        #expect(jsonFailure(#"[{"name":1},{"name":1,"name":2}]"#)?.message == #"duplicate key "name""#)
    }

    @Test func duplicateKeysComparedAfterUnescaping() {
        #expect(jsonFailure(#"{"a":1,"\u0061":2}"#) == JSONParseError(offset: 7, message: #"duplicate key "a""#))
        #expect(jsonFailure(#"{"\u00e9":1,"é":2}"#)?.message == "duplicate key \"é\"")
        #expect(jsonFailure(#"{"\ud83d\ude00":1,"😀":2}"#)?.message == "duplicate key \"😀\"")
        #expect(jsonFailure(#"{"a/b":1,"a\/b":2}"#)?.message == #"duplicate key "a/b""#)
    }

    @Test func duplicateKeyMessageEscapesControlCharacters() {
        #expect(jsonFailure(#"{"a\nb":1,"a\nb":2}"#)?.message == #"duplicate key "a\u000ab""#)
        #expect(jsonFailure(#"{"q\"":1,"q\"":2}"#)?.message == #"duplicate key "q\"""#)
    }

    @Test func duplicateKeysInLargeObject() {
        // Large enough that JSONObject switches to its hashed index.
        var members = (0..<200).map { "\"key\($0)\":\($0)" }
        members.append("\"key137\":0")
        let text = "{" + members.joined(separator: ",") + "}"
        let error = jsonFailure(text)
        #expect(error?.message == #"duplicate key "key137""#)
        #expect(error?.offset == text.utf8.count - 11)
    }

    @Test func canonicallyEquivalentKeysAreDuplicates() {
        // Documented: keys use Swift String equality, so NFC and NFD spellings collide.
        #expect(jsonFailure("{\"\u{E9}\":1,\"e\u{301}\":2}")?.message.hasPrefix("duplicate key") == true)
    }

    @Test func depthLimit() {
        let over = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(jsonFailure(over) == JSONParseError(offset: 64, message: "nesting deeper than 64 levels"))
        let overObjects = String(repeating: "{\"a\":", count: 64) + "{}" + String(repeating: "}", count: 64)
        #expect(jsonFailure(overObjects) == JSONParseError(offset: 64 * 5, message: "nesting deeper than 64 levels"))
        let custom = String(repeating: "[", count: 4) + String(repeating: "]", count: 4)
        #expect(jsonFailure(custom, maxDepth: 3) == JSONParseError(offset: 3, message: "nesting deeper than 3 levels"))
        let thousand = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        #expect(jsonFailure(thousand)?.message == "nesting deeper than 64 levels")
    }

    @Test func millionOpenBracketsFailCleanly() {
        let bytes = [UInt8](repeating: UInt8(ascii: "["), count: 1_000_000)
        #expect(jsonFailure(bytes) == JSONParseError(offset: 64, message: "nesting deeper than 64 levels"))
        let braces = [UInt8](repeating: UInt8(ascii: "{"), count: 1_000_000)
        #expect(jsonFailure(braces) == JSONParseError(offset: 1, message: "expected a string key in object"))
        let keyed = [UInt8](Array(String(repeating: "{\"a\":", count: 200_000).utf8))
        #expect(jsonFailure(keyed)?.message == "nesting deeper than 64 levels")
    }

    @Test func hugeMaxDepthIsIterativeNotRecursive() {
        // With the limit effectively disabled the parser must still not use the call stack;
        // the innermost unclosed bracket is reported.
        let bytes = [UInt8](repeating: UInt8(ascii: "["), count: 200_000)
        #expect(jsonFailure(bytes, maxDepth: Int.max) == JSONParseError(offset: 199_999, message: "unterminated array"))
    }

    @Test func everyProperPrefixOfADocumentFails() throws {
        let text = #"{"a":[1,-2.5e3,"x\u00e9\n😀",true,false,null,{}],"b":{"c":[]}}"#
        let bytes = Array(text.utf8)
        _ = try JSONParser.parse(bytes)
        for n in 0..<bytes.count {
            #expect(jsonFailure(Array(bytes[0..<n])) != nil, "prefix of length \(n)")
        }
    }

    @Test func randomMutationsNeverCrash() {
        // A tiny deterministic fuzz pass: errors must be reported, never traps.
        let seed = Array(#"{"jsonrpc":"2.0","id":12,"method":"x","params":{"a":[1,2.5e-3,"é\ud83d\ude00",null,true]}}"#.utf8)
        var rng = SplitMix64(42)
        let interesting: [UInt8] = [0x00, 0x22, 0x5C, 0x5B, 0x5D, 0x7B, 0x7D, 0x2C, 0x3A, 0x75, 0x80, 0xBF, 0xC0, 0xE0, 0xED, 0xF0, 0xF4, 0xFF, 0x30, 0x2D, 0x65, 0x2E]
        var failures = 0
        for _ in 0..<5_000 {
            var bytes = seed
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: bytes[i] = interesting.randomElement(using: &rng) ?? 0
                case 1: bytes[i] = UInt8.random(in: 0...255, using: &rng)
                case 2: bytes.remove(at: i)
                default: bytes.insert(interesting.randomElement(using: &rng) ?? 0, at: i)
                }
                if bytes.isEmpty { bytes = [0x5B] }
            }
            do {
                let v = try JSONParser.parse(bytes)
                // Whatever parsed must serialize and re-parse to the same value.
                #expect(try JSONParser.parse(v.serialized()) == v)
            } catch {
                failures += 1
                #expect(error.offset >= 0 && error.offset <= bytes.count)
                #expect(!error.message.isEmpty)
            }
        }
        #expect(failures > 0)
    }
}

// MARK: - JSONNumber

@Suite("JSONNumber")
struct JSONNumberTests {
    @Test(arguments: ["0", "-0", "1", "-1", "10", "123456789", "0.5", "-0.5", "1e5", "1E5", "1e+5", "1e-5",
                      "1.25e-10", "0e0", "-0.0E-00", "9999999999999999999999999999"])
    func validLexemes(_ lexeme: String) {
        #expect(JSONNumber(lexeme: lexeme)?.lexeme == lexeme)
    }

    @Test(arguments: ["", "-", "+1", "01", "-01", "00", ".5", "5.", "1.e1", "1e", "1e+", "0x1", "NaN", "Infinity",
                      "-Infinity", " 1", "1 ", "1_000", "1,5", "１", "1e1.5", "--1", "1-", "e5"])
    func invalidLexemes(_ lexeme: String) {
        #expect(JSONNumber(lexeme: lexeme) == nil)
    }

    @Test func int64Exactness() {
        let cases: [(String, Int64?)] = [
            ("0", 0), ("-0", 0), ("10", 10), ("-10", -10), ("1e2", 100), ("1E+2", 100), ("1.0", 1),
            ("1.50e1", 15), ("150e-1", 15), ("15e-1", nil), ("1.5", nil), ("0.1", nil), ("-0.0", 0),
            ("0e999999999999999999999", 0), ("0.000", 0), ("100e-2", 1), ("1e-1", nil),
            ("1e400", nil), ("1e-400", nil), ("123.000000", 123),
            ("9223372036854775807", Int64.max), ("-9223372036854775808", Int64.min),
            ("9223372036854775808", nil), ("-9223372036854775809", nil),
            ("9.223372036854775807e18", Int64.max), ("-9.223372036854775808e18", Int64.min),
            ("92233720368547758070e-1", Int64.max), ("1e18", 1_000_000_000_000_000_000), ("1e19", nil),
            ("000", nil),  // not a valid lexeme, cannot be constructed; see below
        ]
        for (lexeme, expected) in cases {
            guard let number = JSONNumber(lexeme: lexeme) else {
                #expect(lexeme == "000")
                continue
            }
            #expect(number.int64Value == expected, "\(lexeme)")
        }
    }

    @Test func uint64Exactness() {
        let cases: [(String, UInt64?)] = [
            ("0", 0), ("-0", 0), ("42", 42), ("-1", nil), ("1.5", nil), ("2e3", 2000),
            ("18446744073709551615", UInt64.max), ("18446744073709551616", nil),
            ("1.8446744073709551615e19", UInt64.max), ("1e20", nil), ("-0e5", 0),
            ("9223372036854775808", 9_223_372_036_854_775_808),
        ]
        for (lexeme, expected) in cases {
            #expect(JSONNumber(lexeme: lexeme)?.uint64Value == expected, "\(lexeme)")
        }
    }

    @Test func doubleValue() throws {
        #expect(JSONNumber(lexeme: "1.5")?.doubleValue == 1.5)
        #expect(JSONNumber(lexeme: "-2.5e-3")?.doubleValue == -0.0025)
        #expect(JSONNumber(lexeme: "10")?.doubleValue == 10)
        #expect(JSONNumber(lexeme: "1e308")?.doubleValue == 1e308)
        #expect(JSONNumber(lexeme: "1e309")?.doubleValue == nil)
        #expect(JSONNumber(lexeme: "-1e309")?.doubleValue == nil)
        #expect(JSONNumber(lexeme: "1e-400")?.doubleValue == 0)
        let negativeZero = try #require(JSONNumber(lexeme: "-0")?.doubleValue)
        #expect(negativeZero == 0 && negativeZero.sign == .minus)
        #expect(JSONNumber(lexeme: "9007199254740993")?.doubleValue == 9_007_199_254_740_992)
    }

    @Test func integerInitializers() {
        #expect(JSONNumber(0).lexeme == "0")
        #expect(JSONNumber(-5).lexeme == "-5")
        #expect(JSONNumber(Int.min).lexeme == "-9223372036854775808")
        #expect(JSONNumber(Int64.max).lexeme == "9223372036854775807")
        #expect(JSONNumber(UInt64.max).lexeme == "18446744073709551615")
        #expect(JSONNumber(Int32.min).lexeme == "-2147483648")
        #expect(JSONNumber(UInt32.max).lexeme == "4294967295")
        #expect(JSONNumber(Int64.min).int64Value == Int64.min)
        #expect(JSONNumber(UInt64.max).uint64Value == UInt64.max)
    }

    @Test func doubleInitializer() throws {
        #expect(JSONNumber(Double.nan) == nil)
        #expect(JSONNumber(Double.infinity) == nil)
        #expect(JSONNumber(-Double.infinity) == nil)
        #expect(JSONNumber(1.5)?.lexeme == "1.5")
        let samples: [Double] = [0, -0.0, 1, 0.1, -2.5, 1e-5, 1e16, 1e21, 123456.789, Double.leastNonzeroMagnitude,
                                 Double.greatestFiniteMagnitude, -Double.leastNormalMagnitude, 1.0 / 3.0]
        for d in samples {
            let n = try #require(JSONNumber(d), "\(d)")
            #expect(JSONNumber(lexeme: n.lexeme) == n, "lexeme \(n.lexeme) must be valid JSON")
            #expect(n.doubleValue == d, "\(d) round-trips through \(n.lexeme)")
        }
        #expect(JSONNumber(-0.0)?.doubleValue?.sign == .minus)
    }

    @Test func equalityIsByLexeme() {
        #expect(JSONNumber(lexeme: "1") == JSONNumber(1))
        #expect(JSONNumber(lexeme: "1") != JSONNumber(lexeme: "1.0"))
        #expect(JSONNumber(lexeme: "1e2") != JSONNumber(100))
        #expect(JSONNumber(lexeme: "1e2")?.int64Value == JSONNumber(100).int64Value)
        #expect(Set([JSONNumber(1), JSONNumber(lexeme: "1")!, JSONNumber(lexeme: "1.0")!]).count == 2)
        #expect(JSONNumber(lexeme: "-0.5e3")?.description == "-0.5e3")
    }
}

// MARK: - JSONObject and JSONValue conveniences

@Suite("JSONObject and JSONValue")
struct JSONObjectTests {
    @Test func orderedAndMutable() {
        var o: JSONObject = ["b": 1, "a": 2, "c": 3]
        #expect(o.keys == ["b", "a", "c"])
        #expect(o.count == 3 && !o.isEmpty)
        o["a"] = "two"
        #expect(o.keys == ["b", "a", "c"])
        #expect(o["a"] == "two")
        o["d"] = .null
        #expect(o.keys == ["b", "a", "c", "d"])
        #expect(o["d"] == .null)
        o["b"] = nil
        #expect(o.keys == ["a", "c", "d"])
        #expect(o["b"] == nil)
        o["zzz"] = nil
        #expect(o.count == 3)
        #expect(Array(o.map(\.key)) == ["a", "c", "d"])
        #expect(JSONObject().isEmpty)
    }

    @Test func iterationInOrder() {
        let o = JSONObject([("x", 1), ("y", true), ("z", "s")])
        var seen: [String] = []
        for (key, value) in o {
            seen.append(key)
            #expect(o[key] == value)
        }
        #expect(seen == ["x", "y", "z"])
    }

    @Test func duplicatePairsReplaceInPlace() {
        let o = JSONObject([("a", 1), ("b", 2), ("a", 3)])
        #expect(o.keys == ["a", "b"])
        #expect(o["a"] == 3)
        let literal: JSONValue = ["k": 1, "j": 2, "k": 9]
        #expect(literal.serialized() == #"{"k":9,"j":2}"#)
    }

    @Test func equalityIsOrderInsensitive() {
        let a: JSONObject = ["x": 1, "y": [true, nil]]
        let b: JSONObject = ["y": [true, nil], "x": 1]
        #expect(a == b)
        #expect(JSONValue.object(a) == JSONValue.object(b))
        #expect(a != ["x": 1, "y": [true]])
        #expect(a != ["x": 1])
        #expect(a != ["x": 1, "z": [true, nil]])
        #expect(JSONObject() == JSONObject())
    }

    @Test func largeObjectIndexStaysConsistent() {
        var o = JSONObject()
        for i in 0..<100 { o["k\(i)"] = JSONValue(integerLiteral: i) }
        #expect(o.count == 100)
        #expect(o["k57"]?.int64Value == 57)
        o["k57"] = "replaced"
        #expect(o.keys[57] == "k57" && o["k57"] == "replaced")
        for i in stride(from: 0, to: 100, by: 2) { o["k\(i)"] = nil }
        #expect(o.count == 50)
        #expect(o.keys == stride(from: 1, to: 100, by: 2).map { "k\($0)" })
        for i in 0..<100 { #expect((o["k\(i)"] != nil) == (i % 2 == 1), "k\(i)") }
        for i in stride(from: 1, to: 95, by: 2) { o["k\(i)"] = nil }
        #expect(o.keys == ["k95", "k97", "k99"])
        #expect(o["k97"]?.int64Value == 97)
        o["new"] = 1
        #expect(o.keys.last == "new" && o["new"] == 1)
        var big = JSONObject()
        for i in (0..<40).reversed() { big["k\(i)"] = JSONValue(integerLiteral: i) }
        var same = JSONObject()
        for i in 0..<40 { same["k\(i)"] = JSONValue(integerLiteral: i) }
        #expect(big == same)
        same["k3"] = 4
        #expect(big != same)
    }

    @Test func literalsAndAccessors() {
        let v: JSONValue = ["s": "str", "b": false, "i": -3, "n": nil, "a": [1, "x"], "o": ["k": true]]
        #expect(v["s"]?.stringValue == "str")
        #expect(v["b"]?.boolValue == false)
        #expect(v["i"]?.int64Value == -3)
        #expect(v["n"]?.isNull == true)
        #expect(v["a"]?.arrayValue == [1, "x"])
        #expect(v["o"]?.objectValue == ["k": true])
        #expect(v.objectValue?.keys == ["s", "b", "i", "n", "a", "o"])
        // Type mismatches give nil.
        #expect(v["s"]?.boolValue == nil)
        #expect(v["s"]?.int64Value == nil)
        #expect(v["i"]?.stringValue == nil)
        #expect(v["a"]?.objectValue == nil)
        #expect(v["o"]?.arrayValue == nil)
        #expect(v["s"]?.isNull == false)
        #expect(v.stringValue == nil)
        let notObject: JSONValue = [1, 2]
        #expect(notObject["s"] == nil)
        let fractional = JSONValue.number(JSONNumber(lexeme: "2.5")!)
        #expect(fractional.int64Value == nil)
    }
}

// MARK: - Serializer

@Suite("JSON serializer")
struct JSONSerializerTests {
    @Test func exactCompactOutput() {
        let v: JSONValue = [
            "jsonrpc": "2.0",
            "id": 1,
            "result": ["name": "web", "pids": [10, 11], "empty": [:], "none": [], "ok": true, "err": nil],
            "note": "tab\there \"quoted\" back\\slash / é 😀",
        ]
        let expected = #"{"jsonrpc":"2.0","id":1,"result":{"name":"web","pids":[10,11],"empty":{},"none":[],"ok":true,"err":null},"note":"tab\there \"quoted\" back\\slash / é 😀"}"#
        #expect(v.serialized() == expected)
    }

    @Test func roundTripOfEveryKind() throws {
        let values: [JSONValue] = [
            .null, true, false, 0, -1, .number(JSONNumber(lexeme: "1.5e-7")!), .number(JSONNumber(UInt64.max)),
            "", "plain", "\u{0}\u{1F}\u{7F}\u{2028}\u{2029}\"\\/\n", "é😀\u{10FFFF}",
            [], [1, [2, [3, []]]], [:], ["a": ["b": ["c": nil]]], ["": ""],
        ]
        for v in values {
            let text = v.serialized()
            #expect(try JSONParser.parse(text) == v, "\(text)")
            var bytes: [UInt8] = []
            v.serialize(into: &bytes)
            #expect(bytes == Array(text.utf8))
        }
    }

    @Test func keyOrderPreserved() throws {
        let text = #"{"z":1,"a":2,"m":{"y":1,"b":2},"c":3}"#
        #expect(try JSONParser.parse(text).serialized() == text)
        var o = JSONObject()
        o["third"] = 3
        o["first"] = 1
        o["second"] = 2
        #expect(JSONValue.object(o).serialized() == #"{"third":3,"first":1,"second":2}"#)
    }

    @Test func serializeIntoAppends() {
        var buffer = Array("prefix:".utf8)
        JSONValue.array([1, "x"]).serialize(into: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self) == #"prefix:[1,"x"]"#)
    }

    @Test func everyControlCharacterIsEscaped() {
        let short: [UInt8: String] = [0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"]
        let hex = Array("0123456789abcdef")
        for c in UInt8(0)...0x1F {
            let s = String(Character(Unicode.Scalar(c)))
            let expected = short[c] ?? "\\u00\(hex[Int(c >> 4)])\(hex[Int(c & 0xF)])"
            #expect(JSONValue.string(s).serialized() == "\"\(expected)\"", "U+\(c)")
        }
        #expect(JSONValue.string("\u{1F}").serialized() == #""\u001f""#)
        #expect(JSONValue.string("\u{1B}").serialized() == #""\u001b""#)
    }

    @Test func specialCharacters() {
        #expect(JSONValue.string("a\u{7F}b").serialized() == #""a\u007fb""#)
        #expect(JSONValue.string("\u{2028}x\u{2029}").serialized() == #""\u2028x\u2029""#)
        #expect(JSONValue.string("\"\\").serialized() == #""\"\\""#)
        #expect(JSONValue.string("/").serialized() == #""/""#)
        // Neighbours of U+2028/2029 and other non-ASCII stay raw.
        let raw = "\u{2027}\u{202A}\u{20AC}\u{80}\u{A0}é😀\u{FEFF}"
        #expect(JSONValue.string(raw).serialized() == "\"\(raw)\"")
        // Keys are escaped the same way.
        #expect(JSONValue.object(["a\nb\u{2028}": 1]).serialized() == #"{"a\nb\u2028":1}"#)
    }

    @Test func outputNeverContainsNewlines() throws {
        var rng = SplitMix64(7)
        let pool: [Unicode.Scalar] = [
            "\n", "\r", "\t", "\u{0}", "\u{1}", "\u{B}", "\u{C}", "\u{1F}", "\u{7F}", "\u{85}", "\u{2028}", "\u{2029}",
            "\"", "\\", "/", "a", "Z", " ", "é", "\u{E2}", "\u{20AC}", "\u{FFFF}", "\u{1F600}", "\u{10FFFF}",
        ]
        for _ in 0..<3_000 {
            var s = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0...24, using: &rng) {
                if Bool.random(using: &rng), let any = Unicode.Scalar(UInt32.random(in: 0...0x2FFFF, using: &rng)) {
                    s.append(any)
                } else {
                    s.append(pool.randomElement(using: &rng) ?? "a")
                }
            }
            let string = String(s)
            let value: JSONValue = [.string(string), .object([string: .string(string)])]
            var bytes: [UInt8] = []
            value.serialize(into: &bytes)
            #expect(!bytes.contains(0x0A))
            #expect(!bytes.contains(0x0D))
            #expect(!bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }))
            let back = try JSONParser.parse(bytes)
            #expect(back.arrayValue?.first?.stringValue.map { Array($0.utf8) } == Array(string.utf8))
            #expect(back == value)
        }
    }

    @Test func randomValuesRoundTrip() throws {
        var rng = SplitMix64(2024)
        func randomValue(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 3 ? 5 : 7), using: &rng) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &rng))
            case 2:
                if Bool.random(using: &rng) {
                    return .number(JSONNumber(Int64.random(in: Int64.min...Int64.max, using: &rng)))
                }
                return .number(JSONNumber(Double.random(in: -1e300...1e300, using: &rng)) ?? JSONNumber(0))
            case 3, 4:
                let n = Int.random(in: 0...8, using: &rng)
                return .string(String(String.UnicodeScalarView((0..<n).compactMap { _ in
                    Unicode.Scalar(UInt32.random(in: 0...0x300, using: &rng))
                })))
            case 5:
                return .array((0..<Int.random(in: 0...4, using: &rng)).map { _ in randomValue(depth + 1) })
            default:
                var o = JSONObject()
                for i in 0..<Int.random(in: 0...20, using: &rng) { o["k\(i)\u{E9}"] = randomValue(depth + 1) }
                return .object(o)
            }
        }
        for _ in 0..<500 {
            let v = randomValue(0)
            let text = v.serialized()
            let back = try JSONParser.parse(text)
            #expect(back == v)
            #expect(back.serialized() == text)
        }
    }
}
