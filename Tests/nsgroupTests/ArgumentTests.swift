import ArgumentParser
import Client
@testable import nsgroup
import RPC
import Testing

@Suite("How enter and create read their arguments, and the statuses errors give")
struct ArgumentTests {
    /// `nsgroup enter ARGUMENTS` as the root command parses it.
    private func enter(_ arguments: [String]) throws -> Enter {
        let parsed = try NSGroup.parseAsRoot(NSGroup.withEnterTerminator(["enter"] + arguments))
        return try #require(parsed as? Enter)
    }

    @Test func enterTakesTheCommandWithoutDashDash() throws {
        #expect(try enter(["lab", "id", "-u"]).command == ["id", "-u"])
        #expect(try enter(["lab", "ls", "-t", "--color", "/"]).command == ["ls", "-t", "--color", "/"])
        #expect(try enter(["lab", "sh", "-c", "exit 4"]).command == ["sh", "-c", "exit 4"])
    }

    @Test func enterStillTakesDashDash() throws {
        #expect(try enter(["lab", "--", "id", "-u"]).command == ["id", "-u"])
        #expect(try enter(["lab", "--", "--weird-name"]).command == ["--weird-name"])
        // Only the first -- is enter's.
        #expect(try enter(["lab", "--", "echo", "--"]).command == ["echo", "--"])
    }

    @Test func enterTakesTheSocketWhereverItIsGiven() throws {
        #expect(try enter(["--socket", "/x", "lab", "id"]).global.socketPath == "/x")
        #expect(try enter(["lab", "--socket", "/x", "id", "--socket", "/y"]).global.socketPath == "/x")
        #expect(try enter(["lab", "--socket", "/x", "id", "--socket", "/y"]).command == ["id", "--socket", "/y"])
        let root = try #require(try NSGroup.parseAsRoot(NSGroup.withEnterTerminator(["--socket", "/z", "enter", "lab", "id", "-u"])) as? Enter)
        #expect(root.global.socketPath == "/z" && root.command == ["id", "-u"])
    }

    @Test func enterOptionsBeforeTheCommandStillCount() throws {
        let before = try enter(["-T", "--cwd", "/tmp", "--env", "A=1", "lab", "id"])
        #expect(before.noTTY && before.cwd == "/tmp" && before.environment == ["A=1"] && before.name == "lab")
        #expect(before.command == ["id"])
        let between = try enter(["lab", "-T", "--cwd", "/", "env", "-i"])
        #expect(between.noTTY && between.cwd == "/" && between.command == ["env", "-i"])
        #expect(try enter(["lab"]).command.isEmpty)
        // An option of enter after the command is the command's.
        let after = try enter(["lab", "ls", "-T"])
        #expect(!after.noTTY && after.command == ["ls", "-T"])
    }

    @Test func enterUsageErrorsAreUsageErrors() {
        #expect(throws: (any Error).self) { try enter([]) }
        #expect(throws: (any Error).self) { try enter(["lab", "--socket"]) }
        #expect(throws: (any Error).self) { try enter(["--bogus", "lab", "id"]) }
        #expect(throws: (any Error).self) { try enter(["-t", "-T", "lab"]) }
        do {
            _ = try enter(["-t", "-T", "lab"])
        } catch {
            #expect(Enter.exitCode(for: error).rawValue == ExitStatus.usage)
        }
    }

    @Test func negativeOffsetsParse() throws {
        let create = try Create.parse(["g", "--ns", "time,mnt,pid", "--boottime-offset", "-60", "--monotonic-offset", "-5"])
        #expect(create.boottimeOffset == -60 && create.monotonicOffset == -5)
        #expect(try Create.parse(["g", "--boottime-offset", "60"]).boottimeOffset == 60)
        #expect(throws: (any Error).self) { try Create.parse(["g", "--boottime-offset", "-x"]) }
    }

    @Test func execFailuresGiveAShellsStatuses() {
        func failed(_ step: String, _ errno: String) -> ClientError {
            .server(RPCError(.operationFailed, "cannot enter", details: ["step": .string(step), "errno": .string(errno)]))
        }
        #expect(ExitStatus.of(failed("execve(nope)", "ENOENT")) == 127)
        #expect(ExitStatus.of(failed("execve(/etc/passwd)", "EACCES")) == 126)
        #expect(ExitStatus.of(failed("execve(/tmp/x)", "ENOEXEC")) == 126)
        #expect(ExitStatus.of(failed("execve(/tmp)", "EISDIR")) == 126)
        #expect(ExitStatus.of(failed("chdir(/nope)", "ENOENT")) == 125)
        #expect(ExitStatus.of(failed("execveat(nsgroup-holder)", "ENOENT")) == 125)
        #expect(ExitStatus.of(.server(RPCError(.notFound, "no group"))) == 125)
        #expect(ExitStatus.of(.disconnected) == 125)
    }
}
