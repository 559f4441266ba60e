/// "1 group", "3 groups": counts in refusals and journal messages, from every part.
func counted(_ n: Int, _ noun: String) -> String {
    "\(n) \(noun)\(n == 1 ? "" : "s")"
}
