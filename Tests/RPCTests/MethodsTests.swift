import Testing
import RPC
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Helpers

private func json(_ text: String) -> JSONValue {
    do {
        return try JSONParser.parse(text)
    } catch {
        fatalError("bad test JSON \(text): \(error)")
    }
}

/// Runs `body`, returning the RPCError it throws (recording an issue if it does not throw).
private func rpcError<T>(_ body: () throws(RPCError) -> T, sourceLocation: SourceLocation = #_sourceLocation) -> RPCError? {
    do throws(RPCError) {
        let value = try body()
        Issue.record("expected an error, got \(value)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

// MARK: - GroupName

@Suite("GroupName")
struct GroupNameTests {
    static let valid: [String] = [
        "a", "z", "0", "9", "web", "web-1", "a.b", "a_b", "a-", "a.", "a_", "0abc", "a..b", "a--b",
        "1.2.3", "x" + String(repeating: "y", count: 62), // 63 characters
        String(repeating: "9", count: 63),
    ]

    static let invalid: [String] = [
        "", ".", "..", ".hidden", "_a", "-a", "Web", "wEb", "ABC", "café", "ｗｅｂ", "web/1", "/", "a/../b", "../a",
        "a b", " a", "a ", "a\n", "a\0", "a:b", "a@b", "a+b", "a~", "a*",
        "x" + String(repeating: "y", count: 63), // 64 characters
        String(repeating: "a", count: 200),
        "a\u{301}",  // combining accent
        "\u{1F600}",
    ]

    @Test(arguments: valid)
    func validNames(_ name: String) throws {
        #expect(GroupName.isValid(name))
        try GroupName.validate(name)
    }

    @Test(arguments: invalid)
    func invalidNames(_ name: String) throws {
        #expect(!GroupName.isValid(name))
        let error = try #require(rpcError { () throws(RPCError) in try GroupName.validate(name) })
        #expect(error.reason == .invalidName)
        #expect(error.code == -32602)
        #expect(error.message.contains("names are 1 to 63 characters"))
    }

    @Test func lengthBoundary() {
        #expect(GroupName.maxLength == 63)
        #expect(GroupName.isValid(String(repeating: "n", count: GroupName.maxLength)))
        #expect(!GroupName.isValid(String(repeating: "n", count: GroupName.maxLength + 1)))
    }

    @Test func messageShowsTheNameAsJSON() throws {
        let error = try #require(rpcError { () throws(RPCError) in try GroupName.validate("Bad\"Name") })
        #expect(error.message.hasPrefix(#"invalid group name "Bad\"Name": "#))
    }

    @Test func messageShortensLongNames() throws {
        let long = String(repeating: "Q", count: 500)
        let error = try #require(rpcError { () throws(RPCError) in try GroupName.validate(long) })
        #expect(error.message.contains("\"" + String(repeating: "Q", count: 80) + "…\""))
        #expect(!error.message.contains(String(repeating: "Q", count: 81)))
    }
}

// MARK: - CreateParams / NameParams

@Suite("CreateParams and NameParams")
struct CreateParamsTests {
    @Test func minimal() throws {
        let params = try CreateParams(params: json(#"{"name":"web"}"#))
        #expect(params == CreateParams(name: "web"))
        #expect(params.namespaces == nil)
        #expect(params.hostname == nil)
        #expect(params.tmpfs == [])
    }

    @Test func full() throws {
        let params = try CreateParams(params: json(#"{"name":"db-1","namespaces":["net","mnt"],"hostname":"Box","tmpfs":["/tmp","/run"]}"#))
        #expect(params.name == "db-1")
        #expect(params.namespaces == ["net", "mnt"])
        #expect(params.hostname == "Box")
        #expect(params.tmpfs == ["/tmp", "/run"])
    }

    @Test func privateMounts() throws {
        let params = try CreateParams(params: json(#"{"name":"a","privateTmp":true,"privateHome":false,"home":"/srv/h"}"#))
        #expect(params.privateTmp && !params.privateHome && params.home == "/srv/h")
        // false is not written back: absent and false mean the same.
        #expect(params.json == json(#"{"name":"a","privateTmp":true,"home":"/srv/h"}"#))
        #expect(try CreateParams(params: params.json) == params)
        let none = try CreateParams(params: json(#"{"name":"a","privateTmp":null,"privateHome":null,"home":null}"#))
        #expect(none == CreateParams(name: "a"))
        for (text, message) in [(#"{"name":"a","privateTmp":1}"#, #"create: "privateTmp" must be"#),
                                (#"{"name":"a","privateHome":"yes"}"#, #"create: "privateHome" must be"#),
                                (#"{"name":"a","home":["/h"]}"#, #"create: "home" must be a string"#)] {
            #expect(throws: RPCError.self) { try CreateParams(params: json(text)) }
            do { _ = try CreateParams(params: json(text)) } catch { #expect(error.message.hasPrefix(message), "\(error.message)") }
        }
    }

    @Test func nullMembersAreAbsent() throws {
        let params = try CreateParams(params: json(#"{"name":"a","namespaces":null,"hostname":null,"tmpfs":null}"#))
        #expect(params == CreateParams(name: "a"))
    }

    @Test func emptyNamespaceListIsKeptForTheHandlerToRefuse() throws {
        let params = try CreateParams(params: json(#"{"name":"a","namespaces":[]}"#))
        #expect(params.namespaces == [])
    }

    @Test(arguments: [
        (nil as String?, #"create: "name" is required"#),
        ("{}", #"create: "name" is required"#),
        (#"{"name":null}"#, #"create: "name" is required"#),
        (#"{"name":5}"#, #"create: "name" must be a string"#),
        (#"{"name":["a"]}"#, #"create: "name" must be a string"#),
        (#"{"name":"a","namespaces":"net"}"#, #"create: "namespaces" must be an array of strings"#),
        (#"{"name":"a","namespaces":["net",1]}"#, #"create: "namespaces" must be an array of strings"#),
        (#"{"name":"a","namespaces":[null]}"#, #"create: "namespaces" must be an array of strings"#),
        (#"{"name":"a","hostname":7}"#, #"create: "hostname" must be a string"#),
        (#"{"name":"a","hostname":true}"#, #"create: "hostname" must be a string"#),
        (#"{"name":"a","tmpfs":"/tmp"}"#, #"create: "tmpfs" must be an array of strings"#),
        (#"{"name":"a","tmpfs":[{}]}"#, #"create: "tmpfs" must be an array of strings"#),
        (#"{"name":"a","color":"blue"}"#, #"create: unknown parameter "color""#),
        (#"{"name":"a","Name":"b"}"#, #"create: unknown parameter "Name""#),
        (#"{"name":"a","owner":null}"#, #"create: unknown parameter "owner""#),
        ("[]", "create: params must be an object"),
        (#""web""#, "create: params must be an object"),
    ])
    func invalidParams(_ text: String?, _ message: String) throws {
        let value = text.map(json)
        let error = try #require(rpcError { () throws(RPCError) in try CreateParams(params: value) })
        #expect(error.reason == .invalidParams)
        #expect(error.message == message)
    }

    @Test(arguments: ["Web", "", ".x", "a/b", String(repeating: "a", count: 64)])
    func invalidNameIsInvalidName(_ name: String) throws {
        let value = JSONValue.object(["name": .string(name)])
        let error = try #require(rpcError { () throws(RPCError) in try CreateParams(params: value) })
        #expect(error.reason == .invalidName)
        let nameError = try #require(rpcError { () throws(RPCError) in try NameParams(params: value, method: "inspect") })
        #expect(nameError.reason == .invalidName)
    }

    @Test func roundTripThroughJSON() throws {
        let samples = [
            CreateParams(name: "a"),
            CreateParams(name: "b", namespaces: ["mnt", "uts"], hostname: "h", tmpfs: ["/x", "/y"]),
            CreateParams(name: "c", namespaces: [], hostname: nil, tmpfs: []),
        ]
        for sample in samples {
            let text = sample.json.serialized()
            #expect(try CreateParams(params: json(text)) == sample)
        }
        #expect(CreateParams(name: "a").json.serialized() == #"{"name":"a"}"#)
    }

    @Test func nameParams() throws {
        let params = try NameParams(params: json(#"{"name":"web"}"#), method: "destroy")
        #expect(params.name == "web")
        #expect(params.json == .object(["name": "web"]))
        #expect(try NameParams(params: params.json, method: "inspect") == params)
    }

    @Test(arguments: [
        (nil as String?, #"destroy: "name" is required"#),
        (#"{"name":1}"#, #"destroy: "name" must be a string"#),
        (#"{"name":"a","force":true}"#, #"destroy: unknown parameter "force""#),
        ("[1]", "destroy: params must be an object"),
    ])
    func nameParamsRefused(_ text: String?, _ message: String) throws {
        let value = text.map(json)
        let error = try #require(rpcError { () throws(RPCError) in try NameParams(params: value, method: "destroy") })
        #expect(error.reason == .invalidParams)
        #expect(error.message == message)
    }
}

// MARK: - ParamsReader

@Suite("ParamsReader")
struct ParamsReaderTests {
    @Test(arguments: [
        ("5", 5 as Int64?),
        ("0", 0),
        ("10", 10),
        ("-0", 0),
        ("1e1", 10),
        ("1.0", 1),
        ("100e-1", 10),
        ("null", nil),
    ])
    func integerInRange(_ lexeme: String, _ expected: Int64?) throws {
        var reader = try ParamsReader(json(#"{"n":"# + lexeme + "}"), method: "m")
        #expect(try reader.integer("n", in: 0...10) == expected)
        try reader.finish()
    }

    @Test(arguments: ["11", "-1", "1.5", "\"5\"", "true", "[1]", "{}", "1e2", "9223372036854775808", "0.01e1"])
    func integerRefused(_ lexeme: String) throws {
        var reader = try ParamsReader(json(#"{"n":"# + lexeme + "}"), method: "m")
        let error = try #require(rpcError { () throws(RPCError) in try reader.integer("n", in: 0...10) })
        #expect(error.reason == .invalidParams)
        #expect(error.message == #"m: "n" must be an integer from 0 to 10"#)
    }

    @Test func integerAtTheEndsOfInt64() throws {
        var reader = try ParamsReader(json(#"{"lo":-9223372036854775808,"hi":9223372036854775807}"#), method: "m")
        #expect(try reader.integer("lo", in: Int64.min...Int64.max) == Int64.min)
        #expect(try reader.integer("hi", in: Int64.min...Int64.max) == Int64.max)
    }

    @Test func absentAndNullAreNil() throws {
        var reader = try ParamsReader(json(#"{"s":null,"b":null,"a":null,"m":null,"i":null}"#), method: "m")
        #expect(try reader.string("s") == nil)
        #expect(try reader.bool("b") == nil)
        #expect(try reader.stringArray("a") == nil)
        #expect(try reader.stringMap("m") == nil)
        #expect(try reader.integer("i", in: 0...1) == nil)
        #expect(try reader.string("missing") == nil)
        try reader.finish()
    }

    @Test func nullRequiredStringIsMissing() throws {
        var reader = try ParamsReader(json(#"{"name":null}"#), method: "m")
        let error = try #require(rpcError { () throws(RPCError) in try reader.requiredString("name") })
        #expect(error.message == #"m: "name" is required"#)
    }

    @Test func nullUnknownMemberIsStillUnknown() throws {
        let reader = try ParamsReader(json(#"{"extra":null}"#), method: "m")
        let error = try #require(rpcError { () throws(RPCError) in try reader.finish() })
        #expect(error.message == #"m: unknown parameter "extra""#)
    }

    @Test func noParamsMeansNone() throws {
        var reader = try ParamsReader(nil, method: "list")
        #expect(try reader.string("anything") == nil)
        try reader.finish()
    }

    @Test func bools() throws {
        var reader = try ParamsReader(json(#"{"t":true,"f":false,"s":"true","n":1}"#), method: "m")
        #expect(try reader.bool("t") == true)
        #expect(try reader.bool("f") == false)
        #expect(rpcError { () throws(RPCError) in try reader.bool("s") }?.message == #"m: "s" must be true or false"#)
        #expect(rpcError { () throws(RPCError) in try reader.bool("n") }?.message == #"m: "n" must be true or false"#)
        try reader.finish()
    }

    @Test func stringMapKeepsOrder() throws {
        var reader = try ParamsReader(json(#"{"env":{"Z":"1","A":"2","M":""}}"#), method: "m")
        let map = try #require(try reader.stringMap("env"))
        #expect(map.map(\.0) == ["Z", "A", "M"])
        #expect(map.map(\.1) == ["1", "2", ""])
        var bad = try ParamsReader(json(#"{"env":{"A":1}}"#), method: "m")
        #expect(rpcError { () throws(RPCError) in try bad.stringMap("env") }?.message == #"m: "env" must be an object of strings"#)
        var notObject = try ParamsReader(json(#"{"env":["A"]}"#), method: "m")
        #expect(rpcError { () throws(RPCError) in try notObject.stringMap("env") }?.message == #"m: "env" must be an object of strings"#)
    }

    @Test func finishNamesTheFirstUnknownMember() throws {
        var reader = try ParamsReader(json(#"{"a":1,"b":2,"c":3}"#), method: "m")
        _ = try reader.integer("a", in: 0...9)
        let error = try #require(rpcError { () throws(RPCError) in try reader.finish() })
        #expect(error.message == #"m: unknown parameter "b""#)
    }
}

// MARK: - Results

@Suite("Result types round trip")
struct ResultRoundTripTests {
    static func sampleGroup(_ name: String, hostname: String? = "h", tmpfs: [String] = ["/tmp"]) -> GroupInfo {
        GroupInfo(name: name, owner: 1000, ownerName: "alice",
                  namespaces: [(kind: "net", id: "net:[4026532300]"), (kind: "mnt", id: "mnt:[4026532299]"),
                               (kind: "uts", id: "uts:[4026532301]")],
                  holder: 4242, created: "2026-11-28T23:40:00Z", hostname: hostname, tmpfs: tmpfs)
    }

    @Test func groupInfo() throws {
        let info = Self.sampleGroup("web")
        let back = try GroupInfo(json: JSONParser.parse(info.json.serialized()))
        #expect(back == info)
        #expect(back.name == "web")
        #expect(back.owner == 1000)
        #expect(back.ownerName == "alice")
        #expect(back.namespaces.map(\.kind) == ["net", "mnt", "uts"], "kind order survives")
        #expect(back.namespaces.map(\.id) == ["net:[4026532300]", "mnt:[4026532299]", "uts:[4026532301]"])
        #expect(back.holder == 4242)
        #expect(back.created == "2026-11-28T23:40:00Z")
        #expect(back.hostname == "h")
        #expect(back.tmpfs == ["/tmp"])
    }

    @Test func groupInfoWithoutHostnameOmitsIt() throws {
        let info = Self.sampleGroup("x", hostname: nil, tmpfs: [])
        #expect(info.json["hostname"] == nil)
        #expect(info.json["tmpfs"] == .array([]))
        let back = try GroupInfo(json: info.json)
        #expect(back.hostname == nil)
        #expect(back == info)
    }

    @Test func groupInfoFieldTypes() {
        let json = Self.sampleGroup("t").json
        #expect(json["owner"] == .number(JSONNumber(1000)))
        #expect(json["holder"] == .number(JSONNumber(4242)))
        #expect(json["namespaces"]?["mnt"] == .string("mnt:[4026532299]"))
        #expect(json.objectValue?.keys == ["name", "owner", "ownerName", "namespaces", "holder", "created", "hostname", "tmpfs", "members",
                                           "limits", "frozen", "sessions"])
        #expect(json["limits"] == .object([:]), "limits is there even when nothing limits the group")
        #expect(json["frozen"] == .bool(false))
    }

    @Test func groupInfoIsLenientAboutOptionalFields() throws {
        let info = try GroupInfo(json: json(#"{"name":"n","owner":7,"future":"field"}"#))
        #expect(info.ownerName == "7")
        #expect(info.namespaces.isEmpty)
        #expect(info.holder == 0)
        #expect(info.created == "")
    }

    @Test(arguments: [
        #"{"owner":1}"#,
        #"{"name":"n","owner":-1}"#,
        #"{"name":"n","owner":4294967296}"#,
        #"{"name":"n","holder":2147483648}"#,
        #"{"name":"n","namespaces":{"mnt":1}}"#,
        #"{"name":"n","tmpfs":[1]}"#,
        "[]",
    ])
    func groupInfoRefused(_ text: String) {
        #expect(rpcError { () throws(RPCError) in try GroupInfo(json: json(text)) } != nil)
    }

    @Test func listResult() throws {
        let list = ListResult(groups: [Self.sampleGroup("a"), Self.sampleGroup("b", hostname: nil, tmpfs: ["/x", "/y"])])
        let back = try ListResult(json: JSONParser.parse(list.json.serialized()))
        #expect(back == list)
        #expect(back.groups.map(\.name) == ["a", "b"])
        #expect(try ListResult(json: ListResult(groups: []).json).groups.isEmpty)
        #expect(ListResult(groups: []).json.serialized() == #"{"groups":[]}"#)
    }

    @Test func listResultRefusesNonArray() {
        #expect(rpcError { () throws(RPCError) in try ListResult(json: json(#"{"groups":{}}"#)) }?.reason == .invalidParams)
        #expect(rpcError { () throws(RPCError) in try ListResult(json: json("{}")) }?.reason == .invalidParams)
    }

    @Test func versionResult() throws {
        let version = VersionResult(server: nsgroupVersion, protocolVersion: protocolVersion, methods: MethodName.allCases.map(\.rawValue))
        let text = version.json.serialized()
        let methods = MethodName.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ",")
        #expect(text == #"{"server":"\#(nsgroupVersion)","protocol":\#(protocolVersion),"minor":\#(protocolMinor),"methods":[\#(methods)]}"#)
        #expect(try VersionResult(json: JSONParser.parse(text)) == version)
        // A 1.0 server says no minor: read as 0.
        #expect(try VersionResult(json: json(#"{"server":"s","protocol":1,"methods":[]}"#)).minor == 0)
        #expect(rpcError { () throws(RPCError) in try VersionResult(json: json(#"{"protocol":1}"#)) } != nil)
        #expect(rpcError { () throws(RPCError) in try VersionResult(json: json(#"{"server":"s","protocol":"1"}"#)) } != nil)
    }
}

// MARK: - Timestamp

@Suite("Timestamp")
struct TimestampTests {
    @Test func knownInstants() {
        #expect(Timestamp.format(secondsSinceEpoch: 0) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.format(secondsSinceEpoch: 951_782_400) == "2000-02-29T00:00:00Z")
        #expect(Timestamp.format(secondsSinceEpoch: -1) == "1969-12-31T23:59:59Z")
        #expect(Timestamp.parse("1970-01-01T00:00:00Z") == 0)
        #expect(Timestamp.parse("2000-02-29T00:00:00Z") == 951_782_400)
    }

    @Test func roundTrip() {
        var value: Int64 = -2_000_000_000
        var checked = 0
        while value < 8_000_000_000 {
            let text = Timestamp.format(secondsSinceEpoch: value)
            #expect(text.utf8.count == 20, "\(text)")
            #expect(Timestamp.parse(text) == value, "\(text)")
            value += 7_777_777 + Int64(checked % 86_400)
            checked += 1
        }
        #expect(checked > 1000)
    }

    @Test func nowIsTheSystemClock() {
        let before = Int64(time(nil))
        let now = Timestamp.now()
        let after = Int64(time(nil))
        #expect(before <= now && now <= after)
    }

    @Test(arguments: [
        "", "1970-01-01", "1970-01-01T00:00:00", "1970-01-01T00:00:00z", "1970-01-01t00:00:00Z",
        "1970-01-01 00:00:00Z", "1970-01-01T00:00:00+00:00", "1970-01-01T00:00:00.0Z", "1970-1-01T00:00:00Z",
        "1970-00-01T00:00:00Z", "1970-13-01T00:00:00Z", "1970-01-00T00:00:00Z", "1970-01-32T00:00:00Z",
        "1970-01-01T24:00:00Z", "1970-01-01T00:60:00Z", "1970-01-01T00:00:61Z", "197a-01-01T00:00:00Z",
        "1970-01-01T0a:00:00Z", "1970/01/01T00:00:00Z", " 1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z ",
        "+970-01-01T00:00:00Z", "1970-0-101T00:00:00Z", "１９７０-01-01T00:00:00Z",
    ])
    func rejections(_ text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    /// `parse` reads what `format` writes and nothing else: a day that the
    /// month does not have is not silently moved into the next month.
    @Test(arguments: ["2026-02-29T00:00:00Z", "2026-02-31T12:00:00Z", "2026-04-31T00:00:00Z", "2024-02-30T00:00:00Z"])
    func daysTheMonthDoesNotHaveAreRejected(_ text: String) {
        let parsed = Timestamp.parse(text)
        #expect(parsed == nil, "parsed as \(parsed.map { Timestamp.format(secondsSinceEpoch: $0) } ?? "nil")")
    }
}
