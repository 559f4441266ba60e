/// Text a user chose, made safe to put in a journal MESSAGE.
///
/// `journalctl -o cat` and the default output print a MESSAGE as it is: a newline a user put in
/// a method name would print a second, forged line under nsgroupd's name, a NUL would make
/// journald keep the whole MESSAGE as a blob, and terminal control sequences would act on the
/// administrator's terminal. So every character a user chose goes through `escaped` before it
/// joins a MESSAGE; the raw value goes only in a field of its own.
public enum MessageText {
    /// Escapes `text` the way systemd's `cescape()` does: backslash as `\\`; BEL, BS, FF, LF, CR,
    /// TAB and VT as `\a \b \f \n \r \t \v`; every other ASCII control character (NUL included)
    /// and DEL as three octal digits, `\ooo`. Unlike `cescape()`, printable non-ASCII characters
    /// stay as they are, so a UTF-8 argument stays readable; non-ASCII characters that print
    /// nothing or move text (C1 controls, format characters such as the bidirectional overrides
    /// and zero-width spaces, the line and paragraph separators) are escaped, byte by byte in octal.
    /// Quotes are left alone: they cannot start a line.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscaping) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            guard needsEscaping(scalar) else {
                out.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\\": out += "\\\\"
            case "\u{07}": out += "\\a"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{0B}": out += "\\v"
            default:
                for byte in String(scalar).utf8 {
                    out += "\\" + String(byte >> 6) + String((byte >> 3) & 7) + String(byte & 7)
                }
            }
        }
        return out
    }

    /// Whether `escaped` changes this character.
    static func needsEscaping(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\\" { return true }
        guard scalar.value >= 0x80 else { return false }
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .unassigned, .privateUse:
            return true
        default:
            return false
        }
    }
}
