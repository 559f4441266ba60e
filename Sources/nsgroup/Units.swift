import RPC

/// Sizes, durations and CPU figures as people write and read them: what
/// `create`'s limit flags take, and how `list`, `inspect` and `ps` show the
/// protocol's bytes, seconds and microseconds. The ranges are the protocol's
/// (GroupLimits, CreateParams), so a value the server would refuse is refused
/// here first, in the flag's own units.
enum Units {
    /// The suffixes a size may be written with, each 1024 times the one before.
    private static let sizeSuffixes = ["K", "M", "G", "T"]
    /// And those it may be shown with.
    private static let displaySuffixes = sizeSuffixes + ["P", "E"]

    /// Bytes: digits, optionally followed by K, M, G or T (either case; powers of
    /// 1024). Whole numbers only: "1536M", not "1.5G". Nil for anything else, and
    /// for a size past UInt64.
    static func bytes(_ text: String) -> UInt64? {
        var digits = Substring(text)
        var multiplier: UInt64 = 1
        if let last = text.last, let index = sizeSuffixes.firstIndex(of: last.uppercased()) {
            digits = digits.dropLast()
            multiplier = 1 << (10 * UInt64(index + 1))
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit), let number = UInt64(digits) else { return nil }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : bytes
    }

    /// Seconds: plain digits ("90"), or numbers with the units d, h, m and s,
    /// largest first and each at most once ("90s", "30m", "1h30m", "2d12h").
    /// Nil for anything else, and for more seconds than Int64 holds.
    static func seconds(_ text: String) -> Int64? {
        if !text.isEmpty, text.allSatisfy(\.isASCIIDigit) { return Int64(text) }
        let units: [(Character, Int64)] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)]
        var rest = Substring(text)
        var next = 0  // the first unit still allowed
        var total: Int64 = 0
        while !rest.isEmpty {
            let digits = rest.prefix(while: \.isASCIIDigit)
            rest = rest.dropFirst(digits.count)
            guard !digits.isEmpty, let number = Int64(digits), let unit = rest.first,
                  let index = units[next...].firstIndex(where: { $0.0 == unit }) else { return nil }
            rest = rest.dropFirst()
            next = index + 1
            let (part, overflow) = number.multipliedReportingOverflow(by: units[index].1)
            guard !overflow else { return nil }
            let (sum, overflowed) = total.addingReportingOverflow(part)
            guard !overflowed else { return nil }
            total = sum
        }
        return text.isEmpty ? nil : total
    }

    /// "512B", "4.0K", "12.3M", "512M", "1.0G": one decimal below 100 of a unit, none above.
    static func size(_ bytes: UInt64) -> String {
        guard bytes >= 1024 else { return "\(bytes)B" }
        var unit = 0
        var value = Double(bytes) / 1024
        while value >= 1023.95, unit < displaySuffixes.count - 1 {
            value /= 1024
            unit += 1
        }
        let suffix = displaySuffixes[unit]
        if value < 99.95 {
            let tenths = Int((value * 10).rounded())
            return "\(tenths / 10).\(tenths % 10)\(suffix)"
        }
        return "\(Int(value.rounded()))\(suffix)"
    }

    /// A size exactly as the limit flags take it: "512M", "1G", "1536K", "1000" (bytes), "1024T".
    static func exactSize(_ bytes: UInt64) -> String {
        var value = bytes
        var unit = -1
        while value >= 1024, value % 1024 == 0, unit < sizeSuffixes.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit < 0 ? String(bytes) : "\(value)\(sizeSuffixes[unit])"
    }

    /// Seconds as `seconds(_:)` reads them, largest unit first and no unit of 0: "45s", "30m", "1h30m", "1d5s".
    static func duration(_ seconds: Int64) -> String {
        guard seconds > 0 else { return "0s" }
        var rest = seconds
        var text = ""
        for (unit, length) in [("d", Int64(86_400)), ("h", 3_600), ("m", 60), ("s", 1)] where rest >= length {
            text += "\(rest / length)\(unit)"
            rest %= length
        }
        return text
    }

    /// CPU time in seconds with two decimals: 1234567 µs is "1.23 s".
    static func cpuTime(microseconds: UInt64) -> String {
        let hundredths = (microseconds + 5_000) / 10_000
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction) s"
    }

    /// A number of CPUs as short as it goes: "2", "0.5", "1.25".
    static func cpus(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        if hundredths % 100 == 0 { return String(hundredths / 100) }
        if hundredths % 10 == 0 { return "\(hundredths / 100).\(hundredths % 100 / 10)" }
        return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)"
    }
}

/// Why a flag's value was refused. ArgumentParser prints it after its own
/// "The value 'X' is invalid for '--flag <name>'", so it says what is expected.
struct ValueError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) { self.description = description }
}

/// `create`'s limit flags, read and checked against the protocol's ranges.
enum LimitArguments {
    static func memory(_ text: String) throws(ValueError) -> UInt64 {
        let range = GroupLimits.memoryRange
        let expected = "expected bytes, or a whole number followed by K, M, G or T (powers of 1024) such as 512M or 2G, "
            + "from \(Units.exactSize(UInt64(range.lowerBound))) to \(Units.exactSize(UInt64(range.upperBound)))"
        guard let bytes = Units.bytes(text), bytes >= range.lowerBound, bytes <= range.upperBound else { throw ValueError(expected) }
        return bytes
    }

    static func pids(_ text: String) throws(ValueError) -> UInt64 {
        try count(text, in: GroupLimits.pidsRange, of: "processes and threads")
    }

    static func cpuWeight(_ text: String) throws(ValueError) -> UInt64 {
        try count(text, in: GroupLimits.cpuWeightRange, of: "a share relative to other groups, 100 being the default")
    }

    static func cpus(_ text: String) throws(ValueError) -> Double {
        let range = GroupLimits.cpusRange
        let expected = "expected a number of CPUs such as 0.5, 1 or 2.5, from \(Units.cpus(range.lowerBound)) to \(Units.cpus(range.upperBound))"
        // Digits with at most one point between them: no sign, exponent, inf or nan.
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }), let value = Double(text), range.contains(value) else {
            throw ValueError(expected)
        }
        return value
    }

    static func duration(_ text: String) throws(ValueError) -> Int64 {
        let range = CreateParams.durationRange
        guard let seconds = Units.seconds(text), range.contains(seconds) else {
            throw ValueError("expected seconds, or numbers with the units d, h, m and s, largest first, such as 90s, 30m, 1h30m or 2d, "
                             + "from \(Units.duration(range.lowerBound)) to \(Units.duration(range.upperBound))")
        }
        return seconds
    }

    private static func count(_ text: String, in range: ClosedRange<Int64>, of what: String) throws(ValueError) -> UInt64 {
        guard !text.isEmpty, text.allSatisfy(\.isASCIIDigit), let value = Int64(text), range.contains(value) else {
            throw ValueError("expected a whole number from \(range.lowerBound) to \(range.upperBound) (\(what))")
        }
        return UInt64(value)
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
