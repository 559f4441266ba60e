#if canImport(Glibc)
import Glibc
#endif
import Namespaces
import POSIX
import RPC

/// nsgroupd.conf: INI-style `key = value` lines in sections.
///
/// ```
/// [access]
/// create = *                      # or: alice, bob, @devs
/// admin-group = nsgroup-admin     # empty: no admin group
/// namespaces = mnt, uts, ipc, pid, net, cgroup, user, time
/// tmpfs-paths = /tmp, /var/tmp, /mnt, /srv, /media, ~
///
/// [limits]
/// tmpfs-size = 1g
/// tmpfs-per-user = 4g
/// groups-per-user = 16
/// sessions-per-user = 64
/// groups = 4096
/// spawn-timeout = 30
/// memory-per-user = 50%          # or a size, or max
/// memory-per-group = max
/// pids-per-user = 4096
/// pids-per-group = max
/// cpus-per-user = max            # or a number of CPUs: 1.5
/// cpus-per-group = max
///
/// [connections]
/// max = 4096
/// per-user = 1024
/// reserved-for-admins = 16
/// buffer-per-user = 4194304
/// output-per-user = 4194304
/// max-line = 1048576
/// idle-timeout = 45
/// write-timeout = 45
/// subscriber-buffer = 262144
///
/// [audit]
/// reads = summary                 # or: each
/// read-summary-interval = 60
/// refusals-per-interval = 50      # refusals of one person recorded one by one per interval
/// refusal-interval = 60           # seconds; the rest are summed up in one record
/// ```
///
/// `#` and `;` start comments (whole lines, or after a value). A missing key
/// keeps its default. Anything unknown, repeated or malformed is an error
/// that names its line: a policy is never half read.
enum PolicyFile {
    static let defaultPath = "/etc/nsgroup/nsgroupd.conf"
    static let defaultAdminGroup = "nsgroup-admin"

    static let maxSize = 1 << 20

    /// Reads and parses the file. A missing file is an error only when
    /// `required` (it was named with --config); otherwise the defaults apply.
    /// Like sshd's StrictModes, the file must be root's and writable by no
    /// one else: whoever may write it may make themselves an admin.
    static func load(path: String, required: Bool) throws(SupervisorError) -> Policy {
        func refused(_ message: String) -> SupervisorError { SupervisorError(.configuration(path: path, line: 0), message) }
        /// The open file, or nil when it is missing and was not named.
        func opened() throws(SupervisorError) -> FileDescriptor? {
            do throws(Errno) { return try FileDescriptor.open(path, O_RDONLY | O_NOFOLLOW) } catch {
                if error.rawValue == ENOENT && !required { return nil }
                throw refused("cannot read: \(error)")
            }
        }
        guard let fd = try opened() else { return Policy.defaults() }
        var st = stat()
        if fstat(fd.rawValue, &st) < 0 { throw refused("cannot read: \(Errno.current)") }
        guard st.st_mode & S_IFMT == S_IFREG else { throw refused("is not a regular file") }
        guard st.st_uid == 0, st.st_mode & 0o022 == 0 else {
            throw refused("must be owned by root and writable by no one else (it is uid \(st.st_uid), mode \(String(st.st_mode & 0o7777, radix: 8)))")
        }
        let bytes: [UInt8]
        do throws(Errno) { bytes = try fd.readAll(limit: maxSize + 1) } catch { throw refused("cannot read: \(error)") }
        guard bytes.count <= maxSize else { throw refused("is larger than \(maxSize) bytes") }
        return try parse(String(decoding: bytes, as: UTF8.self), path: path)
    }

    static let keys: [String: Set<String>] = [
        "access": ["create", "admin-group", "namespaces", "tmpfs-paths"],
        "limits": ["groups-per-user", "sessions-per-user", "groups", "tmpfs-size", "tmpfs-per-user", "spawn-timeout",
                   "memory-per-user", "memory-per-group", "pids-per-user", "pids-per-group", "cpus-per-user", "cpus-per-group"],
        "connections": ["max", "per-user", "reserved-for-admins", "buffer-per-user", "output-per-user", "max-line", "idle-timeout",
                        "write-timeout", "subscriber-buffer"],
        "audit": ["reads", "read-summary-interval", "refusals-per-interval", "refusal-interval"],
    ]

    static func parse(_ text: String, path: String) throws(SupervisorError) -> Policy {
        var policy = Policy.defaults()
        var section: String?
        var seen: [String: Int] = [:]
        // Split on the byte, not on Character: "\r\n" is one Character in Swift.
        let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .map { Substring(String(decoding: $0, as: UTF8.self)) }
        for (index, rawLine) in lines.enumerated() {
            let number = index + 1
            func fail(_ message: String) -> SupervisorError { SupervisorError(.configuration(path: path, line: number), message) }
            let line = stripComment(rawLine)
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]") else { throw fail("a section header must end with ]") }
                let name = String(line.dropFirst().dropLast()).trimmed
                guard keys[name] != nil else {
                    throw fail("unknown section [\(name)]; sections are [access], [limits], [connections] and [audit]")
                }
                section = name
                continue
            }
            guard let equals = line.firstIndex(of: "=") else { throw fail("expected key = value") }
            let key = String(line[..<equals]).trimmed
            let value = String(line[line.index(after: equals)...]).trimmed
            guard let section else { throw fail("\"\(key)\" must be inside a section ([access], [limits], [connections] or [audit])") }
            guard keys[section]!.contains(key) else {
                throw fail("unknown key \"\(key)\" in [\(section)]; keys there are \(keys[section]!.sorted().joined(separator: ", "))")
            }
            let qualified = section + "." + key
            if let first = seen[qualified] { throw fail("\(qualified) is set twice (first on line \(first))") }
            seen[qualified] = number
            try apply(section: section, key: key, value: value, to: &policy) { fail("\(qualified): \($0)") }
        }
        // Keys that bound each other, checked once all are read (in any order).
        if let reserved = policy.reservedForAdmins, reserved >= policy.maxConnections {
            throw SupervisorError(.configuration(path: path, line: seen["connections.reserved-for-admins"] ?? seen["connections.max"] ?? 0),
                                  "connections.reserved-for-admins (\(reserved)) must be less than connections.max (\(policy.maxConnections)): nobody else could connect")
        }
        if let budget = policy.bufferPerUser, budget < policy.maxLine {
            throw SupervisorError(.configuration(path: path, line: seen["connections.buffer-per-user"] ?? seen["connections.max-line"] ?? 0),
                                  "connections.buffer-per-user (\(budget)) must be at least connections.max-line (\(policy.maxLine)): one request line would not fit")
        }
        return policy
    }

    /// Sets one key. `invalid` makes the error for a bad value, naming its line and key.
    private static func apply(section: String, key: String, value: String, to policy: inout Policy,
                              invalid: (String) -> SupervisorError) throws(SupervisorError) {
        switch (section, key) {
        case ("access", "create"):
            if value == "*" { policy.create = .everyone; return }
            var users = Set<uid_t>()
            var groups = Set<gid_t>()
            let items = list(value)
            guard !items.isEmpty else { throw invalid("name users and @groups, or * for everyone") }
            for item in items {
                if item.hasPrefix("@") {
                    guard let gid = UserDatabase.groupID(named: String(item.dropFirst())) else {
                        throw invalid("no group named \"\(item.dropFirst())\"")
                    }
                    groups.insert(gid)
                } else {
                    guard let user = UserDatabase.user(named: item) else { throw invalid("no user named \"\(item)\"") }
                    users.insert(user.uid)
                }
            }
            policy.create = .only(users: users, groups: groups, text: items.joined(separator: ", "))
        case ("access", "admin-group"):
            if value.isEmpty { policy.adminGroup = nil; return }
            guard let gid = UserDatabase.groupID(named: value) else { throw invalid("no group named \"\(value)\"") }
            policy.adminGroup = (value, gid)
        case ("access", "namespaces"):
            var kinds = Set<NamespaceKind>()
            let items = list(value)
            guard !items.isEmpty else { throw invalid("name at least one namespace kind") }
            for item in items {
                guard let kind = NamespaceKind(rawValue: item) else {
                    throw invalid("unknown namespace kind \"\(item)\"; kinds are \(NamespaceKind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                guard kinds.insert(kind).inserted else { throw invalid("\"\(item)\" is named twice") }
            }
            policy.namespaces = kinds
        case ("access", "tmpfs-paths"):
            var places: [TmpfsPlace] = []
            for item in list(value) {
                let place: TmpfsPlace
                if item == "~" {
                    place = .home
                } else {
                    let components = item.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
                    guard item.hasPrefix("/"), item != "/", components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
                        throw invalid("\"\(item)\" is not ~ or an absolute, normalised path other than /")
                    }
                    if let refusal = TmpfsPlace.refusal(item) { throw invalid(refusal) }
                    place = .directory(item)
                }
                guard !places.contains(place) else { throw invalid("\"\(item)\" is named twice") }
                places.append(place)
            }
            policy.tmpfsPaths = places
        case ("limits", "tmpfs-size"):
            policy.tmpfsSize = try size(value, invalid: invalid)
        case ("limits", "tmpfs-per-user"):
            policy.tmpfsPerUser = try size(value, invalid: invalid)
        case ("limits", "groups-per-user"):
            policy.groupsPerUser = try count(value, invalid: invalid)
        case ("limits", "sessions-per-user"):
            policy.sessionsPerUser = try count(value, invalid: invalid)
        case ("limits", "groups"):
            policy.maxGroups = try count(value, invalid: invalid)
        case ("limits", "spawn-timeout"):
            policy.spawnTimeout = try count(value, from: 1, to: 3600, invalid: invalid)
        case ("limits", "memory-per-user"):
            policy.memoryPerUser = try memory(value, invalid: invalid)
        case ("limits", "memory-per-group"):
            policy.memoryPerGroup = try memory(value, invalid: invalid)
        case ("limits", "pids-per-user"):
            policy.pidsPerUser = try pids(value, invalid: invalid)
        case ("limits", "pids-per-group"):
            policy.pidsPerGroup = try pids(value, invalid: invalid)
        case ("limits", "cpus-per-user"):
            policy.cpusPerUser = try cpus(value, invalid: invalid)
        case ("limits", "cpus-per-group"):
            policy.cpusPerGroup = try cpus(value, invalid: invalid)
        case ("connections", "max"):
            policy.maxConnections = try count(value, from: 1, invalid: invalid)
        case ("connections", "per-user"):
            policy.connectionsPerUser = try count(value, from: 1, invalid: invalid)
        case ("connections", "reserved-for-admins"):
            policy.reservedForAdmins = try count(value, invalid: invalid)
        case ("connections", "buffer-per-user"):
            policy.bufferPerUser = try count(value, from: 1024, to: 1 << 30, invalid: invalid)
        case ("connections", "output-per-user"):
            policy.outputPerUser = try count(value, from: 1024, to: 1 << 30, invalid: invalid)
        case ("connections", "max-line"):
            policy.maxLine = try count(value, from: 1024, to: 64 << 20, invalid: invalid)
        case ("connections", "idle-timeout"):
            policy.idleTimeout = try count(value, from: 1, to: 86_400, invalid: invalid)
        case ("connections", "write-timeout"):
            policy.writeTimeout = try count(value, from: 1, to: 86_400, invalid: invalid)
        case ("connections", "subscriber-buffer"):
            policy.subscriberBuffer = try count(value, from: 1024, to: 64 << 20, invalid: invalid)
        case ("audit", "reads"):
            switch value {
            case "summary": policy.recordEachRead = false
            case "each": policy.recordEachRead = true
            default: throw invalid("\"\(value)\" is not summary or each")
            }
        case ("audit", "read-summary-interval"):
            policy.readSummaryInterval = try count(value, from: 1, to: 86_400, invalid: invalid)
        case ("audit", "refusals-per-interval"):
            policy.refusalsPerInterval = try count(value, from: 1, to: 1_000_000, invalid: invalid)
        case ("audit", "refusal-interval"):
            policy.refusalInterval = try count(value, from: 1, to: 86_400, invalid: invalid)
        default:
            throw invalid("unknown key")
        }
    }

    private static func count(_ value: String, from low: Int = 0, to high: Int = 1_000_000,
                              invalid: (String) -> SupervisorError) throws(SupervisorError) -> Int {
        guard value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let n = Int(value), n >= low, n <= high
        else {
            throw invalid("\"\(value)\" is not a whole number from \(low) to \(high)")
        }
        return n
    }

    /// Bytes, with an optional k, m, g or t (see ByteSize); at least 1m, at most 1t.
    private static func size(_ value: String, invalid: (String) -> SupervisorError) throws(SupervisorError) -> UInt64 {
        guard let bytes = ByteSize.parse(value), bytes >= 1 << 20, bytes <= 1 << 40 else {
            throw invalid("\"\(value)\" is not a size from 1m to 1t (bytes, or a number with k, m, g or t)")
        }
        return bytes
    }

    /// A memory limit on a cgroup: bytes (with an optional k, m, g or t) from 1m to 1024t, as
    /// create may ask for them; a whole percentage of MemTotal (see MachineMemory); or max
    /// (also infinity, as systemd writes it) for none.
    private static func memory(_ value: String, invalid: (String) -> SupervisorError) throws(SupervisorError) -> UInt64? {
        if value == "max" || value == "infinity" { return nil }
        let range = GroupLimits.memoryRange
        let expected = "a size from \(ByteSize.format(UInt64(range.lowerBound))) to \(ByteSize.format(UInt64(range.upperBound))) "
            + "(bytes, or a number with k, m, g or t), a percentage of the machine's memory from 1% to 100%, or max"
        guard value.hasSuffix("%") else {
            guard let bytes = ByteSize.parse(value), bytes >= UInt64(range.lowerBound), bytes <= UInt64(range.upperBound) else {
                throw invalid("\"\(value)\" is not \(expected)")
            }
            return bytes
        }
        let digits = value.dropLast()
        guard isDigits(digits), let percent = UInt64(digits), (1...100).contains(percent) else {
            throw invalid("\"\(value)\" is not \(expected)")
        }
        guard let total = MachineMemory.total() else {
            throw invalid("\"\(value)\" is a share of the machine's memory, and /proc/meminfo gives no MemTotal")
        }
        let bytes = MachineMemory.share(percent, of: total)
        guard bytes >= UInt64(range.lowerBound) else {
            throw invalid("\(value) of this machine's memory is \(ByteSize.format(bytes)), less than \(ByteSize.format(UInt64(range.lowerBound)))")
        }
        return bytes
    }

    /// A limit on processes and threads (pids.max), in the range create may ask for; max for none.
    private static func pids(_ value: String, invalid: (String) -> SupervisorError) throws(SupervisorError) -> UInt64? {
        if value == "max" { return nil }
        let range = GroupLimits.pidsRange
        guard isDigits(value), let n = Int64(value), range.contains(n) else {
            throw invalid("\"\(value)\" is not a whole number from \(range.lowerBound) to \(range.upperBound), or max")
        }
        return UInt64(n)
    }

    /// CPU time per wall-clock time (cpu.max): a decimal number such as 1.5, in the range
    /// create may ask for; max for none. No sign, exponent, inf or nan, which Double(_:) takes.
    private static func cpus(_ value: String, invalid: (String) -> SupervisorError) throws(SupervisorError) -> Double? {
        if value == "max" { return nil }
        let range = GroupLimits.cpusRange
        let parts = value.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.allSatisfy(isDigits), let n = Double(value), range.contains(n) else {
            throw invalid("\"\(value)\" is not a number of CPUs from \(LimitText.cpus(range.lowerBound)) to \(LimitText.cpus(range.upperBound)) (such as 1.5), or max")
        }
        return n
    }

    /// One or more ASCII digits.
    private static func isDigits(_ text: some StringProtocol) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    private static func list(_ value: String) -> [String] {
        value.split(separator: ",").map { String($0).trimmed }.filter { !$0.isEmpty }
    }

    private static func stripComment(_ line: Substring) -> String {
        var text = line
        if let mark = text.firstIndex(where: { $0 == "#" || $0 == ";" }) { text = text[..<mark] }
        return String(text).trimmed
    }
}
