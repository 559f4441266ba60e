import Testing
import RPC
import TestSupport

// MARK: - Helpers

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Drains every frame the framer can produce right now.
private func drainFrames(_ framer: inout LineFramer) -> [LineFramer.Frame] {
    var frames: [LineFramer.Frame] = []
    while let frame = framer.next() {
        frames.append(frame)
        if case .tooLong = frame { break }
    }
    return frames
}

/// The lines of `frames`, recording an issue for any `.tooLong`.
private func linesOf(_ frames: [LineFramer.Frame], sourceLocation: SourceLocation = #_sourceLocation) -> [LineFramer.Line] {
    frames.compactMap { frame in
        switch frame {
        case .line(let line): return line
        case .tooLong:
            Issue.record("unexpected .tooLong", sourceLocation: sourceLocation)
            return nil
        }
    }
}

private func isTooLong(_ frame: LineFramer.Frame?) -> Bool {
    if case .tooLong? = frame { return true }
    return false
}

private func lineText(_ frame: LineFramer.Frame?) -> String? {
    if case .line(let line)? = frame { return String(decoding: line.bytes, as: UTF8.self) }
    return nil
}

// MARK: - Splitting

@Suite("LineFramer: splitting lines")
struct LineFramerSplittingTests {
    @Test func oneByteAtATime() {
        var framer = LineFramer(maxLineLength: 1024)
        let text = "first line\nsecond\n\nlast one here\n"
        var lines: [String] = []
        var nilsBeforeNewline = 0
        for byte in bytes(text) {
            framer.append([byte])
            let frames = drainFrames(&framer)
            if byte != 0x0A {
                #expect(frames.isEmpty, "a line came out before its newline")
                nilsBeforeNewline += 1
            } else {
                #expect(frames.count == 1)
            }
            lines += linesOf(frames).map { String(decoding: $0.bytes, as: UTF8.self) }
        }
        #expect(lines == ["first line", "second", "", "last one here"])
        #expect(nilsBeforeNewline == text.utf8.count - 4)
        #expect(framer.pendingByteCount == 0)
        #expect(framer.next() == nil)
    }

    @Test func manyLinesInOneAppend() {
        var framer = LineFramer(maxLineLength: 64)
        let expected = (0..<200).map { "line number \($0)" }
        framer.append(bytes(expected.joined(separator: "\n") + "\npartial"))
        let lines = linesOf(drainFrames(&framer)).map { String(decoding: $0.bytes, as: UTF8.self) }
        #expect(lines == expected)
        #expect(framer.pendingByteCount == "partial".utf8.count)
        framer.append(bytes(" end\n"))
        #expect(lineText(framer.next()) == "partial end")
        #expect(framer.next() == nil)
        #expect(framer.pendingByteCount == 0)
    }

    @Test func pendingByteCountTracksUnterminatedBytes() {
        var framer = LineFramer(maxLineLength: 64)
        #expect(framer.pendingByteCount == 0)
        framer.append(bytes("abc"))
        #expect(framer.pendingByteCount == 3)
        #expect(framer.next() == nil)
        framer.append(bytes("d\nef"))
        #expect(framer.pendingByteCount == 7)
        #expect(lineText(framer.next()) == "abcd")
        #expect(framer.pendingByteCount == 2)
    }

    @Test func carriageReturnIsKeptForTheJSONLayer() throws {
        var framer = LineFramer(maxLineLength: 256)
        framer.append(bytes("{\"jsonrpc\":\"2.0\",\"method\":\"list\",\"id\":1}\r\n"))
        guard case .line(let line)? = framer.next() else {
            Issue.record("no line")
            return
        }
        #expect(line.bytes.last == 0x0D, "the framer must not strip the CR")
        #expect(!line.bytes.contains(0x0A))
        // JSON treats the CR as trailing whitespace, so the request still decodes.
        let request = try Request.decode(line: line.bytes)
        #expect(request.method == "list")
        #expect(request.id == .number(JSONNumber(1)))
    }

    @Test func appendFromRawBuffer() {
        var framer = LineFramer(maxLineLength: 64)
        let data = bytes("raw\nbuffer\n")
        data.withUnsafeBytes { framer.append($0, descriptors: [9]) }
        guard case .line(let first)? = framer.next(), case .line(let second)? = framer.next() else {
            Issue.record("expected two lines")
            return
        }
        #expect(first.bytes == bytes("raw"))
        #expect(first.descriptors.isEmpty)
        // The receive's last byte ends "buffer": the descriptors are its.
        #expect(second.bytes == bytes("buffer"))
        #expect(second.descriptors == [9])
    }
}

// MARK: - Descriptors

/// The rule under test: the descriptors of one `append` (one recvmsg) go with
/// the line that holds the LAST byte of that append; with no bytes, with the
/// line that holds the next byte. Linux may glue earlier messages in front of
/// the one that carried descriptors, but stops right after it (or inside it,
/// when the buffer is full), so the last byte read is always the carrier's.
@Suite("LineFramer: descriptors travel with their line")
struct LineFramerDescriptorTests {
    @Test func batchOfAWholeLineStaysWithIt() {
        var framer = LineFramer(maxLineLength: 64)
        framer.append(bytes("one\n"), descriptors: [10, 11])
        framer.append(bytes("two\n"))
        let lines = linesOf(drainFrames(&framer))
        #expect(lines.map(\.descriptors) == [[10, 11], []])
        #expect(lines.map(\.descriptorsTruncated) == [false, false])
    }

    /// The kernel glued "one\n" (sent earlier, without descriptors) in front
    /// of "two\n", which carried them.
    @Test func batchOfAnAppendHoldingTwoLinesGoesToTheLast() {
        var framer = LineFramer(maxLineLength: 64)
        framer.append(bytes("one\ntwo\n"), descriptors: [60])
        let lines = linesOf(drainFrames(&framer))
        #expect(lines.map { String(decoding: $0.bytes, as: UTF8.self) } == ["one", "two"])
        #expect(lines.map(\.descriptors) == [[], [60]])
    }

    /// The receive starts with the tail of "half way" and ends with "after".
    @Test func batchOfAnAppendStartingMidLineGoesToTheLineItEndsIn() {
        var framer = LineFramer(maxLineLength: 64)
        framer.append(bytes("before\nhal"))
        framer.append(bytes("f way\nafter\n"), descriptors: [20])
        let lines = linesOf(drainFrames(&framer))
        #expect(lines.map { String(decoding: $0.bytes, as: UTF8.self) } == ["before", "half way", "after"])
        #expect(lines.map(\.descriptors) == [[], [], [20]])
    }

    /// The receive was cut short inside the message that carried the
    /// descriptors (a full buffer): they go with that unfinished line.
    @Test func batchOfAnAppendEndingMidLineGoesToThatLine() {
        var framer = LineFramer(maxLineLength: 64)
        framer.append(bytes("one\ntw"), descriptors: [61])
        #expect(lineText(framer.next()) == "one")
        #expect(framer.next() == nil)
        framer.append(bytes("o\nthree\n"))
        let lines = linesOf(drainFrames(&framer))
        #expect(lines.map { String(decoding: $0.bytes, as: UTF8.self) } == ["two", "three"])
        #expect(lines.map(\.descriptors) == [[61], []])
    }

    /// The newline that ends "abc" starts the receive; "xyz\n" ends it.
    @Test func batchOfAnAppendStartingWithANewlineGoesToTheNextLine() {
        var framer = LineFramer(maxLineLength: 64)
        framer.append(bytes("abc"))
        framer.append(bytes("\nxyz\n"), descriptors: [21])
        let lines = linesOf(drainFrames(&framer))
        #expect(lines.map { String(decoding: $0.bytes, as: UTF8.self) } == ["abc", "xyz"])
        #expect(lines.map(\.descriptors) == [[], [21]])
    }

    /// A receive of nothing but the newline: its last byte ends "abc".
    @Test func batchOfAnAppendOfJustTheNewlineGoesToTheLineItEnds() {
        var framer = LineFramer(maxLineLength: 64)
        framer.append(bytes("abc"))
        framer.append(bytes("\n"), descriptors: [22])
        framer.append(bytes("xyz\n"))
        let lines = linesOf(drainFrames(&framer))
        #expect(lines.map(\.descriptors) == [[22], []])
    }

    @Test func severalBatchesInOneLineKeepTheirOrder() {
        var framer = LineFramer(maxLineLength: 64)
        framer.append(bytes("prev\na"), descriptors: [30])
        framer.append(bytes("b"))
        framer.append(bytes("c"), descriptors: [31, 32])
        framer.append(bytes("\nnext\n"))
        let lines = linesOf(drainFrames(&framer))
        #expect(lines.map { String(decoding: $0.bytes, as: UTF8.self) } == ["prev", "abc", "next"])
        #expect(lines.map(\.descriptors) == [[], [30, 31, 32], []])
    }

    @Test func batchOnTheSecondOfTwoQueuedLines() {
        var framer = LineFramer(maxLineLength: 64)
        framer.append(bytes("first\n"))
        framer.append(bytes("second\n"), descriptors: [40])
        // Nothing was read yet: both lines are queued when next() runs.
        let lines = linesOf(drainFrames(&framer))
        #expect(lines.map { String(decoding: $0.bytes, as: UTF8.self) } == ["first", "second"])
        #expect(lines.map(\.descriptors) == [[], [40]])
    }

    /// Each receive spans lines; each batch goes to the line its receive ends in.
    @Test func batchesOfAppendsSpanningLinesGoToTheLinesTheyEndIn() {
        var framer = LineFramer(maxLineLength: 64)
        framer.append(bytes("first\nsec"))
        // One receive brings the end of "second", all of "third" and the start of "fourth".
        framer.append(bytes("ond\nthird\nfou"), descriptors: [50])
        // The next brings the end of "fourth" and all of "fifth".
        framer.append(bytes("rth\nfifth\n"), descriptors: [51])
        let lines = linesOf(drainFrames(&framer))
        #expect(lines.map { String(decoding: $0.bytes, as: UTF8.self) } == ["first", "second", "third", "fourth", "fifth"])
        #expect(lines.map(\.descriptors) == [[], [], [], [50], [51]])
    }

    @Test func truncatedFlagTravelsWithItsLineOnly() {
        var framer = LineFramer(maxLineLength: 64)
        framer.append(bytes("x"))
        framer.append(bytes("y\nz\n"), descriptors: [], truncated: true)
        framer.append(bytes("w\n"), descriptors: [70], truncated: true)
        framer.append(bytes("v\n"), descriptors: [71], truncated: false)
        let lines = linesOf(drainFrames(&framer))
        #expect(lines.map { String(decoding: $0.bytes, as: UTF8.self) } == ["xy", "z", "w", "v"])
        // The truncated receive ended in "z", not in "xy" where it began.
        #expect(lines.map(\.descriptorsTruncated) == [false, true, true, false])
        #expect(lines.map(\.descriptors) == [[], [], [70], [71]])
    }

    @Test func truncatedAnywhereInTheLineMarksTheLine() {
        var framer = LineFramer(maxLineLength: 64)
        framer.append(bytes("zero\na"), descriptors: [80])
        framer.append(bytes("b"), descriptors: [81], truncated: true)
        framer.append(bytes("c\n"), descriptors: [82])
        let lines = linesOf(drainFrames(&framer))
        #expect(lines.map { String(decoding: $0.bytes, as: UTF8.self) } == ["zero", "abc"])
        #expect(lines.map(\.descriptors) == [[], [80, 81, 82]])
        #expect(lines.map(\.descriptorsTruncated) == [false, true])
    }

    @Test func takeAllDescriptorsReturnsThoseOfUnconsumedLines() {
        var framer = LineFramer(maxLineLength: 64)
        framer.append(bytes("done\n"), descriptors: [1])
        framer.append(bytes("next\nwaiting\n"), descriptors: [2, 3])
        framer.append(bytes("partial"), descriptors: [4])
        guard case .line(let first)? = framer.next(), case .line(let second)? = framer.next() else {
            Issue.record("expected two lines")
            return
        }
        #expect(first.descriptors == [1])
        // "next" shared a receive with "waiting", which ended it: the batch is waiting's.
        #expect(second.bytes == bytes("next"))
        #expect(second.descriptors.isEmpty)
        #expect(framer.takeAllDescriptors() == [2, 3, 4])
        // The framer forgets them: the lines that follow carry none, and a second take is empty.
        #expect(framer.takeAllDescriptors().isEmpty)
        guard case .line(let third)? = framer.next() else {
            Issue.record("no third line")
            return
        }
        #expect(third.bytes == bytes("waiting"))
        #expect(third.descriptors.isEmpty)
    }

    @Test func takeAllDescriptorsOnAnEmptyFramer() {
        var framer = LineFramer(maxLineLength: 8)
        #expect(framer.takeAllDescriptors().isEmpty)
    }

    /// Descriptors handed over with no bytes belong with the next byte that
    /// arrives. Which line gets them must not depend on whether the reader
    /// happened to call next() before or after the following bytes came in.
    @Test func descriptorsWithoutBytesGoWithTheNextLineWhateverTheReadTiming() {
        // Everything arrives before the reader looks: the batch goes with "b".
        var queued = LineFramer(maxLineLength: 64)
        queued.append(bytes("a\n"))
        queued.append([UInt8](), descriptors: [90])
        queued.append(bytes("b\n"))
        queued.append(bytes("cc\n"))
        let queuedLines = linesOf(drainFrames(&queued))
        #expect(queuedLines.map(\.descriptors) == [[], [90], []])

        // Same input, but the reader takes "a" (emptying the buffer) before "b" arrives.
        var interleaved = LineFramer(maxLineLength: 64)
        interleaved.append(bytes("a\n"))
        interleaved.append([UInt8](), descriptors: [90])
        #expect(lineText(interleaved.next()) == "a")
        interleaved.append(bytes("b\n"))
        interleaved.append(bytes("cc\n"))
        let interleavedLines = linesOf(drainFrames(&interleaved))
        #expect(interleavedLines.map(\.descriptors) == [[90], []])
    }

    /// With no bytes, the next byte decides even inside a line in progress.
    @Test func descriptorsWithoutBytesMidLineGoWithThatLine() {
        var framer = LineFramer(maxLineLength: 64)
        framer.append(bytes("par"))
        framer.append([UInt8](), descriptors: [91])
        framer.append(bytes("tial\nnext\n"))
        let lines = linesOf(drainFrames(&framer))
        #expect(lines.map { String(decoding: $0.bytes, as: UTF8.self) } == ["partial", "next"])
        #expect(lines.map(\.descriptors) == [[91], []])
    }
}

// MARK: - Line length

@Suite("LineFramer: maximum line length")
struct LineFramerLengthTests {
    @Test func exactlyTheMaximumWhole() {
        var framer = LineFramer(maxLineLength: 16)
        let line = String(repeating: "m", count: 16)
        framer.append(bytes(line + "\n"))
        #expect(lineText(framer.next()) == line)
        #expect(framer.next() == nil)
    }

    @Test func exactlyTheMaximumTrickling() {
        var framer = LineFramer(maxLineLength: 16)
        for _ in 0..<16 {
            framer.append(bytes("t"))
            #expect(framer.next() == nil)
        }
        framer.append(bytes("\n"))
        #expect(lineText(framer.next()) == String(repeating: "t", count: 16))
    }

    @Test func oneOverTheMaximumWhole() {
        var framer = LineFramer(maxLineLength: 16)
        framer.append(bytes(String(repeating: "x", count: 17) + "\n"))
        #expect(isTooLong(framer.next()))
    }

    @Test func oneOverTheMaximumTricklingWithoutNewline() {
        var framer = LineFramer(maxLineLength: 16)
        for i in 0..<17 {
            framer.append(bytes("y"))
            let frame = framer.next()
            if i < 16 {
                #expect(frame == nil, "byte \(i + 1) of 17")
            } else {
                #expect(isTooLong(frame), "the 17th byte passes the limit")
            }
        }
    }

    @Test func oneOverTheMaximumInOneAppendWithoutNewline() {
        var framer = LineFramer(maxLineLength: 16)
        framer.append(bytes(String(repeating: "z", count: 17)))
        #expect(isTooLong(framer.next()))
    }

    @Test func longLineAfterGoodLinesInTheSameAppend() {
        var framer = LineFramer(maxLineLength: 8)
        framer.append(bytes("ok\n12345678\n123456789\nfine\n"))
        #expect(lineText(framer.next()) == "ok")
        #expect(lineText(framer.next()) == "12345678")
        #expect(isTooLong(framer.next()))
    }

    @Test func tooLongIsSticky() {
        var framer = LineFramer(maxLineLength: 4)
        framer.append(bytes("abcdefg"))
        #expect(isTooLong(framer.next()))
        framer.append(bytes("\nshort\n"), descriptors: [5])
        for _ in 0..<3 {
            #expect(isTooLong(framer.next()))
        }
        // The descriptors are still the owner's to close.
        #expect(framer.takeAllDescriptors() == [5])
        #expect(isTooLong(framer.next()))
    }

    @Test func limitIsExposed() {
        let framer = LineFramer(maxLineLength: 12345)
        #expect(framer.maxLineLength == 12345)
    }
}

// MARK: - Compaction

@Suite("LineFramer: buffer compaction keeps offsets right")
struct LineFramerCompactionTests {
    /// A stream of `count` lines of varying length; some lines have a
    /// descriptor batch whose receive starts at a byte inside that line.
    struct Plan {
        var text: [UInt8] = []
        var lineStarts: [Int] = []
        var lines: [[UInt8]] = []
        /// Offset in `text` where a chunk carrying the batch [i, i + 100_000] begins.
        var batchAt: [Int: Int32] = [:]
    }

    typealias Chunk = (bytes: ArraySlice<UInt8>, descriptors: [Int32])

    static func makePlan(lines count: Int, seed: UInt64) -> Plan {
        var rng = SplitMix64(seed)
        var plan = Plan()
        for i in 0..<count {
            let pad = Int(rng.next() % 40)
            let line = Array("line-\(i)-".utf8) + [UInt8](repeating: UInt8(ascii: "a") + UInt8(i % 26), count: pad)
            plan.lineStarts.append(plan.text.count)
            plan.lines.append(line)
            if i % 7 == 3 || i % 113 == 0 {
                // Anywhere in the line, its newline included.
                let offset = plan.text.count + Int(rng.next() % UInt64(line.count + 1))
                plan.batchAt[offset] = Int32(i)
            }
            plan.text += line
            plan.text.append(0x0A)
        }
        return plan
    }

    /// Cuts the stream into chunks of random sizes, cutting at every batch offset too.
    static func chunks(of plan: Plan, seed: UInt64, maxChunk: Int) -> [Chunk] {
        var rng = SplitMix64(seed)
        var cuts = Set(plan.batchAt.keys)
        var position = 0
        while position < plan.text.count {
            position += 1 + Int(rng.next() % UInt64(maxChunk))
            if position < plan.text.count { cuts.insert(position) }
        }
        cuts.insert(0)
        let sorted = cuts.sorted()
        var result: [Chunk] = []
        for (k, start) in sorted.enumerated() {
            let end = k + 1 < sorted.count ? sorted[k + 1] : plan.text.count
            let descriptors = plan.batchAt[start].map { [$0, $0 + 100_000] } ?? []
            result.append((plan.text[start..<end], descriptors))
        }
        return result
    }

    /// The line holding byte `offset` of the stream.
    static func lineIndex(holding offset: Int, in plan: Plan) -> Int {
        var low = 0
        var high = plan.lineStarts.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if plan.lineStarts[middle] <= offset { low = middle } else { high = middle - 1 }
        }
        return low
    }

    /// What each line must carry: every chunk's batch goes to the line
    /// holding the chunk's last byte (chunks are slices of `plan.text`, so
    /// their indices are stream offsets; none is empty).
    /// `moved` counts the batches that land on a later line than their chunk's first byte.
    static func expectedDescriptors(of chunks: [Chunk], in plan: Plan) -> (perLine: [[Int32]], moved: Int) {
        var perLine = [[Int32]](repeating: [], count: plan.lines.count)
        var moved = 0
        for chunk in chunks where !chunk.descriptors.isEmpty {
            let last = lineIndex(holding: chunk.bytes.endIndex - 1, in: plan)
            if last != lineIndex(holding: chunk.bytes.startIndex, in: plan) { moved += 1 }
            perLine[last] += chunk.descriptors
        }
        return (perLine, moved)
    }

    static func check(_ lines: [LineFramer.Line], against plan: Plan, expected: [[Int32]]) {
        #expect(lines.count == plan.lines.count)
        var wrong = 0
        for (i, line) in lines.enumerated() where i < plan.lines.count {
            if line.bytes != plan.lines[i] || line.descriptors != expected[i] || line.descriptorsTruncated {
                wrong += 1
                if wrong <= 5 {
                    Issue.record("line \(i): got \(String(decoding: line.bytes, as: UTF8.self)) \(line.descriptors), expected \(String(decoding: plan.lines[i], as: UTF8.self)) \(expected[i])")
                }
            }
        }
        #expect(wrong == 0)
    }

    @Test(arguments: [1, 7, 300, 5000])
    func interleavedAppendsAndReads(maxChunk: Int) {
        let plan = Self.makePlan(lines: 6000, seed: 0xC0FFEE)
        let chunks = Self.chunks(of: plan, seed: UInt64(maxChunk), maxChunk: maxChunk)
        let expected = Self.expectedDescriptors(of: chunks, in: plan)
        // With one-byte chunks first and last byte coincide; otherwise the
        // stream must exercise batches whose receive spans lines.
        if maxChunk > 1 { #expect(expected.moved > 0) }
        var framer = LineFramer(maxLineLength: 128)
        var lines: [LineFramer.Line] = []
        for chunk in chunks {
            framer.append(Array(chunk.bytes), descriptors: chunk.descriptors)
            lines += linesOf(drainFrames(&framer))
        }
        Self.check(lines, against: plan, expected: expected.perLine)
        #expect(framer.pendingByteCount == 0)
        #expect(framer.takeAllDescriptors().isEmpty)
    }

    /// Everything is queued first, so the framer compacts while most batches
    /// are still waiting for their lines.
    @Test func allQueuedThenRead() {
        let plan = Self.makePlan(lines: 6000, seed: 42)
        let chunks = Self.chunks(of: plan, seed: 99, maxChunk: 64)
        let expected = Self.expectedDescriptors(of: chunks, in: plan)
        #expect(expected.moved > 0)
        var framer = LineFramer(maxLineLength: 128)
        for chunk in chunks {
            framer.append(Array(chunk.bytes), descriptors: chunk.descriptors)
        }
        let lines = linesOf(drainFrames(&framer))
        Self.check(lines, against: plan, expected: expected.perLine)
    }

    /// Reads lag behind appends by a varying amount, so compaction happens
    /// with a partial line and pending batches in the buffer.
    @Test func readsLaggingBehindAppends() {
        let plan = Self.makePlan(lines: 8000, seed: 7)
        let chunks = Self.chunks(of: plan, seed: 5, maxChunk: 200)
        let expected = Self.expectedDescriptors(of: chunks, in: plan)
        #expect(expected.moved > 0)
        var framer = LineFramer(maxLineLength: 128)
        var rng = SplitMix64(1234)
        var lines: [LineFramer.Line] = []
        for chunk in chunks {
            framer.append(Array(chunk.bytes), descriptors: chunk.descriptors)
            let reads = Int(rng.next() % 12)
            for _ in 0..<reads {
                guard let frame = framer.next() else { break }
                lines += linesOf([frame])
            }
        }
        lines += linesOf(drainFrames(&framer))
        Self.check(lines, against: plan, expected: expected.perLine)
    }

    /// takeAllDescriptors after compaction returns exactly the batches of the lines not yet read.
    @Test func takeAllAfterCompaction() {
        let plan = Self.makePlan(lines: 3000, seed: 11)
        let chunks = Self.chunks(of: plan, seed: 12, maxChunk: 50)
        let expected = Self.expectedDescriptors(of: chunks, in: plan)
        #expect(expected.moved > 0)
        var framer = LineFramer(maxLineLength: 128)
        for chunk in chunks {
            framer.append(Array(chunk.bytes), descriptors: chunk.descriptors)
        }
        var read: [LineFramer.Line] = []
        for _ in 0..<2000 {
            guard case .line(let line)? = framer.next() else { break }
            read.append(line)
        }
        #expect(read.count == 2000)
        let expectedRest = expected.perLine[2000...].flatMap { $0 }
        #expect(framer.takeAllDescriptors() == expectedRest)
        #expect(read.map(\.descriptors) == Array(expected.perLine[0..<2000]))
    }
}
