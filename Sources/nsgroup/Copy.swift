#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Client
import POSIX
import RPC

/// `nsgroup cp SRC NAME:DST` and `nsgroup cp NAME:SRC DST`. No privileged code: the
/// copy is two `enter` sessions of the caller's. The first runs `sh` inside to see
/// what the paths there are; the second runs the group's own `tar`, whose stdin or
/// stdout is a pipe to a local `tar`. So every path inside is resolved by a process
/// with exactly the session's rights in the group's mount namespace.
struct Copy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cp",
        abstract: "Copy files and directories into or out of a group, with your rights inside it.",
        discussion: """
            One side is NAME:PATH, a path inside group NAME; the other is a local path. \
            Inside, the copy runs as a session of yours, as `enter` runs one (as root inside \
            for the owner of a group with a user namespace), through the group's own tar; a \
            relative PATH starts from where enter starts (your home inside, else /). \
            As with cp -a: a directory is copied with everything in it, and modes, times \
            and symbolic links (as links, never followed) are kept; what is created belongs \
            to whoever the copying side runs as. A destination that is an existing \
            directory receives the source under its own name; any other destination is \
            the copy's new name, in a directory that must exist. A file replaces a file; \
            a directory merges into a directory; a directory never replaces a file nor a \
            file a directory. A source ending in /. copies a directory's contents. Root copying out does not keep set-user-ID and \
            set-group-ID bits. Exit status: 0 when everything was copied, 64 for a usage \
            error, 125 for anything else.
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(name: .customLong("trust-owner"), help: ArgumentHelp(
        "Copy in or out of a group with a user namespace that someone else owns (as with enter --trust-owner)."))
    var trustOwner = false

    @Flag(help: "Report errors as JSON on stderr.")
    var json = false

    // No group-name completion: the shell's own completion of local paths matters more here.
    @Argument(help: ArgumentHelp("What to copy: a local path, or NAME:PATH in group NAME.", valueName: "source"))
    var source: String

    @Argument(help: ArgumentHelp("Where to copy it: NAME:PATH in group NAME, or a local path.", valueName: "destination"))
    var destination: String

    /// One side of a copy.
    enum Place: Equatable {
        case local(String)
        case group(name: String, path: String)

        /// `NAME:PATH` when there is a colon before any slash; anything else is local
        /// (`./a:b` for a local name with a colon).
        init(_ word: String) {
            guard let colon = word.firstIndex(of: ":"), colon != word.startIndex, !word[..<colon].contains("/") else {
                self = .local(word)
                return
            }
            self = .group(name: String(word[..<colon]), path: String(word[word.index(after: colon)...]))
        }
    }

    func validate() throws {
        switch (Place(source), Place(destination)) {
        case (.group, .group): throw ValidationError("cp copies between a group and here: one of source and destination must be local")
        case (.local, .local): throw ValidationError("cp needs NAME:PATH on one side, a path inside group NAME")
        default: break
        }
        for word in [source, destination] {
            if case .group(let name, let path) = Place(word), path.isEmpty {
                throw ValidationError("\"\(word)\" names no path inside group \(name): NAME:PATH")
            }
            if word.isEmpty { throw ValidationError("an empty path") }
        }
        _ = try Self.split(Self.pathOf(source))
    }

    static func pathOf(_ word: String) -> String {
        switch Place(word) {
        case .local(let path): return path
        case .group(_, let path): return path
        }
    }

    /// Where tar starts and the one name it archives: `dir/name` → (`dir`, `name`),
    /// `name` → (`.`, `name`); `dir/.` and `/` → (`dir`, `.`), a directory's contents.
    static func split(_ path: String) throws(ValidationError) -> (directory: String, name: String) {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        if trimmed == "/" { return ("/", ".") }
        guard let slash = trimmed.lastIndex(of: "/") else {
            if trimmed == ".." { throw ValidationError("cannot copy \"..\": name the directory, or DIR/. for its contents") }
            return (".", String(trimmed))
        }
        let name = String(trimmed[trimmed.index(after: slash)...])
        if name == ".." { throw ValidationError("cannot copy \"\(path)\": name the directory, or DIR/. for its contents") }
        let directory = slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
        return (directory, name)
    }

    /// What is at a path: a directory (`D` a symbolic link to one), something else
    /// (`f`, a dangling link included) or nothing the caller can see (`n`).
    enum Kind: Character {
        case directory = "d", linkToDirectory = "D", other = "f", missing = "n"
        var isDirectory: Bool { self == .directory || self == .linkToDirectory }
    }

    /// The probe inside: one Kind letter per argument, in order.
    static let probeScript = """
        for p do if [ -d "$p" ]; then if [ -h "$p" ]; then echo D; else echo d; fi; \
        elif [ -e "$p" ] || [ -h "$p" ]; then echo f; else echo n; fi; done
        """

    static func localKind(_ path: String) -> Kind {
        var info = stat()
        if Glibc.lstat(path, &info) != 0 { return .missing }
        if (info.st_mode & S_IFMT) == S_IFDIR { return .directory }
        if (info.st_mode & S_IFMT) == S_IFLNK, stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { return .linkToDirectory }
        return .other
    }

    func run() {
        signal(SIGPIPE, SIG_IGN)
        let client = withClient(global) { $0 }
        switch (Place(source), Place(destination)) {
        case (.local(let from), .group(let group, let to)):
            copyIn(client, from: from, group: group, to: to)
        case (.group(let group, let from), .local(let to)):
            copyOut(client, group: group, from: from, to: to)
        default:
            fatalError("validate() lets no other pair through")
        }
    }

    // MARK: - The two directions

    private func copyIn(_ client: RPCClient, from: String, group: String, to: String) {
        let (sourceDirectory, sourceName) = Self.splitOrFail(from)
        let sourceKind = sourceName == "." ? Self.localKind(sourceDirectory) : Self.localKind(from.trimmingSlashes)
        if sourceKind == .missing {
            let path = sourceName == "." ? sourceDirectory : from
            let error = Self.lstatError(path) ?? ENOENT
            fail("cp: \(path): \(String(cString: strerror(error)))", reason: Self.reason(errno: error))
        }
        if sourceName == "." && !sourceKind.isDirectory { fail("cp: \(sourceDirectory): not a directory", reason: "invalid_params") }
        let inside = Session(client: client, group: group, trustOwner: trustOwner)
        let probed = inside.probe([to, Self.join(to, sourceName), Self.parent(of: to)])
        let target = Self.target(destination: to, label: "\(group):", kind: probed[0], entryKind: probed[1],
                                 parentKind: probed[2], sourceName: sourceName, sourceIsDirectory: sourceKind == .directory || (sourceName == "." && sourceKind.isDirectory))
        let local = ["tar", "-c", "-f", "-", "--no-unquote", "-C", sourceDirectory] + Self.renaming(sourceName, to: target.name) + ["--", sourceName]
        let remote = ["tar", "-x", "-f", "-", "-p", "--no-same-owner", "-C", target.directory]
        inside.transfer(remote: remote, local: local, direction: .intoGroup)
    }

    private func copyOut(_ client: RPCClient, group: String, from: String, to: String) {
        let (sourceDirectory, sourceName) = Self.splitOrFail(from)
        let inside = Session(client: client, group: group, trustOwner: trustOwner)
        let sourcePath = sourceName == "." ? sourceDirectory : from.trimmingSlashes
        let sourceKind = inside.probe([sourcePath])[0]
        let target = Self.target(destination: to, label: "", kind: Self.localKind(to), entryKind: Self.localKind(Self.join(to, sourceName)),
                                 parentKind: Self.localKind(Self.parent(of: to)), sourceName: sourceName,
                                 sourceIsDirectory: sourceKind == .directory || (sourceName == "." && sourceKind.isDirectory))
        let remote = ["tar", "-c", "-f", "-"] + Self.literally(sourceName) + ["-C", sourceDirectory, "--", sourceName]
        // The archive comes from a tar the group's owner may have replaced: extract only
        // the name asked for. Root keeps no set-user-ID or set-group-ID bits from it
        // (--no-same-permissions, with a umask of 0 so the other bits stay).
        let permissions = getuid() == 0 ? "--no-same-permissions" : "-p"
        let local = ["tar", "-x", "-f", "-", "--no-unquote", "--no-same-owner", permissions, "--no-wildcards", "-C", target.directory]
            + Self.renaming(sourceName, to: target.name) + ["--", sourceName]
        inside.transfer(remote: remote, local: local, direction: .outOfGroup)
    }

    /// Where a copy lands: the directory tar extracts in and the name it gives the
    /// copy. Fails for a destination that cannot take it, before anything is copied.
    static func target(destination: String, label: String, kind: Kind, entryKind: Kind, parentKind: Kind,
                       sourceName: String, sourceIsDirectory: Bool) -> (directory: String, name: String) {
        let shown = label + destination
        let result: (directory: String, name: String)
        let existing: Kind
        if kind.isDirectory {
            result = (destination, sourceName)
            existing = sourceName == "." ? kind : entryKind
        } else {
            let (directory, name) = splitOrFail(destination)
            if destination.hasSuffix("/") || name == "." {
                fail("cp: \(shown): no such directory", reason: "not_found")
            }
            guard parentKind.isDirectory else { fail("cp: \(label)\(directory): no such directory", reason: "not_found") }
            result = (directory, name)
            existing = kind
        }
        let shownTarget = kind.isDirectory && sourceName != "." ? label + join(destination, sourceName) : shown
        if existing.isDirectory && !sourceIsDirectory {
            fail("cp: cannot overwrite directory \(shownTarget) with a non-directory", reason: "invalid_params")
        }
        if existing == .other && sourceIsDirectory {
            fail("cp: cannot overwrite non-directory \(shownTarget) with a directory", reason: "invalid_params")
        }
        return result
    }

    // MARK: - Paths

    static func splitOrFail(_ path: String) -> (directory: String, name: String) {
        do { return try split(path) } catch { fail(error.message, reason: CLIReason.usage, code: ExitStatus.usage) }
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    static func parent(of path: String) -> String {
        (try? split(path))?.directory ?? "."
    }

    /// lstat's errno for `path`, nil when it succeeds.
    static func lstatError(_ path: String) -> Int32? {
        var info = stat()
        return Glibc.lstat(path, &info) == 0 ? nil : errno
    }

    static func reason(errno: Int32) -> String {
        switch errno {
        case ENOENT, ENOTDIR: return "not_found"
        case EACCES, EPERM: return "permission_denied"
        default: return CLIReason.failed
        }
    }

    /// GNU tar reads backslash escapes in the names it is given (`\\1` is byte 1) unless
    /// told not to; only GNU tar knows `--no-unquote`, so the group's tar gets it only
    /// for a name with a backslash.
    static func literally(_ name: String) -> [String] {
        name.contains("\\") ? ["--no-unquote"] : []
    }

    /// GNU tar options that rename the archived `from` (and everything below it) to
    /// `to`, leaving symbolic links' targets alone; none when the names are the same.
    static func renaming(_ from: String, to: String) -> [String] {
        guard from != to else { return [] }
        let candidates = Array(",|#%@!:;=~+") + (1...31).compactMap { $0 == 10 ? nil : Character(UnicodeScalar(UInt8($0))) }
        guard let separator = candidates.first(where: { !from.contains($0) && !to.contains($0) }) else {
            fail("cp: cannot rename \"\(from)\" to \"\(to)\": the names use every separator tar's --transform accepts")
        }
        var pattern = ""
        for character in from {
            if "\\.[]*^$".contains(character) { pattern.append("\\") }
            pattern.append(character)
        }
        var replacement = ""
        for character in to {
            if character == "\\" || character == "&" { replacement.append("\\") }
            replacement.append(character)
        }
        let s = String(separator)
        return ["--transform", "s\(s)^\(pattern)$\(s)\(replacement)\(s)S",
                "--transform", "s\(s)^\(pattern)/\(s)\(replacement)/\(s)S"]
    }
}

extension String {
    /// Without trailing slashes (`/` stays).
    fileprivate var trimmingSlashes: String {
        var text = Substring(self)
        while text.count > 1 && text.hasSuffix("/") { text.removeLast() }
        return String(text)
    }
}

/// Sessions of cp's in one group: each gets pipes as stdin, stdout and stderr
/// (which the supervisor hands to any session, root's in someone else's user
/// namespace included).
private struct Session {
    let client: RPCClient
    let group: String
    let trustOwner: Bool
    /// On another host (`--host`) no descriptor crosses ssh: the sessions' stdio is streamed
    /// (StreamedSession) between the same pipes of ours that would have been passed.
    var streamed: Bool { client.endpoint.host != nil }

    enum Direction { case intoGroup, outOfGroup }

    /// The Kind of each path inside, from `sh` run as the caller there.
    func probe(_ paths: [String]) -> [Copy.Kind] {
        let stdin = makePipe(), stdout = makePipe(), stderr = makePipe()
        close(stdin.write)
        let collector = Collector([stdout.read, stderr.read])
        let exited = run(["sh", "-c", Copy.probeScript, "nsgroup-cp"] + paths, stdio: [stdin.read, stdout.write, stderr.write],
                         collector: collector)
        let kinds = String(decoding: collector[stdout.read], as: UTF8.self).split(separator: "\n")
            .compactMap { $0.first.flatMap(Copy.Kind.init(rawValue:)) }
        guard exited.status == 0, kinds.count == paths.count else {
            fail("cp: could not look at the paths inside group \(group): \(Self.message(collector[stderr.read]) ?? "sh exited with status \(exited.status)")")
        }
        return kinds
    }

    /// Runs `remote` in the group and `local` here, the archive flowing through a pipe
    /// between them; exits with cp's status when either fails.
    func transfer(remote: [String], local: [String], direction: Direction) {
        let archive = makePipe(), stdin = makePipe(), stdout = makePipe(), stderr = makePipe(), localErrors = makePipe()
        let stdio = direction == .intoGroup ? [archive.read, stdout.write, stderr.write] : [stdin.read, archive.write, stderr.write]
        close(stdin.write)
        // Streamed, the session runs while we relay (below): the local tar starts first.
        let session = streamed ? nil : start(remote, stdio: stdio)
        let oldMask = direction == .outOfGroup && getuid() == 0 ? umask(0) : nil
        let spawned = direction == .intoGroup
            ? spawn(local, stdin: open("/dev/null", O_RDONLY | O_CLOEXEC), stdout: archive.write, stderr: localErrors.write)
            : spawn(local, stdin: archive.read, stdout: open("/dev/null", O_WRONLY | O_CLOEXEC), stderr: localErrors.write)
        if let oldMask { umask(oldMask) }
        let collector = Collector([stdout.read, stderr.read, localErrors.read])
        let exited: Ended
        if let session {
            for fd in [archive.read, archive.write, localErrors.write] { close(fd) }
            exited = wait(session, collector: collector)
        } else {
            close(localErrors.write)
            // (The archive's other end went to the local tar: spawn closed ours.)
            exited = stream(remote, stdio: stdio, collector: collector)
        }
        var localStatus: Int32 = 0
        if case .success(let pid) = spawned {
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
            localStatus = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            collector.drain()
        }
        if exited.notification.endedBy != nil || (exited.notification.code == nil && exited.notification.signal == nil) {
            Glibc.exit(Enter.report(exited.notification, group: group))
        }
        if exited.status != 0 {
            let text = Self.message(collector[stderr.read]) ?? "tar exited with status \(exited.status)"
            fail("cp: in group \(group): \(text)", reason: Self.reason(text))
        }
        if case .failure(let error) = spawned {
            fail("cp: cannot run tar here: \(error)")
        }
        if localStatus != 0 {
            let text = Self.message(collector[localErrors.read]) ?? "tar exited with status \(localStatus)"
            fail("cp: \(text)", reason: Self.reason(text))
        }
    }

    // MARK: - Sessions

    struct Ended {
        let notification: ExitedNotification
        let status: Int32
    }

    private func run(_ argv: [String], stdio: [Int32], collector: Collector) -> Ended {
        if streamed { return stream(argv, stdio: stdio, collector: collector) }
        let session = start(argv, stdio: stdio)
        return wait(session, collector: collector)
    }

    /// Runs `argv` in the group with its stdio streamed to and from `stdio` (which are then
    /// closed), until it exits, reading the collector's pipes meanwhile (the session's
    /// messages, the local tar's), so that no writer waits on a full pipe (the session's
    /// output comes in chunks of at most 16 KiB, and each pipe is emptied between them).
    /// A session that ends with its group,
    /// or whose end is not known, ends cp as it ends enter.
    private func stream(_ argv: [String], stdio: [Int32], collector: Collector) -> Ended {
        let params = EnterParams(name: group, argv: argv, tty: false, trustOwner: trustOwner, stdio: .stream)
        let session = StreamedSession(client: client, params: params, stdio: (stdio[0], stdio[1], stdio[2]))
        session.alsoWatch = (descriptors: { collector.pollDescriptors }, readable: { collector.handle($0) })
        let status: Int32
        do throws(ClientError) {
            status = try session.run(group: group)
        } catch {
            fail(error)
        }
        for fd in stdio { close(fd) }
        collector.drain()
        guard let exited = session.exited, exited.endedBy == nil, exited.code != nil || exited.signal != nil else {
            Glibc.exit(status)
        }
        return Ended(notification: exited, status: exited.shellStatus)
    }

    /// Starts `argv` in the group with `stdio`, which only the session holds afterwards.
    private func start(_ argv: [String], stdio: [Int32]) -> UInt64 {
        let params = EnterParams(name: group, argv: argv, tty: false, trustOwner: trustOwner)
        defer { for fd in stdio { close(fd) } }
        do throws(ClientError) {
            let reply = try client.call("enter", params.json, descriptors: stdio)
            do { return try EnterResult(json: reply.result).session } catch { failBadReply(error) }
        } catch {
            fail(error)
        }
    }

    /// Waits for the session to exit, meanwhile reading what the collector's pipes
    /// give, so that no writer blocks on a full pipe; then what they still hold.
    private func wait(_ session: UInt64, collector: Collector) -> Ended {
        do throws(ClientError) {
            while true {
                if let exited = try Enter.takeExited(client, session: session, wait: false) {
                    collector.drain()
                    return Ended(notification: exited, status: exited.shellStatus)
                }
                var fds = [pollfd(fd: client.descriptor, events: Int16(POLLIN), revents: 0)] + collector.pollDescriptors
                if poll(&fds, nfds_t(fds.count), -1) < 0 { continue }
                collector.handle(Array(fds.dropFirst()))
                if fds[0].revents != 0, let exited = try Enter.takeExited(client, session: session, wait: true) {
                    collector.drain()
                    return Ended(notification: exited, status: exited.shellStatus)
                }
            }
        } catch {
            fail(error)
        }
    }

    // MARK: - Local processes and messages

    private func makePipe() -> (read: Int32, write: Int32) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { fail("cp: pipe: \(String(cString: strerror(errno)))") }
        for fd in ends { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (ends[0], ends[1])
    }

    /// Starts local tar (found on PATH) with the given stdio, which stays open here.
    private func spawn(_ arguments: [String], stdin: Int32, stdout: Int32, stderr: Int32) -> Result<pid_t, Errno> {
        let started = spawnProgram(arguments, stdin: stdin, stdout: stdout, stderr: stderr)
        for fd in [stdin, stdout] where fd > 2 { close(fd) }
        return started
    }

    /// tar's complaints as one line: without `tar: ` and its closing summary.
    static func message(_ bytes: [UInt8]?) -> String? {
        let lines = String(decoding: bytes ?? [], as: UTF8.self).split(separator: "\n").map { line in
            line.hasPrefix("tar: ") ? line.dropFirst(5) : line
        }.filter { !$0.isEmpty && !$0.hasPrefix("Exiting with failure status") && !$0.hasPrefix("Error is not recoverable") }
        return lines.isEmpty ? nil : lines.joined(separator: "; ")
    }

    static func reason(_ text: String) -> String {
        if text.contains("No such file or directory") || text.contains("Not a directory") { return "not_found" }
        if text.contains("Permission denied") || text.contains("Operation not permitted") { return "permission_denied" }
        return CLIReason.failed
    }
}

/// What some pipes give, read without blocking; kept up to 64 KiB each (messages).
private final class Collector {
    private var output: [Int32: [UInt8]] = [:]
    private var open: [Int32]

    init(_ descriptors: [Int32]) {
        open = descriptors
        for fd in descriptors { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
    }

    subscript(_ fd: Int32) -> [UInt8] { output[fd] ?? [] }

    var pollDescriptors: [pollfd] { open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) } }

    func handle(_ ready: [pollfd]) {
        for entry in ready where entry.revents != 0 { read(entry.fd, untilEmpty: false) }
    }

    /// What the pipes hold now, without waiting for a writer that is still there.
    func drain() {
        for fd in open { read(fd, untilEmpty: true) }
    }

    private func read(_ fd: Int32, untilEmpty: Bool) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while open.contains(fd) {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                if (output[fd]?.count ?? 0) < 1 << 16 { output[fd, default: []] += buffer[0..<count] }
                if !untilEmpty { return }
            } else if count < 0 && (errno == EAGAIN || errno == EINTR) {
                return
            } else {
                close(fd)
                open.removeAll { $0 == fd }
            }
        }
    }
}
