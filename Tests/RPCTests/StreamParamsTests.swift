import RPC
import Testing

/// Streamed stdio's wire forms (PROTOCOL.md §8.18): strict base64, and the params of
/// `write`, `resize` and `enter`'s `stdio`.
@Suite struct StreamParamsTests {
    @Test func base64MatchesRFC4648sVectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(Base64.decode(encoded) == Array(plain.utf8))
        }
        let all = (0...255).map(UInt8.init)
        #expect(Base64.decode(Base64.encode(all)) == all)
    }

    @Test func base64HasOneSpellingPerByteString() {
        // Missing padding, padding in the middle, other alphabets, whitespace, and bits
        // after the last byte that are not zero ("Zh==" would also read as "f").
        for bad in ["Zg", "Zg=", "Z===", "Zg==Zg==", "Zm9v=Zm9", "Zm-_", "Zm9v\n", " Zm9v", "Zh==", "Zm9=", "===="] {
            #expect(Base64.decode(bad) == nil, "\(bad)")
        }
    }

    @Test func anOutputLineIsTheSerializersOwn() {
        for count in [0, 1, 2, 3, 16384] {
            let data = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let fast = data.withUnsafeBytes { OutputNotification.line(session: 12345678901, fd: 2, data: $0) }
            let slow = Response.notification(method: "output",
                                             params: OutputNotification(session: 12345678901, fd: 2, data: data).json).line
            #expect(fast == slow, "\(count) bytes")
        }
    }

    @Test func writeTakesDataOrEndOfInputWithinAWindow() throws {
        let write = try WriteParams(params: .object(["session": 4, "data": "aGk=", "eof": true]))
        #expect(write == WriteParams(session: 4, data: Array("hi".utf8), eof: true))
        #expect(try WriteParams(params: write.json) == write)
        func refusal(_ params: JSONObject) -> String? {
            do { _ = try WriteParams(params: .object(params)); return nil } catch { return error.message }
        }
        #expect(refusal(["session": 4]) == "write: \"data\" or \"eof\" is required")
        #expect(refusal(["data": "aGk="]) == "write: \"session\" is required")
        #expect(refusal(["session": 0, "data": "aGk="])?.hasPrefix("write: \"session\" must be an integer from 1") == true)
        #expect(refusal(["session": 4, "data": "aGk"]) == "write: \"data\" must be base64 (RFC 4648, standard alphabet, with padding)")
        let window = Base64.encode([UInt8](repeating: 0, count: StreamLimits.window))
        #expect(refusal(["session": 4, "data": .string(window)]) == nil)
        // As long, but without padding: one byte more than a window.
        let longer = String(repeating: "A", count: window.utf8.count)
        for tooLong in [longer, window + "AAAA"] {
            #expect(refusal(["session": 4, "data": .string(tooLong)])
                == "write: \"data\" holds more than the \(StreamLimits.window) bytes a session's window can take")
        }
        #expect(refusal(["session": 4, "data": "", "fd": 0]) == "write: unknown parameter \"fd\"")
    }

    @Test func resizeNeedsAllThree() throws {
        #expect(try ResizeParams(params: .object(["session": 2, "rows": 40, "columns": 120]))
            == ResizeParams(session: 2, rows: 40, columns: 120))
        #expect(throws: RPCError.self) { try ResizeParams(params: .object(["session": 2, "rows": 40])) }
        #expect(throws: RPCError.self) { try ResizeParams(params: .object(["session": 2, "rows": 40, "columns": 65536])) }
    }

    @Test func enterSaysHowItsStdioGoes() throws {
        let streamed = try EnterParams(params: .object(["name": "web", "tty": false, "stdio": "stream"]))
        #expect(streamed.stdio == .stream)
        #expect(try EnterParams(params: streamed.json).stdio == .stream)
        #expect(try EnterParams(params: .object(["name": "web", "tty": true])).stdio == .descriptors)
        #expect(throws: RPCError.self) { try EnterParams(params: .object(["name": "web", "tty": true, "stdio": "socket"])) }
        // Streamed, the request carries no descriptors with or without a terminal.
        let line = Array(#"{"jsonrpc":"2.0","id":1,"method":"enter","params":{"name":"web","tty":false,"stdio":"stream"}}"#.utf8)
        guard case .call = Routed.route(line, descriptors: 0, truncated: false, maxDescriptors: 8) else {
            Issue.record("a streamed enter without descriptors is refused")
            return
        }
        guard case .refused(_, let error) = Routed.route(line, descriptors: 3, truncated: false, maxDescriptors: 8) else {
            Issue.record("a streamed enter with descriptors is routed")
            return
        }
        #expect(error.message == "enter: with \"stdio\": \"stream\" the request carries no file descriptors")
    }
}
