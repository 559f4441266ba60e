#if canImport(Glibc)
import Glibc
#endif

/// One line of `nsgroup-bench all`'s table: a figure of nsgroup, the anchor
/// it is compared with (for speeds), and its goal.
struct SummaryRow: Sendable {
    var figure: String
    var ours: String
    /// The anchor's figure, for speeds; nil for absolute goals (memory, time at the server).
    var anchor: String?
    var ratio: Double?
    var goal: String
    /// nil: a figure shown for information, with no goal of its own.
    var met: Bool?
}

enum Summary {
    /// Ratio rows first (speeds against anchors), then absolute figures.
    static func print(_ rows: [SummaryRow]) {
        let ordered = rows.filter { $0.ratio != nil } + rows.filter { $0.ratio == nil }
        let header = ["ratio", "goal", "result", "figure", "nsgroup", "anchor"]
        let cells = ordered.map { row in
            [row.ratio.map(formatRatio) ?? "-", row.goal, row.met.map(metText) ?? "-", row.figure, row.ours, row.anchor ?? "-"]
        }
        var widths = header.map(\.count)
        for line in cells { for (i, cell) in line.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { padded($0.element, widths[$0.offset] + 2) }.joined().trimmingTrailingSpaces()
        }
        Swift.print(line(header))
        for row in cells { Swift.print(line(row)) }
    }
}

extension String {
    /// Drops the padding `padded` left after a table line's last cell. Trailing only, so not
    /// POSIX's `trimmed` (both ends): the front of a line is its first cell, kept as it is.
    func trimmingTrailingSpaces() -> String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

/// Writes a line to stderr (stdout is the report).
func printError(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// "1.23 KiB"-style figures.
func formatKiB(_ value: Double) -> String {
    value >= 1024 ? formatFixed(value / 1024, 2) + " MiB" : formatFixed(value, 1) + " KiB"
}

/// `value` with `digits` digits after the point.
func formatFixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "nan" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = Int((abs(value) * scale).rounded())
    let whole = scaled / Int(scale)
    let fraction = scaled % Int(scale)
    var fractionText = String(fraction)
    while fractionText.count < digits { fractionText = "0" + fractionText }
    return (value < 0 && scaled != 0 ? "-" : "") + String(whole) + (digits > 0 ? "." + fractionText : "")
}

func formatRate(_ perSecond: Double) -> String {
    formatFixed(perSecond, 0) + "/s"
}

func metText(_ met: Bool) -> String { met ? "met" : "NOT met" }

/// The p-quantile of `values` (0...1), linearly interpolated; nan when empty.
func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    let rank = p * Double(sorted.count - 1)
    let low = Int(rank.rounded(.down))
    let high = min(low + 1, sorted.count - 1)
    return sorted[low] + (sorted[high] - sorted[low]) * (rank - Double(low))
}
