extension StringProtocol {
    /// The text without the blanks at either end: spaces, tabs and carriage returns (a value
    /// after its key in /proc/PID/status, a key or value of a configuration line written on
    /// any system, an item of a comma-separated list).
    public var trimmed: String {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}
