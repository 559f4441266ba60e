import RPC
import Testing

/// Routed.route: the path from a line to a handler that nsgroupd's connections and the
/// fuzzer share (PROTOCOL.md §5, §7).
@Suite struct RoutingTests {
    static func route(_ line: String, descriptors: Int = 0, truncated: Bool = false) -> Routed {
        Routed.route(Array(line.utf8), descriptors: descriptors, truncated: truncated, maxDescriptors: 8)
    }

    static func refusal(_ line: String, descriptors: Int = 0, truncated: Bool = false) -> RPCError? {
        if case .refused(_, let error) = route(line, descriptors: descriptors, truncated: truncated) { return error }
        return nil
    }

    @Test(arguments: ["", " ", "\t \r", "\r"])
    func blankLinesAreSkipped(_ line: String) {
        guard case .blank = Self.route(line) else { Issue.record("\"\(line)\" was not skipped"); return }
    }

    @Test func aLineThatIsNotARequestIsUndecodable() {
        guard case .undecodable(let failure) = Self.route("{nope") else { Issue.record("not undecodable"); return }
        #expect(failure.error.reason == .parseError)
    }

    @Test func anUnknownMethodIsRefusedBeforeItsDescriptors() {
        let error = Self.refusal(#"{"jsonrpc":"2.0","id":1,"method":"reboot"}"#, descriptors: 2, truncated: true)
        #expect(error?.reason == .methodNotFound)
        #expect(error?.message.hasPrefix(#"unknown method "reboot"; methods are version, describe, create"#) == true)
    }

    @Test func truncatedControlDataIsRefused() {
        let error = Self.refusal(#"{"jsonrpc":"2.0","id":1,"method":"list"}"#, truncated: true)
        #expect(error?.reason == .invalidParams)
        #expect(error?.message == "list: too many file descriptors, or truncated control data (at most 8)")
    }

    @Test func onlyEnterTakesDescriptors() {
        let error = Self.refusal(#"{"jsonrpc":"2.0","id":1,"method":"inspect","params":{"name":"web"}}"#, descriptors: 1)
        #expect(error?.message == "inspect takes no file descriptors")
    }

    @Test func enterWithATTYTakesNoDescriptors() {
        let line = #"{"jsonrpc":"2.0","id":1,"method":"enter","params":{"name":"web","tty":true}}"#
        #expect(Self.refusal(line, descriptors: 3)?.message == #"enter: with "tty": true the request carries no file descriptors"#)
        guard case .call(_, .enter(let params)) = Self.route(line) else { Issue.record("not routed to enter"); return }
        #expect(params.tty && params.name == "web")
    }

    @Test(arguments: [0, 1, 2, 4])
    func enterWithoutATTYTakesExactlyThree(_ count: Int) {
        let line = #"{"jsonrpc":"2.0","id":1,"method":"enter","params":{"name":"web","tty":false}}"#
        #expect(Self.refusal(line, descriptors: count)?.message
                == #"enter: with "tty": false the request must carry exactly 3 file descriptors (stdin, stdout, stderr), not "# + String(count))
        guard case .call(_, .enter) = Self.route(line, descriptors: 3) else { Issue.record("3 descriptors refused"); return }
    }

    @Test func paramsAreDecodedOnTheWay() {
        #expect(Self.refusal(#"{"jsonrpc":"2.0","id":1,"method":"destroy","params":{"name":"web","force":true}}"#)?.reason == .invalidParams)
        #expect(Self.refusal(#"{"jsonrpc":"2.0","id":1,"method":"list","params":{"all":true}}"#)?.reason == .invalidParams)
        guard case .call(let request, .share(let params)) =
            Self.route(#"{"jsonrpc":"2.0","id":"a","method":"share","params":{"name":"web","members":["bob"]}}"#)
        else { Issue.record("share not routed"); return }
        #expect(request.id == .string("a") && params.members == ["bob"])
    }

    @Test(arguments: [MethodName.freeze, .thaw, .processes])
    func theCgroupMethodsTakeANameAndNothingElse(_ method: MethodName) {
        let line = #"{"jsonrpc":"2.0","id":1,"method":"\#(method.rawValue)","params":{"name":"web"}}"#
        let routed = Self.route(line)
        switch (method, routed) {
        case (.freeze, .call(_, .freeze(let params))), (.thaw, .call(_, .thaw(let params))),
             (.processes, .call(_, .processes(let params))):
            #expect(params == NameParams(name: "web"))
        default:
            Issue.record("\(method) routed as \(routed)")
        }
        #expect(Self.refusal(line, descriptors: 1)?.message == "\(method.rawValue) takes no file descriptors")
        let extra = #"{"jsonrpc":"2.0","id":1,"method":"\#(method.rawValue)","params":{"name":"web","all":true}}"#
        #expect(Self.refusal(extra)?.message == #"\#(method.rawValue): unknown parameter "all""#)
        let missing = #"{"jsonrpc":"2.0","id":1,"method":"\#(method.rawValue)"}"#
        #expect(Self.refusal(missing)?.message == #"\#(method.rawValue): "name" is required"#)
        let badName = #"{"jsonrpc":"2.0","id":1,"method":"\#(method.rawValue)","params":{"name":"../web"}}"#
        #expect(Self.refusal(badName)?.reason == .invalidName)
    }

    @Test func onlyProcessesOfTheNewMethodsIsARead() {
        #expect(MethodName.processes.isRead)
        #expect(!MethodName.freeze.isRead && !MethodName.thaw.isRead)
        #expect(!MethodName.freeze.acceptsDescriptors && !MethodName.thaw.acceptsDescriptors && !MethodName.processes.acceptsDescriptors)
        #expect(MethodName.allCases.map(\.rawValue).suffix(3) == ["freeze", "thaw", "processes"])
    }

    @Test func everyMethodRoutesToItsOwnCall() {
        for method in MethodName.allCases {
            let params: String = switch method {
            case .version, .describe, .list, .subscribe: "{}"
            case .create, .inspect, .destroy, .freeze, .thaw, .processes: #"{"name":"web"}"#
            case .enter: #"{"name":"web","tty":true}"#
            case .signal: #"{"name":"web","session":1,"signal":15}"#
            case .share, .unshare: #"{"name":"web","members":["bob"]}"#
            case .attach: #"{"name":"web","session":1}"#
            case .unsubscribe: #"{"subscription":1}"#
            case .write: #"{"session":1,"data":"aGk="}"#
            case .resize: #"{"session":1,"rows":24,"columns":80}"#
            }
            let routed = Self.route(#"{"jsonrpc":"2.0","id":1,"method":"\#(method.rawValue)","params":\#(params)}"#)
            guard case .call(_, let call) = routed else { Issue.record("\(method) not routed: \(routed)"); continue }
            #expect(call.method == method)
        }
    }
}
