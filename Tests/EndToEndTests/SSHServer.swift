import Foundation
import Glibc
import POSIX

/// A real OpenSSH server for one test: /usr/sbin/sshd as root in the
/// foreground, on 127.0.0.1 and a spare port, with a host key, configuration
/// and authorized keys of its own (never the system's sshd, its host keys or
/// /etc/ssh/sshd_config), stopped and removed with `stop()` or when the test
/// lets go of it.
///
/// Each user it is started for gets a client key pair and an ssh_config naming
/// it and a known_hosts with the server's key, so that
/// `ssh -F CONFIG USER@127.0.0.1 COMMAND`, run as that user, logs in with no
/// question asked (`sshCommand(for:)`).
///
/// Its directory is under /run, not /tmp: with `StrictModes yes`, sshd refuses
/// an authorized_keys file when any directory above it is group- or
/// world-writable, and /tmp is (1777). /run is root's and 0755 all the way up.
///
/// The test users' passwords are locked ("!" in /etc/shadow). Without PAM,
/// sshd takes that for a locked account and refuses every login, key or not
/// ("User nsg-alice not allowed because account is locked"); with
/// `UsePAM yes` it leaves the account checks to PAM, whose pam_unix account
/// check looks at expiry only, so key logins work.
final class SSHServer: @unchecked Sendable {
    /// 0755, root's: sshd_config, the host key, authorized_keys/USER, known_hosts
    /// and, in clients/USER (0700, USER's), each user's key pair and ssh_config.
    let directory: String
    /// Users with a key pair, an ssh_config and an authorized key.
    let users: [TestUser]
    /// Users with a key pair and an ssh_config, allowed in (AllowUsers) but
    /// with no authorized key: sshd refuses them ("Permission denied").
    let usersWithoutAuthorizedKey: [TestUser]
    /// The port sshd listens on, on 127.0.0.1.
    private(set) var port: Int = 0
    private var process: BackgroundProcess?

    /// "127.0.0.1:PORT".
    var host: String { "127.0.0.1:\(port)" }

    var configPath: String { directory + "/sshd_config" }
    /// What sshd wrote to stdout and stderr (-e: its log goes to stderr).
    var logPath: String { directory + "/sshd.log" }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var pid: pid_t? { process?.pid }

    /// How long `start` waits for sshd to accept connections.
    static let startTimeoutSeconds = 10.0

    /// Makes the directory, the keys and the configuration, starts sshd and
    /// returns once it accepts connections; throws (with sshd's output) if
    /// it does not within 10 s.
    static func start(users: [TestUser], withoutAuthorizedKey: [TestUser] = []) throws -> SSHServer {
        let server = try SSHServer(users: users, withoutAuthorizedKey: withoutAuthorizedKey)
        try server.launch()
        return server
    }

    private init(users: [TestUser], withoutAuthorizedKey: [TestUser]) throws {
        guard geteuid() == 0 else { throw HarnessError("SSHServer: sshd must be started as root") }
        self.users = users
        self.usersWithoutAuthorizedKey = withoutAuthorizedKey
        var template = Array("/run/nsg-e2e-sshd-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw HarnessError("SSHServer: mkdtemp: \(Errno.current)") }
        directory = String(cString: made)
        try Self.setMode(directory, 0o755)
        try prepare()
    }

    deinit { stop() }

    // MARK: What clients use

    /// The user's ssh_config: IdentityFile, UserKnownHostsFile, StrictHostKeyChecking yes,
    /// BatchMode yes, Port and LogLevel ERROR.
    func clientConfig(for user: TestUser) -> String { clientDirectory(user) + "/ssh_config" }

    /// `["/usr/bin/ssh", "-F", <the user's ssh_config>]`: what the CLI is told to
    /// run through NSGROUP_SSH_COMMAND (the words joined by spaces; no path has any).
    func sshCommand(for user: TestUser) -> [String] {
        precondition(isClient(user), "SSHServer: \(user.name) has no ssh_config here")
        return ["/usr/bin/ssh", "-F", clientConfig(for: user)]
    }

    /// An ssh_config for the user like `clientConfig(for:)` but whose known_hosts
    /// holds another key for [127.0.0.1]:PORT: ssh must refuse the server
    /// ("Host key verification failed").
    func clientConfigWithWrongHostKey(for user: TestUser) -> String {
        precondition(isClient(user), "SSHServer: \(user.name) has no ssh_config here")
        return clientDirectory(user) + "/ssh_config-wrong-host-key"
    }

    /// `sshCommand(for:)` with `clientConfigWithWrongHostKey(for:)`.
    func sshCommandWithWrongHostKey(for user: TestUser) -> [String] {
        ["/usr/bin/ssh", "-F", clientConfigWithWrongHostKey(for: user)]
    }

    // MARK: Starting and stopping

    /// Starts sshd on a spare port, trying another port if the one picked
    /// was taken before sshd could bind it.
    private func launch() throws {
        try Self.makePrivilegeSeparationDirectory()
        let deadline = Date().addingTimeInterval(Self.startTimeoutSeconds)
        var attempt = 0
        while true {
            attempt += 1
            port = try Self.sparePort()
            try writePortFiles()
            try? FileManager.default.removeItem(atPath: logPath)
            let sshd = try BackgroundProcess("/usr/sbin/sshd", ["-D", "-e", "-f", configPath], log: logPath)
            process = sshd
            switch waitUntilListening(sshd, deadline: deadline) {
            case .listening:
                return
            case .portTaken where attempt < 5:
                process = nil
                continue
            case .portTaken, .exited:
                process = nil
                throw HarnessError("SSHServer: sshd exited (\(attempt) attempt(s), port \(port)): \(log)")
            case .timedOut:
                sshd.stop(SIGKILL)
                process = nil
                throw HarnessError("SSHServer: sshd did not accept connections on \(host) within \(Self.startTimeoutSeconds) s: \(log)")
            }
        }
    }

    /// Stops sshd (SIGTERM, then waits for it) and removes the directory.
    ///
    /// sshd does not end its connections' processes when it exits, and the
    /// commands of a session live on once their sshd is gone, so they go
    /// first, while they can still be found below sshd: those of connections
    /// already closed end by themselves (waited for up to 1 s); whatever is
    /// left below sshd (a session a test left open, its commands) gets
    /// SIGTERM, and SIGKILL if still there after 2 s.
    func stop() {
        if let sshd = process {
            var left = Self.descendants(of: sshd.pid)
            let deadline = Date().addingTimeInterval(1)
            while !left.isEmpty && Date() < deadline {
                usleep(10_000)
                left = Self.descendants(of: sshd.pid)
            }
            if !left.isEmpty {
                for pid in left { kill(pid, SIGTERM) }
                let later = Date().addingTimeInterval(2)
                while left.contains(where: Self.isAlive) && Date() < later { usleep(10_000) }
                for pid in left where Self.isAlive(pid) { kill(pid, SIGKILL) }
            }
            sshd.stop(SIGTERM)
            process = nil
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: Files

    private var authorizedKeysDirectory: String { directory + "/authorized_keys" }
    private var hostKeyPath: String { directory + "/ssh_host_ed25519_key" }
    /// Another host key, for the wrong known_hosts; sshd never sees it.
    private var otherHostKeyPath: String { directory + "/other_host_ed25519_key" }
    private var knownHostsPath: String { directory + "/known_hosts" }
    private var wrongKnownHostsPath: String { directory + "/known_hosts-wrong-key" }
    private func clientDirectory(_ user: TestUser) -> String { directory + "/clients/" + user.name }
    private func identityPath(_ user: TestUser) -> String { clientDirectory(user) + "/id_ed25519" }
    private var clients: [TestUser] { users + usersWithoutAuthorizedKey }
    private func isClient(_ user: TestUser) -> Bool { clients.contains { $0.name == user.name } }

    /// What does not depend on the port: the host keys and the users' keys.
    private func prepare() throws {
        try Self.keygen(hostKeyPath, comment: "nsgroup-test-sshd")
        try Self.keygen(otherHostKeyPath, comment: "nsgroup-test-other-host")
        try Self.makeDirectory(authorizedKeysDirectory, mode: 0o755)
        try Self.makeDirectory(directory + "/clients", mode: 0o755)
        for user in clients {
            let home = clientDirectory(user)
            try Self.makeDirectory(home, mode: 0o700, owner: user)
            try Self.keygen(identityPath(user), comment: user.name)
            try Self.setOwner(identityPath(user), user)
            try Self.setMode(identityPath(user), 0o600)
            try Self.setOwner(identityPath(user) + ".pub", user)
        }
        for user in users {
            let key = try String(contentsOfFile: identityPath(user) + ".pub", encoding: .utf8)
            try Self.write(authorizedKeysDirectory + "/" + user.name, key, mode: 0o644)
        }
    }

    /// What names the port: sshd_config, the known_hosts files and the users' ssh_configs.
    private func writePortFiles() throws {
        let allowed = clients.map(\.name).joined(separator: " ")
        try Self.write(configPath, """
            # Written by the end-to-end tests' SSHServer; nothing from /etc/ssh is read.
            ListenAddress 127.0.0.1
            Port \(port)
            HostKey \(hostKeyPath)
            PidFile \(directory)/sshd.pid
            AuthorizedKeysFile \(authorizedKeysDirectory)/%u
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            # The test users' passwords are locked: without PAM sshd refuses them outright.
            UsePAM yes
            PermitRootLogin no
            AllowUsers \(allowed)
            # No AcceptEnv: the client's environment stays on the client.
            StrictModes yes
            PrintMotd no
            PrintLastLog no
            X11Forwarding no
            # Tests running side by side may open many connections at once.
            MaxStartups 100

            """, mode: 0o644)
        let hostKey = try String(contentsOfFile: hostKeyPath + ".pub", encoding: .utf8)
        let otherKey = try String(contentsOfFile: otherHostKeyPath + ".pub", encoding: .utf8)
        try Self.write(knownHostsPath, "[127.0.0.1]:\(port) \(hostKey)", mode: 0o644)
        try Self.write(wrongKnownHostsPath, "[127.0.0.1]:\(port) \(otherKey)", mode: 0o644)
        for user in clients {
            for (path, knownHosts) in [(clientConfig(for: user), knownHostsPath),
                                       (clientDirectory(user) + "/ssh_config-wrong-host-key", wrongKnownHostsPath)] {
                try Self.write(path, """
                    # Written by the end-to-end tests' SSHServer for \(user.name).
                    Host *
                        Port \(port)
                        IdentityFile \(identityPath(user))
                        IdentitiesOnly yes
                        IdentityAgent none
                        UserKnownHostsFile \(knownHosts)
                        GlobalKnownHostsFile /dev/null
                        StrictHostKeyChecking yes
                        UpdateHostKeys no
                        BatchMode yes
                        LogLevel ERROR

                    """, mode: 0o600, owner: user)
            }
        }
    }

    // MARK: Waiting for sshd

    private enum StartOutcome { case listening, portTaken, exited, timedOut }

    /// Listening once sshd has said so for this port and the port accepts a
    /// connection (both: another program could have taken the port).
    private func waitUntilListening(_ sshd: BackgroundProcess, deadline: Date) -> StartOutcome {
        let announcement = "Server listening on 127.0.0.1 port \(port)."
        while Date() < deadline {
            if !sshd.isRunning {
                let output = log
                return output.contains("Address already in use") || output.contains("Cannot bind any address")
                    ? .portTaken : .exited
            }
            if log.contains(announcement) && Self.acceptsConnections(port) { return .listening }
            usleep(10_000)
        }
        return .timedOut
    }

    // MARK: Helpers

    /// A port no one listens on now: bind port 0 on 127.0.0.1, read it, close.
    private static func sparePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("SSHServer: socket: \(Errno.current)") }
        defer { close(fd) }
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw HarnessError("SSHServer: bind 127.0.0.1:0: \(Errno.current)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private static func acceptsConnections(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }

    /// sshd's privilege separation directory, which the package normally makes at boot.
    private static func makePrivilegeSeparationDirectory() throws {
        if mkdir("/run/sshd", 0o755) != 0 && errno != EEXIST {
            throw HarnessError("SSHServer: mkdir /run/sshd: \(Errno.current)")
        }
    }

    private static func keygen(_ path: String, comment: String) throws {
        let result = try run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path])
        guard result.status == 0 else {
            throw HarnessError("SSHServer: ssh-keygen \(path) failed (\(result.status)): \(result.stderr)")
        }
    }

    private static func makeDirectory(_ path: String, mode: mode_t, owner: TestUser? = nil) throws {
        guard mkdir(path, mode) == 0 else { throw HarnessError("SSHServer: mkdir \(path): \(Errno.current)") }
        try setMode(path, mode)
        if let owner { try setOwner(path, owner) }
    }

    /// Writes a file, root's unless `owner` is given, with exactly `mode`.
    private static func write(_ path: String, _ contents: String, mode: mode_t, owner: TestUser? = nil) throws {
        try? FileManager.default.removeItem(atPath: path)
        guard FileManager.default.createFile(atPath: path, contents: Data(contents.utf8)) else {
            throw HarnessError("SSHServer: cannot write \(path)")
        }
        try setMode(path, mode)
        if let owner { try setOwner(path, owner) }
    }

    private static func setMode(_ path: String, _ mode: mode_t) throws {
        guard chmod(path, mode) == 0 else { throw HarnessError("SSHServer: chmod \(path): \(Errno.current)") }
    }

    private static func setOwner(_ path: String, _ user: TestUser) throws {
        guard chown(path, user.uid, user.gid) == 0 else { throw HarnessError("SSHServer: chown \(path): \(Errno.current)") }
    }

    /// "STATE PPID" of a process from /proc/PID/stat, nil once it is gone.
    private static func stateAndParent(_ pid: pid_t) -> (state: Substring, parent: pid_t)? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 1, let parent = pid_t(fields[1]) else { return nil }
        return (fields[0], parent)
    }

    private static func isAlive(_ pid: pid_t) -> Bool {
        guard let state = stateAndParent(pid)?.state else { return false }
        return state != "Z" && state != "X"
    }

    /// Live processes below `pid`: sshd's processes for its connections and what they run.
    private static func descendants(of pid: pid_t) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var children: [pid_t: [pid_t]] = [:]
        for child in entries.compactMap({ pid_t($0) }) {
            if let (state, parent) = stateAndParent(child), state != "Z", state != "X" {
                children[parent, default: []].append(child)
            }
        }
        var found: [pid_t] = []
        var queue = children[pid] ?? []
        while let next = queue.popLast() {
            found.append(next)
            queue += children[next] ?? []
        }
        return found
    }
}
