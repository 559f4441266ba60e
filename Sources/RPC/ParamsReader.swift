/// Reads a method's named parameters with exact, person-readable errors, and
/// refuses members it does not know (so a misspelt option is an error, not a
/// silently ignored default).
public struct ParamsReader {
    private let object: JSONObject
    private let method: String
    private var used: Set<String> = []

    /// `params` absent means no parameters.
    public init(_ params: JSONValue?, method: String) throws(RPCError) {
        switch params {
        case nil: object = JSONObject()
        case .object(let o)?: object = o
        default: throw .invalidParams("\(method): params must be an object")
        }
        self.method = method
    }

    /// What its errors are about ("create", "create: \"publish\"[0]").
    public var name: String { method }

    private func typeError(_ key: String, _ expected: String) -> RPCError {
        .invalidParams("\(method): \"\(key)\" must be \(expected)")
    }

    private mutating func value(_ key: String) -> JSONValue? {
        used.insert(key)
        guard let v = object[key], !v.isNull else { return nil }
        return v
    }

    public mutating func string(_ key: String) throws(RPCError) -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v.stringValue else { throw typeError(key, "a string") }
        return s
    }

    public mutating func requiredString(_ key: String) throws(RPCError) -> String {
        guard let s = try string(key) else { throw .invalidParams("\(method): \"\(key)\" is required") }
        return s
    }

    public mutating func bool(_ key: String) throws(RPCError) -> Bool? {
        guard let v = value(key) else { return nil }
        guard let b = v.boolValue else { throw typeError(key, "true or false") }
        return b
    }

    /// An integer within `range`.
    public mutating func integer(_ key: String, in range: ClosedRange<Int64>) throws(RPCError) -> Int64? {
        guard let v = value(key) else { return nil }
        guard case .number(let n) = v, let i = n.int64Value, range.contains(i) else {
            throw typeError(key, "an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return i
    }

    /// A number (a fraction is allowed) within `range`.
    public mutating func number(_ key: String, in range: ClosedRange<Double>) throws(RPCError) -> Double? {
        guard let v = value(key) else { return nil }
        guard case .number(let n) = v, let d = n.doubleValue, range.contains(d) else {
            throw typeError(key, "a number from \(Self.spell(range.lowerBound)) to \(Self.spell(range.upperBound))")
        }
        return d
    }

    private static func spell(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
    }

    /// An object, read with a reader of its own (named `method.key` in its errors).
    public mutating func object(_ key: String) throws(RPCError) -> ParamsReader? {
        guard let v = value(key) else { return nil }
        guard v.objectValue != nil else { throw typeError(key, "an object") }
        return try ParamsReader(v, method: "\(method): \"\(key)\"")
    }

    public mutating func stringArray(_ key: String) throws(RPCError) -> [String]? {
        guard let v = value(key) else { return nil }
        guard let array = v.arrayValue else { throw typeError(key, "an array of strings") }
        var result: [String] = []
        result.reserveCapacity(array.count)
        for element in array {
            guard let s = element.stringValue else { throw typeError(key, "an array of strings") }
            result.append(s)
        }
        return result
    }

    /// An array of objects, each read with a reader of its own (named `method.key[i]` in its errors).
    public mutating func objectArray(_ key: String) throws(RPCError) -> [ParamsReader]? {
        guard let v = value(key) else { return nil }
        guard let array = v.arrayValue else { throw typeError(key, "an array of objects") }
        var result: [ParamsReader] = []
        for (index, element) in array.enumerated() {
            guard element.objectValue != nil else { throw typeError(key, "an array of objects") }
            result.append(try ParamsReader(element, method: "\(method): \"\(key)\"[\(index)]"))
        }
        return result
    }

    /// An object whose values are all strings (such as an environment).
    public mutating func stringMap(_ key: String) throws(RPCError) -> [(String, String)]? {
        guard let v = value(key) else { return nil }
        guard let o = v.objectValue else { throw typeError(key, "an object of strings") }
        var result: [(String, String)] = []
        for (k, element) in o {
            guard let s = element.stringValue else { throw typeError(key, "an object of strings") }
            result.append((k, s))
        }
        return result
    }

    /// Refuses members that no accessor asked for.
    public func finish() throws(RPCError) {
        if let unknown = object.keys.first(where: { !used.contains($0) }) {
            throw .invalidParams("\(method): unknown parameter \"\(unknown)\"")
        }
    }
}
