/// Limits as refusals and nsgroupd.conf write them.
enum LimitText {
    /// A number of CPUs: "2" for 2.0, "1.5", "0.01".
    static func cpus(_ value: Double) -> String {
        if value == value.rounded(.towardZero), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}
