#if canImport(Glibc)
import Glibc
#endif
import POSIX
import RPC

/// The tallies of refusals held back in intervals that had not ended, as the state directory
/// keeps them (StateStore.refusalsHeldBackFile, written by RefusalRecords), so that a
/// supervisor killed before those intervals end does not take their count with it: the next
/// one writes their `refusals-summarized` records.
///
/// The file, version 1, times in wall-clock seconds since the epoch:
///
///     {"version": 1, "written": 1795000000,
///      "people": [{"person": 1005, "heldBack": 8, "kinds": {"inspect/not_found": 8},
///                  "uids": [1005], "moreUIDs": false, "started": 1794999990}]}
struct HeldBackRefusals: Equatable {
    /// One person's interval, as far as it went when the file was written.
    struct Tally: Equatable {
        /// The person refusals are charged to.
        let person: uid_t
        /// Refusals counted and not written one by one.
        let heldBack: Int
        /// The same, by kind.
        let kinds: [RefusalBudget.Kind: Int]
        /// The uids they came from, ascending; at most RefusalBudget.maxUIDs.
        let uids: [uid_t]
        /// Some came from uids beyond those.
        let moreUIDs: Bool
        /// When the interval started.
        let started: Int64
    }

    /// When the tallies were written: they count the refusals held back until then.
    let written: Int64
    /// By person, each at most once.
    let tallies: [Tally]

    static let version = 1
    /// The most one tally may say was held back: counts stay exact in any JSON reader.
    static let maxCount = 1 << 53

    init(written: Int64, tallies: [Tally]) {
        self.written = written
        self.tallies = tallies
    }

    /// The summaries of a budget's running intervals (RefusalBudget.heldBack) at `written`:
    /// each started its `seconds` before.
    init(written: Int64, summaries: [RefusalBudget.Summary]) {
        self.init(written: written, tallies: summaries.map { summary in
            Tally(person: summary.person, heldBack: summary.heldBack, kinds: summary.kinds, uids: summary.uids,
                  moreUIDs: summary.moreUIDs, started: written - Int64(summary.seconds))
        })
    }

    /// What each tally held back, as its interval's summary: an interval that ran until the
    /// file was written (at least 1 s).
    var summaries: [RefusalBudget.Summary] {
        tallies.map { tally in
            RefusalBudget.Summary(person: tally.person, heldBack: tally.heldBack, kinds: tally.kinds, uids: tally.uids,
                                  moreUIDs: tally.moreUIDs, seconds: Int(max(written - tally.started, 1)))
        }
    }

    // MARK: The file

    private static func json(_ tally: Tally) -> JSONValue {
        .object([
            "person": .number(JSONNumber(tally.person)),
            "heldBack": .number(JSONNumber(tally.heldBack)),
            "kinds": .object(JSONObject(tally.kinds.sorted { $0.key < $1.key }.map { ($0.key.description, .number(JSONNumber($0.value))) })),
            "uids": .array(tally.uids.map { .number(JSONNumber($0)) }),
            "moreUIDs": .bool(tally.moreUIDs),
            "started": .number(JSONNumber(tally.started)),
        ])
    }

    /// The file's JSON, at most `limit` bytes serialized: past that, the people with the
    /// fewest refusals held back are left out (the supervisor still sums them up when their
    /// interval ends; only a kill loses them). Also says how many were left out.
    func json(limit: Int) -> (value: JSONValue, leftOut: Int) {
        let head: JSONObject = ["version": .number(JSONNumber(Self.version)), "written": .number(JSONNumber(written))]
        // The head, the "people" key, brackets, commas and the newline: generously.
        var size = JSONValue.object(head).serialized().utf8.count + 32
        var kept: [(index: Int, value: JSONValue)] = []
        for (index, tally) in tallies.enumerated().sorted(by: { $0.element.heldBack > $1.element.heldBack }) {
            let value = Self.json(tally)
            let bytes = value.serialized().utf8.count + 1
            guard size + bytes <= limit else { continue }
            size += bytes
            kept.append((index, value))
        }
        var object = head
        object["people"] = .array(kept.sorted { $0.index < $1.index }.map(\.value))
        return (.object(object), tallies.count - kept.count)
    }

    /// Reads the file's JSON back, strictly: every key present and no other, each number an
    /// integer in its range, kinds the budget's own with counts that add up to the tally's,
    /// uids ascending and at most RefusalBudget.maxUIDs, each person once, no interval
    /// started after the file was written. Anything else is refused (`.stateFile(.malformed)`).
    init(json value: JSONValue) throws(SupervisorError) {
        func malformed(_ message: String) -> SupervisorError { SupervisorError(.stateFile(.malformed), message) }
        func shown(_ value: JSONValue?) -> String { String((value ?? .null).serialized().prefix(64)) }
        func object(_ value: JSONValue, keys: Set<String>, _ what: String) throws(SupervisorError) -> JSONObject {
            guard let object = value.objectValue, object.count == keys.count, Set(object.keys) == keys else {
                throw malformed("\(what) is not an object of \(keys.sorted().map { "\"\($0)\"" }.joined(separator: ", "))")
            }
            return object
        }
        func integer(_ value: JSONValue?, _ range: ClosedRange<Int64>, _ what: String) throws(SupervisorError) -> Int64 {
            guard let n = value?.int64Value, range.contains(n) else {
                throw malformed("\(what) is \(shown(value)), not a number from \(range.lowerBound) to \(range.upperBound)")
            }
            return n
        }
        let uidRange = 0...Int64(UInt32.max - 1)
        let countRange = 1...Int64(Self.maxCount)
        let o = try object(value, keys: ["version", "written", "people"], "the file")
        guard o["version"]?.int64Value == Int64(Self.version) else {
            throw malformed("version \(shown(o["version"])) is not \(Self.version)")
        }
        let written = try integer(o["written"], 0...Int64.max, "\"written\"")
        guard let people = o["people"]?.arrayValue else { throw malformed("\"people\" is \(shown(o["people"])), not an array") }
        var tallies: [Tally] = []
        var persons: Set<uid_t> = []
        for element in people {
            let p = try object(element, keys: ["person", "heldBack", "kinds", "uids", "moreUIDs", "started"], "a person")
            let person = uid_t(try integer(p["person"], uidRange, "\"person\""))
            guard persons.insert(person).inserted else { throw malformed("person \(person) is there twice") }
            let heldBack = try integer(p["heldBack"], countRange, "\"heldBack\" of person \(person)")
            guard let kindsObject = p["kinds"]?.objectValue, !kindsObject.isEmpty else {
                throw malformed("\"kinds\" of person \(person) is \(shown(p["kinds"])), not an object of counts")
            }
            var kinds: [RefusalBudget.Kind: Int] = [:]
            var sum: Int64 = 0
            for (name, count) in kindsObject {
                guard let kind = RefusalBudget.Kind(name: name) else {
                    throw malformed("\"kinds\" of person \(person) names \(shown(.string(name))), not a kind of refusal")
                }
                let n = try integer(count, countRange, "\"\(name)\" of person \(person)")
                kinds[kind] = Int(n)
                sum += n  // at most some 250 kinds (each named once) of at most 2^53: no overflow
            }
            guard sum == heldBack else {
                throw malformed("the kinds of person \(person) count \(sum) refusals, not \(heldBack)")
            }
            guard let uidValues = p["uids"]?.arrayValue, (1...RefusalBudget.maxUIDs).contains(uidValues.count) else {
                throw malformed("\"uids\" of person \(person) is \(shown(p["uids"])), not 1 to \(RefusalBudget.maxUIDs) uids")
            }
            var uids: [uid_t] = []
            for uid in uidValues {
                let n = uid_t(try integer(uid, uidRange, "a uid of person \(person)"))
                guard uids.last.map({ $0 < n }) ?? true else { throw malformed("the uids of person \(person) are not ascending") }
                uids.append(n)
            }
            guard let moreUIDs = p["moreUIDs"]?.boolValue, !moreUIDs || uids.count == RefusalBudget.maxUIDs else {
                throw malformed("\"moreUIDs\" of person \(person) is \(shown(p["moreUIDs"])), not true (with \(RefusalBudget.maxUIDs) uids) or false")
            }
            let started = try integer(p["started"], 0...written, "\"started\" of person \(person)")
            tallies.append(Tally(person: person, heldBack: Int(heldBack), kinds: kinds, uids: uids, moreUIDs: moreUIDs,
                                 started: started))
        }
        self.init(written: written, tallies: tallies)
    }
}
