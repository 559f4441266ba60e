/// Group names: `^[a-z0-9][a-z0-9_.-]{0,62}$`. Safe as a file name, a
/// hostname-like label and a journal field, with no way to spell "." or "..".
public enum GroupName {
    public static let maxLength = 63

    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= maxLength, isLowerAlnum(first) else { return false }
        return bytes.dropFirst().allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    private static func isLowerAlnum(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
    }

    /// Throws invalid_name with a message that shows the rule.
    public static func validate(_ name: String) throws(RPCError) {
        guard isValid(name) else {
            let shown = name.count > 80 ? String(name.prefix(80)) + "…" : name
            throw RPCError(.invalidName, "invalid group name \(JSONValue.string(shown).serialized()): names are 1 to 63 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit")
        }
    }
}
