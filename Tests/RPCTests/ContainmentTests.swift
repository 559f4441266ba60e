import RPC
import Testing

// The wire types of containment (issue 14): create's limits, lifetime and idle; the
// group's and sessions' limits, usage, cgroup, frozen state and expiry; freeze, thaw and
// processes; the new events and the frozen error.

private func json(_ text: String) -> JSONValue {
    do {
        return try JSONParser.parse(text)
    } catch {
        fatalError("bad test JSON \(text): \(error)")
    }
}

private func refusal<T>(_ body: () throws(RPCError) -> T, sourceLocation: SourceLocation = #_sourceLocation) -> RPCError? {
    do throws(RPCError) {
        let value = try body()
        Issue.record("expected an error, got \(value)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

@Suite("create: limits, lifetime and idle")
struct CreateLimitsTests {
    @Test func everyLimitAndBothDurations() throws {
        let params = try CreateParams(params: json(
            #"{"name":"box","limits":{"memory":536870912,"pids":512,"cpuWeight":50,"cpus":1.5},"lifetime":28800,"idle":1800}"#))
        #expect(params.limits == GroupLimits(memory: 512 << 20, pids: 512, cpuWeight: 50, cpus: 1.5))
        #expect(params.lifetime == 28800)
        #expect(params.idle == 1800)
        #expect(try CreateParams(params: params.json) == params)
    }

    @Test func noneIsTheDefaultAndIsNotSent() throws {
        let params = try CreateParams(params: json(#"{"name":"box","limits":{},"lifetime":null,"idle":null}"#))
        #expect(params.limits.isEmpty)
        #expect(params.lifetime == nil && params.idle == nil)
        #expect(params.json.serialized() == #"{"name":"box"}"#)
        #expect(try CreateParams(params: json(#"{"name":"box","limits":null}"#)).limits.isEmpty)
    }

    @Test func cpusTakesAFraction() throws {
        for (lexeme, value) in [("0.01", 0.01), ("0.5", 0.5), ("1.25", 1.25), ("2", 2.0), ("1024", 1024.0), ("1e1", 10.0)] {
            let params = try CreateParams(params: json(#"{"name":"box","limits":{"cpus":"# + lexeme + "}}"))
            #expect(params.limits.cpus == value, "\(lexeme)")
            #expect(try CreateParams(params: params.json).limits.cpus == value, "\(lexeme) survives .json")
        }
    }

    /// Each end of each range from GroupLimits and CreateParams, and one past it.
    @Test func theEndsOfTheRanges() throws {
        let accepted = [
            #"{"memory":1048576}"#, #"{"memory":1125899906842624}"#,
            #"{"pids":1}"#, #"{"pids":4194304}"#,
            #"{"cpuWeight":1}"#, #"{"cpuWeight":10000}"#,
        ]
        for limits in accepted {
            _ = try CreateParams(params: json(#"{"name":"box","limits":"# + limits + "}"))
        }
        #expect(GroupLimits.memoryRange == 1_048_576...1_125_899_906_842_624)
        #expect(CreateParams.durationRange == 1...316_224_000)
        for key in ["lifetime", "idle"] {
            _ = try CreateParams(params: json(#"{"name":"box",""# + key + #"":1}"#))
            _ = try CreateParams(params: json(#"{"name":"box",""# + key + #"":316224000}"#))
        }
    }

    @Test(arguments: [
        (#"{"memory":1048575}"#, #"create: "limits": "memory" must be an integer from 1048576 to 1125899906842624"#),
        (#"{"memory":1125899906842625}"#, #"create: "limits": "memory" must be an integer from 1048576 to 1125899906842624"#),
        (#"{"memory":"1G"}"#, #"create: "limits": "memory" must be an integer from 1048576 to 1125899906842624"#),
        (#"{"memory":1048576.5}"#, #"create: "limits": "memory" must be an integer from 1048576 to 1125899906842624"#),
        (#"{"pids":0}"#, #"create: "limits": "pids" must be an integer from 1 to 4194304"#),
        (#"{"pids":4194305}"#, #"create: "limits": "pids" must be an integer from 1 to 4194304"#),
        (#"{"cpuWeight":0}"#, #"create: "limits": "cpuWeight" must be an integer from 1 to 10000"#),
        (#"{"cpuWeight":10001}"#, #"create: "limits": "cpuWeight" must be an integer from 1 to 10000"#),
        (#"{"cpus":0.001}"#, #"create: "limits": "cpus" must be a number from 0.01 to 1024"#),
        (#"{"cpus":0}"#, #"create: "limits": "cpus" must be a number from 0.01 to 1024"#),
        (#"{"cpus":1024.5}"#, #"create: "limits": "cpus" must be a number from 0.01 to 1024"#),
        (#"{"cpus":"2"}"#, #"create: "limits": "cpus" must be a number from 0.01 to 1024"#),
        (#"{"cpus":1e999}"#, #"create: "limits": "cpus" must be a number from 0.01 to 1024"#),
        (#"{"swap":0}"#, #"create: "limits": unknown parameter "swap""#),
        (#"{"memory":1048576,"Memory":1048576}"#, #"create: "limits": unknown parameter "Memory""#),
        (#"{"cpu":1}"#, #"create: "limits": unknown parameter "cpu""#),
        (#"{"memory":null,"io":null}"#, #"create: "limits": unknown parameter "io""#),
        ("[]", #"create: "limits" must be an object"#),
        ("512", #"create: "limits" must be an object"#),
        (#""512M""#, #"create: "limits" must be an object"#),
    ])
    func limitsRefused(_ limits: String, _ message: String) throws {
        let error = try #require(refusal { () throws(RPCError) in try CreateParams(params: json(#"{"name":"box","limits":"# + limits + "}")) })
        #expect(error.reason == .invalidParams)
        #expect(error.message == message)
    }

    @Test(arguments: ["lifetime", "idle"])
    func durationsRefused(_ key: String) throws {
        for value in ["0", "-1", "316224001", "1.5", #""8h""#, "true"] {
            let error = try #require(refusal { () throws(RPCError) in
                try CreateParams(params: json(#"{"name":"box",""# + key + #"":"# + value + "}"))
            })
            #expect(error.reason == .invalidParams)
            #expect(error.message == #"create: ""# + key + #"" must be an integer from 1 to 316224000"#, "\(value)")
        }
    }

    /// The name is checked after the params: a bad limit is invalid_params whatever the name.
    @Test func paramsBeforeTheName() throws {
        let error = try #require(refusal { () throws(RPCError) in try CreateParams(params: json(#"{"name":"Box","limits":{"pids":0}}"#)) })
        #expect(error.reason == .invalidParams)
    }
}

@Suite("ParamsReader: numbers and objects")
struct ParamsReaderNumberTests {
    @Test func numbersInRange() throws {
        var reader = try ParamsReader(json(#"{"a":0.25,"b":4,"c":null,"d":4e-1}"#), method: "m")
        #expect(try reader.number("a", in: 0...4) == 0.25)
        #expect(try reader.number("b", in: 0...4) == 4)
        #expect(try reader.number("c", in: 0...4) == nil)
        #expect(try reader.number("d", in: 0...4) == 0.4)
        try reader.finish()
    }

    @Test func aNumberOutOfRangeNamesTheRange() throws {
        var reader = try ParamsReader(json(#"{"a":5,"b":0.5}"#), method: "m")
        #expect(refusal { () throws(RPCError) in try reader.number("a", in: 0...4) }?.message == #"m: "a" must be a number from 0 to 4"#)
        #expect(refusal { () throws(RPCError) in try reader.number("b", in: 0.75...1.5) }?.message
                == #"m: "b" must be a number from 0.75 to 1.5"#)
    }

    @Test func anObjectHasAReaderOfItsOwn() throws {
        var reader = try ParamsReader(json(#"{"o":{"x":1,"y":2},"n":null}"#), method: "m")
        var inner = try #require(try reader.object("o"))
        #expect(try inner.integer("x", in: 0...9) == 1)
        #expect(refusal { () throws(RPCError) in try inner.finish() }?.message == #"m: "o": unknown parameter "y""#)
        #expect(try reader.object("n") == nil)
        try reader.finish()
    }
}

@Suite("Groups and sessions: limits, usage, cgroup, frozen, expiry")
struct GroupContainmentTests {
    static func group() -> GroupInfo {
        var info = GroupInfo(name: "box", owner: 1000, ownerName: "alice",
                             namespaces: [(kind: "pid", id: "pid:[4026532300]")], holder: 4242,
                             created: "2026-11-30T08:00:00Z", hostname: nil, tmpfs: [])
        info.limits = GroupLimits(memory: 1 << 30, pids: 256, cpuWeight: 100, cpus: 0.5)
        info.usage = ResourceUsage(memory: 12_900_000, memoryPeak: 40_000_000, pids: 3, cpuUsec: 1_234_567)
        info.frozen = true
        info.cgroup = "/nsgroupd/users/1000/box"
        info.lifetime = 28800
        info.expires = "2026-11-30T16:00:00Z"
        info.idle = 1800
        var session = SessionInfo(session: 7, pid: 4250, uid: 1000, argv: ["make"], started: "2026-11-30T08:01:00Z", tty: false)
        session.usage = ResourceUsage(memory: 4096, pids: 1)
        session.cgroup = "/nsgroupd/users/1000/box/session-7"
        info.sessions = [session]
        return info
    }

    @Test func everyNewMemberRoundTrips() throws {
        let info = Self.group()
        let back = try GroupInfo(json: JSONParser.parse(info.json.serialized()))
        #expect(back == info)
        #expect(back.limits == info.limits)
        #expect(back.usage == info.usage)
        #expect(back.frozen && back.cgroup == "/nsgroupd/users/1000/box")
        #expect(back.lifetime == 28800 && back.expires == "2026-11-30T16:00:00Z" && back.idle == 1800)
        #expect(back.sessions.first?.usage == ResourceUsage(memory: 4096, pids: 1))
        #expect(back.sessions.first?.cgroup == "/nsgroupd/users/1000/box/session-7")
    }

    @Test func membersComeInTheDocumentedOrder() {
        let keys = Self.group().json.objectValue?.keys.map { $0 } ?? []
        #expect(keys == ["name", "owner", "ownerName", "namespaces", "holder", "created", "tmpfs", "members",
                         "limits", "usage", "frozen", "cgroup", "lifetime", "expires", "idle", "sessions"])
        let session = Self.group().json["sessions"]?.arrayValue?.first?.objectValue?.keys.map { $0 } ?? []
        #expect(session == ["session", "pid", "uid", "argv", "started", "tty", "usage", "cgroup"])
    }

    @Test func usageOmitsWhatTheHostDoesNotCount() throws {
        let usage = ResourceUsage(memory: 1, cpuUsec: 2)
        #expect(usage.json.serialized() == #"{"memory":1,"cpuUsec":2}"#)
        #expect(try ResourceUsage(json: usage.json) == usage)
        #expect(try ResourceUsage(json: json(#"{"memory":1,"ioBytes":9}"#)) == ResourceUsage(memory: 1), "unknown members are ignored")
        #expect(refusal { () throws(RPCError) in try ResourceUsage(json: json(#"{"memory":-1}"#)) } != nil)
    }

    @Test func cpusIsWrittenAsAFraction() {
        #expect(GroupLimits(cpus: 1.5).json.serialized() == #"{"cpus":1.5}"#)
        #expect(GroupLimits(memory: 1 << 20, pids: 2, cpuWeight: 3).json.serialized() == #"{"memory":1048576,"pids":2,"cpuWeight":3}"#)
    }

    /// A client ignores what it does not know, limits included, and holds a server's
    /// reply to the types' ranges only, not to what create may ask for.
    @Test func aGroupFromANewerServer() throws {
        let info = try GroupInfo(json: json(
            #"{"name":"new","owner":1,"limits":{"memory":4096,"pids":0,"cpus":2048.5,"ioWeight":10},"usage":{"memory":1,"ioBytes":2},"frozen":false}"#))
        #expect(info.limits == GroupLimits(memory: 4096, pids: 0, cpus: 2048.5))
        #expect(info.usage == ResourceUsage(memory: 1))
        let nulls = try GroupInfo(json: json(#"{"name":"n","owner":1,"limits":null,"usage":null,"sessions":[{"session":1,"usage":null}]}"#))
        #expect(nulls.limits.isEmpty && nulls.usage == nil && nulls.sessions.first?.usage == nil)
        #expect(refusal { () throws(RPCError) in try GroupInfo(json: json(#"{"name":"n","limits":{"memory":"1G"}}"#)) } != nil)
        #expect(refusal { () throws(RPCError) in try GroupInfo(json: json(#"{"name":"n","limits":[]}"#)) } != nil)
    }

    /// What a server without containment sends: a client reads it as unlimited and running.
    @Test func aGroupFromAnOlderServer() throws {
        let info = try GroupInfo(json: json(#"{"name":"old","owner":1}"#))
        #expect(info.limits.isEmpty && info.usage == nil && !info.frozen && info.cgroup == nil)
        #expect(info.lifetime == nil && info.expires == nil && info.idle == nil)
    }
}

@Suite("freeze, thaw and processes results")
struct FreezeAndProcessesTests {
    @Test func freezeResult() throws {
        for frozen in [true, false] {
            let result = FreezeResult(name: "box", frozen: frozen)
            #expect(result.json.serialized() == #"{"name":"box","frozen":\#(frozen)}"#)
            #expect(try FreezeResult(json: JSONParser.parse(result.json.serialized())) == result)
        }
        #expect(try FreezeResult(json: json(#"{"name":"box","frozen":true,"since":"now"}"#)) == FreezeResult(name: "box", frozen: true))
    }

    @Test(arguments: [#"{"frozen":true}"#, #"{"name":"box"}"#, #"{"name":"box","frozen":1}"#, #"{"name":7,"frozen":true}"#, "[]"])
    func freezeResultRefused(_ text: String) {
        #expect(refusal { () throws(RPCError) in try FreezeResult(json: json(text)) } != nil)
    }

    @Test func processInfo() throws {
        let holder = ProcessInfo(pid: 4242, nspid: 1, uid: 1000, user: "alice", command: "nsgroup-holder --name box")
        let session = ProcessInfo(pid: 4250, nspid: 7, uid: 100_000, session: 7, command: "make -j8")
        #expect(holder.json.serialized() == #"{"pid":4242,"nspid":1,"uid":1000,"user":"alice","command":"nsgroup-holder --name box"}"#)
        #expect(session.json.serialized() == #"{"pid":4250,"nspid":7,"uid":100000,"session":7,"command":"make -j8"}"#)
        for process in [holder, session] {
            #expect(try ProcessInfo(json: JSONParser.parse(process.json.serialized())) == process)
        }
        #expect(try ProcessInfo(json: json(#"{"pid":1,"nspid":1,"uid":0,"command":"x","cgroup":"/"}"#)).command == "x")
    }

    @Test(arguments: [
        #"{"pid":-1,"nspid":1,"uid":0,"command":"x"}"#,
        #"{"pid":2147483648,"nspid":1,"uid":0,"command":"x"}"#,
        #"{"pid":1,"nspid":1,"uid":4294967296,"command":"x"}"#,
        #"{"pid":1,"nspid":1,"uid":0,"session":0,"command":"x"}"#,
        #"{"pid":1,"nspid":1,"uid":0,"user":0,"command":"x"}"#,
        #"{"pid":1,"nspid":1,"uid":0,"command":["x"]}"#,
    ])
    func processInfoRefused(_ text: String) {
        #expect(refusal { () throws(RPCError) in try ProcessInfo(json: json(text)) } != nil)
    }

    @Test func processesResult() throws {
        let result = ProcessesResult(name: "box", processes: [
            ProcessInfo(pid: 4242, nspid: 1, uid: 1000, user: "alice", command: "nsgroup-holder"),
            ProcessInfo(pid: 4250, nspid: 7, uid: 1000, user: "alice", session: 7, command: "[sh]"),
        ])
        #expect(try ProcessesResult(json: JSONParser.parse(result.json.serialized())) == result)
        let empty = ProcessesResult(name: "box", processes: [])
        #expect(empty.json.serialized() == #"{"name":"box","processes":[]}"#)
        #expect(refusal { () throws(RPCError) in try ProcessesResult(json: json(#"{"name":"box"}"#)) }?.message
                == #"processes result: "processes" must be an array"#)
        #expect(refusal { () throws(RPCError) in try ProcessesResult(json: json(#"{"processes":[]}"#)) } != nil)
    }

    @Test func commandLines() {
        #expect(ProcessInfo.command(argv: ["make", "-j8", "all"], name: "make") == "make -j8 all")
        #expect(ProcessInfo.command(argv: [], name: "sh") == "[sh]")
        #expect(ProcessInfo.command(argv: [""], name: "kworker") == "[kworker]")
        #expect(ProcessInfo.command(argv: ["", "x"], name: "p") == " x")
        let long = ProcessInfo.command(argv: Array(repeating: String(repeating: "a", count: 99), count: 100), name: "p")
        #expect(long.utf8.count == ProcessInfo.maxCommandBytes)
        // Cut on a character boundary: "é" is two bytes, 4096 / 2 of them fit.
        let wide = ProcessInfo.command(argv: [String(repeating: "é", count: 3000)], name: "p")
        #expect(wide == String(repeating: "é", count: 2048))
        let odd = ProcessInfo.command(argv: ["a" + String(repeating: "é", count: 3000)], name: "p")
        #expect(odd.utf8.count == 4095)
    }
}

@Suite("Events of containment, and the frozen error")
struct ContainmentEventTests {
    @Test func theNewKinds() {
        #expect(EventNotification.Kind(rawValue: "group-frozen") == .groupFrozen)
        #expect(EventNotification.Kind(rawValue: "group-thawed") == .groupThawed)
        #expect(EventNotification.Kind(rawValue: "group-oom") == .groupOOM)
        #expect(EventNotification.DestroyReason.allCases.map(\.rawValue) == ["request", "lifetime", "idle"])
    }

    @Test func reasonAndOOMKillsRoundTrip() throws {
        let samples = [
            EventNotification(kind: .groupDestroyed, group: "box", time: "2026-11-30T16:00:00Z", owner: 1000, reason: "lifetime"),
            EventNotification(kind: .groupDestroyed, group: "box", time: "t", owner: 1000, reason: EventNotification.DestroyReason.request.rawValue),
            EventNotification(kind: .groupFailed, group: "box", time: "t", owner: 1000),
            EventNotification(kind: .groupOOM, group: "box", time: "t", owner: 1000, oomKills: 3),
            EventNotification(kind: .groupFrozen, group: "box", time: "t", owner: 1000),
            EventNotification(kind: .groupThawed, group: "box", time: "t", owner: 1000),
        ]
        for event in samples {
            #expect(try EventNotification(json: JSONParser.parse(event.json.serialized())) == event, "\(event.kind)")
        }
        #expect(samples[0].json.serialized() == #"{"type":"group-destroyed","group":"box","time":"2026-11-30T16:00:00Z","owner":1000,"reason":"lifetime"}"#)
        #expect(samples[3].json["oomKills"] == .number(JSONNumber(3)))
        #expect(samples[2].json["reason"] == nil && samples[2].json["oomKills"] == nil)
        #expect(samples[4].json.objectValue?.keys == ["type", "group", "time", "owner"])
    }

    @Test func anOOMCountThatIsNotACountIsLeftOut() throws {
        let event = try EventNotification(json: json(#"{"type":"group-oom","group":"box","time":"t","owner":1,"oomKills":-1}"#))
        #expect(event.oomKills == nil)
        let big = try EventNotification(json: json(#"{"type":"group-oom","group":"box","time":"t","owner":1,"oomKills":18446744073709551615}"#))
        #expect(big.oomKills == UInt64.max)
    }

    @Test func frozenIsItsOwnReasonAndCode() throws {
        let error = RPCError(.frozen, #"group "box" is frozen; thaw it first"#)
        #expect(error.code == -32006)
        #expect(error.json.serialized() == #"{"code":-32006,"message":"group \"box\" is frozen; thaw it first","data":{"reason":"frozen"}}"#)
        #expect(RPCError(json: error.json) == error)
        // A client reading only the code still knows it.
        #expect(RPCError(json: json(#"{"code":-32006,"message":"m","data":{"reason":"chilled"}}"#))?.reason == .frozen)
    }
}
