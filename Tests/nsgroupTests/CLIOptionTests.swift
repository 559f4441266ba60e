#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Client
import POSIX
@testable import nsgroup
import RPC
import Testing

@Suite("--json, the checks made before sending, several names, --all, aliases", .serialized)
struct CLIOptionTests {
    private func parse(_ arguments: [String]) throws -> any ParsableCommand {
        try NSGroup.parseAsRoot(NSGroup.withEnterTerminator(arguments))
    }

    private func usageError(_ arguments: [String]) -> Bool {
        do {
            _ = try parse(arguments)
            return false
        } catch {
            return NSGroup.exitCode(for: error).rawValue == ExitStatus.usage
        }
    }

    @Test func jsonIsAskedForOnlyBeforeTheCommand() {
        #expect(Output.wantsJSON(["list", "--json"]))
        #expect(Output.wantsJSON(["--json", "bogus"]))
        #expect(Output.wantsJSON(NSGroup.withEnterTerminator(["enter", "--json", "lab", "id"])))
        #expect(!Output.wantsJSON(NSGroup.withEnterTerminator(["enter", "lab", "jq", "--json"])))
        #expect(!Output.wantsJSON(NSGroup.withEnterTerminator(["exec", "lab", "--", "x", "--json"])))
        #expect(!Output.wantsJSON(["list"]))
    }

    @Test func everyCommandTakesJSON() throws {
        for arguments in [["create", "g"], ["list"], ["inspect", "g"], ["ps", "g"], ["share", "g", "bob"], ["unshare", "g", "bob"],
                          ["freeze", "g"], ["thaw", "g"], ["destroy", "g"], ["events"], ["describe"], ["version"], ["enter", "g"], ["exec", "g", "id"]] {
            #expect(throws: Never.self, "\(arguments)") { _ = try parse(arguments + ["--json"]) }
        }
    }

    @Test func anErrorWithJSONIsOneObjectOnOneLine() throws {
        Output.json = true
        defer { Output.json = false }
        let line = errorLine("no group named \"x\"\nsecond line", reason: "not_found", extra: ["hint": .string("h")])
        #expect(line.hasSuffix("\n") && line.dropLast().allSatisfy { $0 != "\n" })
        let parsed = try JSONParser.parse(String(line.dropLast()))
        let error = try #require(parsed.objectValue?["error"]?.objectValue)
        #expect(error["reason"] == .string("not_found"))
        #expect(error["message"] == .string("no group named \"x\"\nsecond line"))
        #expect(error["hint"] == .string("h"))
        #expect(parsed.objectValue?.count == 1)
    }

    @Test func anErrorWithoutJSONIsOneTextLine() {
        #expect(errorLine("no group named \"x\"", reason: "not_found") == "nsgroup: no group named \"x\"\n")
    }

    @Test func reasons() {
        #expect(CLIReason.of(.unreachable(path: "/x", Errno(rawValue: ENOENT))) == "unavailable")
        #expect(CLIReason.of(.server(RPCError(.notFound, "no group"))) == "not_found")
        #expect(CLIReason.of(.server(RPCError(.permissionDenied, "no"))) == "permission_denied")
        #expect(CLIReason.of(.disconnected) == "disconnected")
        #expect(CLIReason.of(.protocolViolation("?")) == "io")
    }

    @Test func supervisorMessagesNameTheOptions() {
        #expect(FlagNames.rewrite("create: \"netnsName\" needs a net namespace") == "create: --netns-name needs a net namespace")
        #expect(FlagNames.rewrite("create: \"boottimeOffset\" must be an integer") == "create: --boottime-offset must be an integer")
        #expect(FlagNames.rewrite("enter: \"cwd\" must be an absolute path") == "enter: --cwd must be an absolute path")
        #expect(FlagNames.rewrite("share: \"members\" must name at least one user or @group")
                == "share: the users and @groups must name at least one user or @group")
        // Other methods' messages, and messages with no method, stay as they are.
        #expect(FlagNames.rewrite("no group named \"cwd\"") == "no group named \"cwd\"")
        #expect(describe(.server(RPCError(.invalidParams, "create: \"cpuWeight\" must be …"))) == "create: --cpu-weight must be …")
    }

    @Test func everyProtocolMemberOfCreateHasAnOption() {
        var params = CreateParams(name: "g", namespaces: ["mnt"], hostname: "h", tmpfs: ["/t"], binds: ["/a:/b"], members: ["bob"],
                                  monotonicOffset: 1, boottimeOffset: 1, netnsName: "n")
        params.lifetime = 1
        params.idle = 1
        params.limits = GroupLimits(memory: 1, pids: 1, cpuWeight: 1, cpus: 1)
        var members = params.json.objectValue.map { Array($0).map(\.key) } ?? []
        members += params.limits.json.objectValue.map { Array($0).map(\.key) } ?? []
        #expect(members.count == 16)
        for member in members where member != "limits" {
            #expect(FlagNames.table["create"]?[member] != nil, "\(member)")
        }
    }

    @Test func environmentNames() {
        #expect(usageError(["enter", "--env", "1A=b", "g", "id"]))
        #expect(usageError(["enter", "--env", "A-B=1", "g", "id"]))
        #expect(usageError(["enter", "--env", "=x", "g", "id"]))
        #expect(usageError(["enter", "--env", "A", "g", "id"]))
        #expect(!usageError(["enter", "--env", "_a1=", "--env", "PATH=/bin:/x=y", "g", "id"]))
        #expect(isEnvironmentName("A_1") && isEnvironmentName("_") && !isEnvironmentName("") && !isEnvironmentName("é"))
    }

    @Test func emptyItemsInCommaLists() {
        #expect(usageError(["create", "g", "--ns", "mnt,,uts"]))
        #expect(usageError(["create", "g", "--ns", ",mnt"]))
        #expect(usageError(["create", "g", "--ns", "mnt,"]))
        #expect(usageError(["create", "g", "--ns", ""]))
        #expect(usageError(["create", "g", "--tmpfs", "/x:size=1m,,mode=700"]))
        #expect(!usageError(["create", "g", "--ns", "mnt,uts", "--tmpfs", "/x:size=1m,mode=700", "--tmpfs", "/y"]))
        #expect(!usageError(["create", "g", "--ns", "time,mnt", "--boottime-offset", "-60"]))
    }

    @Test func severalNames() throws {
        let destroy = try #require(try parse(["destroy", "a", "b", "c"]) as? Destroy)
        #expect(destroy.names == ["a", "b", "c"] && !destroy.all)
        let inspect = try #require(try parse(["inspect", "a", "b"]) as? Inspect)
        #expect(inspect.names == ["a", "b"])
        #expect(usageError(["inspect"]))
    }

    @Test func destroyAll() throws {
        let all = try #require(try parse(["destroy", "--all", "-y"]) as? Destroy)
        #expect(all.all && all.yes && all.names.isEmpty)
        #expect(try #require(try parse(["rm", "--all", "--yes"]) as? Destroy).yes)
        #expect(usageError(["destroy", "--all", "a"]))
        #expect(usageError(["destroy"]))
    }

    @Test func aliases() throws {
        #expect(try parse(["ls", "-q"]) is List)
        #expect(try parse(["rm", "a"]) is Destroy)
        let exec = try #require(try parse(["exec", "lab", "id", "-u"]) as? Exec)
        #expect(exec.enter.name == "lab" && exec.enter.command == ["id", "-u"])
        let options = try #require(try parse(["--socket", "/s", "exec", "-T", "--env", "A=1", "lab", "ls", "-T"]) as? Exec)
        #expect(options.enter.noTTY && options.enter.environment == ["A=1"] && options.enter.command == ["ls", "-T"])
        #expect(options.enter.global.socketPath == "/s")
        #expect(usageError(["exec", "lab"]))
        #expect(usageError(["exec", "--", "lab"]))
    }

    @Test func listAndPsLegends() throws {
        let list = try #require(try parse(["list", "-q", "--no-legend"]) as? List)
        #expect(list.quiet && list.noLegend)
        #expect(try #require(try parse(["ps", "g", "--no-legend"]) as? Ps).noLegend)
    }

    @Test func namesBesideUids() {
        #expect(userName(0) == "root (0)")
        #expect(userName(4_000_000_000) == "4000000000")
    }
}
