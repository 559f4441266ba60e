#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import POSIX

/// `nsgroup --host` against the ssh round trip it rides on, through a private sshd on 127.0.0.1.
struct SSHBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ssh",
        abstract: "Time `nsgroup --host` (list, enter -- true) against `ssh HOST true` to a private sshd on 127.0.0.1.",
        discussion: """
            Starts an sshd of its own on 127.0.0.1 and a spare port (its own host key and \
            configuration under /run, an authorized key for nsg-alice, a client key and ssh_config \
            for her) and a private nsgroupd, in which nsg-alice creates a group. Then, as nsg-alice, \
            interleaved (the order rotates every run): the anchor `ssh -F CONFIG nsg-alice@127.0.0.1 \
            -p PORT true`; `nsgroup --host nsg-alice@127.0.0.1:PORT list`; and `nsgroup --host … \
            enter g -- true`, the CLI told to use that ssh (NSGROUP_SSH_COMMAND) and this build's \
            `nsgroup bridge --socket` on the far end (NSGROUP_REMOTE_COMMAND). Ratios of the \
            medians. No goal: the figures say what --host adds to the ssh connection itself. \
            Needs the test user nsg-alice (make test-users) and openssh-server (make deps).
            """)

    @Option(help: "How many of each.")
    var iterations = 30

    @Option(help: "Runs of each before measuring.")
    var warmup = 3

    @Option(help: "Use the supervisor on this socket instead of starting one.")
    var socket: String?

    func validate() throws {
        guard iterations > 0, warmup >= 0 else { throw ValidationError("--iterations must be positive") }
    }

    func run() throws {
        Interrupt.install()
        _ = try SSHRun(iterations: iterations, warmup: warmup, socket: socket).run()
    }
}

struct SSHRun {
    var iterations: Int
    var warmup: Int
    var socket: String?

    static let user = "nsg-alice"
    static let ssh = "/usr/bin/ssh"

    func run() throws -> [SummaryRow] {
        guard geteuid() == 0 else { throw BenchError("run as root: the benchmark starts its own sshd and nsgroupd") }
        guard let entry = UserDatabase.user(named: Self.user) else {
            throw BenchError("no user \(Self.user): create the test users first (make test-users)")
        }
        let identity = (uid: entry.uid, gid: entry.gid)
        let server = try BenchSSHServer(user: entry)
        defer { server.stop() }
        let supervisor = try BenchSupervisor(socket: socket, parent: nil)
        let name = "bssh\(getpid())"
        defer {
            GroupOps.destroy([name], socketPath: supervisor.socketPath).forEach { printError("nsgroup-bench: clean-up: \($0)") }
            supervisor.stop()
        }
        let created = try ProgramRunner.run(Binaries.nsgroup, ["nsgroup", "--socket", supervisor.socketPath, "create", name], as: identity)
        guard created == 0 else { throw BenchError("nsgroup create \(name) as \(entry.name) exited with \(created)") }

        let host = "\(entry.name)@127.0.0.1:\(server.port)"
        let environment = ["PATH=/usr/local/bin:/usr/bin:/bin",
                           "NSGROUP_SSH_COMMAND=\(Self.ssh) -F \(server.clientConfig)",
                           "NSGROUP_REMOTE_COMMAND=\(Binaries.nsgroup) bridge --socket \(supervisor.socketPath)"]
        let anchor = ["ssh", "-F", server.clientConfig, "\(entry.name)@127.0.0.1", "-p", String(server.port), "true"]
        let list = ["nsgroup", "--host", host, "list"]
        let enter = ["nsgroup", "--host", host, "enter", name, "--", "true"]

        /// One run as the user, timed; on a failure, once more with its stderr kept, for the error.
        func once(_ path: String, _ argv: [String]) throws -> TwoStepTime {
            let start = monotonicNanoseconds()
            let status = try ProgramRunner.run(path, argv, environment: environment, as: identity)
            let elapsed = monotonicNanoseconds() - start
            guard status == 0 else {
                let said = server.stderr(of: path, argv, environment: environment, as: identity)
                throw BenchError("\(argv.joined(separator: " ")) as \(entry.name) exited with \(status)\(said.isEmpty ? "" : ": \(said)")")
            }
            return TwoStepTime(total: elapsed, firstStep: elapsed)
        }
        let (timings, _, _) = try interleaved([{ try once(Self.ssh, anchor) },
                                               { try once(Binaries.nsgroup, list) },
                                               { try once(Binaries.nsgroup, enter) }],
                                              runs: iterations, warmup: warmup)
        let listRatio = timings[1].median / timings[0].median
        let enterRatio = timings[2].median / timings[0].median
        print("nsgroup-bench ssh: \(iterations) of each (after \(warmup) warm-up), interleaved, as \(entry.name), sshd on 127.0.0.1:\(server.port)")
        print(supervisor.stateDescription)
        print("")
        printTimings([("ssh nsg-alice@127.0.0.1 -p PORT true (anchor)", timings[0]),
                      ("nsgroup --host nsg-alice@127.0.0.1:PORT list", timings[1]),
                      ("nsgroup --host … enter g -- true", timings[2])], width: 50)
        print("")
        print("ratio of medians (list / ssh): \(formatRatio(listRatio))   over ssh: \(formatMilliseconds(timings[1].median - timings[0].median))")
        print("ratio of medians (enter / ssh): \(formatRatio(enterRatio))   over ssh: \(formatMilliseconds(timings[2].median - timings[0].median))")
        return [
            SummaryRow(figure: "`nsgroup --host USER@127.0.0.1:PORT list` vs `ssh USER@127.0.0.1 -p PORT true`",
                       ours: formatMilliseconds(timings[1].median), anchor: formatMilliseconds(timings[0].median),
                       ratio: listRatio, goal: "-", met: nil),
            SummaryRow(figure: "`nsgroup --host … enter g -- true` vs the same ssh",
                       ours: formatMilliseconds(timings[2].median), anchor: formatMilliseconds(timings[0].median),
                       ratio: enterRatio, goal: "-", met: nil),
        ]
    }
}

/// An sshd for one user, for this benchmark only: /usr/sbin/sshd -D as root on 127.0.0.1 and a
/// spare port, reading nothing of /etc/ssh, with its files in a directory under /run (sshd's
/// StrictModes refuses an authorized key below a world-writable directory such as /tmp):
///
///     DIR/                 root's, 0755: sshd_config, the host key, authorized_keys,
///                          known_hosts, sshd.log
///     DIR/client/          the user's, 0700: her key pair, her ssh_config, stderr
///
/// UsePAM: the test users' passwords are locked, and sshd without PAM refuses a locked
/// account even with a key; PAM's account check does not look at the password.
final class BenchSSHServer {
    let directory: String
    private(set) var port = 0
    private var process: pid_t = 0
    private let user: UserEntry

    var clientDirectory: String { directory + "/client" }
    /// The user's ssh_config: her key, the server's key as the only one known, no questions.
    var clientConfig: String { clientDirectory + "/ssh_config" }
    private var logPath: String { directory + "/sshd.log" }

    init(user: UserEntry) throws {
        self.user = user
        directory = try makeDirectory("/run/nsgroup-bench-ssh-XXXXXX")
        do {
            try setUp()
        } catch {
            stop()
            throw error
        }
    }

    deinit { stop() }

    private func setUp() throws {
        let identity = (uid: user.uid, gid: user.gid)
        try keygen(directory + "/host_key", as: nil)
        guard mkdir(clientDirectory, 0o700) == 0, chown(clientDirectory, user.uid, user.gid) == 0 else {
            throw BenchError("cannot make \(clientDirectory): \(Errno.current)")
        }
        try keygen(clientDirectory + "/id_ed25519", as: identity)
        try writeFile(directory + "/authorized_keys", try ProcFS.readText(clientDirectory + "/id_ed25519.pub"), mode: 0o644)
        // sshd needs its privilege separation directory, which the package makes at boot.
        if mkdir("/run/sshd", 0o755) != 0 && errno != EEXIST { throw BenchError("mkdir /run/sshd: \(Errno.current)") }
        // Another program may take the spare port before sshd binds it: then another one.
        for _ in 0..<5 {
            port = try sparePort()
            try writePortFiles()
            switch try launch() {
            case .listening: return
            case .portTaken: continue
            }
        }
        throw BenchError("sshd found no free port in 5 attempts: \(log)")
    }

    /// What names the port: sshd_config, known_hosts, the user's ssh_config.
    private func writePortFiles() throws {
        try writeFile(directory + "/sshd_config", """
            ListenAddress 127.0.0.1
            Port \(port)
            HostKey \(directory)/host_key
            PidFile none
            AuthorizedKeysFile \(directory)/authorized_keys
            AllowUsers \(user.name)
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM yes
            StrictModes yes
            PrintMotd no
            PrintLastLog no

            """, mode: 0o644)
        try writeFile(directory + "/known_hosts", "[127.0.0.1]:\(port) " + (try ProcFS.readText(directory + "/host_key.pub")), mode: 0o644)
        try writeFile(clientConfig, """
            Host *
                Port \(port)
                IdentityFile \(clientDirectory)/id_ed25519
                IdentitiesOnly yes
                IdentityAgent none
                UserKnownHostsFile \(directory)/known_hosts
                GlobalKnownHostsFile /dev/null
                StrictHostKeyChecking yes
                UpdateHostKeys no
                BatchMode yes
                LogLevel ERROR

            """, mode: 0o600, owner: user)
    }

    private enum Launch { case listening, portTaken }

    /// Starts sshd (its log, -e, to sshd.log) and waits up to 10 s until it says it listens
    /// and the port takes a connection.
    private func launch() throws -> Launch {
        unlink(logPath)
        let input = open("/dev/null", O_RDONLY | O_CLOEXEC)
        let output = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        defer { for fd in [input, output] where fd >= 0 { close(fd) } }
        guard input >= 0, output >= 0 else { throw BenchError("cannot open /dev/null or \(logPath): \(Errno.current)") }
        let pid: pid_t
        switch spawnProgram(["/usr/sbin/sshd", "-D", "-e", "-f", directory + "/sshd_config"], stdin: input, stdout: output, stderr: output) {
        case .success(let child): pid = child
        case .failure(let error): throw BenchError("cannot start /usr/sbin/sshd: \(error)")
        }
        process = pid
        for _ in 0..<1000 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                process = 0
                if log.contains("Address already in use") { return .portTaken }
                throw BenchError("sshd exited: \(log)")
            }
            if log.contains("Server listening on 127.0.0.1 port \(port).") && acceptsConnections(port) { return .listening }
            usleep(10_000)
        }
        throw BenchError("sshd did not listen on 127.0.0.1:\(port) within 10 s: \(log)")
    }

    private var log: String { Self.oneLine((try? ProcFS.readText(logPath)) ?? "") }

    /// Lines of output as one line, for an error.
    private static func oneLine(_ text: String) -> String {
        text.split(separator: "\n").map(\.trimmed).filter { !$0.isEmpty }.joined(separator: "; ")
    }

    /// `argv` run once more as the user with its stderr kept: what it said, or "".
    func stderr(of path: String, _ argv: [String], environment: [String], as user: (uid: uid_t, gid: gid_t)) -> String {
        let file = clientDirectory + "/stderr"
        unlink(file)
        _ = try? ProgramRunner.run("/bin/sh", ["sh", "-c", "exec \"$0\" \"$@\" 2>\(file)", path] + argv.dropFirst(),
                                   environment: environment, as: user)
        return Self.oneLine((try? ProcFS.readText(file)) ?? "")
    }

    /// Stops sshd and removes the directory. Every session has ended by then: each client was
    /// waited for, and sshd's processes for a closed connection end with it.
    func stop() {
        if process > 0 {
            kill(process, SIGTERM)
            var status: Int32 = 0
            waitpid(process, &status, 0)
            process = 0
        }
        Directory.removeTree(directory)
    }

    private func keygen(_ path: String, as who: (uid: uid_t, gid: gid_t)?) throws {
        let status = try ProgramRunner.run("/usr/bin/ssh-keygen", ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], as: who)
        guard status == 0 else { throw BenchError("ssh-keygen -f \(path) exited with \(status)") }
    }

    /// A new file with exactly `mode`, root's unless `owner` is given.
    private func writeFile(_ path: String, _ text: String, mode: mode_t, owner: UserEntry? = nil) throws {
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw BenchError("cannot create \(path): \(Errno.current)") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fchmod(fd, mode) == 0 else { throw BenchError("cannot write \(path): \(Errno.current)") }
        if let owner, fchown(fd, owner.uid, owner.gid) != 0 { throw BenchError("chown \(path): \(Errno.current)") }
    }

    /// A port nobody listens on now: the one the kernel gives a bind to port 0.
    private func sparePort() throws -> Int {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket: \(Errno.current)") }
        defer { close(fd) }
        var address = Self.loopback(0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw BenchError("bind 127.0.0.1:0: \(Errno.current)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private func acceptsConnections(_ port: Int) -> Bool {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = Self.loopback(port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    private static func loopback(_ port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }
}
