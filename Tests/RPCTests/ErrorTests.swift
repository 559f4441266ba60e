import Testing
import RPC

@Suite("ErrorReason and RPCError")
struct ErrorTests {
    /// The codes PROTOCOL documents for each reason.
    static let documented: [(String, Int)] = [
        ("parse_error", -32700),
        ("invalid_request", -32600),
        ("line_too_long", -32600),
        ("method_not_found", -32601),
        ("invalid_params", -32602),
        ("invalid_name", -32602),
        ("internal", -32603),
        ("not_found", -32001),
        ("already_exists", -32002),
        ("permission_denied", -32003),
        ("limit_exceeded", -32004),
        ("operation_failed", -32005),
        ("frozen", -32006),
    ]

    @Test(arguments: documented)
    func documentedCode(_ reasonName: String, _ code: Int) throws {
        let reason = try #require(ErrorReason(rawValue: reasonName), "no reason named \(reasonName)")
        #expect(reason.code == code)
        #expect(RPCError(reason, "m").code == code)
    }

    @Test func everyReasonIsDocumented() {
        let documentedNames = Set(Self.documented.map(\.0))
        for reason in ErrorReason.allCases {
            #expect(documentedNames.contains(reason.rawValue), "\(reason.rawValue) has no documented code")
        }
        #expect(ErrorReason.allCases.count == Self.documented.count)
    }

    @Test func reasonStringsAreUnique() {
        let names = ErrorReason.allCases.map(\.rawValue)
        #expect(Set(names).count == names.count)
    }

    @Test func reasonStringsAreSnakeCase() {
        for reason in ErrorReason.allCases {
            #expect(reason.rawValue.utf8.allSatisfy { ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || $0 == UInt8(ascii: "_") },
                    "\(reason.rawValue)")
        }
    }

    @Test func standardCodesAreStandardAndOthersInTheServerRange() {
        for reason in ErrorReason.allCases {
            let standard: Set<Int> = [-32700, -32600, -32601, -32602, -32603]
            let serverRange = -32099 ... -32000
            #expect(standard.contains(reason.code) || serverRange.contains(reason.code), "\(reason.rawValue): \(reason.code)")
        }
    }

    @Test func jsonHasCodeMessageAndDataReason() {
        let error = RPCError(.alreadyExists, "a group named \"web\" already exists")
        #expect(error.json.serialized() == #"{"code":-32002,"message":"a group named \"web\" already exists","data":{"reason":"already_exists"}}"#)
        #expect(error.description == error.message)
    }

    @Test func jsonCarriesDetailsAfterTheReason() {
        let error = RPCError(.operationFailed, "failed", details: ["step": "sethostname", "errno": "EINVAL", "index": 2])
        let json = error.json
        #expect(json["code"] == .number(JSONNumber(-32005)))
        #expect(json["message"] == .string("failed"))
        let data = json["data"]?.objectValue
        #expect(data?.keys == ["reason", "step", "errno", "index"])
        #expect(data?["reason"] == .string("operation_failed"))
        #expect(data?["step"] == .string("sethostname"))
        #expect(data?["errno"] == .string("EINVAL"))
        #expect(data?["index"] == .number(JSONNumber(2)))
    }

    @Test func aDetailCannotOverrideTheReason() {
        let error = RPCError(.notFound, "gone", details: ["reason": "internal", "x": true])
        let data = error.json["data"]?.objectValue
        #expect(data?["reason"] == .string("not_found"))
        #expect(data?["x"] == .bool(true))
        #expect(data?.count == 2)
    }

    @Test(arguments: ErrorReason.allCases)
    func roundTripsThroughJSON(_ reason: ErrorReason) throws {
        let plain = RPCError(reason, "message for \(reason.rawValue) with \"quotes\" and \n newline")
        #expect(RPCError(json: plain.json) == plain)
        let detailed = RPCError(reason, "m", details: ["step": "clone3", "errno": "EPERM", "nested": ["a": [1, 2]]])
        let back = try #require(RPCError(json: detailed.json))
        #expect(back == detailed)
        #expect(back.reason == reason)
        #expect(back.details == detailed.details)
        // And through text, as it travels.
        let reparsed = try JSONParser.parse(detailed.json.serialized())
        #expect(RPCError(json: reparsed) == detailed)
    }

    @Test func knownReasonWinsOverCode() throws {
        // line_too_long shares -32600 with invalid_request; the reason decides.
        let json: JSONValue = ["code": -32600, "message": "too long", "data": ["reason": "line_too_long"]]
        let error = try #require(RPCError(json: json))
        #expect(error.reason == .lineTooLong)
        let mismatched: JSONValue = ["code": -32700, "message": "m", "data": ["reason": "not_found"]]
        #expect(RPCError(json: mismatched)?.reason == .notFound)
    }

    @Test(arguments: [
        JSONValue.null,
        "string",
        [1, 2],
        ["message": "no code"],
        ["code": -32001],
        ["code": "-32001", "message": "m"],
        ["code": .number(JSONNumber(lexeme: "-32001.5")!), "message": "m"],
        ["code": -32001, "message": 5],
    ])
    func malformedErrorObjectsAreRefused(_ json: JSONValue) {
        #expect(RPCError(json: json) == nil)
    }

    @Test func helpers() {
        let invalid = RPCError.invalidParams("create: bad")
        #expect(invalid.reason == .invalidParams)
        #expect(invalid.message == "create: bad")
        let missing = RPCError.notFound(group: "db")
        #expect(missing.reason == .notFound)
        #expect(missing.message == "no group named \"db\"")
    }
}
