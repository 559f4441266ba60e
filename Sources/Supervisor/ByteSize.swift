/// Sizes as nsgroupd.conf and tmpfs options write them: a whole number of bytes, or one
/// with a k, m, g or t suffix (powers of 1024, either case), as mount(8) takes them.
enum ByteSize {
    /// nil when the text is not such a size. A size too large for 64 bits is UInt64.max:
    /// any cap refuses it.
    static func parse(_ text: String) -> UInt64? {
        var digits = Substring(text)
        var shift: UInt64 = 0
        if let last = digits.last, let unit = ["k", "m", "g", "t"].firstIndex(of: last.lowercased()) {
            shift = 10 * UInt64(unit + 1)
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        guard let value = UInt64(digits) else { return .max }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? .max : bytes
    }

    /// The shortest exact spelling: 1g, 512m, 1536k, 1000.
    static func format(_ bytes: UInt64) -> String {
        for (suffix, shift) in [("t", 40), ("g", 30), ("m", 20), ("k", 10)] as [(String, UInt64)]
        where bytes != 0 && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(suffix)"
        }
        return String(bytes)
    }
}
