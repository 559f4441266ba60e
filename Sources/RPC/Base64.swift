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

    public static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: encodedLength(bytes.count)) { out in
            var o = 0
            var i = 0
            while i + 3 <= bytes.count {
                let chunk = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
                out[o] = alphabet[Int(chunk >> 18 & 63)]
                out[o + 1] = alphabet[Int(chunk >> 12 & 63)]
                out[o + 2] = alphabet[Int(chunk >> 6 & 63)]
                out[o + 3] = alphabet[Int(chunk & 63)]
                i += 3
                o += 4
            }
            let rest = bytes.count - i
            if rest > 0 {
                let chunk = UInt32(bytes[i]) << 16 | (rest == 2 ? UInt32(bytes[i + 1]) << 8 : 0)
                out[o] = alphabet[Int(chunk >> 18 & 63)]
                out[o + 1] = alphabet[Int(chunk >> 12 & 63)]
                out[o + 2] = rest == 2 ? alphabet[Int(chunk >> 6 & 63)] : UInt8(ascii: "=")
                out[o + 3] = UInt8(ascii: "=")
                o += 4
            }
            return o
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
        var padding = 0
        if text.count > 0, text[text.count - 1] == UInt8(ascii: "=") {
            padding = text[text.count - 2] == UInt8(ascii: "=") ? 2 : 1
        }
        var out = [UInt8]()
        out.reserveCapacity(text.count / 4 * 3)
        var i = 0
        while i < text.count {
            let last = i + 4 == text.count
            var chunk: UInt32 = 0
            for k in 0..<4 {
                let character = text[i + k]
                if last, k >= 4 - padding {
                    chunk <<= 6
                    continue
                }
                let value = values[Int(character)]
                guard value != 0xFF else { return nil }
                chunk = chunk << 6 | UInt32(value)
            }
            out.append(UInt8(chunk >> 16 & 0xFF))
            if !last || padding < 2 { out.append(UInt8(chunk >> 8 & 0xFF)) } else if chunk >> 8 & 0xFF != 0 { return nil }
            if !last || padding < 1 { out.append(UInt8(chunk & 0xFF)) } else if chunk & 0xFF != 0 { return nil }
            i += 4
        }
        return out
    }
}
