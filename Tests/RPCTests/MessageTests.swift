import Testing
import RPC

// MARK: - Helpers

/// Decodes `text` as a request line; the failure when it does not decode.
private func decodeRequest(_ text: String) -> Result<Request, Request.DecodingFailure> {
    do throws(Request.DecodingFailure) {
        return .success(try Request.decode(line: Array(text.utf8)))
    } catch {
        return .failure(error)
    }
}

private func requestFailure(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> Request.DecodingFailure? {
    switch decodeRequest(text) {
    case .success(let request):
        Issue.record("expected \(text) to be refused, got method \(request.method)", sourceLocation: sourceLocation)
        return nil
    case .failure(let failure):
        return failure
    }
}

private func requestSuccess(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> Request? {
    switch decodeRequest(text) {
    case .success(let request):
        return request
    case .failure(let failure):
        Issue.record("expected \(text) to decode, got \(failure.error.reason): \(failure.error.message)", sourceLocation: sourceLocation)
        return nil
    }
}

private func decodeIncoming(_ text: String) -> Result<IncomingMessage, RPCError> {
    Array(text.utf8).withUnsafeBytes { raw in
        do throws(RPCError) {
            return .success(try IncomingMessage.decode(line: raw))
        } catch {
            return .failure(error)
        }
    }
}

private func number(_ lexeme: String) -> JSONNumber {
    guard let n = JSONNumber(lexeme: lexeme) else { fatalError("bad test lexeme \(lexeme)") }
    return n
}

/// One way a request line may be refused.
struct RefusedRequestCase: Sendable, CustomTestStringConvertible {
    let line: String
    let reason: ErrorReason
    let id: RequestID
    let messageContains: String

    var testDescription: String { line }
}

// MARK: - Request.decode

@Suite("Request.decode")
struct RequestDecodeTests {
    @Test func numberID() throws {
        let request = try #require(requestSuccess(#"{"jsonrpc":"2.0","id":7,"method":"list"}"#))
        #expect(request.id == .number(JSONNumber(7)))
        #expect(request.method == "list")
        #expect(request.params == nil)
        #expect(!request.isNotification)
    }

    @Test func stringID() throws {
        let request = try #require(requestSuccess(#"{"method":"inspect","params":{"name":"web"},"id":"req-1","jsonrpc":"2.0"}"#))
        #expect(request.id == .string("req-1"))
        #expect(request.method == "inspect")
        #expect(request.params == .object(["name": "web"]))
    }

    @Test func nullIDIsARequestNotANotification() throws {
        let request = try #require(requestSuccess(#"{"jsonrpc":"2.0","id":null,"method":"version"}"#))
        #expect(request.id == .null)
        #expect(!request.isNotification)
    }

    @Test func noIDIsANotification() throws {
        let request = try #require(requestSuccess(#"{"jsonrpc":"2.0","method":"version"}"#))
        #expect(request.id == nil)
        #expect(request.isNotification)
    }

    @Test func emptyParamsObject() throws {
        let request = try #require(requestSuccess(#"{"jsonrpc":"2.0","id":1,"method":"list","params":{}}"#))
        #expect(request.params == .object([:]))
    }

    @Test func surroundingWhitespaceAndCR() throws {
        let request = try #require(requestSuccess(" \t{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"list\"}\r"))
        #expect(request.method == "list")
    }

    @Test func unknownMethodNameStillDecodes() throws {
        // Routing (method_not_found) is the server's job, not the decoder's.
        let request = try #require(requestSuccess(#"{"jsonrpc":"2.0","id":1,"method":"no.such/method"}"#))
        #expect(request.method == "no.such/method")
    }

    static let refused: [RefusedRequestCase] = [
        // Not JSON at all: parse_error, id null.
        .init(line: "", reason: .parseError, id: .null, messageContains: "parse error"),
        .init(line: "{", reason: .parseError, id: .null, messageContains: "parse error"),
        .init(line: #"{"jsonrpc":"2.0","id":1,"method":"list""#, reason: .parseError, id: .null, messageContains: "parse error"),
        .init(line: #"{"jsonrpc":"2.0","id":1,"id":2,"method":"list"}"#, reason: .parseError, id: .null, messageContains: "duplicate"),
        .init(line: #"{"jsonrpc":"2.0","id":1,"method":"list"} {}"#, reason: .parseError, id: .null, messageContains: "parse error"),
        .init(line: "nonsense", reason: .parseError, id: .null, messageContains: "parse error"),
        // Valid JSON that is not a request object.
        .init(line: #"[{"jsonrpc":"2.0","id":1,"method":"list"}]"#, reason: .invalidRequest, id: .null, messageContains: "batch"),
        .init(line: "[]", reason: .invalidRequest, id: .null, messageContains: "batch"),
        .init(line: "42", reason: .invalidRequest, id: .null, messageContains: "must be a JSON object"),
        .init(line: #""text""#, reason: .invalidRequest, id: .null, messageContains: "must be a JSON object"),
        .init(line: "null", reason: .invalidRequest, id: .null, messageContains: "must be a JSON object"),
        .init(line: "true", reason: .invalidRequest, id: .null, messageContains: "must be a JSON object"),
        // jsonrpc member: the id is echoed when it could be read.
        .init(line: #"{"id":3,"method":"list"}"#, reason: .invalidRequest, id: .number(JSONNumber(3)), messageContains: #""jsonrpc" must be "2.0""#),
        .init(line: #"{"jsonrpc":"1.0","id":3,"method":"list"}"#, reason: .invalidRequest, id: .number(JSONNumber(3)), messageContains: #""jsonrpc" must be "2.0""#),
        .init(line: #"{"jsonrpc":2.0,"id":"s","method":"list"}"#, reason: .invalidRequest, id: .string("s"), messageContains: #""jsonrpc" must be "2.0""#),
        .init(line: #"{"jsonrpc":null,"method":"list"}"#, reason: .invalidRequest, id: .null, messageContains: #""jsonrpc" must be "2.0""#),
        // method member.
        .init(line: #"{"jsonrpc":"2.0","id":4}"#, reason: .invalidRequest, id: .number(JSONNumber(4)), messageContains: #""method" must be a string"#),
        .init(line: #"{"jsonrpc":"2.0","id":4,"method":5}"#, reason: .invalidRequest, id: .number(JSONNumber(4)), messageContains: #""method" must be a string"#),
        .init(line: #"{"jsonrpc":"2.0","id":4,"method":null}"#, reason: .invalidRequest, id: .number(JSONNumber(4)), messageContains: #""method" must be a string"#),
        .init(line: #"{"jsonrpc":"2.0","id":4,"method":["list"]}"#, reason: .invalidRequest, id: .number(JSONNumber(4)), messageContains: #""method" must be a string"#),
        // Unknown members.
        .init(line: #"{"jsonrpc":"2.0","id":5,"method":"list","extra":1}"#, reason: .invalidRequest, id: .number(JSONNumber(5)), messageContains: #"unknown member "extra""#),
        .init(line: #"{"jsonrpc":"2.0","method":"list","Params":{}}"#, reason: .invalidRequest, id: .null, messageContains: #"unknown member "Params""#),
        // Bad id types: the id cannot be echoed, so it is null.
        .init(line: #"{"jsonrpc":"2.0","id":{},"method":"list"}"#, reason: .invalidRequest, id: .null, messageContains: #""id" must be"#),
        .init(line: #"{"jsonrpc":"2.0","id":[1],"method":"list"}"#, reason: .invalidRequest, id: .null, messageContains: #""id" must be"#),
        .init(line: #"{"jsonrpc":"2.0","id":true,"method":"list"}"#, reason: .invalidRequest, id: .null, messageContains: #""id" must be"#),
        .init(line: #"{"jsonrpc":"2.0","id":false,"method":"list"}"#, reason: .invalidRequest, id: .null, messageContains: #""id" must be"#),
        // params must be an object.
        .init(line: #"{"jsonrpc":"2.0","id":6,"method":"create","params":["web"]}"#, reason: .invalidParams, id: .number(JSONNumber(6)), messageContains: #""params" must be an object"#),
        .init(line: #"{"jsonrpc":"2.0","id":6,"method":"create","params":"web"}"#, reason: .invalidParams, id: .number(JSONNumber(6)), messageContains: #""params" must be an object"#),
        .init(line: #"{"jsonrpc":"2.0","id":"p","method":"create","params":null}"#, reason: .invalidParams, id: .string("p"), messageContains: #""params" must be an object"#),
        .init(line: #"{"jsonrpc":"2.0","method":"create","params":1}"#, reason: .invalidParams, id: .null, messageContains: #""params" must be an object"#),
    ]

    @Test(arguments: refused)
    func refusedRequests(_ c: RefusedRequestCase) throws {
        let failure = try #require(requestFailure(c.line))
        #expect(failure.error.reason == c.reason)
        #expect(failure.error.code == c.reason.code)
        #expect(failure.id == c.id)
        #expect(failure.error.message.contains(c.messageContains), "message: \(failure.error.message)")
    }

    @Test func invalidUTF8IsAParseError() throws {
        var line = Array(#"{"jsonrpc":"2.0","id":1,"method":"l"#.utf8)
        line += [0xFF, 0xFE]
        line += Array(#""}"#.utf8)
        do throws(Request.DecodingFailure) {
            let request = try Request.decode(line: line)
            Issue.record("decoded \(request.method)")
        } catch {
            #expect(error.error.reason == .parseError)
            #expect(error.id == .null)
        }
    }

    @Test func parseErrorMessageNamesTheOffset() throws {
        let failure = try #require(requestFailure(#"{"jsonrpc":"2.0",}"#))
        #expect(failure.error.reason == .parseError)
        #expect(failure.error.message.contains("at byte"))
    }

    @Test func rawBufferEntryPointAgrees() throws {
        let text = #"{"jsonrpc":"2.0","id":"x","method":"destroy","params":{"name":"a"}}"#
        let viaBuffer = try Array(text.utf8).withUnsafeBytes { raw in try Request.decode(line: raw) }
        #expect(viaBuffer.id == .string("x"))
        #expect(viaBuffer.method == "destroy")
        #expect(viaBuffer.params == .object(["name": "a"]))
    }

    // MARK: ids echoed exactly

    @Test(arguments: ["1.50", "123456789012345678901234567890", "-0", "1e400", "1E+2", "0.000000000000000000000000001", "-9223372036854775809"])
    func numericIDKeepsItsSpelling(_ lexeme: String) throws {
        let request = try #require(requestSuccess(#"{"jsonrpc":"2.0","id":"# + lexeme + #","method":"version"}"#))
        let id = try #require(request.id)
        guard case .number(let n) = id else {
            Issue.record("id is not a number: \(id)")
            return
        }
        #expect(n.lexeme == lexeme)
        #expect(id.description == lexeme)
        let reply = Response.result(id: id, .object([:])).serialized()
        #expect(reply == #"{"jsonrpc":"2.0","id":"# + lexeme + #","result":{}}"#)
    }

    @Test func stringIDKeepsItsContent() throws {
        let raw = #"{"jsonrpc":"2.0","id":"a\"b\\c\u00e9\n","method":"version"}"#
        let request = try #require(requestSuccess(raw))
        #expect(request.id == .string("a\"b\\cé\n"))
        let reply = Response.error(id: try #require(request.id), RPCError(.notFound, "x")).serialized()
        #expect(reply.hasPrefix(#"{"jsonrpc":"2.0","id":"a\"b\\cé\n","error":"#))
    }

    @Test func idOfAFailureIsEchoedExactly() throws {
        let failure = try #require(requestFailure(#"{"jsonrpc":"2.0","id":1.50,"method":"list","bogus":true}"#))
        #expect(failure.id == .number(number("1.50")))
        let reply = Response.error(id: failure.id, failure.error).serialized()
        #expect(reply.hasPrefix(#"{"jsonrpc":"2.0","id":1.50,"#))
    }

    // MARK: Request.json

    @Test func requestJSONRoundTrips() throws {
        let requests = [
            Request(id: .number(JSONNumber(1)), method: "list", params: nil),
            Request(id: .string("s"), method: "create", params: .object(["name": "web", "namespaces": ["net"]])),
            Request(id: nil, method: "version", params: .object([:])),
            Request(id: .null, method: "destroy", params: .object(["name": "x"])),
        ]
        for request in requests {
            let line = request.json.line
            #expect(line.last == 0x0A)
            let decoded = try Request.decode(line: Array(line.dropLast()))
            #expect(decoded.id == request.id)
            #expect(decoded.method == request.method)
            #expect(decoded.params == request.params)
        }
    }

    @Test func requestJSONExactText() {
        let request = Request(id: .number(JSONNumber(3)), method: "inspect", params: .object(["name": "db"]))
        #expect(request.json.serialized() == #"{"jsonrpc":"2.0","method":"inspect","params":{"name":"db"},"id":3}"#)
        let notification = Request(id: nil, method: "list", params: nil)
        #expect(notification.json.serialized() == #"{"jsonrpc":"2.0","method":"list"}"#)
    }
}

// MARK: - Response

@Suite("Response serialization")
struct ResponseSerializationTests {
    @Test func result() {
        let text = Response.result(id: .number(JSONNumber(1)), .object(["groups": []])).serialized()
        #expect(text == #"{"jsonrpc":"2.0","id":1,"result":{"groups":[]}}"#)
    }

    @Test func resultWithStringAndNullIDs() {
        #expect(Response.result(id: .string("abc"), .bool(true)).serialized() == #"{"jsonrpc":"2.0","id":"abc","result":true}"#)
        #expect(Response.result(id: .null, .null).serialized() == #"{"jsonrpc":"2.0","id":null,"result":null}"#)
    }

    @Test func error() {
        let text = Response.error(id: .number(JSONNumber(9)), .notFound(group: "web")).serialized()
        #expect(text == #"{"jsonrpc":"2.0","id":9,"error":{"code":-32001,"message":"no group named \"web\"","data":{"reason":"not_found"}}}"#)
    }

    @Test func errorWithDetails() {
        let error = RPCError(.operationFailed, "cannot create group \"g\": setns(net): Operation not permitted",
                             details: ["step": "setns(net)", "errno": "EPERM"])
        let text = Response.error(id: .null, error).serialized()
        #expect(text == #"{"jsonrpc":"2.0","id":null,"error":{"code":-32005,"message":"cannot create group \"g\": setns(net): Operation not permitted","data":{"reason":"operation_failed","step":"setns(net)","errno":"EPERM"}}}"#)
    }

    @Test func notification() {
        let text = Response.notification(method: "exited", params: .object(["status": 0])).serialized()
        #expect(text == #"{"jsonrpc":"2.0","method":"exited","params":{"status":0}}"#)
    }
}

// MARK: - IncomingMessage

@Suite("IncomingMessage.decode")
struct IncomingMessageTests {
    @Test func result() throws {
        let message = try decodeIncoming(#"{"jsonrpc":"2.0","id":12,"result":{"server":"nsgroupd"}}"#).get()
        guard case .result(let id, let value) = message else {
            Issue.record("not a result: \(message)")
            return
        }
        #expect(id == .number(JSONNumber(12)))
        #expect(value == .object(["server": "nsgroupd"]))
    }

    @Test func nullResultIsStillAResult() throws {
        let message = try decodeIncoming(#"{"jsonrpc":"2.0","id":"a","result":null}"#).get()
        guard case .result(let id, let value) = message else {
            Issue.record("not a result: \(message)")
            return
        }
        #expect(id == .string("a"))
        #expect(value == .null)
    }

    @Test func error() throws {
        let message = try decodeIncoming(#"{"jsonrpc":"2.0","id":2,"error":{"code":-32005,"message":"boom","data":{"reason":"operation_failed","step":"mount(tmpfs, /x)","errno":"ENOENT"}}}"#).get()
        guard case .error(let id, let error) = message else {
            Issue.record("not an error: \(message)")
            return
        }
        #expect(id == .number(JSONNumber(2)))
        #expect(error.reason == .operationFailed)
        #expect(error.message == "boom")
        #expect(error.details == ["step": "mount(tmpfs, /x)", "errno": "ENOENT"])
    }

    @Test func errorWithUnknownReasonFallsBackByCode() throws {
        let message = try decodeIncoming(#"{"jsonrpc":"2.0","id":2,"error":{"code":-32003,"message":"nope","data":{"reason":"quota_from_the_future"}}}"#).get()
        guard case .error(_, let error) = message else {
            Issue.record("not an error: \(message)")
            return
        }
        #expect(error.reason == .permissionDenied)
        #expect(error.details.isEmpty, "the unknown reason is not kept as a detail")
    }

    @Test func errorWithUnknownReasonAndCodeIsInternal() throws {
        let message = try decodeIncoming(#"{"jsonrpc":"2.0","id":2,"error":{"code":-31999,"message":"new","data":{"reason":"brand_new"}}}"#).get()
        guard case .error(_, let error) = message else {
            Issue.record("not an error: \(message)")
            return
        }
        #expect(error.reason == .internalError)
        #expect(error.message == "new")
    }

    @Test func errorWithoutDataUsesTheCode() throws {
        let message = try decodeIncoming(#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#).get()
        guard case .error(let id, let error) = message else {
            Issue.record("not an error: \(message)")
            return
        }
        #expect(id == .null)
        #expect(error.reason == .parseError)
    }

    @Test func notificationWithParams() throws {
        let message = try decodeIncoming(#"{"jsonrpc":"2.0","method":"exited","params":{"code":3}}"#).get()
        guard case .notification(let method, let params) = message else {
            Issue.record("not a notification: \(message)")
            return
        }
        #expect(method == "exited")
        #expect(params == .object(["code": 3]))
    }

    @Test func notificationWithoutParams() throws {
        let message = try decodeIncoming(#"{"jsonrpc":"2.0","method":"ping"}"#).get()
        guard case .notification(let method, let params) = message else {
            Issue.record("not a notification: \(message)")
            return
        }
        #expect(method == "ping")
        #expect(params == .object([:]))
    }

    @Test(arguments: [
        ("not json", ErrorReason.parseError),
        ("{\"jsonrpc\":\"2.0\",", .parseError),
        ("[]", .invalidRequest),
        ("42", .invalidRequest),
        (#"{"id":1,"result":1}"#, .invalidRequest),
        (#"{"jsonrpc":"1.0","id":1,"result":1}"#, .invalidRequest),
        (#"{"jsonrpc":"2.0","id":1}"#, .invalidRequest),
        (#"{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}"#, .invalidRequest),
        (#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001}}"#, .invalidRequest),
        (#"{"jsonrpc":"2.0","id":1,"error":"boom"}"#, .invalidRequest),
    ])
    func garbage(_ text: String, _ reason: ErrorReason) {
        switch decodeIncoming(text) {
        case .success(let message):
            Issue.record("decoded \(message)")
        case .failure(let error):
            #expect(error.reason == reason, "\(error.message)")
        }
    }
}

// MARK: - Lines

@Suite("JSONValue.line")
struct JSONValueLineTests {
    @Test(arguments: [
        JSONValue.null,
        .string("multi\nline\r\ntext\u{2028}\u{2029}\u{0B}\u{0C}"),
        .object(["a\nkey": .array(["x\ny", 1, .object(["deep": "\n\n"])])]),
        .number(JSONNumber(-5)),
        .array([]),
    ])
    func endsInExactlyOneNewline(_ value: JSONValue) throws {
        let line = value.line
        #expect(line.last == 0x0A)
        #expect(line.filter { $0 == 0x0A }.count == 1)
        #expect(!line.contains(0x0D))
        // What is before the newline is the value itself.
        #expect(try JSONParser.parse(Array(line.dropLast())) == value)
        #expect(Array(line.dropLast()) == Array(value.serialized().utf8))
    }

    @Test func responsesAreSingleLines() {
        let error = RPCError(.invalidParams, "bad\nparam", details: ["where": "line\none"])
        for value in [Response.error(id: .string("a\nb"), error), Response.result(id: .null, .string("\n")),
                      Response.notification(method: "m\n", params: .object(["k": "\r\n"]))] {
            let line = value.line
            #expect(line.filter { $0 == 0x0A }.count == 1)
            #expect(line.last == 0x0A)
        }
    }
}
