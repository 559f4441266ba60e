// The supervisor's request path, without the supervisor, for fuzzing.
//
// Bytes go through the code nsgroupd runs on what a client sends, in the same order:
//
//   LineFramer (fed in receives whose sizes the input decides, as Connection.readAvailable does)
//   → Routed.route (the function Connection.handle calls: the blank-line rule, Request.decode,
//     the method, the descriptor rules, the method's params decoder)
//
// Only the handlers (which act on the supervisor's state) are left out. Every step is checked
// against a small independent model of PROTOCOL.md §2, §5-§7: where lines end, which line gets
// which descriptors, when a line is too long, which error (reason and id) a bad envelope gets,
// which requests the descriptor rules refuse, that every reply is one line a client reads back
// as sent, and that whatever decodes encodes back to itself. JSON values are also written back
// out and read again (one line, no raw control bytes, equal, byte-for-byte stable).
//
// The framer runs four times on the same bytes: at the real 1 MiB limit with no descriptors
// (these lines are counted in the summary), and, with made-up descriptor numbers on some
// receives, at 1 MiB (these lines are routed again with their descriptors), at 64 bytes and at
// a limit near the first line's length, so that short inputs reach the too-long path.
//
// Used by the libFuzzer target (Fuzz/RPCFuzzer/FuzzTarget.swift, built by `make fuzz-build`)
// and by Tests/RPCTests/FuzzRegressionTests.swift, which replays the inputs kept in
// Fuzz/RPCFuzzer/regressions/. Nothing in the programs calls it. It only reports what it
// found: the fuzz target traps on a violation, the tests record it. A new method needs a case
// in LineChecker.checkCall (the switch over Call is exhaustive on purpose).

import RPC

/// Runs one fuzz input through the request path; see the comment at the top of the file.
public enum ProtocolFuzzDriver {
    /// The supervisor's default line limit (connections.max-line, PROTOCOL.md §2).
    public static let maxLineLength = 1 << 20
    /// Descriptors one receive may carry before it counts as truncated (PROTOCOL.md §5; UnixSocket.maxDescriptors).
    public static let maxDescriptors = 8
    /// A second, small limit on the same input, so that short inputs reach the too-long path.
    public static let smallLineLength = 64

    /// What one input did. `lines == blankLines + accepted + errors` always holds for a run
    /// without violations: every non-blank line ends either accepted or with one error.
    public struct Summary: Sendable, Equatable {
        public var inputBytes = 0
        /// Complete lines the framer delivered at the 1 MiB limit.
        public var lines = 0
        public var blankLines = 0
        /// Non-blank lines that are JSON (each one written back out and read again).
        public var jsonValues = 0
        /// Lines `Request.decode` accepted, notifications included.
        public var requests = 0
        public var notifications = 0
        /// Requests whose method exists and whose params its decoder accepted, by method.
        public var accepted: [MethodName: Int] = [:]
        /// The error the supervisor answers each refused line with (or would, for a
        /// notification), by reason. It depends on the bytes only, not on how they were cut.
        public var errors: [ErrorReason: Int] = [:]
        /// The framer gave up on a line longer than 1 MiB (the connection would close).
        public var tooLong = false
        /// The same input with a 64-byte limit.
        public var tooLongAtSmallLimit = false
        /// Bytes after the last newline: discarded unanswered at end of input.
        public var discardedBytes = 0
        /// In the real-limit run with made-up descriptor numbers: those handed out with a
        /// line, and those handed back by takeAllDescriptors() at the end.
        public var descriptorsDelivered = 0
        public var descriptorsReturned = 0
        /// Broken invariants, each a finding (empty when all is well).
        public var violations: [String] = []

        public init() {}

        public var acceptedCount: Int { accepted.values.reduce(0, +) }
        public var errorCount: Int { errors.values.reduce(0, +) }
    }

    public static func run(_ bytes: [UInt8]) -> Summary {
        bytes.withUnsafeBytes { run($0) }
    }

    public static func run(_ input: UnsafeRawBufferPointer) -> Summary {
        var summary = Summary()
        summary.inputBytes = input.count
        let oracle = FramingOracle(input)
        let seed = planSeed(input)

        // The real limit, cut into receives as the input says. These lines are routed and
        // counted; the receives carry no descriptors, so that what a line routes to does not
        // depend on how it was cut (the descriptor run below checks the descriptor rules).
        let real = frame(input, limit: maxLineLength, seed: seed, descriptors: false, oracle: oracle, into: &summary)
        summary.tooLong = real.tooLong
        summary.discardedBytes = real.tooLong ? 0 : real.pending

        // The same bytes cut another way, with made-up descriptor numbers on some receives: at
        // the real limit, at a small one, and at one near the first line's length.
        let withDescriptors = frame(input, limit: maxLineLength, seed: seed ^ 0xA5A5_A5A5_A5A5_A5A5, descriptors: true,
                                    oracle: oracle, into: &summary)
        summary.descriptorsDelivered = withDescriptors.lines.reduce(0) { $0 + $1.descriptors.count }
        summary.descriptorsReturned = withDescriptors.returned.count
        let small = frame(input, limit: smallLineLength, seed: seed ^ 0x5A5A_5A5A_5A5A_5A5A, descriptors: true,
                          oracle: oracle, into: &summary)
        summary.tooLongAtSmallLimit = small.tooLong
        var limitRNG = SplitMix64(seed ^ 0x0123_4567_89AB_CDEF)
        let firstLine = oracle.newlines.first ?? input.count
        let nearLimit = limitRNG.below(2) == 0 ? max(0, firstLine + limitRNG.below(5) - 2) : limitRNG.below(4097)
        _ = frame(input, limit: nearLimit, seed: seed ^ 0x0F0F_0F0F_0F0F_0F0F, descriptors: true, oracle: oracle, into: &summary)

        var checker = LineChecker(summary: summary)
        for (index, line) in real.lines.enumerated() {
            checker.process(line, index: index)
        }
        for (index, line) in withDescriptors.lines.enumerated() {
            checker.checkDescriptors(line, index: index)
        }
        summary = checker.summary
        if summary.violations.isEmpty && summary.lines != summary.blankLines + summary.acceptedCount + summary.errorCount {
            summary.fail("\(summary.lines) lines but \(summary.blankLines) blank + \(summary.acceptedCount) accepted + \(summary.errorCount) refused")
        }
        return summary
    }

    // MARK: Framing

    private struct FramedRun {
        var lines: [LineFramer.Line] = []
        var tooLong = false
        /// Bytes the framer held at the end (when not too long).
        var pending = 0
        /// What takeAllDescriptors() handed back at the end.
        var returned: [Int32] = []
    }

    /// One attachment as appended: the absolute offset the framer should give it to.
    private struct Attachment {
        var offset: Int
        var descriptors: [Int32]
        var truncated: Bool
    }

    /// Feeds `input` to a framer the way Connection does (up to 16 receives per wake-up,
    /// stopping early once more than the limit is pending, then every frame the framer has),
    /// stops at the first `.tooLong`, and checks the frames against the oracle.
    private static func frame(_ input: UnsafeRawBufferPointer, limit: Int, seed: UInt64, descriptors withDescriptors: Bool,
                              oracle: FramingOracle, into summary: inout Summary) -> FramedRun {
        var run = FramedRun()
        var framer = LineFramer(maxLineLength: limit)
        var plan = ChunkPlan(seed: seed)
        var attachments: [Attachment] = []
        var fed = 0
        var consumed = 0  // absolute offset just past the last delivered line's newline
        var nextDescriptor: Int32 = 100
        let context = "limit \(limit), \(plan.mode)"
            + (withDescriptors ? ", descriptors considered for 1 receive in \(plan.attachmentSpacing)" : "")

        feeding: while fed < input.count {
            let receives = 1 + plan.rng.below(16)
            for _ in 0..<receives where fed < input.count {
                let length = plan.nextLength(remaining: input.count - fed)
                let chunk = UnsafeRawBufferPointer(rebasing: input[fed..<(fed + length)])
                if withDescriptors, let (descriptors, truncated) = plan.attachment(next: &nextDescriptor) {
                    framer.append(chunk, descriptors: descriptors, truncated: truncated)
                    attachments.append(Attachment(offset: fed + max(length - 1, 0), descriptors: descriptors, truncated: truncated))
                } else {
                    framer.append(chunk)
                }
                fed += length
                if framer.pendingByteCount != fed - consumed {
                    summary.fail("\(context): pendingByteCount is \(framer.pendingByteCount) after appending, expected \(fed - consumed)")
                    return run
                }
                if framer.pendingByteCount > framer.maxLineLength { break }
            }
            while true {
                let announced = framer.hasCompleteFrame
                let frame = framer.next()
                if announced != (frame != nil) {
                    summary.fail("\(context): hasCompleteFrame said \(announced) but next() returned \(frame == nil ? "nil" : "a frame") after \(fed) bytes")
                    return run
                }
                guard let frame else { break }
                switch frame {
                case .tooLong:
                    run.tooLong = true
                    if !framer.hasCompleteFrame {
                        summary.fail("\(context): after .tooLong, hasCompleteFrame is false")
                    } else if case .line? = framer.next() {
                        summary.fail("\(context): a line came out of the framer after .tooLong")
                    }
                    break feeding
                case .line(let line):
                    run.lines.append(line)
                    consumed += line.bytes.count + 1
                }
            }
            if framer.pendingByteCount != fed - consumed {
                summary.fail("\(context): pendingByteCount is \(framer.pendingByteCount) after draining, expected \(fed - consumed)")
                return run
            }
        }
        run.pending = framer.pendingByteCount
        let held = framer.heldDescriptorCount
        run.returned = framer.takeAllDescriptors()
        if held != run.returned.count || framer.heldDescriptorCount != 0 {
            summary.fail("\(context): heldDescriptorCount was \(held) but takeAllDescriptors() handed back \(run.returned.count)")
        }
        if !framer.takeAllDescriptors().isEmpty {
            summary.fail("\(context): takeAllDescriptors() handed descriptors back twice")
        }
        check(run, attachments: attachments, fed: fed, limit: limit, oracle: oracle, input: input, context: context, into: &summary)
        return run
    }

    /// Compares one run with what PROTOCOL.md §2 and §5 say the framer must produce for the
    /// `fed` bytes it was given.
    private static func check(_ run: FramedRun, attachments: [Attachment], fed: Int, limit: Int, oracle: FramingOracle,
                              input: UnsafeRawBufferPointer, context: String, into summary: inout Summary) {
        let expected = oracle.expect(prefix: fed, limit: limit)
        if run.tooLong != expected.tooLong {
            summary.fail("\(context): framer \(run.tooLong ? "gave up on a line" : "did not give up"), expected the opposite after \(fed) bytes (\(expected.lineEnds.count) lines)")
            return
        }
        if run.lines.count != expected.lineEnds.count {
            summary.fail("\(context): framer delivered \(run.lines.count) lines, expected \(expected.lineEnds.count)")
            return
        }
        if !run.tooLong && run.pending != expected.pending {
            summary.fail("\(context): \(run.pending) bytes pending at end of input, expected \(expected.pending)")
        }
        var start = 0
        var next = 0  // the first attachment not yet given to a line
        for (index, end) in expected.lineEnds.enumerated() {
            let line = run.lines[index]
            if !line.bytes.elementsEqual(input[start..<end]) {
                summary.fail("\(context): line \(index) is \(show(line.bytes)), expected \(show(Array(input[start..<end])))")
                return
            }
            var descriptors: [Int32] = []
            var truncated = false
            while next < attachments.count, attachments[next].offset <= end {
                descriptors += attachments[next].descriptors
                truncated = truncated || attachments[next].truncated
                next += 1
            }
            if line.descriptors != descriptors || line.descriptorsTruncated != truncated {
                summary.fail("\(context): line \(index) (bytes \(start)...\(end)) got descriptors \(line.descriptors) truncated \(line.descriptorsTruncated), expected \(descriptors) truncated \(truncated)")
            }
            start = end + 1
        }
        let left = attachments[next...].flatMap(\.descriptors)
        if run.returned != left {
            summary.fail("\(context): takeAllDescriptors() returned \(run.returned), expected \(left)")
        }
    }

    /// Where lines end in the whole input, to say what any prefix of it must frame into.
    private struct FramingOracle {
        let newlines: [Int]

        init(_ input: UnsafeRawBufferPointer) {
            var newlines: [Int] = []
            for (offset, byte) in input.enumerated() where byte == 0x0A { newlines.append(offset) }
            self.newlines = newlines
        }

        /// The newline offsets of the lines a framer with `limit` delivers from the first
        /// `prefix` bytes, whether it then gives up, and what stays pending if not.
        func expect(prefix: Int, limit: Int) -> (lineEnds: [Int], tooLong: Bool, pending: Int) {
            var ends: [Int] = []
            var start = 0
            for newline in newlines {
                guard newline < prefix else { break }
                if newline - start > limit { return (ends, true, 0) }
                ends.append(newline)
                start = newline + 1
            }
            let pending = prefix - start
            return (ends, pending > limit, pending)
        }
    }

    /// FNV-1a of the first 64 bytes and the length: the same input always frames the same way.
    private static func planSeed(_ input: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in input.prefix(64) {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        return hash ^ (UInt64(input.count) &* 0x9E37_79B9_7F4A_7C15)
    }

    /// How one run cuts the input into receives, and which receives carry descriptors.
    private struct ChunkPlan {
        enum Mode: CustomStringConvertible {
            case bytewise, whole, fixed(Int), mixed

            var description: String {
                switch self {
                case .bytewise: return "1-byte receives"
                case .whole: return "one receive"
                case .fixed(let size): return "\(size)-byte receives"
                case .mixed: return "mixed receives"
                }
            }
        }

        var rng: SplitMix64
        let mode: Mode
        /// One receive in this many is considered for descriptors: 1 is what a client gets by
        /// sending every byte with its own sendmsg carrying SCM_RIGHTS.
        let attachmentSpacing: Int
        private var lastWasEmpty = false

        init(seed: UInt64) {
            var rng = SplitMix64(seed)
            switch rng.below(8) {
            case 0: mode = .bytewise
            case 1: mode = .whole
            case 2: mode = .fixed(1 + rng.below(97))
            default: mode = .mixed
            }
            attachmentSpacing = rng.below(4) == 0 ? 1 : 4
            self.rng = rng
        }

        /// 1 to `remaining` bytes; in mixed mode sometimes 0 (never twice running), which
        /// the framer documents for descriptors that arrive without bytes.
        mutating func nextLength(remaining: Int) -> Int {
            switch mode {
            case .bytewise:
                return 1
            case .whole:
                return remaining
            case .fixed(let size):
                return min(size, remaining)
            case .mixed:
                if !lastWasEmpty && rng.below(32) == 0 {
                    lastWasEmpty = true
                    return 0
                }
                lastWasEmpty = false
                let caps = [1, 16, 512, 1 << 16]  // 64 KiB: the supervisor's receive buffer
                return min(remaining, 1 + rng.below(caps[rng.below(caps.count)]))
            }
        }

        /// Made-up descriptor numbers (never opened, never closed) and a truncation flag for
        /// some receives; nil when the receive carries nothing.
        mutating func attachment(next: inout Int32) -> ([Int32], Bool)? {
            guard rng.below(attachmentSpacing) == 0 else { return nil }
            let count = rng.below(4)
            let truncated = rng.below(8) == 0
            guard count > 0 || truncated else { return nil }
            var descriptors: [Int32] = []
            for _ in 0..<count {
                descriptors.append(next)
                next += 1
            }
            return (descriptors, truncated)
        }
    }

    /// At most 120 bytes of `bytes`, printable ASCII as is and the rest as \xNN.
    static func show<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let hex = Array("0123456789abcdef".utf8)
        var text: [UInt8] = [UInt8(ascii: "\"")]
        for byte in bytes.prefix(120) {
            if byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\\") && byte != UInt8(ascii: "\"") {
                text.append(byte)
            } else {
                text += [UInt8(ascii: "\\"), UInt8(ascii: "x"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        text.append(UInt8(ascii: "\""))
        if bytes.count > 120 { text += Array("… (\(bytes.count) bytes)".utf8) }
        return String(decoding: text, as: UTF8.self)
    }
}

extension ProtocolFuzzDriver.Summary {
    /// Records a violation (the first 32; a message is cut at 2000 bytes).
    mutating func fail(_ message: String) {
        guard violations.count < 32 else { return }
        violations.append(message.utf8.count > 2000 ? String(decoding: message.utf8.prefix(2000), as: UTF8.self) + "…" : message)
    }
}

// MARK: - One line

/// What Connection.handle does with a line (Routed.route), with checks.
private struct LineChecker {
    var summary: ProtocolFuzzDriver.Summary
    private var index = 0
    private var bytes: [UInt8] = []

    init(summary: ProtocolFuzzDriver.Summary) {
        self.summary = summary
    }

    private mutating func fail(_ message: String) {
        summary.fail("line \(index) \(ProtocolFuzzDriver.show(bytes)): \(message)")
    }

    private mutating func refuse(_ reason: ErrorReason) {
        summary.errors[reason, default: 0] += 1
    }

    mutating func process(_ line: LineFramer.Line, index: Int) {
        self.index = index
        bytes = line.bytes
        summary.lines += 1
        let blank = bytes.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
        // What nsgroupd does with the line (Connection.handle): the real routing, with no descriptors.
        let routed = Routed.route(bytes, descriptors: 0, truncated: false, maxDescriptors: ProtocolFuzzDriver.maxDescriptors)
        if case .blank = routed {
            if !blank { fail("routed as blank, but it has other bytes than space, tab and CR") }
            summary.blankLines += 1
            return
        }
        if blank { fail("a blank line was routed, not skipped") }
        let value = checkJSON()
        // A client reads server lines with IncomingMessage.decode: any bytes must be safe there too.
        _ = bytes.withUnsafeBytes { try? IncomingMessage.decode(line: $0) }

        switch routed {
        case .blank:
            return
        case .undecodable(let failure):
            checkRefusal(failure, value: value)
            refuse(failure.error.reason)
            return
        case .refused(let request, let error):
            guard let value else { return fail("a line JSONParser refuses was decoded into a request") }
            checkAccepted(request, value: value)
            count(request)
            checkRefused(request, error)
        case .call(let request, let call):
            guard let value else { return fail("a line JSONParser refuses was decoded into a request") }
            checkAccepted(request, value: value)
            count(request)
            checkCall(request, call)
        }
    }

    private mutating func count(_ request: Request) {
        summary.requests += 1
        if request.isNotification { summary.notifications += 1 }
        // What the audit record takes from any request.
        if let name = request.params?["name"]?.stringValue, GroupName.isValid(name) != Self.matchesNameRule(name) {
            fail("GroupName.isValid(\(ProtocolFuzzDriver.show(Array(name.utf8)))) is \(GroupName.isValid(name)), the rule says otherwise")
        }
    }

    /// The same bytes, as they arrived in the run with made-up descriptors: the descriptor
    /// rules of PROTOCOL.md §5 decide, on top of what the line says without them.
    mutating func checkDescriptors(_ line: LineFramer.Line, index: Int) {
        self.index = index
        bytes = line.bytes
        let count = line.descriptors.count
        let truncated = line.descriptorsTruncated
        let limit = ProtocolFuzzDriver.maxDescriptors
        let plain = Routed.route(bytes, descriptors: 0, truncated: false, maxDescriptors: limit)
        let routed = Routed.route(bytes, descriptors: count, truncated: truncated, maxDescriptors: limit)
        let enterWithoutTTY = "enter: with \"tty\": false the request must carry exactly 3 file descriptors"
        switch (plain, routed) {
        case (.blank, .blank), (.undecodable, .undecodable):
            return
        case (.refused(let request, let without), .refused(_, let with)) where MethodName(rawValue: request.method) == nil:
            if with.reason != .methodNotFound || with.message != without.message {
                fail("an unknown method with descriptors was refused with \(with.reason.rawValue): \(with.message)")
            }
        case (.refused(let request, _), .refused(_, let error)) where truncated,
             (.call(let request, _), .refused(_, let error)) where truncated:
            if error.message != "\(request.method): too many file descriptors, or truncated control data (at most \(limit))" {
                fail("\(request.method) with truncated descriptors refused with: \(error.message)")
            }
        case (.refused(let request, _), .refused(_, let error)) where count > 0 && request.method != "enter",
             (.call(let request, _), .refused(_, let error)) where count > 0 && request.method != "enter":
            if error.message != "\(request.method) takes no file descriptors" {
                fail("\(request.method) with \(count) descriptors refused with: \(error.message)")
            }
        case (.call(_, .enter(let params)), .refused(_, let error)):
            // Accepted without descriptors: it streams its stdio or asked for a tty, so any
            // descriptor is too many.
            let expected = params.stdio == .stream
                ? "enter: with \"stdio\": \"stream\" the request carries no file descriptors"
                : "enter: with \"tty\": true the request carries no file descriptors"
            if error.message != expected {
                fail("enter (tty \(params.tty), stdio \(params.stdio.rawValue)) with \(count) descriptors refused with: \(error.message)")
            }
        case (.refused(let request, let without), .refused(_, let with)) where without.message.hasPrefix(enterWithoutTTY):
            if count == 3 { fail("\(request.method) without a tty and with 3 descriptors was refused: \(with.message)") }
            if with.message != "\(enterWithoutTTY) (stdin, stdout, stderr), not \(count)" {
                fail("enter without a tty and with \(count) descriptors refused with: \(with.message)")
            }
        case (.refused(_, let without), .refused(_, let with)):
            // Params refused either way, or no descriptors at all: the same error.
            if with.reason != without.reason || with.message != without.message {
                fail("with \(count) descriptors refused with \(with.message), without with \(without.message)")
            }
        case (.refused(_, let without), .call(let request, let call)):
            guard case .enter(let params) = call, !params.tty, count == 3, !truncated, without.message.hasPrefix(enterWithoutTTY) else {
                return fail("\(request.method) was accepted with \(count) descriptors (truncated \(truncated)), refused without: \(without.message)")
            }
        case (.call(let request, _), .call):
            if count > 0 || truncated { fail("\(request.method) was accepted with \(count) descriptors (truncated \(truncated))") }
        default:
            fail("with \(count) descriptors (truncated \(truncated)) the line routes as \(routed), without as \(plain)")
        }
    }

    // MARK: JSON

    /// Parses the line; if it is JSON, writes it out and reads it back.
    private mutating func checkJSON() -> JSONValue? {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            if error.offset < 0 || error.offset > bytes.count || error.message.isEmpty {
                fail("parse error \"\(error)\" points outside the \(bytes.count)-byte line")
            }
            return nil
        }
        summary.jsonValues += 1
        var text: [UInt8] = []
        value.serialize(into: &text)
        if let problem = Self.unsafeForOneLine(text) {
            fail("the value written back out \(problem): \(ProtocolFuzzDriver.show(text))")
            return value
        }
        if value.line != text + [0x0A] {
            fail("JSONValue.line is not the serialization plus one newline")
        }
        if Array(value.serialized().utf8) != text {
            fail("serialized() and serialize(into:) differ")
        }
        do {
            let again = try JSONParser.parse(text)
            if again != value {
                fail("the value written back out reads back as a different value: \(ProtocolFuzzDriver.show(text))")
            }
            var textAgain: [UInt8] = []
            again.serialize(into: &textAgain)
            if textAgain != text {
                fail("writing the value out is not stable: \(ProtocolFuzzDriver.show(text)) then \(ProtocolFuzzDriver.show(textAgain))")
            }
        } catch {
            fail("the value written back out does not parse (\(error)): \(ProtocolFuzzDriver.show(text))")
        }
        checkDepth(value)
        checkMembers(value)
        return value
    }

    /// Why `text` could not go on the wire as one reply line (§2), or nil.
    private static func unsafeForOneLine(_ text: [UInt8]) -> String? {
        if let i = text.firstIndex(of: 0x0A) { return "holds a raw newline at byte \(i)" }
        if let i = text.firstIndex(where: { $0 < 0x20 || $0 == 0x7F }) { return "holds raw control byte 0x\(String(text[i], radix: 16)) at byte \(i)" }
        for i in text.indices.dropLast(2) where text[i] == 0xE2 && text[i + 1] == 0x80 && (text[i + 2] == 0xA8 || text[i + 2] == 0xA9) {
            return "holds a raw U+2028/U+2029 at byte \(i)"
        }
        if String(validating: text, as: UTF8.self) == nil { return "is not valid UTF-8" }
        return nil
    }

    /// The limit is exact: a value `d` levels deep parses with maxDepth d and not with d - 1.
    private mutating func checkDepth(_ value: JSONValue) {
        let depth = Self.depth(value)
        guard depth > 0 else { return }
        if depth > JSONParser.defaultMaxDepth {
            fail("parsed a value \(depth) levels deep with the default limit of \(JSONParser.defaultMaxDepth)")
            return
        }
        do {
            _ = try JSONParser.parse(bytes, maxDepth: depth - 1)
            fail("a value \(depth) levels deep parses with maxDepth \(depth - 1)")
        } catch {
            if !error.message.hasPrefix("nesting deeper than") {
                fail("with maxDepth \(depth - 1), a valid value \(depth) levels deep fails with \"\(error)\", not nesting")
            }
        }
        do {
            if try JSONParser.parse(bytes, maxDepth: depth) != value {
                fail("maxDepth \(depth) parses a different value")
            }
        } catch {
            fail("a value \(depth) levels deep fails with maxDepth \(depth): \(error)")
        }
    }

    private static func depth(_ value: JSONValue) -> Int {
        switch value {
        case .array(let elements): return 1 + (elements.map(depth).max() ?? 0)
        case .object(let object): return 1 + (object.map { depth($0.value) }.max() ?? 0)
        default: return 0
        }
    }

    /// Keys unique (as Swift compares strings), numbers keep the grammar, and the integer
    /// and floating views of a number agree with each other.
    private mutating func checkMembers(_ value: JSONValue) {
        switch value {
        case .array(let elements):
            for element in elements { checkMembers(element) }
        case .object(let object):
            if Set(object.keys).count != object.count {
                fail("an object kept two keys Swift considers equal: \(object.keys.map { ProtocolFuzzDriver.show(Array($0.utf8)) })")
            }
            for (key, member) in object {
                if object[key] != member { fail("object[\(ProtocolFuzzDriver.show(Array(key.utf8)))] is not the member iterated") }
                checkMembers(member)
            }
        case .number(let number):
            checkNumber(number)
        default:
            break
        }
    }

    private mutating func checkNumber(_ number: JSONNumber) {
        let lexeme = number.lexeme
        if JSONNumber(lexeme: lexeme) == nil { fail("the parser kept number \(lexeme), which JSONNumber(lexeme:) refuses") }
        if lexeme.utf8.count > 256 { fail("the parser kept a number of \(lexeme.utf8.count) characters") }
        let signed = number.int64Value
        let unsigned = number.uint64Value
        if let signed {
            if signed >= 0, unsigned != UInt64(signed) { fail("\(lexeme): int64Value \(signed) but uint64Value \(String(describing: unsigned))") }
            if signed < 0, unsigned != nil { fail("\(lexeme): int64Value \(signed) but uint64Value \(String(describing: unsigned))") }
            if signed.magnitude <= 1 << 53, number.doubleValue != Double(signed) {
                fail("\(lexeme): int64Value \(signed) but doubleValue \(String(describing: number.doubleValue))")
            }
        }
        if let unsigned, unsigned <= UInt64(Int64.max), signed != Int64(unsigned) {
            fail("\(lexeme): uint64Value \(unsigned) but int64Value \(String(describing: signed))")
        }
    }

    // MARK: Envelope

    /// What §7 "How a line is checked" says about a JSON value: the error and id it is
    /// answered with, or nil if it is a request.
    private static func expectedRefusal(_ value: JSONValue) -> (reason: ErrorReason, id: RequestID, notification: Bool)? {
        guard case .object(let object) = value else { return (.invalidRequest, .null, false) }
        var id: RequestID?
        switch object["id"] {
        case nil: id = nil
        case .string(let s)?: id = .string(s)
        case .number(let n)?: id = .number(n)
        case .null?: id = .null
        default: return (.invalidRequest, .null, false)
        }
        guard case .string(let version)? = object["jsonrpc"], Array(version.utf8) == Array("2.0".utf8) else {
            return (.invalidRequest, id ?? .null, false)
        }
        guard case .string? = object["method"] else { return (.invalidRequest, id ?? .null, false) }
        let allowed = ["jsonrpc", "method", "params", "id"]
        if object.keys.contains(where: { key in !allowed.contains { Array($0.utf8) == Array(key.utf8) } }) {
            return (.invalidRequest, id ?? .null, false)
        }
        if let params = object["params"], params.objectValue == nil {
            return (.invalidParams, id ?? .null, id == nil)
        }
        return nil
    }

    private mutating func checkRefusal(_ failure: Request.DecodingFailure, value: JSONValue?) {
        let error = failure.error
        if let value {
            guard let expected = Self.expectedRefusal(value) else {
                fail("Request.decode refused a valid request: \(error.reason.rawValue): \(error.message)")
                return
            }
            if error.reason != expected.reason || failure.id != expected.id || failure.isNotification != expected.notification {
                fail("refused with \(error.reason.rawValue), id \(failure.id), notification \(failure.isNotification); §7 says \(expected.reason.rawValue), id \(expected.id), notification \(expected.notification) (\(error.message))")
            }
        } else if error.reason != .parseError || failure.id != .null || !error.message.hasPrefix("parse error: ") {
            fail("a line that is not JSON was refused with \(error.reason.rawValue), id \(failure.id): \(error.message)")
        }
        if !failure.isNotification { checkReply(id: failure.id, error: error) }
    }

    private mutating func checkAccepted(_ request: Request, value: JSONValue) {
        if let expected = Self.expectedRefusal(value) {
            fail("Request.decode accepted a line §7 refuses with \(expected.reason.rawValue)")
            return
        }
        if request.method != value["method"]?.stringValue || request.params != value["params"]
            || request.id?.json != value["id"] {
            fail("the decoded request differs from the line's members")
        }
        // What a client sends, built from the request, must decode to the same request.
        var line = request.json.line
        if line.popLast() != 0x0A || line.contains(0x0A) {
            fail("Request.json.line is not one line")
            return
        }
        do {
            let again = try Request.decode(line: line)
            if again.method != request.method || again.id != request.id || again.params != request.params {
                fail("Request.json decodes to a different request")
            }
        } catch {
            fail("Request.json of a decoded request is refused: \(error.error.message)")
        }
    }

    /// The error reply goes out as one line that a client reads back as the same error.
    private mutating func checkReply(id: RequestID, error: RPCError) {
        var line = Response.error(id: id, error).line
        if line.popLast() != 0x0A || line.contains(0x0A) {
            fail("the reply to it is not one line: \(ProtocolFuzzDriver.show(line))")
            return
        }
        do throws(RPCError) {
            let message = try line.withBytes { (raw) throws(RPCError) in try IncomingMessage.decode(line: raw) }
            guard case .error(let gotID, let got) = message else {
                fail("a client does not read the reply as an error")
                return
            }
            if gotID != id || got.reason != error.reason || got.message != error.message || got.code != error.code {
                fail("a client reads the reply as \(got.reason.rawValue) \(got.code) id \(gotID), not \(error.reason.rawValue) \(error.code) id \(id)")
            }
        } catch {
            fail("a client cannot read the reply: \(error.message)")
        }
    }

    // MARK: Routing

    /// A decoded request refused on its way to a handler: an unknown method (with the
    /// message PROTOCOL.md gives), or params its decoder refuses.
    private mutating func checkRefused(_ request: Request, _ error: RPCError) {
        if let method = MethodName(rawValue: request.method) {
            if error.reason != .invalidParams && error.reason != .invalidName {
                fail("\(method.rawValue) refused with \(error.reason.rawValue), not invalid_params or invalid_name")
            }
            if error.message.isEmpty { fail("\(method.rawValue) params refused with an empty message") }
        } else {
            if MethodName.allCases.contains(where: { Array($0.rawValue.utf8) == Array(request.method.utf8) }) {
                fail("MethodName(rawValue:) does not know a method it lists")
            }
            if error.reason != .methodNotFound || !error.message.hasPrefix("unknown method ") {
                fail("an unknown method was refused with \(error.reason.rawValue): \(error.message)")
            }
        }
        refuse(error.reason)
        if let id = request.id { checkReply(id: id, error: error) }
    }

    /// A request routed to its handler: its params survive being encoded with `.json`
    /// (as the client sends them) and decoded again, and keep the rules their decoder states.
    private mutating func checkCall(_ request: Request, _ call: Call) {
        if call.method.rawValue != request.method { fail("\(request.method) was routed as \(call.method.rawValue)") }
        let method = call.method.rawValue
        switch call {
        case .version, .describe, .list:
            break
        case .subscribe(let decoded):
            roundTrip(decoded, "subscribe") { (json) throws(RPCError) in try SubscribeParams(params: json) }
            if decoded.instance != nil, decoded.since == nil { fail("subscribe accepted an instance without since") }
        case .unsubscribe(let decoded):
            roundTrip(decoded, "unsubscribe") { (json) throws(RPCError) in try UnsubscribeParams(params: json) }
            if decoded.subscription == 0 { fail("unsubscribe accepted subscription 0") }
        case .create(let decoded):
            roundTrip(decoded, decoded.name) { (json) throws(RPCError) in try CreateParams(params: json) }
        case .inspect(let decoded), .destroy(let decoded), .freeze(let decoded), .thaw(let decoded), .processes(let decoded):
            roundTrip(decoded, decoded.name) { (json) throws(RPCError) in try NameParams(params: json, method: method) }
        case .enter(let decoded):
            // EnterParams' == compares .json, which would hide a member .json leaves out.
            roundTrip(decoded, decoded.name, same: Self.sameEnter) { (json) throws(RPCError) in try EnterParams(params: json) }
            if !decoded.tty, decoded.rows != nil || decoded.columns != nil { fail("enter accepted rows or columns without a tty") }
            // These lines carry no descriptors, and enter without a tty needs three.
            if !decoded.tty, decoded.stdio == .descriptors { fail("enter without a tty was routed with no descriptors") }
        case .signal(let decoded):
            roundTrip(decoded, decoded.name) { (json) throws(RPCError) in try SignalParams(params: json) }
            if !(1...64).contains(decoded.signal) || decoded.session == 0 { fail("signal accepted session \(decoded.session) signal \(decoded.signal)") }
        case .share(let decoded), .unshare(let decoded):
            roundTrip(decoded, decoded.name) { (json) throws(RPCError) in try ShareParams(params: json, method: method) }
            if decoded.members.isEmpty { fail("\(method) accepted no members") }
        case .attach(let decoded):
            roundTrip(decoded, decoded.name) { (json) throws(RPCError) in try AttachParams(params: json) }
            if decoded.session == 0 { fail("attach accepted session 0") }
        case .write(let decoded):
            checkWrite(decoded)
        case .resize(let decoded):
            roundTrip(decoded, "resize") { (json) throws(RPCError) in try ResizeParams(params: json) }
            if decoded.session == 0 { fail("resize accepted session 0") }
        }
        summary.accepted[call.method, default: 0] += 1
        if let id = request.id {
            var line = Response.result(id: id, .object([:])).line
            if line.popLast() != 0x0A || line.contains(0x0A) { fail("the result reply is not one line") }
        }
    }

    /// `^[a-z0-9][a-z0-9_.-]{0,62}$`, written out again.
    private static func matchesNameRule(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...63).contains(bytes.count) else { return false }
        for (i, b) in bytes.enumerated() {
            let alnum = (0x61...0x7A).contains(b) || (0x30...0x39).contains(b)
            if !(alnum || (i > 0 && (b == 0x5F || b == 0x2E || b == 0x2D))) { return false }
        }
        return true
    }

    /// The method's params decoder, as its handler calls it; what it accepts must survive
    /// being encoded with `.json` (as the client sends it) and decoded again.
    private mutating func decodeParams(_ method: MethodName, _ params: JSONValue?) -> Result<Void, RPCError> {
        do throws(RPCError) {
            switch method {
            case .version, .describe, .list:
                try ParamsReader(params, method: method.rawValue).finish()
            case .subscribe:
                let decoded = try SubscribeParams(params: params)
                roundTrip(decoded, "subscribe") { (json) throws(RPCError) in try SubscribeParams(params: json) }
            case .unsubscribe:
                let decoded = try UnsubscribeParams(params: params)
                roundTrip(decoded, "unsubscribe") { (json) throws(RPCError) in try UnsubscribeParams(params: json) }
            case .create:
                let decoded = try CreateParams(params: params)
                roundTrip(decoded, decoded.name) { (json) throws(RPCError) in try CreateParams(params: json) }
            case .inspect, .destroy, .freeze, .thaw, .processes:
                let decoded = try NameParams(params: params, method: method.rawValue)
                roundTrip(decoded, decoded.name) { (json) throws(RPCError) in try NameParams(params: json, method: method.rawValue) }
            case .enter:
                let decoded = try EnterParams(params: params)
                // EnterParams' == compares .json, which would hide a member .json leaves out.
                roundTrip(decoded, decoded.name, same: Self.sameEnter) { (json) throws(RPCError) in try EnterParams(params: json) }
                if !decoded.tty, decoded.rows != nil || decoded.columns != nil { fail("enter accepted rows or columns without a tty") }
            case .signal:
                let decoded = try SignalParams(params: params)
                roundTrip(decoded, decoded.name) { (json) throws(RPCError) in try SignalParams(params: json) }
                if !(1...64).contains(decoded.signal) || decoded.session == 0 { fail("signal accepted session \(decoded.session) signal \(decoded.signal)") }
            case .share, .unshare:
                let decoded = try ShareParams(params: params, method: method.rawValue)
                roundTrip(decoded, decoded.name) { (json) throws(RPCError) in try ShareParams(params: json, method: method.rawValue) }
                if decoded.members.isEmpty { fail("\(method.rawValue) accepted no members") }
            case .attach:
                let decoded = try AttachParams(params: params)
                roundTrip(decoded, decoded.name) { (json) throws(RPCError) in try AttachParams(params: json) }
                if decoded.session == 0 { fail("attach accepted session 0") }
            case .write:
                checkWrite(try WriteParams(params: params))
            case .resize:
                let decoded = try ResizeParams(params: params)
                roundTrip(decoded, "resize") { (json) throws(RPCError) in try ResizeParams(params: json) }
            }
            return .success(())
        } catch {
            if error.message.isEmpty { fail("\(method.rawValue) params refused with an empty message") }
            return .failure(error)
        }
    }

    /// A `write` accepted: no more than a window of data, which base64 spells back as sent.
    private mutating func checkWrite(_ decoded: WriteParams) {
        roundTrip(decoded, "write") { (json) throws(RPCError) in try WriteParams(params: json) }
        if decoded.session == 0 { fail("write accepted session 0") }
        if decoded.data.count > StreamLimits.window { fail("write accepted \(decoded.data.count) bytes, more than a window") }
        if Base64.decode(Base64.encode(decoded.data)) != decoded.data { fail("base64 does not spell back \(decoded.data.count) bytes") }
    }

    private mutating func roundTrip<P: Equatable & JSONEncodedParams>(
        _ decoded: P, _ name: String, same: (P, P) -> Bool = (==), _ decode: (JSONValue) throws(RPCError) -> P
    ) {
        if !Self.matchesNameRule(name) { fail("params accepted with group name \(ProtocolFuzzDriver.show(Array(name.utf8)))") }
        do {
            let again = try decode(decoded.json)
            if !same(again, decoded) { fail("\(P.self) decoded from its own .json differs: \(decoded.json.serialized())") }
        } catch {
            fail("\(P.self).json is refused by its own decoder: \(error.message)")
        }
    }
}

extension LineChecker {
    /// Member by member.
    static func sameEnter(_ a: EnterParams, _ b: EnterParams) -> Bool {
        a.name == b.name && a.argv == b.argv && a.cwd == b.cwd && a.tty == b.tty && a.rows == b.rows
            && a.columns == b.columns && a.trustOwner == b.trustOwner && a.stdio == b.stdio && a.env.count == b.env.count
            && zip(a.env, b.env).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}

/// The params types the driver encodes back with `.json`.
private protocol JSONEncodedParams {
    var json: JSONValue { get }
}

extension CreateParams: JSONEncodedParams {}
extension NameParams: JSONEncodedParams {}
extension EnterParams: JSONEncodedParams {}
extension SignalParams: JSONEncodedParams {}
extension ShareParams: JSONEncodedParams {}
extension AttachParams: JSONEncodedParams {}
extension SubscribeParams: JSONEncodedParams {}
extension UnsubscribeParams: JSONEncodedParams {}
extension WriteParams: JSONEncodedParams {}
extension ResizeParams: JSONEncodedParams {}
