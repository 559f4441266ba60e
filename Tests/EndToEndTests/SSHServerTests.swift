import Foundation
import Glibc
import Testing

/// The SSHServer fixture against the real sshd, as the test users. None of
/// these skips: a server that cannot start fails the test.
@Suite struct SSHServerTests {
    /// `ssh -F CONFIG USER@127.0.0.1 id -un`, run as `user`.
    func whoami(_ command: [String], as user: TestUser) throws -> CommandResult {
        try run(command[0], Array(command.dropFirst()) + ["\(user.name)@127.0.0.1", "id", "-un"], as: user)
    }

    @Test func eachUserLogsInWithTheirOwnKey() throws {
        let alice = try TestUser.alice(), bob = try TestUser.bob()
        let server = try SSHServer.start(users: [alice, bob])
        for user in [alice, bob] {
            let result = try whoami(server.sshCommand(for: user), as: user)
            #expect(result.status == 0, "\(user.name): \(result.stderr)\nsshd: \(server.log)")
            #expect(result.stdout == "\(user.name)\n")
            #expect(result.stderr == "")
        }
        #expect(server.host == "127.0.0.1:\(server.port)")
        #expect(server.sshCommand(for: alice) == ["/usr/bin/ssh", "-F", server.directory + "/clients/nsg-alice/ssh_config"])
        // A user cannot use another's configuration: the key in it is not theirs to read.
        let borrowed = try whoami(server.sshCommand(for: alice), as: bob)
        #expect(borrowed.status != 0)
        #expect(borrowed.stdout == "")
    }

    @Test func aDifferentKeyForTheHostIsRefused() throws {
        let alice = try TestUser.alice()
        let server = try SSHServer.start(users: [alice])
        let result = try whoami(server.sshCommandWithWrongHostKey(for: alice), as: alice)
        #expect(result.status == 255)
        #expect(result.stdout == "")
        #expect(result.stderr.contains("Host key verification failed"), "\(result.stderr)")
        #expect(!server.log.contains("Accepted publickey"), "\(server.log)")
    }

    @Test func aUserWithNoAuthorizedKeyIsRefused() throws {
        let alice = try TestUser.alice(), frank = try TestUser.frank()
        let server = try SSHServer.start(users: [alice], withoutAuthorizedKey: [frank])
        let refused = try whoami(server.sshCommand(for: frank), as: frank)
        #expect(refused.status == 255)
        #expect(refused.stdout == "")
        #expect(refused.stderr.contains("Permission denied"), "\(refused.stderr)")
        // Refused for want of a key, not for the server's state: alice still gets in.
        #expect(try whoami(server.sshCommand(for: alice), as: alice).stdout == "nsg-alice\n")
        // A user the server was not started for is not let in, whatever the key (AllowUsers).
        let stranger = try run("/usr/bin/ssh", server.sshCommand(for: alice).dropFirst() + ["nsg-bob@127.0.0.1", "id", "-un"],
                               as: alice)
        #expect(stranger.status == 255)
        #expect(stranger.stderr.contains("Permission denied"), "\(stranger.stderr)")
        #expect(server.log.contains("User nsg-bob from 127.0.0.1 not allowed because not listed in AllowUsers"), "\(server.log)")
    }

    @Test func twoServersRunAtOnceAndStopApart() throws {
        let alice = try TestUser.alice()
        let first = try SSHServer.start(users: [alice])
        let second = try SSHServer.start(users: [alice])
        #expect(first.port != second.port)
        #expect(first.directory != second.directory)
        for server in [first, second] {
            let result = try whoami(server.sshCommand(for: alice), as: alice)
            #expect(result.stdout == "nsg-alice\n", "\(result.stderr)\nsshd: \(server.log)")
        }
        // Each has a host key of its own, and the first's known_hosts knows nothing of the second.
        func hostKey(_ server: SSHServer) throws -> Substring {
            try #require(try String(contentsOfFile: server.directory + "/known_hosts", encoding: .utf8).split(separator: " ").dropFirst(2).first)
        }
        #expect(try hostKey(first) != hostKey(second))
        let crossed = try run("/usr/bin/ssh", ["-F", first.clientConfig(for: alice), "-p", "\(second.port)",
                                               "nsg-alice@127.0.0.1", "id", "-un"], as: alice)
        #expect(crossed.status == 255)
        #expect(crossed.stderr.contains("Host key verification failed"), "\(crossed.stderr)")
        // Stopping one ends its sshd and removes its directory; the other goes on.
        let firstPID = try #require(first.pid)
        let firstDirectory = first.directory
        first.stop()
        #expect(kill(firstPID, 0) != 0)
        #expect(!FileManager.default.fileExists(atPath: firstDirectory))
        #expect(try whoami(second.sshCommand(for: alice), as: alice).stdout == "nsg-alice\n")
    }

    @Test func stopEndsASessionLeftOpenAndWhatItRuns() throws {
        let alice = try TestUser.alice()
        let server = try SSHServer.start(users: [alice])
        // A remote command no other test runs: sleep for a random fraction of a day.
        let duration = "\(Int.random(in: 10_000...80_000)).\(Int.random(in: 100_000...999_999))"
        func remoteSleeps() -> [pid_t] {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return entries.compactMap { pid_t($0) }.filter { pid in
                guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
                return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) } == ["sleep", duration]
            }
        }
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        client.arguments = ["--reuid=\(alice.uid)", "--regid=\(alice.gid)", "--init-groups", "--"]
            + server.sshCommand(for: alice) + ["nsg-alice@127.0.0.1", "exec", "sleep", duration]
        client.standardInput = FileHandle.nullDevice
        try client.run()
        defer { if client.isRunning { client.terminate() } }
        try waitUntil("the remote sleep to start") { !remoteSleeps().isEmpty }
        server.stop()
        #expect(remoteSleeps().isEmpty)
        #expect(eventually { !client.isRunning })
    }

    /// What StrictModes and the brief ask of the files.
    @Test func theFilesHaveTheOwnersAndModesSSHWants() throws {
        let alice = try TestUser.alice(), frank = try TestUser.frank()
        let server = try SSHServer.start(users: [alice], withoutAuthorizedKey: [frank])
        func owner(_ path: String) throws -> (uid: uid_t, mode: mode_t) {
            var info = stat()
            try #require(lstat(path, &info) == 0, "lstat \(path)")
            return (info.st_uid, info.st_mode & 0o7777)
        }
        #expect(server.directory.hasPrefix("/run/"))
        #expect(try owner(server.directory) == (0, 0o755))
        #expect(try owner(server.directory + "/authorized_keys/nsg-alice") == (0, 0o644))
        #expect(!FileManager.default.fileExists(atPath: server.directory + "/authorized_keys/nsg-frank"))
        for user in [alice, frank] {
            let home = server.directory + "/clients/" + user.name
            #expect(try owner(home) == (user.uid, 0o700))
            #expect(try owner(home + "/id_ed25519") == (user.uid, 0o600))
            #expect(try owner(server.clientConfig(for: user)) == (user.uid, 0o600))
        }
        let config = try String(contentsOfFile: server.clientConfig(for: alice), encoding: .utf8)
        for line in ["Port \(server.port)", "IdentityFile \(server.directory)/clients/nsg-alice/id_ed25519",
                     "UserKnownHostsFile \(server.directory)/known_hosts", "StrictHostKeyChecking yes",
                     "BatchMode yes", "LogLevel ERROR"] {
            #expect(config.contains(line), "\(line)")
        }
        let knownHosts = try String(contentsOfFile: server.directory + "/known_hosts", encoding: .utf8)
        #expect(knownHosts.hasPrefix("[127.0.0.1]:\(server.port) ssh-ed25519 "))
    }
}
