import Foundation
import RPC
import TestSupport
import Testing

/// Replays every input kept in Fuzz/RPCFuzzer/regressions/ — what the fuzzer found, and
/// hand-made nasty ones — through ProtocolFuzzDriver.run, the function the fuzz target runs.
/// An input passes when the driver finds no broken invariant, answers every line, and
/// finishes in reasonable time; the hand-made ones must also decode as PROTOCOL.md says.
@Suite("Fuzz regressions")
struct FuzzRegressionTests {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // RPCTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // the package
        .appendingPathComponent("Fuzz/RPCFuzzer/regressions")

    static let inputs: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted()
    }()

    /// Five seconds plus ten per MiB of input: several times what linear code needs in a
    /// debug build (about 1.3 s for the 1 MiB inputs); an input that takes longer has found
    /// something quadratic.
    static func timeBudget(forBytes count: Int) -> Duration {
        .seconds(5) + .milliseconds(count * 10_000 / (1 << 20))
    }

    @Test func theInputsAreThere() {
        #expect(Self.inputs.count >= Self.expectations.count, "no inputs in \(Self.directory.path)")
        for name in Self.expectations.keys {
            #expect(Self.inputs.contains(name), "expected \(name) in \(Self.directory.path)")
        }
    }

    @Test(arguments: inputs)
    func replay(_ name: String) throws {
        let bytes = [UInt8](try Data(contentsOf: Self.directory.appendingPathComponent(name)))
        var summary = ProtocolFuzzDriver.Summary()
        let elapsed = ContinuousClock().measure { summary = ProtocolFuzzDriver.run(bytes) }

        #expect(summary.violations == [], "invariants broken by \(name)")
        #expect(summary.inputBytes == bytes.count)
        #expect(summary.lines == summary.blankLines + summary.acceptedCount + summary.errorCount,
                "every line is blank, accepted or refused")
        #expect(elapsed < Self.timeBudget(forBytes: bytes.count), "\(name) took \(elapsed)")

        guard let expected = Self.expectations[name] else { return }
        #expect(summary.lines == expected.lines)
        #expect(summary.blankLines == expected.blank)
        #expect(summary.accepted == expected.accepted)
        #expect(summary.errors == expected.errors)
        #expect(summary.tooLong == expected.tooLong)
        #expect(summary.notifications == expected.notifications)
        #expect(summary.discardedBytes == expected.discarded)
    }

    /// The driver is not vacuous: it notices a line it gets wrong, checks the descriptor
    /// bookkeeping, and reaches the too-long path with the small limit.
    @Test func theDriverCountsWhatItSees() {
        let request = Array(#"{"jsonrpc":"2.0","method":"inspect","params":{"name":"web"},"id":1}"#.utf8)
        let summary = ProtocolFuzzDriver.run(request + [0x0A] + request + [0x0A])
        #expect(summary.violations == [])
        #expect(summary.lines == 2)
        #expect(summary.jsonValues == 2)
        #expect(summary.accepted == [.inspect: 2])
        #expect(summary.tooLong == false)
        #expect(summary.tooLongAtSmallLimit == true, "the line is longer than 64 bytes")

        let empty = ProtocolFuzzDriver.run([])
        #expect(empty == { var s = ProtocolFuzzDriver.Summary(); s.inputBytes = 0; return s }())
    }

    // MARK: What the hand-made inputs decode to

    struct Expected {
        var lines: Int
        var blank = 0
        var accepted: [MethodName: Int] = [:]
        var errors: [ErrorReason: Int] = [:]
        var tooLong = false
        var notifications = 0
        var discarded = 0
    }

    static let expectations: [String: Expected] = [
        // Lines of only spaces, tabs and CRs are skipped; a last line without "\n" is dropped.
        "blank-lines-and-unterminated-last-line":
            Expected(lines: 6, blank: 5, accepted: [.version: 1], discarded: 43),
        // "\r" before "\n", and inside the value, is JSON whitespace.
        "crlf-line-endings":
            Expected(lines: 7, blank: 3, accepted: [.version: 2, .list: 1, .inspect: 1]),
        // Nesting is refused at level 65, with no recursion to overflow.
        "deep-nesting-100k-open-brackets": Expected(lines: 1, errors: [.parseError: 1]),
        "deep-nesting-100k-objects-in-params": Expected(lines: 1, errors: [.parseError: 1]),
        "nesting-64-levels-accepted-65-refused":
            Expected(lines: 4, errors: [.invalidParams: 1, .parseError: 2, .invalidRequest: 1]),
        // Keys equal after unescaping or under canonical equivalence (K and U+212A KELVIN
        // SIGN, é and e + U+0301), also past the size where objects keep an index.
        "duplicate-keys-by-normalisation": Expected(lines: 6, errors: [.parseError: 6]),
        // Routed.route refuses tty:false enter without its three descriptors (the first
        // three lines; the run with made-up descriptors routes them again), and bad argv,
        // cwd, env, rows and tty.
        "enter-tty-false-without-descriptors":
            Expected(lines: 10, errors: [.invalidParams: 10], notifications: 1),
        // §7 "How a line is checked", row by row; the notification with bad params and the one
        // with an unknown method count (they would be refused) but get no reply.
        "envelope-errors":
            Expected(lines: 19, errors: [.invalidRequest: 12, .invalidParams: 2, .methodNotFound: 3, .parseError: 2],
                     notifications: 1),
        // freeze, thaw and processes take a name and nothing else; create's limits, lifetime
        // and idle are checked for range, and "limits" for unknown members.
        "cgroup-methods-and-limits":
            Expected(lines: 10, accepted: [.freeze: 2, .thaw: 1, .processes: 1, .create: 1],
                     errors: [.invalidParams: 4, .invalidName: 1], notifications: 1),
        "every-method-valid":
            Expected(lines: 12, accepted: [.version: 2, .create: 1, .list: 1, .inspect: 1, .enter: 1, .signal: 1,
                                           .share: 1, .unshare: 1, .attach: 1, .destroy: 2],
                     notifications: 1),
        // Streamed stdio: enter with "stdio": "stream" needs no descriptors, with or without a
        // tty; write takes strict base64 and data or eof; resize takes rows and columns
        // 0-65535; an unknown stdio is refused.
        "stream-write-and-resize":
            Expected(lines: 13, accepted: [.enter: 2, .write: 3, .resize: 1], errors: [.invalidParams: 7],
                     notifications: 1),
        // 1e999999999 and 256-digit ids are numbers (echoed as sent), 257 digits are not;
        // integer params take 6.4e1 and 0.0 but not 2^63, 1.5, -0 for a session, or 65536 rows.
        "huge-numbers":
            Expected(lines: 16, accepted: [.version: 4, .signal: 2, .attach: 1, .enter: 1],
                     errors: [.invalidParams: 7, .parseError: 1]),
        "invalid-utf8-and-bom": Expected(lines: 7, errors: [.parseError: 7], discarded: 44),
        "lone-surrogates": Expected(lines: 8, accepted: [.version: 1], errors: [.parseError: 7]),
        "nul-bytes":
            Expected(lines: 11, accepted: [.version: 1],
                     errors: [.parseError: 3, .invalidName: 1, .invalidParams: 4, .methodNotFound: 1, .invalidRequest: 1]),
        "unicode-line-separators-in-strings":
            Expected(lines: 4, accepted: [.version: 2], errors: [.invalidName: 1, .methodNotFound: 1]),
        // The limit is 1 MiB not counting "\n", counting a "\r" before it; past it, the
        // framer gives up and nothing after the long line is read.
        "line-exactly-1MiB-accepted": Expected(lines: 1, accepted: [.version: 1]),
        "line-exactly-1MiB-counting-cr-accepted": Expected(lines: 1, accepted: [.version: 1]),
        "line-1MiB-plus-one-too-long": Expected(lines: 1, accepted: [.version: 1], tooLong: true),
        "line-1MiB-counting-cr-plus-one-too-long": Expected(lines: 0, tooLong: true),
        "unterminated-1MiB-plus-one-no-newline": Expected(lines: 1, accepted: [.version: 1], tooLong: true),
        // A 512 KiB line read one byte per receive (in the driver's run with descriptors),
        // about four receives in five carrying descriptors or a truncation flag: what a client
        // gets by sending each byte with its own sendmsg and SCM_RIGHTS. LineFramer.next()
        // hands ~400,000 attachments to the line one removeFirst() at a time: quadratic.
        "quadratic-1-byte-receives-all-with-descriptors-512KiB-line": Expected(lines: 1, accepted: [.version: 1]),
    ]
}
