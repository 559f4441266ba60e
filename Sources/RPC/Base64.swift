/// RFC 4648 base64 with the standard alphabet and `=` padding: how streamed stdio
/// carries bytes in JSON strings (PROTOCOL.md §8.18). Decoding is strict: no line
/// breaks, no whitespace, padding where RFC 4648 puts it and nowhere else, and the
/// unused bits of the last character zero, so every byte string has exactly one
/// spelling.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// The 6-bit value of each character, 0xFF for what is not in the alphabet.
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, character) in alphabet.enumerated() { table[Int(character)] = UInt8(index) }
        return table
    }()

    /// How long the encoding of `count` bytes is.
    public static func encodedLength(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Writes the encoding of `bytes` to `out`, which holds at least encodedLength(bytes.count).
    public static func encode(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        alphabet.withUnsafeBufferPointer { table in
            var o = 0
            var i = 0
            while i + 3 <= bytes.count {
                let chunk = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
                out[o] = table[Int(chunk >> 18 & 63)]
                out[o + 1] = table[Int(chunk >> 12 & 63)]
                out[o + 2] = table[Int(chunk >> 6 & 63)]
                out[o + 3] = table[Int(chunk & 63)]
                i += 3
                o += 4
            }
            let rest = bytes.count - i
            if rest > 0 {
                let chunk = UInt32(bytes[i]) << 16 | (rest == 2 ? UInt32(bytes[i + 1]) << 8 : 0)
                out[o] = table[Int(chunk >> 18 & 63)]
                out[o + 1] = table[Int(chunk >> 12 & 63)]
                out[o + 2] = rest == 2 ? table[Int(chunk >> 6 & 63)] : UInt8(ascii: "=")
                out[o + 3] = UInt8(ascii: "=")
            }
        }
    }

    public static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: encodedLength(bytes.count)) { out in
            encode(bytes, into: UnsafeMutableRawBufferPointer(out))
            return encodedLength(bytes.count)
        }
    }

    public static func encode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { encode($0) }
    }

    /// The bytes `text` spells, or nil when it is not strict base64.
    public static func decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { decode(UnsafeRawBufferPointer($0)) }
    }

    public static func decode(_ text: UnsafeRawBufferPointer) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        guard text.count > 0 else { return [] }
        var padding = 0
        if text[text.count - 1] == UInt8(ascii: "=") {
            padding = text[text.count - 2] == UInt8(ascii: "=") ? 2 : 1
        }
        let length = text.count / 4 * 3 - padding
        var failed = false
        let out = values.withUnsafeBufferPointer { table in
            [UInt8](unsafeUninitializedCapacity: length) { out, initialized in
                var o = 0
                var i = 0
                // Every group but the last: four characters of the alphabet, three bytes.
                while i + 4 < text.count {
                    let a = table[Int(text[i])], b = table[Int(text[i + 1])], c = table[Int(text[i + 2])], d = table[Int(text[i + 3])]
                    if (a | b | c | d) & 0x80 != 0 {
                        failed = true
                        break
                    }
                    let chunk = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                    out[o] = UInt8(chunk >> 16 & 0xFF)
                    out[o + 1] = UInt8(chunk >> 8 & 0xFF)
                    out[o + 2] = UInt8(chunk & 0xFF)
                    i += 4
                    o += 3
                }
                if !failed {
                    // The last group, with its padding: the bits after the last byte must be zero.
                    var chunk: UInt32 = 0
                    for k in 0..<4 {
                        let value: UInt8 = k >= 4 - padding ? 0 : table[Int(text[i + k])]
                        if value & 0x80 != 0 { failed = true }
                        chunk = chunk << 6 | UInt32(value & 0x3F)
                    }
                    let last = [UInt8(chunk >> 16 & 0xFF), UInt8(chunk >> 8 & 0xFF), UInt8(chunk & 0xFF)]
                    for k in 0..<3 - padding { out[o + k] = last[k] }
                    if last[(3 - padding)...].contains(where: { $0 != 0 }) { failed = true }
                    o += 3 - padding
                }
                initialized = failed ? 0 : o
            }
        }
        return failed ? nil : out
    }
}
