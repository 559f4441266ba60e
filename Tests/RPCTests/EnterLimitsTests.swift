import Testing
@testable import RPC

@Suite("enter: argv and env caps, and the argv events carry")
struct EnterLimitsTests {
    private func refusal(_ params: EnterParams) -> String? {
        do throws(RPCError) {
            _ = try EnterParams(params: params.json)
            return nil
        } catch {
            #expect(error.reason == .invalidParams)
            return error.message
        }
    }

    @Test func argvAtTheCapsIsAccepted() {
        // 1024 arguments of 127 bytes (+ NUL) = 131072 bytes: exactly at both caps.
        let argv = Array(repeating: String(repeating: "x", count: 127), count: 1024)
        #expect(refusal(EnterParams(name: "g", argv: argv, tty: true)) == nil)
        let env = (0..<128).map { (String(format: "V%03d", $0), String(repeating: "v", count: 250)) }  // 4+1+250+1 = 256 each
        #expect(refusal(EnterParams(name: "g", argv: ["true"], env: env, tty: true)) == nil)
    }

    @Test func argvAndEnvPastTheCapsAreRefusedNamingTheLimit() {
        #expect(refusal(EnterParams(name: "g", argv: Array(repeating: "x", count: 1025), tty: true))
                == #"enter: "argv" has 1025 arguments, more than the 1024 allowed"#)
        #expect(refusal(EnterParams(name: "g", argv: ["true", String(repeating: "é", count: 65_535)], tty: true))
                == #"enter: "argv" holds 131076 bytes (each argument counted with its terminating NUL), more than the 131072 allowed"#)
        #expect(refusal(EnterParams(name: "g", argv: ["true"], env: (0..<129).map { ("V\($0)", "") }, tty: true))
                == #"enter: "env" has 129 variables, more than the 128 allowed"#)
        #expect(refusal(EnterParams(name: "g", argv: ["true"], env: [("A", String(repeating: "a", count: 32_766))], tty: true))
                == #"enter: "env" holds 32769 bytes (each NAME=value counted with its terminating NUL), more than the 32768 allowed"#)
    }

    @Test func eventsCarryAtMostSixteenArgumentsOfAtMost256Bytes() {
        let short = EventNotification.truncated(["a", "b"])
        #expect(short.argv == ["a", "b"] && !short.truncated)
        let exact = EventNotification.truncated(Array(repeating: String(repeating: "x", count: 256), count: 16))
        #expect(!exact.truncated && exact.argv.count == 16)
        let many = EventNotification.truncated((0..<17).map(String.init))
        #expect(many.truncated && many.argv == (0..<16).map(String.init))
        // Cut on a character boundary: 1 + 127 × 2 = 255 bytes, the next é would end at 257.
        let wide = EventNotification.truncated(["a" + String(repeating: "é", count: 200)])
        #expect(wide.truncated && wide.argv == ["a" + String(repeating: "é", count: 127)])
        // A four-byte character across the cut.
        let emoji = EventNotification.truncated([String(repeating: "🙂", count: 70)])
        #expect(emoji.argv[0].utf8.count == 256 && emoji.truncated)
    }

    @Test func argvTruncatedIsSentOnlyWhenTrueAndReadBack() throws {
        let cut = EventNotification(kind: .sessionStarted, group: "g", time: "t", owner: 1, session: 1, pid: 2, uid: 3,
                                    argv: ["a"], argvTruncated: true)
        #expect(cut.json["argvTruncated"] == .bool(true))
        #expect(try EventNotification(json: cut.json) == cut)
        let whole = EventNotification(kind: .sessionStarted, group: "g", time: "t", owner: 1, session: 1, pid: 2, uid: 3, argv: ["a"])
        #expect(whole.json["argvTruncated"] == nil)
        #expect(try EventNotification(json: whole.json) == whole)
    }
}
