#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// nsgroup's exit statuses are a contract scripts rely on: the command's own
/// for enter, 127 and 126 when it cannot be run, 125 when nsgroup or nsgroupd
/// failed, 64 for a usage error; and every error is one `nsgroup: ` line.
@Suite struct ExitCodeTests {
    private func aliceGroup(_ name: String, extra: [String] = []) throws -> (TestSupervisor, TestUser) {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let created = try supervisor.nsgroup(["create", name] + extra, as: alice)
        guard created.status == 0 else { throw HarnessError("create failed: \(created.stderr)") }
        return (supervisor, alice)
    }

    /// Every line of stderr is an `nsgroup: ` line, and there is one.
    private func saysOneStyle(_ stderr: String) -> Bool {
        let lines = stderr.split(separator: "\n")
        return !lines.isEmpty && lines.allSatisfy { $0.hasPrefix("nsgroup: ") } && !stderr.contains("Error: ")
            && !stderr.contains("USAGE:")
    }

    @Test func theCommandsOwnStatus() throws {
        let (supervisor, alice) = try aliceGroup("own")
        #expect(try supervisor.nsgroup(["enter", "own", "--", "true"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["enter", "own", "--", "sh", "-c", "exit 3"], as: alice).status == 3)
        #expect(try supervisor.nsgroup(["enter", "own", "sh", "-c", "exit 4"], as: alice).status == 4)
    }

    @Test func aCommandNotFoundIs127() throws {
        let (supervisor, alice) = try aliceGroup("missing")
        let result = try supervisor.nsgroup(["enter", "missing", "no-such-command-anywhere"], as: alice)
        #expect(result.status == 127, "\(result.stderr)")
        #expect(saysOneStyle(result.stderr), "\(result.stderr)")
        #expect(try supervisor.nsgroup(["enter", "missing", "--", "/nonexistent/program"], as: alice).status == 127)
    }

    @Test func aCommandThatCannotBeExecutedIs126() throws {
        let (supervisor, alice) = try aliceGroup("noexec")
        let file = supervisor.directory + "/not-executable"
        try "#!/bin/sh\nexit 0\n".write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        let result = try supervisor.nsgroup(["enter", "noexec", file], as: alice)
        #expect(result.status == 126, "\(result.stderr)")
        #expect(saysOneStyle(result.stderr), "\(result.stderr)")
        // A directory is not a program either.
        #expect(try supervisor.nsgroup(["enter", "noexec", "/"], as: alice).status == 126)
    }

    @Test func nsgroupsOwnFailuresAre125() throws {
        let (supervisor, alice) = try aliceGroup("mine")
        // A group that does not exist, for every subcommand that names one.
        for arguments in [["enter", "nope", "true"], ["inspect", "nope"], ["destroy", "nope"], ["freeze", "nope"], ["ps", "nope"]] {
            let result = try supervisor.nsgroup(arguments, as: alice)
            #expect(result.status == 125, "\(arguments): \(result.stderr)")
            #expect(saysOneStyle(result.stderr), "\(arguments): \(result.stderr)")
        }
        // A refused request: bob may not enter alice's group, nor destroy it.
        let bob = try TestUser.bob()
        for arguments in [["enter", "mine", "true"], ["destroy", "mine"], ["inspect", "mine"]] {
            let refused = try supervisor.nsgroup(arguments, as: bob)
            #expect(refused.status == 125, "\(arguments): \(refused.stderr)")
            #expect(saysOneStyle(refused.stderr), "\(refused.stderr)")
        }
        // The group is already there.
        #expect(try supervisor.nsgroup(["create", "mine"], as: alice).status == 125)
    }

    @Test func noSupervisorIs125() throws {
        for arguments in [["list"], ["enter", "g", "true"], ["create", "g"], ["events"]] {
            let result = try run(Products.nsgroup, ["--socket", "/nonexistent/nsgroupd.sock"] + arguments)
            #expect(result.status == 125, "\(arguments)")
            #expect(saysOneStyle(result.stderr), "\(result.stderr)")
            #expect(result.stderr.contains("cannot reach nsgroupd"))
        }
    }

    @Test func usageErrorsAre64() throws {
        for arguments in [["list", "--bogus"], ["enter", "--bogus", "g", "true"], ["create"], ["bogus"],
                          ["create", "g", "--memory", "12Q"], ["enter", "-t", "-T", "g"]] {
            let result = try run(Products.nsgroup, ["--socket", "/nonexistent/nsgroupd.sock"] + arguments)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(saysOneStyle(result.stderr), "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("--help"), "\(arguments): \(result.stderr)")
        }
        let help = try run(Products.nsgroup, ["enter", "--help"])
        #expect(help.status == 0 && help.stdout.contains("USAGE:"))
    }

    @Test func enterTakesTheCommandWithoutDashDash() throws {
        let (supervisor, alice) = try aliceGroup("plain")
        let id = try supervisor.nsgroup(["enter", "plain", "id", "-u"], as: alice)
        #expect(id.status == 0)
        #expect(id.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "\(alice.uid)")
        let ls = try supervisor.nsgroup(["enter", "plain", "ls", "-la", "/"], as: alice)
        #expect(ls.status == 0, "\(ls.stderr)")
        #expect(ls.stdout.contains("proc"))
        // enter's options before the command still count; those after it are the command's.
        let cwd = try supervisor.nsgroup(["enter", "plain", "--cwd", "/tmp", "pwd"], as: alice)
        #expect(cwd.stdout == "/tmp\n")
        let echoed = try supervisor.nsgroup(["enter", "plain", "echo", "--cwd", "-T"], as: alice)
        #expect(echoed.stdout == "--cwd -T\n")
    }

    @Test func negativeTimeOffsetsAreAccepted() throws {
        let (supervisor, alice) = try aliceGroup("past", extra: ["--ns", "time,mnt,pid", "--boottime-offset", "-60"])
        let inspect = try supervisor.nsgroup(["inspect", "past"], as: alice)
        #expect(inspect.status == 0)
        #expect(try supervisor.nsgroup(["enter", "past", "true"], as: alice).status == 0)
    }
}
