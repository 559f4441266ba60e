#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import FoundationEssentials
import RPC
import Supervisor

/// Hand-written JSON mapping against Codable, on the payloads nsgroup moves
/// (docs/json-and-codable.md).
struct CodableBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codable",
        abstract: "Time encode and decode of results, events and state files: RPC's hand-written mapping against Codable.",
        discussion: """
            The anchor is the hand-written way (JSONValue built by each type's `json`, written by \
            JSONSerializer; JSONParser then `init(json:)`), timed in the same run as JSONEncoder and \
            JSONDecoder of FoundationEssentials on mirror structs that write the same JSON (checked \
            before timing). Payloads: a `list` reply of 1, 64 and 1024 groups, a state file with \
            16 sessions, an `event` notification, each as the whole line. Medians over interleaved \
            rounds; ratios Codable / hand-written (above 1: Codable is slower). Then what each \
            decoder does with inputs the protocol refuses. No supervisor, no root needed.
            """)

    @Option(help: "Rounds; each times every figure once, the two ways in alternating order.")
    var rounds = 7

    @Option(help: "Milliseconds each timed sample lasts (the iteration count is calibrated to it).")
    var sampleMilliseconds = 20

    @Option(help: "A fixed iteration count per sample instead of calibrating (for a quick check).")
    var iterations: Int?

    func validate() throws {
        guard rounds > 0, rounds <= 1000, sampleMilliseconds > 0, sampleMilliseconds <= 10_000, (iterations ?? 1) > 0 else {
            throw ValidationError("--rounds in 1...1000, --sample-milliseconds in 1...10000, --iterations > 0")
        }
    }

    func run() throws {
        Interrupt.install()
        _ = try CodableRun(rounds: rounds, sampleMilliseconds: sampleMilliseconds, iterations: iterations).run()
    }
}

struct CodableRun {
    var rounds: Int
    var sampleMilliseconds: Int
    var iterations: Int?

    /// One payload, one direction, both ways. Each closure does one whole
    /// operation and returns a number that depends on its result.
    private struct Figure {
        var payload: String
        var bytes: Int
        var step: String
        var hand: () throws -> Int
        var codable: () throws -> Int
        var handSamples: [Double] = []
        var codableSamples: [Double] = []
        var handIterations = 1
        var codableIterations = 1

        var handMedian: Double { percentile(handSamples, 0.5) }
        var codableMedian: Double { percentile(codableSamples, 0.5) }
        var ratio: Double { codableMedian / handMedian }
    }

    func run() throws -> [SummaryRow] {
        let encoder = JSONEncoder()
        // RPC's writer leaves '/' alone; JSONEncoder writes "\/" unless told not to.
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let decoder = JSONDecoder()

        var figures: [Figure] = []
        var sameness: [(String, Bool, Bool)] = []

        // `list` replies: what nsgroupd writes and the CLI reads.
        let id = RequestID.number(JSONNumber(7))
        for count in [1, 64, 1024] {
            let groups = CodablePayloads.groups(count)
            let mirrors = groups.map(GroupInfoC.init)
            let handLine = Response.result(id: id, ListResult(groups: groups).json).line
            let line = Array(handLine.dropLast())  // the framer hands the CLI a line without its newline
            let data = Data(line)
            let label = "list reply, \(count) group\(count == 1 ? "" : "s")"

            let codableBytes = try encoder.encode(ReplyC(id: 7, result: ListResultC(groups: mirrors)))
            sameness.append(try Self.compare(label, hand: line, codable: Array(codableBytes)))
            let decodedByCodable = try decoder.decode(ReplyC<ListResultC>.self, from: data).result
            let decodedByHand = try Self.handDecodeList(line)
            guard decodedByCodable == ListResultC(groups: decodedByHand.groups.map(GroupInfoC.init)), decodedByHand.groups == groups else {
                throw BenchError("codable: the two decoders read different \(label)s")
            }

            figures.append(Figure(payload: label, bytes: line.count, step: "encode",
                                  hand: { Response.result(id: id, ListResult(groups: groups).json).line.count },
                                  codable: { try encoder.encode(ReplyC(id: 7, result: ListResultC(groups: mirrors))).count }))
            figures.append(Figure(payload: label, bytes: line.count, step: "decode",
                                  hand: { try Self.handDecodeList(line).groups.count },
                                  codable: { try decoder.decode(ReplyC<ListResultC>.self, from: data).result.groups.count }))
        }

        // A state file of a group with 16 sessions: what nsgroupd writes on every change and reads at start.
        do {
            let record = CodablePayloads.stateRecord(sessions: 16)
            var handBytes: [UInt8] = []
            StateCodec.encode(record).serialize(into: &handBytes)
            handBytes.append(0x0A)
            let data = Data(handBytes)
            let label = "state file, 16 sessions"
            let stateDecoder = JSONDecoder()
            stateDecoder.userInfo[StrictStateRecord.fileNameKey] = record.name

            var codableBytes = try encoder.encode(EncodableStateRecord(record: record))
            codableBytes.append(0x0A)
            sameness.append(try Self.compare(label, hand: handBytes, codable: Array(codableBytes)))
            let byHand = try StateCodec.decode(try JSONParser.parse(handBytes), name: record.name)
            let byCodable = try stateDecoder.decode(StrictStateRecord.self, from: data).record
            guard byHand == record, byCodable == record else { throw BenchError("codable: the two decoders read different state records") }

            figures.append(Figure(payload: label, bytes: handBytes.count, step: "encode",
                                  hand: {
                                      var bytes: [UInt8] = []
                                      StateCodec.encode(record).serialize(into: &bytes)
                                      bytes.append(0x0A)
                                      return bytes.count
                                  },
                                  codable: {
                                      var bytes = try encoder.encode(EncodableStateRecord(record: record))
                                      bytes.append(0x0A)
                                      return bytes.count
                                  }))
            figures.append(Figure(payload: label, bytes: handBytes.count, step: "decode",
                                  hand: { try StateCodec.decode(try JSONParser.parse(handBytes), name: record.name).sessions.count },
                                  codable: { try stateDecoder.decode(StrictStateRecord.self, from: data).record.sessions.count }))
        }

        // An `event` notification (session-ended): what a subscriber reads one by one.
        do {
            let event = CodablePayloads.event
            let mirror = EventC(event)
            let method = NotificationName.event.rawValue
            let line = Array(Response.notification(method: method, params: event.json).line.dropLast())
            let data = Data(line)
            let label = "event notification"

            let codableBytes = try encoder.encode(NotificationC(method: method, params: mirror))
            sameness.append(try Self.compare(label, hand: line, codable: Array(codableBytes)))
            let byCodable = try decoder.decode(NotificationC<EventC>.self, from: data).params
            guard byCodable == mirror, try Self.handDecodeEvent(line) == event else {
                throw BenchError("codable: the two decoders read different events")
            }

            figures.append(Figure(payload: label, bytes: line.count, step: "encode",
                                  hand: { Response.notification(method: method, params: event.json).line.count },
                                  codable: { try encoder.encode(NotificationC(method: method, params: mirror)).count }))
            figures.append(Figure(payload: label, bytes: line.count, step: "decode",
                                  hand: { try Self.handDecodeEvent(line).argv?.count ?? 0 },
                                  codable: { try decoder.decode(NotificationC<EventC>.self, from: data).params.argv?.count ?? 0 }))
        }

        // Two figures of one way each, for the note. What nsgroupd's list really
        // does: each group's JSONValue is kept between changes, so a reply is
        // serializing, not building. And JSONEncoder writes members in hash
        // order (another order every call) unless asked to sort them.
        let groups64 = CodablePayloads.groups(64)
        let kept = groups64.map(\.json)
        let mirrors64 = groups64.map(GroupInfoC.init)
        let sortingEncoder = JSONEncoder()
        sortingEncoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        var extras: [(label: String, body: () throws -> Int, iterations: Int, samples: [Double])] = [
            ("hand-written, from the JSONValues nsgroupd keeps", { Response.result(id: id, .object(["groups": .array(kept)])).line.count }, 1, []),
            ("Codable with .sortedKeys (the same bytes every time)",
             { try sortingEncoder.encode(ReplyC(id: 7, result: ListResultC(groups: mirrors64))).count }, 1, []),
        ]

        // Calibrate, then time: rounds of every figure, the two ways in alternating order.
        let target = Double(sampleMilliseconds) * 1e6
        for i in figures.indices {
            try Interrupt.check()
            figures[i].handIterations = try iterations ?? Self.calibrate(figures[i].hand, target: target)
            figures[i].codableIterations = try iterations ?? Self.calibrate(figures[i].codable, target: target)
        }
        for i in extras.indices { extras[i].iterations = try iterations ?? Self.calibrate(extras[i].body, target: target) }
        for round in 0..<rounds {
            for i in figures.indices {
                try Interrupt.check()
                let figure = figures[i]
                var hand = 0.0, codable = 0.0
                if (round + i) % 2 == 0 {
                    hand = try Self.time(figure.hand, figure.handIterations)
                    codable = try Self.time(figure.codable, figure.codableIterations)
                } else {
                    codable = try Self.time(figure.codable, figure.codableIterations)
                    hand = try Self.time(figure.hand, figure.handIterations)
                }
                figures[i].handSamples.append(hand)
                figures[i].codableSamples.append(codable)
            }
            for i in extras.indices {
                let sample = try Self.time(extras[i].body, extras[i].iterations)
                extras[i].samples.append(sample)
            }
        }

        report(figures, extras: extras.map { ($0.label, percentile($0.samples, 0.5)) }, sameness: sameness)
        print("")
        Self.probeStrictness()

        var rows: [SummaryRow] = []
        for figure in figures where figure.payload == "list reply, 64 groups" {
            let who = figure.step == "encode" ? "nsgroupd writes" : "the CLI reads"
            rows.append(SummaryRow(figure: "\(figure.step) of a `list` reply of 64 groups (\(who) it), Codable vs hand-written",
                                   ours: "Codable " + formatMicroseconds(figure.codableMedian),
                                   anchor: "hand-written " + formatMicroseconds(figure.handMedian),
                                   ratio: figure.ratio, goal: "-", met: nil))
        }
        return rows
    }

    private func report(_ figures: [Figure], extras: [(String, Double)], sameness: [(String, Bool, Bool)]) {
        #if DEBUG
        print("nsgroup-bench codable: DEBUG BUILD, figures not meaningful (build with -c release)")
        #endif
        print("nsgroup-bench codable: hand-written (RPC: JSONValue, JSONSerializer, JSONParser, init(json:)) "
              + "against Codable (FoundationEssentials JSONEncoder/JSONDecoder, mirror structs)")
        let perSample = iterations.map { "\($0) iterations" } ?? "~\(sampleMilliseconds) ms"
        print("\(rounds) rounds × \(perSample) per figure and way, interleaved; median time per operation (whole line)")
        print("")
        print("same JSON written both ways (parsed and compared):")
        for (label, sameJSON, sameBytes) in sameness {
            print("  " + padded(label, 26) + (sameJSON ? "same JSON: yes" : "same JSON: NO")
                  + (sameBytes ? ", identical bytes" : ", same members, other order or escapes"))
        }
        print("")
        let header = padded("payload", 26) + padded("bytes", 9) + padded("step", 8) + padded("hand-written", 15) + padded("Codable", 15)
            + "ratio Codable/hand-written"
        print(header)
        for figure in figures {
            print(padded(figure.payload, 26) + padded(String(figure.bytes), 9) + padded(figure.step, 8)
                  + padded(formatMicroseconds(figure.handMedian), 15) + padded(formatMicroseconds(figure.codableMedian), 15)
                  + formatRatio(figure.ratio))
        }
        print("")
        print("encode of the list reply of 64 groups, two more ways:")
        for (label, median) in extras { print("  " + padded(label, 56) + formatMicroseconds(median)) }
        let throughput = figures.filter { $0.payload.hasPrefix("list reply, 1024") }
        for figure in throughput {
            let handRate = Double(figure.bytes) / figure.handMedian * 1e3, codableRate = Double(figure.bytes) / figure.codableMedian * 1e3
            print("\(figure.step) of the 1024-group reply: hand-written " + formatFixed(handRate, 0) + " MB/s, Codable "
                  + formatFixed(codableRate, 0) + " MB/s")
        }
    }

    // MARK: decoding by hand, as the CLI does

    static func handDecodeList(_ line: [UInt8]) throws -> ListResult {
        let message = try line.withUnsafeBytes { (raw) throws(RPCError) -> IncomingMessage in try IncomingMessage.decode(line: raw) }
        guard case .result(_, let result) = message else { throw BenchError("codable: not a result") }
        return try ListResult(json: result)
    }

    static func handDecodeEvent(_ line: [UInt8]) throws -> EventNotification {
        let message = try line.withUnsafeBytes { (raw) throws(RPCError) -> IncomingMessage in try IncomingMessage.decode(line: raw) }
        guard case .notification(_, let params) = message else { throw BenchError("codable: not a notification") }
        return try EventNotification(json: params)
    }

    // MARK: timing

    /// Iterations that last about `target` nanoseconds.
    private static func calibrate(_ body: () throws -> Int, target: Double) throws -> Int {
        var count = 1
        while true {
            let perOperation = try time(body, count)
            if perOperation * Double(count) >= target / 4 || count >= 1 << 24 {
                return max(1, Int(target / perOperation))
            }
            count *= 2
        }
    }

    /// Nanoseconds per operation over `count` operations.
    private static func time(_ body: () throws -> Int, _ count: Int) throws -> Double {
        var sink = 0
        let start = monotonicNanoseconds()
        for _ in 0..<count { sink &+= try body() }
        let end = monotonicNanoseconds()
        keep(sink)
        return Double(end - start) / Double(count)
    }

    @inline(never)
    private static func keep(_ value: Int) {
        if value == Int.min { print("") }
    }

    /// Same JSON value (order-insensitive), and same bytes?
    private static func compare(_ label: String, hand: [UInt8], codable: [UInt8]) throws -> (String, Bool, Bool) {
        let a = try JSONParser.parse(hand), b = try JSONParser.parse(codable)
        guard a == b else {
            throw BenchError("codable: the Codable mirror of \(label) writes other JSON:\n  \(String(decoding: hand, as: UTF8.self))\n  \(String(decoding: codable, as: UTF8.self))")
        }
        return (label, true, hand == codable)
    }

    // MARK: what each decoder accepts

    /// attach's params, decoded the Codable way: synthesized, nothing added.
    private struct AttachC: Decodable {
        var name: String
        var session: UInt64
    }

    /// Inputs, and whether PROTOCOL.md (§6, §8) has the server accept them.
    static let probes: [(label: String, bytes: [UInt8], accepted: Bool)] = {
        let deep = "{\"name\":\"lab\",\"session\":1,\"x\":" + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}"
        let text: [(String, String, Bool)] = [
            ("valid", "{\"name\":\"lab\",\"session\":1}", true),
            ("integer as 1.0", "{\"name\":\"lab\",\"session\":1.0}", true),
            ("integer as 1e0", "{\"name\":\"lab\",\"session\":1e0}", true),
            ("duplicate key", "{\"name\":\"lab\",\"name\":\"other\",\"session\":1}", false),
            ("unknown member", "{\"name\":\"lab\",\"session\":1,\"verbose\":true}", false),
            ("out of range (0)", "{\"name\":\"lab\",\"session\":0}", false),
            ("negative", "{\"name\":\"lab\",\"session\":-1}", false),
            ("fraction", "{\"name\":\"lab\",\"session\":1.5}", false),
            ("wrong type", "{\"name\":5,\"session\":1}", false),
            ("missing", "{\"session\":1}", false),
            ("null where required", "{\"name\":null,\"session\":1}", false),
            ("lone surrogate", "{\"name\":\"\\ud800\",\"session\":1}", false),
            ("leading zero", "{\"name\":\"lab\",\"session\":01}", false),
            ("trailing comma", "{\"name\":\"lab\",\"session\":1,}", false),
            ("data after the value", "{\"name\":\"lab\",\"session\":1} 2", false),
            ("100 levels in an unknown member", deep, false),
        ]
        return text.map { (label: $0.0, bytes: Array($0.1.utf8), accepted: $0.2) }
            + [(label: "invalid UTF-8", bytes: Array("{\"name\":\"".utf8) + [0xFF] + Array("\",\"session\":1}".utf8), accepted: false)]
    }()

    /// Each input through JSONParser + AttachParams(params:) (the server's
    /// path) and through JSONDecoder + a synthesized Decodable.
    static func probeStrictness() {
        print("strictness: attach's params {name, session (1...)} through the server's parser and through JSONDecoder")
        print("(a synthesized Decodable, nothing added: what Codable does by itself)")
        let decoder = JSONDecoder()
        var agreesWithProtocol = (hand: 0, codable: 0)
        var wronglyAcceptedByCodable: [String] = []
        for probe in probes {
            let ours: String
            do {
                let value = try JSONParser.parse(probe.bytes)
                let params = try AttachParams(params: value)
                ours = "accepted: name \(JSONValue.string(params.name).serialized()), session \(params.session)"
            } catch let error as JSONParseError {
                ours = "refused: parse error: \(error)"
            } catch let error as RPCError {
                ours = "refused: \(error.message)"
            } catch {
                ours = "refused: \(error)"
            }
            let codable: String
            do {
                let params = try decoder.decode(AttachC.self, from: Data(probe.bytes))
                codable = "accepted: name \(JSONValue.string(params.name).serialized()), session \(params.session)"
            } catch {
                codable = "refused: " + describe(error)
            }
            if ours.hasPrefix("accepted") == probe.accepted { agreesWithProtocol.hand += 1 }
            if codable.hasPrefix("accepted") == probe.accepted { agreesWithProtocol.codable += 1 }
            if !probe.accepted, codable.hasPrefix("accepted") { wronglyAcceptedByCodable.append(probe.label) }
            let bytes = probe.bytes
            let shown = bytes.count > 60 ? String(decoding: bytes.prefix(57), as: UTF8.self) + "..." : String(decoding: bytes, as: UTF8.self)
            print("  " + padded(probe.label + (probe.accepted ? " (accepted)" : " (refused)"), 44) + shown)
            print("    hand-written: " + ours)
            print("    Codable:      " + codable)
        }
        print("as PROTOCOL.md says, of \(probes.count) inputs: hand-written \(agreesWithProtocol.hand), plain Codable \(agreesWithProtocol.codable)")
        print("plain Codable accepts what the protocol refuses: " + wronglyAcceptedByCodable.joined(separator: ", "))
    }

    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.isEmpty ? "" : " at " + context.codingPath.map(\.stringValue).joined(separator: ".")
        }
        func text(_ context: DecodingError.Context) -> String {
            var text = context.debugDescription
            if let underlying = context.underlyingError { text += " (\(underlying))" }
            return text
        }
        switch error {
        case .typeMismatch(let type, let context): return "typeMismatch(\(type))\(path(context)): \(text(context))"
        case .valueNotFound(let type, let context): return "valueNotFound(\(type))\(path(context)): \(text(context))"
        case .keyNotFound(let key, let context): return "keyNotFound(\"\(key.stringValue)\")\(path(context)): \(text(context))"
        case .dataCorrupted(let context): return "dataCorrupted\(path(context)): \(text(context))"
        @unknown default: return "\(error)"
        }
    }
}
