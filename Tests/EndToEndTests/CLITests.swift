#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// The CLI as scripts and people use it: --json everywhere with JSON errors
/// and unchanged exit codes, messages in the CLI's option names, several
/// names for destroy and inspect, destroy --all, list -q/--no-legend, the
/// ls/rm/exec aliases, and user names beside uids.
@Suite struct CLITests {
    private func aliceGroups(_ names: String...) throws -> (TestSupervisor, TestUser) {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        for name in names {
            let created = try supervisor.nsgroup(["create", name, "--ns", "uts,ipc"], as: alice)
            guard created.status == 0 else { throw HarnessError("create \(name) failed: \(created.stderr)") }
        }
        return (supervisor, alice)
    }

    /// stderr's one line as `{"error":{"reason":…,"message":…}}`: the error object, or nil (an issue) when it is not that.
    private func jsonError(_ result: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) -> [String: Any]? {
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 2, lines[1].isEmpty,
              let object = try? JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any],
              object.count == 1, let error = object["error"] as? [String: Any],
              error["reason"] is String, let message = error["message"] as? String, !message.isEmpty
        else {
            Issue.record("stderr is not one JSON error line: \(result.stderr)", sourceLocation: sourceLocation)
            return nil
        }
        return error
    }

    private func json(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> Any? {
        let value = try? JSONSerialization.jsonObject(with: Data(text.utf8))
        if value == nil { Issue.record("not JSON: \(text)", sourceLocation: sourceLocation) }
        return value
    }

    @Test func jsonErrorsKeepTheExitCodes() throws {
        let (supervisor, alice) = try aliceGroups("mine")
        // No supervisor.
        let none = try run(Products.nsgroup, ["--socket", supervisor.directory + "/none.sock", "list", "--json"], as: alice)
        #expect(none.status == 125 && none.stdout.isEmpty)
        #expect(jsonError(none)?["reason"] as? String == "unavailable")
        // A refusal, for commands that had no JSON before too.
        for arguments in [["inspect", "nope"], ["destroy", "nope"], ["freeze", "nope"], ["thaw", "nope"], ["share", "nope", "nsg-bob"],
                          ["unshare", "nope", "nsg-bob"], ["ps", "nope"], ["enter", "nope", "true"], ["exec", "nope", "true"]] {
            // --json right after the subcommand: after enter's NAME it would be the command's.
            let result = try supervisor.nsgroup([arguments[0], "--json"] + arguments.dropFirst(), as: alice)
            #expect(result.status == 125 && result.stdout.isEmpty, "\(arguments): \(result.stderr) \(result.stdout)")
            let error = jsonError(result)
            #expect(error?["reason"] as? String == "not_found", "\(arguments)")
            #expect(error?["message"] as? String == "no group named \"nope\"", "\(arguments)")
        }
        let denied = try supervisor.nsgroup(["destroy", "mine", "--json"], as: try TestUser.bob())
        #expect(denied.status == 125)
        #expect(["not_found", "permission_denied"].contains(jsonError(denied)?["reason"] as? String ?? ""))
        // Usage errors: the parser's, and the checks nsgroup makes before sending.
        for arguments in [["list", "--bogus"], ["create", "g", "--ns", "mnt,,uts"], ["enter", "--env", "1A=b", "mine", "id"],
                          ["exec", "mine"], ["destroy", "--all", "mine"], ["inspect"], ["create"]] {
            let result = try supervisor.nsgroup([arguments[0], "--json"] + arguments.dropFirst(), as: alice)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(jsonError(result)?["reason"] as? String == "usage", "\(arguments)")
        }
        // The same without --json: the same statuses, text.
        #expect(try supervisor.nsgroup(["destroy", "nope"], as: alice).stderr == "nsgroup: no group named \"nope\"\n")
        let usage = try supervisor.nsgroup(["create", "g", "--ns", "mnt,,uts"], as: alice)
        #expect(usage.status == 64 && usage.stderr.hasPrefix("nsgroup: --ns has an empty item"))
        // Nothing was created by the refused create.
        #expect(try supervisor.groupNames() == ["mine"])
        // After NAME, --json is the command's.
        let commands = try supervisor.nsgroup(["enter", "nope", "true", "--json"], as: alice)
        #expect(commands.status == 125 && commands.stderr == "nsgroup: no group named \"nope\"\n")
        // enter's command's own status and output stay its own with --json.
        let own = try supervisor.nsgroup(["enter", "--json", "mine", "sh", "-c", "echo out; echo err >&2; exit 3"], as: alice)
        #expect(own.status == 3 && own.stdout == "out\n" && own.stderr == "err\n")
        let missing = try supervisor.nsgroup(["exec", "--json", "mine", "no-such-command-anywhere"], as: alice)
        #expect(missing.status == 127)
        #expect(jsonError(missing)?["reason"] as? String == "operation_failed")
    }

    @Test func jsonOutputOfEveryCommand() throws {
        let (supervisor, alice) = try aliceGroups("web", "db")
        let share = try supervisor.nsgroup(["share", "web", "nsg-bob", "--json"], as: alice)
        #expect(share.status == 0 && (json(share.stdout) as? [String: Any])?["members"] as? [String] == ["nsg-bob"])
        let unshare = try supervisor.nsgroup(["unshare", "web", "nsg-bob", "--json"], as: alice)
        #expect(unshare.status == 0 && (json(unshare.stdout) as? [String: Any])?["members"] as? [String] == [])
        let freeze = try supervisor.nsgroup(["freeze", "web", "--json"], as: alice)
        #expect(freeze.status == 0 && (json(freeze.stdout) as? [String: Any])?["frozen"] as? Bool == true)
        let thaw = try supervisor.nsgroup(["thaw", "web", "--json"], as: alice)
        #expect(thaw.status == 0 && (json(thaw.stdout) as? [String: Any])?["frozen"] as? Bool == false)
        let version = try supervisor.nsgroup(["version", "--json"], as: alice)
        #expect(version.status == 0 && json(version.stdout) is [String: Any])
        let exec = try supervisor.nsgroup(["exec", "--json", "web", "echo", "{\"a\":1}"], as: alice)
        #expect(exec.status == 0 && (json(exec.stdout) as? [String: Any])?["a"] as? Int == 1 && exec.stderr.isEmpty)
        let destroy = try supervisor.nsgroup(["destroy", "web", "--json"], as: alice)
        #expect(destroy.status == 0 && (json(destroy.stdout) as? [String: Any])?["name"] as? String == "web")
        let several = try supervisor.nsgroup(["rm", "--json", "db"], as: alice)
        #expect(several.status == 0 && (json(several.stdout) as? [String: Any])?["name"] as? String == "db")
        #expect(try supervisor.groupNames().isEmpty)
    }

    @Test func messagesNameTheOptions() throws {
        let supervisor = try TestSupervisor()
        // Root may publish a netns; the supervisor refuses it without net.
        let netns = try supervisor.nsgroup(["create", "g", "--ns", "uts", "--netns-name", "x"])
        #expect(netns.status == 125)
        #expect(netns.stderr == "nsgroup: create: --netns-name needs a net namespace\n", "\(netns.stderr)")
        let offset = try supervisor.nsgroup(["create", "g", "--ns", "time,mnt", "--boottime-offset", "-999999999999999"])
        #expect(offset.status == 125)
        #expect(offset.stderr.hasPrefix("nsgroup: create: --boottime-offset must be") && !offset.stderr.contains("boottimeOffset"),
                "\(offset.stderr)")
        let created = try supervisor.nsgroup(["create", "g", "--ns", "time,mnt,pid", "--boottime-offset", "-60"])
        #expect(created.status == 0, "\(created.stderr)")
        let cwd = try supervisor.nsgroup(["enter", "--cwd", "relative", "g", "true"])
        #expect(cwd.status == 125 && cwd.stderr == "nsgroup: enter: --cwd must be an absolute path\n", "\(cwd.stderr)")
        let jsonCwd = try supervisor.nsgroup(["enter", "--json", "--cwd", "relative", "g", "true"])
        #expect(jsonError(jsonCwd)?["message"] as? String == "enter: --cwd must be an absolute path")
    }

    @Test func severalNames() throws {
        let (supervisor, alice) = try aliceGroups("a", "b", "c", "d")
        let inspect = try supervisor.nsgroup(["inspect", "a", "b"], as: alice)
        #expect(inspect.status == 0)
        #expect(inspect.stdout.split(separator: "\n").filter { $0.hasPrefix("Name:") } == ["Name:        a", "Name:        b"])
        let array = try supervisor.nsgroup(["inspect", "--json", "a", "b"], as: alice)
        #expect((json(array.stdout) as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["a", "b"])
        let partly = try supervisor.nsgroup(["inspect", "a", "nope", "b"], as: alice)
        #expect(partly.status == 125 && partly.stdout.contains("Name:        b") && partly.stderr == "nsgroup: no group named \"nope\"\n")
        // destroy goes on after a failure, reports each, and exits 125.
        let destroy = try supervisor.nsgroup(["destroy", "a", "nope", "b", "gone"], as: alice)
        #expect(destroy.status == 125)
        #expect(destroy.stderr == "nsgroup: no group named \"nope\"\nnsgroup: no group named \"gone\"\n", "\(destroy.stderr)")
        #expect(try supervisor.groupNames().sorted() == ["c", "d"])
        let jsonDestroy = try supervisor.nsgroup(["destroy", "--json", "c", "x", "y"], as: alice)
        #expect(jsonDestroy.status == 125)
        #expect((json(jsonDestroy.stdout) as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["c"])
        #expect((jsonError(jsonDestroy)?["failures"] as? [[String: Any]])?.count == 2)
        #expect(try supervisor.groupNames() == ["d"])
    }

    @Test func destroyAll() throws {
        let (supervisor, alice) = try aliceGroups("a1", "a2")
        let bob = try TestUser.bob()
        #expect(try supervisor.nsgroup(["create", "b1", "--ns", "uts"], as: bob).status == 0)
        // Bob shares his group with alice: she sees it, but --all is her own groups only.
        #expect(try supervisor.nsgroup(["share", "b1", "nsg-alice"], as: bob).status == 0)
        // Without a terminal --all wants --yes, and destroys nothing without it.
        let unasked = try supervisor.nsgroup(["destroy", "--all"], as: alice)
        #expect(unasked.status == 64 && unasked.stderr.contains("--yes"), "\(unasked.stderr)")
        #expect(try supervisor.groupNames().sorted() == ["a1", "a2", "b1"])
        let all = try supervisor.nsgroup(["rm", "--all", "-y", "--json"], as: alice)
        #expect(all.status == 0, "\(all.stderr)")
        #expect(Set((json(all.stdout) as? [[String: Any]])?.compactMap { $0["name"] as? String } ?? []) == ["a1", "a2"])
        #expect(try supervisor.groupNames() == ["b1"])
        #expect(try supervisor.nsgroup(["destroy", "--all", "--yes"], as: alice).stdout == "no groups to destroy\n")
        // An admin's --all is every group.
        #expect(try supervisor.nsgroup(["create", "c1", "--ns", "uts"], as: try TestUser.carol()).status == 0)
        let admin = try supervisor.nsgroup(["destroy", "--all", "--yes"], as: try TestUser.carol())
        #expect(admin.status == 0, "\(admin.stderr)")
        #expect(try supervisor.groupNames().isEmpty)
    }

    @Test func destroyAllAsksOnATerminal() throws {
        let (supervisor, alice) = try aliceGroups("t1", "t2")
        let command = "setpriv --reuid=\(alice.uid) --regid=\(alice.gid) --init-groups -- \(Products.nsgroup) --socket \(supervisor.socketPath)"
        let tmux = try Tmux(command: "\(command) destroy --all; echo first-exit=$?; \(command) destroy --all; echo second-exit=$?; sleep 60")
        try tmux.waitFor("Destroy 2 groups (t1, t2)? [y/N]")
        try tmux.sendKeys("n")
        try tmux.waitFor("first-exit=125")
        #expect(try supervisor.groupNames().sorted() == ["t1", "t2"])
        try tmux.waitFor("Destroy 2 groups (t1, t2)? [y/N]")
        try tmux.sendKeys("y")
        try tmux.waitFor("second-exit=0")
        #expect(try supervisor.groupNames().isEmpty)
    }

    @Test func listQuietAndNoLegend() throws {
        let (supervisor, alice) = try aliceGroups("one", "two")
        #expect(try supervisor.nsgroup(["list", "-q"], as: alice).stdout == "one\ntwo\n")
        #expect(try supervisor.nsgroup(["ls", "--quiet"], as: alice).stdout == "one\ntwo\n")
        let full = try supervisor.nsgroup(["list"], as: alice).stdout.split(separator: "\n")
        let bare = try supervisor.nsgroup(["ls", "--no-legend"], as: alice).stdout.split(separator: "\n")
        #expect(full.count == 3 && full[0].hasPrefix("NAME") && bare.count == 2 && bare[0].hasPrefix("one"))
        let ps = try supervisor.nsgroup(["ps", "one"], as: alice).stdout.split(separator: "\n")
        let psBare = try supervisor.nsgroup(["ps", "--no-legend", "one"], as: alice).stdout.split(separator: "\n")
        #expect(ps.first?.hasPrefix("PID") == true && psBare.count == ps.count - 1 && psBare.first?.hasPrefix("PID") == false)
    }

    @Test func aliases() throws {
        let (supervisor, alice) = try aliceGroups("lab")
        let exec = try supervisor.nsgroup(["exec", "lab", "id", "-u"], as: alice)
        #expect(exec.status == 0 && exec.stdout == "\(alice.uid)\n", "\(exec.stderr)")
        let noCommand = try supervisor.nsgroup(["exec", "lab"], as: alice)
        #expect(noCommand.status == 64 && noCommand.stderr.hasPrefix("nsgroup: exec needs a command"))
        #expect(try supervisor.nsgroup(["ls", "-q"], as: alice).stdout == "lab\n")
        #expect(try supervisor.nsgroup(["rm", "lab"], as: alice).status == 0)
        #expect(try supervisor.groupNames().isEmpty)
    }

    @Test func namesBesideUids() throws {
        let (supervisor, alice) = try aliceGroups("named")
        let log = supervisor.directory + "/events.log"
        let events = try BackgroundProcess("/usr/bin/setpriv", ["--reuid=\(alice.uid)", "--regid=\(alice.gid)", "--init-groups", "--",
                                                                Products.nsgroup, "--socket", supervisor.socketPath, "events"], log: log)
        defer { events.stop() }
        let text = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        // Until the watcher has subscribed, freezes go unseen: freeze and thaw until one shows.
        try waitUntil("a group-frozen event") {
            _ = try supervisor.nsgroup(["freeze", "named"], as: alice)
            _ = try supervisor.nsgroup(["thaw", "named"], as: alice)
            return text().contains("group-frozen")
        }
        #expect(text().contains("named (owner nsg-alice (\(alice.uid)))"), "\(text())")
        let session = try supervisor.startEnter("named", ["sleep", "30"], as: alice)
        defer { session.terminate() }
        try waitUntil("a session-started event") { text().contains("session-started") }
        #expect(text().contains("user nsg-alice (\(alice.uid)):"), "\(text())")
        let sessions = try supervisor.nsgroup(["inspect", "named"], as: alice).stdout
        #expect(sessions.contains("user nsg-alice (\(alice.uid))"), "\(sessions)")
    }
}
