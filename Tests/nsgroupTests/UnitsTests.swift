@testable import nsgroup
import RPC
import Testing

/// Reads one flag's value, returning what it refused with (nil when it was accepted).
private func refusal<T>(_ read: (String) throws(ValueError) -> T, _ text: String) -> String? {
    do throws(ValueError) {
        _ = try read(text)
        return nil
    } catch {
        return error.description
    }
}

@Suite("Sizes: --memory, and how bytes are shown")
struct SizeTests {
    static let sizes: [(String, UInt64?)] = [
        ("0", 0), ("1048576", 1 << 20), ("1k", 1024), ("1K", 1024), ("512M", 512 << 20), ("512m", 512 << 20),
        ("2G", 2 << 30), ("1536M", 1536 << 20), ("3t", 3 << 40), ("1024T", 1 << 50), ("007", 7),
        ("16383P", nil), ("18446744073709551615", UInt64.max), ("18446744073709551616", nil), ("17179869184G", nil),
    ]

    @Test(arguments: sizes)
    func bytes(_ text: String, _ expected: UInt64?) {
        #expect(Units.bytes(text) == expected, "\(text)")
    }

    @Test(arguments: ["", "M", "1.5G", "1,5G", "-1M", "+1M", " 1M", "1M ", "1 M", "1MB", "1MiB", "1e6", "0x10", "1P", "5ß", "１M", "1Ｍ"])
    func notASize(_ text: String) {
        #expect(Units.bytes(text) == nil, "\(text)")
    }

    @Test func memoryFlagKeepsToTheProtocolsRange() throws {
        #expect(try LimitArguments.memory("1M") == 1 << 20)
        #expect(try LimitArguments.memory("1024T") == 1 << 50)
        #expect(try LimitArguments.memory("1073741824") == 1 << 30)
        let expected = "expected bytes, or a whole number followed by K, M, G or T (powers of 1024) such as 512M or 2G, from 1M to 1024T"
        for text in ["1048575", "1023K", "1025T", "1.5G", "lots", ""] {
            #expect(refusal(LimitArguments.memory, text) == expected, "\(text)")
        }
    }

    static let shownSizes: [(UInt64, String)] = [
        (0, "0B"), (1023, "1023B"), (1024, "1.0K"), (1536, "1.5K"), (12_900_000, "12.3M"), (102_348, "99.9K"),
        (102_349, "100K"), (1_048_575, "1.0M"), (512 << 20, "512M"), (1 << 30, "1.0G"), (1 << 50, "1.0P"), (UInt64.max, "16.0E"),
    ]

    @Test(arguments: shownSizes)
    func shownForPeople(_ bytes: UInt64, _ text: String) {
        #expect(Units.size(bytes) == text)
    }

    static let exactSizes: [(UInt64, String)] = [
        (1000, "1000"), (1024, "1K"), (1536 << 10, "1536K"), (512 << 20, "512M"), (1 << 30, "1G"), (3 << 40, "3T"),
        (1 << 50, "1024T"), (1_500_000_000, "1500000000"),
    ]

    @Test(arguments: exactSizes)
    func shownExactly(_ bytes: UInt64, _ text: String) {
        #expect(Units.exactSize(bytes) == text)
        #expect(Units.bytes(text) == bytes, "what is shown reads back")
    }
}

@Suite("Durations: --lifetime and --idle, and how seconds are shown")
struct DurationTests {
    static let durations: [(String, Int64)] = [
        ("90", 90), ("0", 0), ("90s", 90), ("30m", 1800), ("8h", 28800), ("2d", 172_800), ("1h30m", 5400),
        ("1d2h3m4s", 93_784), ("1d4s", 86_404), ("0h5m", 300), ("100m", 6000), ("36h", 129_600), ("007s", 7),
    ]

    @Test(arguments: durations)
    func seconds(_ text: String, _ expected: Int64) {
        #expect(Units.seconds(text) == expected, "\(text)")
    }

    @Test(arguments: ["", "s", "h1", "1.5h", "1h30", "30m1h", "1m1m", "1s1d", "1H", "1w", "1 h", " 1h", "1h ", "-1h", "+5", "5e3",
                      "1y", "9223372036854775808", "106751991167301d", "153722867280912931m"])
    func notADuration(_ text: String) {
        #expect(Units.seconds(text) == nil, "\(text)")
    }

    @Test func durationFlagsKeepToTheProtocolsRange() throws {
        #expect(try LimitArguments.duration("1") == 1)
        #expect(try LimitArguments.duration("3660d") == 316_224_000)
        #expect(try LimitArguments.duration("1h30m") == 5400)
        let expected = "expected seconds, or numbers with the units d, h, m and s, largest first, such as 90s, 30m, 1h30m or 2d, from 1s to 3660d"
        for text in ["0", "0s", "3660d1s", "316224001", "1.5h", "soon", ""] {
            #expect(refusal(LimitArguments.duration, text) == expected, "\(text)")
        }
    }

    static let shownDurations: [(Int64, String)] = [
        (0, "0s"), (45, "45s"), (90, "1m30s"), (1800, "30m"), (5400, "1h30m"), (28800, "8h"), (86_404, "1d4s"),
        (316_224_000, "3660d"),
    ]

    @Test(arguments: shownDurations)
    func shown(_ seconds: Int64, _ text: String) {
        #expect(Units.duration(seconds) == text)
        if seconds > 0 { #expect(Units.seconds(text) == seconds, "what is shown reads back") }
    }
}

@Suite("CPU and process-count flags, and CPU figures")
struct CPUTests {
    @Test func cpus() throws {
        for (text, value) in [("0.01", 0.01), ("0.5", 0.5), ("1", 1.0), ("2.5", 2.5), ("1024", 1024.0), ("01.50", 1.5)] {
            #expect(try LimitArguments.cpus(text) == value, "\(text)")
        }
        let expected = "expected a number of CPUs such as 0.5, 1 or 2.5, from 0.01 to 1024"
        for text in ["0", "0.001", "1024.5", ".5", "1.", "1e2", "-1", "+1", "inf", "nan", "1,5", "", "0x1p1"] {
            #expect(refusal(LimitArguments.cpus, text) == expected, "\(text)")
        }
    }

    @Test func counts() throws {
        #expect(try LimitArguments.pids("1") == 1)
        #expect(try LimitArguments.pids("4194304") == 4_194_304)
        #expect(refusal(LimitArguments.pids, "0") == "expected a whole number from 1 to 4194304 (processes and threads)")
        #expect(refusal(LimitArguments.pids, "4194305") != nil)
        #expect(refusal(LimitArguments.pids, "1k") != nil)
        #expect(try LimitArguments.cpuWeight("100") == 100)
        #expect(refusal(LimitArguments.cpuWeight, "10001")
                == "expected a whole number from 1 to 10000 (a share relative to other groups, 100 being the default)")
        #expect(refusal(LimitArguments.cpuWeight, "-5") != nil)
        #expect(refusal(LimitArguments.cpuWeight, "99999999999999999999") != nil)
    }

    static let shownCPUs: [(Double, String)] = [
        (0.01, "0.01"), (0.05, "0.05"), (0.5, "0.5"), (1, "1"), (1.25, "1.25"), (2, "2"), (1024, "1024"), (0.333, "0.33"),
    ]

    @Test(arguments: shownCPUs)
    func cpusShown(_ value: Double, _ text: String) {
        #expect(Units.cpus(value) == text)
    }

    static let cpuTimes: [(UInt64, String)] = [
        (0, "0.00 s"), (4_999, "0.00 s"), (5_000, "0.01 s"), (1_234_567, "1.23 s"), (60_000_000, "60.00 s"), (99_995_000, "100.00 s"),
    ]

    @Test(arguments: cpuTimes)
    func cpuTime(_ microseconds: UInt64, _ text: String) {
        #expect(Units.cpuTime(microseconds: microseconds) == text)
    }
}
