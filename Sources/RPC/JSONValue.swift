// JSON value model for the nsgroup RPC layer (Swift standard library only).
//
// Parsing lives in JSONParser.swift, writing in JSONSerializer.swift.

/// A JSON value.
///
/// Equality is structural: numbers compare by lexeme (see `JSONNumber`), objects compare
/// order-insensitively (see `JSONObject`), strings compare with Swift `String` equality
/// (Unicode canonical equivalence).
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

// MARK: - Accessors

extension JSONValue {
    /// The string, or nil unless this is `.string`.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The boolean, or nil unless this is `.bool`.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The number as an exact `Int64`, or nil unless this is a `.number` holding an integral
    /// value in `Int64` range (see `JSONNumber.int64Value`).
    public var int64Value: Int64? {
        if case .number(let n) = self { return n.int64Value }
        return nil
    }

    /// The elements, or nil unless this is `.array`.
    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// The object, or nil unless this is `.object`.
    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// True only for `.null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The member named `key`, or nil unless this is an `.object` containing `key`.
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }
}

// MARK: - Literals

extension JSONValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSONValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSONValue: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    /// Keys keep literal order; a repeated key replaces the earlier value in place.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements))
    }
}

// MARK: - JSONNumber

/// A JSON number, kept as its textual lexeme so that no precision is ever lost in transit.
///
/// Equality and hashing are by lexeme: `1`, `1.0` and `1e0` are three *different* numbers
/// as far as `==` is concerned. Compare `int64Value` / `doubleValue` for numeric equality.
public struct JSONNumber: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The number exactly as it appeared in the input / as it will be written.
    public let lexeme: String

    /// Creates a number from RFC 8259 number text (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`).
    /// Returns nil for anything else (leading `+`, leading zeros, `.5`, `NaN`, hex, whitespace, ...).
    public init?(lexeme: String) {
        var text = lexeme
        let valid = text.withUTF8 { buf -> Bool in
            guard let base = buf.baseAddress else { return false }
            if case .ok(let end) = _JSONNumberScan.scan(base, from: 0, end: buf.count) {
                return end == buf.count
            }
            return false
        }
        guard valid else { return nil }
        self.lexeme = text
    }

    /// Creates a number from text already known to match the grammar (parser use only).
    internal init(uncheckedLexeme: String) {
        self.lexeme = uncheckedLexeme
    }

    public init(_ value: Int) { self.lexeme = String(value) }
    public init(_ value: Int64) { self.lexeme = String(value) }
    public init(_ value: UInt64) { self.lexeme = String(value) }
    public init(_ value: Int32) { self.lexeme = String(value) }
    public init(_ value: UInt32) { self.lexeme = String(value) }

    /// Creates a number from a finite double using Swift's shortest round-trip spelling
    /// (e.g. `1.0`, `0.1`, `1e-05`, `1e+16`). Returns nil for NaN and infinities.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        self.init(lexeme: value.description)
    }

    public var description: String { lexeme }

    /// The exact integer value if it is integral and fits in `Int64`, else nil.
    /// `10`, `-0`, `1e2` (= 100), `1.50e1` (= 15) have values; `1.5`, `9223372036854775808` do not.
    public var int64Value: Int64? {
        guard let (negative, magnitude) = integerParts() else { return nil }
        if negative {
            if magnitude == UInt64(Int64.max) + 1 { return Int64.min }
            guard magnitude <= UInt64(Int64.max) else { return nil }
            return -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int64(magnitude)
    }

    /// The exact integer value if it is integral and fits in `UInt64`, else nil (`-0` is 0).
    public var uint64Value: UInt64? {
        guard let (negative, magnitude) = integerParts() else { return nil }
        if negative && magnitude != 0 { return nil }
        return magnitude
    }

    /// The nearest double, or nil if the magnitude overflows to infinity.
    /// (Values too small to represent round to zero, as with any decimal-to-binary conversion.)
    public var doubleValue: Double? {
        guard let d = Double(lexeme), d.isFinite else { return nil }
        return d
    }

    /// Splits the lexeme into sign and exact integer magnitude; nil if the value is not an
    /// integer or its magnitude does not fit in `UInt64`.
    private func integerParts() -> (Bool, UInt64)? {
        var text = lexeme
        return text.withUTF8 { buf -> (Bool, UInt64)? in
            _JSONNumberScan.integerParts(buf)
        }
    }
}

/// Number grammar and exact-integer helpers shared by `JSONNumber` and the parser.
internal enum _JSONNumberScan {
    enum Result {
        case ok(end: Int)
        /// Error message and the offset where it was detected.
        case failure(String, Int)
    }

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b &- UInt8(ascii: "0") < 10 }

    /// Scans one RFC 8259 number starting at `from` (which must be `< end`).
    /// Returns the offset just past it. Reads only within `[from, end)`.
    static func scan(_ p: UnsafePointer<UInt8>, from: Int, end: Int) -> Result {
        var i = from
        if i < end && p[i] == UInt8(ascii: "-") {
            i += 1
        }
        guard i < end, isDigit(p[i]) else {
            return .failure("expected a digit after '-'", i)
        }
        if p[i] == UInt8(ascii: "0") {
            i += 1
            if i < end && isDigit(p[i]) {
                return .failure("leading zeros are not allowed in numbers", from)
            }
        } else {
            while i < end && isDigit(p[i]) { i += 1 }
        }
        if i < end && p[i] == UInt8(ascii: ".") {
            i += 1
            guard i < end, isDigit(p[i]) else {
                return .failure("expected a digit after the decimal point", i)
            }
            while i < end && isDigit(p[i]) { i += 1 }
        }
        if i < end && (p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E")) {
            i += 1
            if i < end && (p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-")) {
                i += 1
            }
            guard i < end, isDigit(p[i]) else {
                return .failure("expected a digit in the exponent", i)
            }
            while i < end && isDigit(p[i]) { i += 1 }
        }
        return .ok(end: i)
    }

    /// Exact integer decomposition of a valid number lexeme. See `JSONNumber.int64Value`.
    static func integerParts(_ buf: UnsafeBufferPointer<UInt8>) -> (Bool, UInt64)? {
        let n = buf.count
        var i = 0
        var negative = false
        if i < n && buf[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        // Fast path: plain integer of at most 18 digits cannot overflow UInt64.
        if n - i <= 18 {
            var j = i
            var v: UInt64 = 0
            while j < n && isDigit(buf[j]) {
                v = v &* 10 &+ UInt64(buf[j] &- UInt8(ascii: "0"))
                j += 1
            }
            if j == n && j > i { return (negative, v) }
        }

        let intStart = i
        while i < n && isDigit(buf[i]) { i += 1 }
        let intEnd = i
        var fracStart = i
        var fracEnd = i
        if i < n && buf[i] == UInt8(ascii: ".") {
            i += 1
            fracStart = i
            while i < n && isDigit(buf[i]) { i += 1 }
            fracEnd = i
        }
        var exponent = 0
        if i < n && (buf[i] == UInt8(ascii: "e") || buf[i] == UInt8(ascii: "E")) {
            i += 1
            var expNegative = false
            if i < n && (buf[i] == UInt8(ascii: "+") || buf[i] == UInt8(ascii: "-")) {
                expNegative = buf[i] == UInt8(ascii: "-")
                i += 1
            }
            while i < n && isDigit(buf[i]) {
                // Saturate: anything beyond a billion is far outside UInt64 anyway.
                if exponent < 1_000_000_000 {
                    exponent = exponent * 10 + Int(buf[i] &- UInt8(ascii: "0"))
                }
                i += 1
            }
            if expNegative { exponent = -exponent }
        }
        guard i == n, intEnd > intStart else { return nil }

        // Digits are int[intStart..<intEnd] followed by frac[fracStart..<fracEnd];
        // the value is (those digits) * 10^(exponent - fractionLength).
        let intLen = intEnd - intStart
        let total = intLen + (fracEnd - fracStart)
        @inline(__always) func digit(_ k: Int) -> UInt8 {
            k < intLen ? buf[intStart + k] &- UInt8(ascii: "0") : buf[fracStart + k - intLen] &- UInt8(ascii: "0")
        }
        var first = 0
        while first < total && digit(first) == 0 { first += 1 }
        if first == total { return (negative, 0) }
        var last = total - 1
        while digit(last) == 0 { last -= 1 }
        let scale = exponent - (fracEnd - fracStart) + (total - 1 - last)
        guard scale >= 0 else { return nil }  // non-zero fractional digits remain
        let significant = last - first + 1
        guard significant + scale <= 20 else { return nil }
        var value: UInt64 = 0
        for k in first...last {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(digit(k)))
            if o1 || o2 { return nil }
            value = a
        }
        for _ in 0..<scale {
            let (m, o) = value.multipliedReportingOverflow(by: 10)
            if o { return nil }
            value = m
        }
        return (negative, value)
    }
}

// MARK: - JSONObject

/// An ordered JSON object with unique keys.
///
/// * Insertion order is preserved and used when serializing.
/// * Keys are compared with Swift `String` equality (Unicode canonical equivalence), so two
///   keys that differ only in normalization are the same key.
/// * Equality (`==`) is ORDER-INSENSITIVE: two objects are equal when they have the same set of
///   keys and equal values for each key.
public struct JSONObject: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Element = (key: String, value: JSONValue)

    /// Members in insertion order.
    internal private(set) var entries: [Element]
    /// Key -> position in `entries`; only maintained once the object grows past
    /// `indexThreshold` members (small objects use a linear scan).
    private var index: [String: Int]

    private static let indexThreshold = 12

    public init() {
        entries = []
        index = [:]
    }

    /// Creates an object from pairs in order. Keys should be unique; if a key repeats, the later
    /// value replaces the earlier one in the earlier one's position.
    public init(_ pairs: [(String, JSONValue)]) {
        self.init()
        entries.reserveCapacity(pairs.count)
        for (k, v) in pairs { set(k, v) }
    }

    /// Same rules as `init(_:)`: literal order, a repeated key replaces in place.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }

    /// The value for `key`. Setting nil removes the member; setting a value on an existing key
    /// replaces it in place (order unchanged), otherwise appends it.
    /// Note: `object[k] = nil` removes; write `object[k] = .null` to store a JSON null.
    public subscript(key: String) -> JSONValue? {
        get {
            guard let i = position(of: key) else { return nil }
            return entries[i].value
        }
        set {
            if let newValue {
                set(key, newValue)
            } else if let i = position(of: key) {
                entries.remove(at: i)
                rebuildIndex()
            }
        }
    }

    /// Keys in insertion order.
    public var keys: [String] { entries.map(\.key) }

    public var count: Int { entries.count }

    public var isEmpty: Bool { entries.isEmpty }

    public func makeIterator() -> IndexingIterator<[Element]> {
        entries.makeIterator()
    }

    public var underestimatedCount: Int { entries.count }

    /// Order-insensitive: same key set and equal values per key.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.entries.count == rhs.entries.count else { return false }
        for (k, v) in lhs.entries {
            guard let j = rhs.position(of: k), rhs.entries[j].value == v else { return false }
        }
        return true
    }

    // MARK: internal

    internal func position(of key: String) -> Int? {
        if !index.isEmpty { return index[key] }
        for i in entries.indices where entries[i].key == key { return i }
        return nil
    }

    internal func contains(key: String) -> Bool { position(of: key) != nil }

    /// Appends a member whose key the caller has verified is absent.
    internal mutating func appendUnchecked(_ key: String, _ value: JSONValue) {
        entries.append((key: key, value: value))
        if entries.count > Self.indexThreshold {
            if index.isEmpty {
                rebuildIndex()
            } else {
                index[key] = entries.count - 1
            }
        }
    }

    private mutating func set(_ key: String, _ value: JSONValue) {
        if let i = position(of: key) {
            entries[i].value = value
        } else {
            appendUnchecked(key, value)
        }
    }

    private mutating func rebuildIndex() {
        guard entries.count > Self.indexThreshold else {
            index = [:]
            return
        }
        var fresh = [String: Int](minimumCapacity: entries.count)
        for (i, e) in entries.enumerated() { fresh[e.key] = i }
        index = fresh
    }
}
