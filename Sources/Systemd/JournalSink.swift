import CSystemd
import Glibc
import POSIX
import Synchronization

/// Where journal records go: journald if its socket works, otherwise stderr, with one loud warning
/// that auditing is degraded.
///
/// Every record first tries journald (`sd_journal_sendv`). When that fails (no socket, `ENOENT`,
/// `ECONNREFUSED`, …) the record is written to stderr as one line,
/// `nsgroupd[PID]: <level> <MESSAGE> NAME=value …`, in a single write(2), and the first time after
/// journald was lost a warning line says so. When journald answers again, records go back to it and
/// one notice about the outage is sent to the journal. Thread-safe.
public final class JournalSink: Sendable {
    /// journald's native protocol socket.
    public static let journalSocketPath = "/run/systemd/journal/socket"

    /// Sends one record's fields to journald and returns 0 or a negative errno.
    typealias Sender = @Sendable ([(name: String, value: String)]) -> Int32

    /// The name at the start of stderr lines (`nsgroupd[PID]: …`) and of the warning.
    let identifier: String
    /// Never try journald; everything goes to stderr.
    let forceStderr: Bool
    /// The descriptor of the fallback output, normally 2.
    let stderrFD: Int32
    private let sender: Sender
    private let state: Mutex<State>

    private struct State {
        /// Whether the last attempt (or, before any, the socket probe) reached journald.
        var reachable: Bool
        /// Whether the degraded warning was printed for the current outage.
        var warned = false
        /// Records written to stderr during the current outage.
        var stderrRecords = 0
    }

    /// - Parameters:
    ///   - identifier: the program name used on the stderr fallback.
    ///   - forceStderr: write every record to stderr and never try journald (e.g. for a foreground
    ///     debugging run); the degraded warning is still printed once.
    public convenience init(identifier: String = "nsgroupd", forceStderr: Bool = false) {
        self.init(
            identifier: identifier,
            forceStderr: forceStderr,
            stderrFD: STDERR_FILENO,
            initiallyReachable: !forceStderr && JournalSink.journalSocketAcceptsConnections(),
            sender: JournalSink.sendToJournal
        )
    }

    /// For tests: the fallback descriptor, the initial reachability and the journal sender can be replaced.
    init(
        identifier: String,
        forceStderr: Bool,
        stderrFD: Int32,
        initiallyReachable: Bool,
        sender: @escaping Sender
    ) {
        self.identifier = identifier
        self.forceStderr = forceStderr
        self.stderrFD = stderrFD
        self.sender = sender
        self.state = Mutex(State(reachable: initiallyReachable && !forceStderr))
    }

    /// True while records are reaching journald: the last record was accepted by it (before the first
    /// record: its socket accepts connections). Always false with `forceStderr`.
    public var isJournal: Bool {
        !forceStderr && state.withLock { $0.reachable }
    }

    /// Writes one record. Field names that are not valid journal field names are converted the way
    /// `JournalLogHandler` converts metadata keys. `PRIORITY` (0–7) picks the level word on stderr.
    public func send(_ fields: [(name: String, value: String)]) {
        let fields = fields.map { (name: JournalField.sanitizedName($0.name), value: $0.value) }
        guard !forceStderr else {
            writeDegraded(fields, reason: "journal output disabled, stderr forced")
            return
        }
        let result = sender(fields)
        if result >= 0 {
            let lost: Int? = state.withLock { state in
                state.reachable = true
                guard state.warned else { return nil }
                state.warned = false
                defer { state.stderrRecords = 0 }
                return state.stderrRecords
            }
            if let lost {
                _ = sender([
                    ("MESSAGE", "journald is reachable again at \(Self.journalSocketPath); \(lost) audit record(s) went to stderr while it was not"),
                    ("PRIORITY", "5"),
                    ("SYSLOG_IDENTIFIER", identifier),
                    ("NSGROUP_STDERR_RECORDS", String(lost)),
                ])
            }
            return
        }
        writeDegraded(fields, reason: SystemdError.errorText(-result))
    }

    /// Writes the record to stderr, preceded by the degraded warning if this outage has not had one.
    /// Both happen under the lock so the warning always comes before the records it is about.
    private func writeDegraded(_ fields: [(name: String, value: String)], reason: String) {
        let line = stderrLine(for: fields)
        state.withLock { state in
            state.reachable = false
            if !state.warned {
                state.warned = true
                let warning = "\(identifier): WARNING: journald is not reachable at \(Self.journalSocketPath) (\(reason)); audit records go to stderr, auditing is degraded\n"
                writeAll(Array(warning.utf8))
            }
            state.stderrRecords += 1
            writeAll(line)
        }
    }

    /// `nsgroupd[PID]: <level word> <MESSAGE> NAME=value …\n`, with control characters escaped.
    func stderrLine(for fields: [(name: String, value: String)]) -> [UInt8] {
        var priority = 6
        var message = ""
        var rest = ""
        for (name, value) in fields {
            switch name {
            case "MESSAGE": message = value
            case "PRIORITY": priority = Int(value) ?? 6
            case "SYSLOG_IDENTIFIER": continue
            default:
                rest += " " + name + "=" + Self.escaped(value)
            }
        }
        let line = "\(identifier)[\(getpid())]: \(JournalField.levelWord(priority: priority)) \(Self.escaped(message))\(rest)\n"
        return Array(line.utf8)
    }

    /// Backslash, newline, carriage return and tab as `\\ \n \r \t`, other control characters as `\xHH`.
    static func escaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\x" + (hex.count < 2 ? "0" : "") + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// One write(2) for the whole line (repeated only if the kernel takes part of it or a signal interrupts).
    private func writeAll(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            guard var base = raw.baseAddress else { return }
            var left = raw.count
            while left > 0 {
                let written = write(stderrFD, base, left)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                left -= written
                base += written
            }
        }
    }

    /// `sd_journal_sendv` with one `NAME=value` iovec per field (values may hold newlines and any byte).
    ///
    /// libsystemd drops a record without an error when journald's socket does
    /// not exist (sendmsg's ENOENT is deliberately silent), so the socket is
    /// looked for first: a missing one is reported as -ENOENT, and the record
    /// goes to stderr instead of nowhere.
    static func sendToJournal(_ fields: [(name: String, value: String)]) -> Int32 {
        guard !fields.isEmpty else { return 0 }
        if access(journalSocketPath, F_OK) != 0 { return -errno }
        var buffer: [UInt8] = []
        var spans: [(offset: Int, count: Int)] = []
        spans.reserveCapacity(fields.count)
        for field in fields {
            let start = buffer.count
            buffer.append(contentsOf: field.name.utf8)
            buffer.append(UInt8(ascii: "="))
            buffer.append(contentsOf: field.value.utf8)
            spans.append((start, buffer.count - start))
        }
        return buffer.withUnsafeMutableBytes { raw -> Int32 in
            guard let base = raw.baseAddress else { return -EINVAL }
            var vectors = spans.map { iovec(iov_base: base + $0.offset, iov_len: $0.count) }
            return sd_journal_sendv(&vectors, Int32(vectors.count))
        }
    }

    /// Whether something listens on journald's socket (a datagram connect() fails with ENOENT or
    /// ECONNREFUSED when journald is not running). Sends nothing.
    static func journalSocketAcceptsConnections(path: String = journalSocketPath) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let result = try? UnixSocket.withAddress(path) { connect(fd, $0, $1) }
        return result == 0
    }
}
