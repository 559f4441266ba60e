import Foundation
import Glibc
import POSIX
import Supervisor
import Testing

/// `events` across a supervisor restart, share and unshare as events, a session
/// its group's destroy ended, Ctrl-Z on a scripted enter, and names beside uids
/// in journal messages.
@Suite struct EventsAndJobControlTests {
    /// `nsgroup events` (text, or `--json`) running as `user`, stdout and stderr into one log.
    final class Watcher {
        let log: String
        let process: BackgroundProcess

        init(_ supervisor: TestSupervisor, as user: TestUser, json: Bool = false, tag: String) throws {
            log = supervisor.directory + "/events-\(tag).log"
            process = try BackgroundProcess("/usr/bin/setpriv",
                                            ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--",
                                             Products.nsgroup, "--socket", supervisor.socketPath, "events"] + (json ? ["--json"] : []),
                                            log: log)
        }

        var lines: [String] {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }

        /// The `--json` lines as objects.
        var events: [[String: Any]] {
            lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }

        /// Waits (bounded; failing the test) for a line that satisfies `matches`, and returns it.
        @discardableResult
        func waitFor(_ what: String, sourceLocation: SourceLocation = #_sourceLocation,
                     _ matches: (String) -> Bool) throws -> String {
            var found: String?
            try waitUntil("\(what) in the events log:\n\(lines.joined(separator: "\n"))", timeoutSeconds: 10,
                          sourceLocation: sourceLocation) {
                found = lines.first(where: matches)
                return found != nil
            }
            return found!
        }

        /// Waits for the `--json` event of `type` about `group`.
        func event(_ type: String, _ group: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
            var found: [String: Any]?
            try waitUntil("a \(type) event about \(group) in the events log:\n\(lines.joined(separator: "\n"))", timeoutSeconds: 10,
                          sourceLocation: sourceLocation) {
                found = events.first { $0["type"] as? String == type && $0["group"] as? String == group }
                return found != nil
            }
            return found!
        }
    }

    /// Waits until every watcher is subscribed: a group `marker` is created and destroyed
    /// until each of them has printed its creation (a watcher not subscribed yet misses it).
    func subscribed(_ watchers: [Watcher], _ supervisor: TestSupervisor, as user: TestUser, marker: String,
                    sourceLocation: SourceLocation = #_sourceLocation) throws {
        try waitUntil("the watchers to see group \(marker) created", timeoutSeconds: 15, sourceLocation: sourceLocation) {
            _ = try supervisor.nsgroup(["create", marker], as: user)
            _ = try supervisor.nsgroup(["destroy", marker], as: user)
            return watchers.allSatisfy { watcher in
                watcher.lines.contains { $0.contains("group-created") && $0.contains(marker) }
            }
        }
    }

    @Test func eventsReconnectsWhenTheSupervisorRestarts() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let watcher = try Watcher(supervisor, as: alice, tag: "restart")
        try subscribed([watcher], supervisor, as: alice, marker: "ready")

        supervisor.stop()
        try watcher.waitFor("the lost connection said") { $0 == "nsgroup: lost the connection to nsgroupd; reconnecting" }
        #expect(watcher.process.isRunning, "events exited when the supervisor stopped:\n\(watcher.lines)")
        try supervisor.start()
        try watcher.waitFor("the reconnection said") { $0.hasPrefix("nsgroup: reconnected to nsgroupd") }
        // The stopped supervisor left its ring to the new one: nothing was missed.
        #expect(!watcher.lines.contains { $0.hasPrefix("nsgroup: some events were missed") }, "\(watcher.lines)")

        #expect(try supervisor.nsgroup(["create", "after"], as: alice).status == 0)
        let line = try watcher.waitFor("group-created after") { $0.contains("group-created") && $0.hasSuffix("after (owner \(alice.name) (\(alice.uid)))") }
        #expect(line.contains("  group-created   after"), "\(line)")
        #expect(watcher.process.isRunning)
    }

    @Test func shareAndUnshareAreEventsToWhoMaySeeTheGroup() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice(), bob = try TestUser.bob(), dave = try TestUser.dave()
        #expect(try supervisor.nsgroup(["create", "lab"], as: alice).status == 0)
        let owner = try Watcher(supervisor, as: alice, tag: "alice")
        let owners = try Watcher(supervisor, as: alice, json: true, tag: "alice-json")
        let member = try Watcher(supervisor, as: bob, json: true, tag: "bob")
        let stranger = try Watcher(supervisor, as: dave, json: true, tag: "dave")
        // root's marker groups: only root's own watchers would see them; each user's own instead.
        try subscribed([owner, owners], supervisor, as: alice, marker: "ready-a")
        try subscribed([member], supervisor, as: bob, marker: "ready-b")
        try subscribed([stranger], supervisor, as: dave, marker: "ready-d")

        #expect(try supervisor.nsgroup(["share", "lab", bob.name], as: alice).status == 0)
        let shared = try owners.event("group-shared", "lab")
        #expect(shared["added"] as? [String] == [bob.name])
        #expect(shared["members"] as? [String] == [bob.name])
        #expect(shared["owner"] as? Int == Int(alice.uid))
        // The new member hears of it: she may see the group now.
        let sharedToBob = try member.event("group-shared", "lab")
        #expect(sharedToBob["members"] as? [String] == [bob.name])
        try owner.waitFor("the text line of the share") {
            $0.hasSuffix("group-shared    lab (owner \(alice.name) (\(alice.uid))): shared with \(bob.name); members: \(bob.name)")
        }

        // A share that changes nothing is no event.
        #expect(try supervisor.nsgroup(["share", "lab", bob.name], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["unshare", "lab", bob.name], as: alice).status == 0)
        let unshared = try owners.event("group-unshared", "lab")
        #expect(unshared["removed"] as? [String] == [bob.name])
        #expect(unshared["members"] as? [String] == [])
        // The removed member learns she was removed, and nothing more: not who still may see it.
        let unsharedToBob = try member.event("group-unshared", "lab")
        #expect(unsharedToBob["removed"] as? [String] == [bob.name])
        #expect(unsharedToBob["members"] == nil, "\(unsharedToBob)")
        try owner.waitFor("the text line of the unshare") {
            $0.hasSuffix("group-unshared  lab (owner \(alice.name) (\(alice.uid))): no longer shared with \(bob.name); members: none")
        }

        // After the unshare, bob sees nothing more of lab; dave never did. A last event each
        // (a group of their own) shows their watchers have read everything before it.
        #expect(try supervisor.nsgroup(["share", "lab", dave.name], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["unshare", "lab", dave.name], as: alice).status == 0)
        _ = try owners.event("group-destroyed", "ready-a")
        #expect(try supervisor.nsgroup(["create", "last-b"], as: bob).status == 0)
        #expect(try supervisor.nsgroup(["create", "last-d"], as: dave).status == 0)
        _ = try member.event("group-created", "last-b")
        _ = try stranger.event("group-created", "last-d")
        #expect(owners.events.filter { $0["type"] as? String == "group-shared" }.count == 2, "\(owners.lines)")
        #expect(member.events.filter { $0["group"] as? String == "lab" }.count == 2, "\(member.lines)")
        // dave was a member for a moment: he saw his own share and unshare, then nothing more.
        let davesOfLab = stranger.events.filter { $0["group"] as? String == "lab" }
        #expect(davesOfLab.map { $0["type"] as? String } == ["group-shared", "group-unshared"], "\(stranger.lines)")
        #expect(davesOfLab.last?["members"] == nil)
    }

    @Test func aSessionEndedByDestroySaysSoAndExits125() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice(), carol = try TestUser.carol()
        #expect(try supervisor.nsgroup(["create", "doomed"], as: alice).status == 0)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=\(alice.uid)", "--regid=\(alice.gid)", "--init-groups", "--",
                             Products.nsgroup, "--socket", supervisor.socketPath, "enter", "doomed", "--", "sleep", "300"]
        let stderr = Pipe()
        process.standardInput = FileHandle.nullDevice
        process.standardError = stderr
        try process.run()
        defer { if process.isRunning { process.terminate(); process.waitUntilExit() } }
        try waitUntil("the session to start") {
            (try supervisor.inspect("doomed")["sessions"] as? [[String: Any]])?.count == 1
        }
        // An admin destroys it from elsewhere.
        #expect(try supervisor.nsgroup(["destroy", "doomed"], as: carol).status == 0)
        let said = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(said == "nsgroup: group doomed was destroyed\n")
        #expect(process.terminationStatus == 125)
    }

    @Test func aTerminalSessionEndedByDestroySaysSoOnALineOfItsOwn() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "doomed"], as: alice).status == 0)
        let tmux = try Tmux(command: "setpriv --reuid=\(alice.uid) --regid=\(alice.gid) --init-groups -- \(Products.nsgroup) --socket \(supervisor.socketPath) enter -t doomed -- sh -c 'printf no-newline; sleep 300'; echo client-exit=$?; sleep 60")
        try tmux.waitFor("no-newline")
        #expect(try supervisor.nsgroup(["destroy", "doomed"], as: alice).status == 0)
        let screen = try tmux.waitFor(line: "client-exit=125")
        let lines = Tmux.lines(screen)
        #expect(lines.contains("no-newline"), "\(screen)")
        #expect(lines.contains("nsgroup: group doomed was destroyed"), "\(screen)")
    }

    /// The state letter of a process (/proc/PID/stat), nil once it is gone.
    static func state(_ pid: pid_t) -> String? {
        try? ProcFS.statusField(pid: pid, "State").map { String($0.prefix(1)) }
    }

    /// Every process whose process group is `group`.
    static func processGroup(_ group: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(pid_t.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            // After "pid (comm)": state, ppid, pgrp.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && pid_t(fields[2]) == group
        }
    }

    @Test func ctrlZStopsAScriptedSessionAndFgContinuesIt() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "jobs"], as: alice).status == 0)
        let tmux = try Tmux(command: "setpriv --reuid=\(alice.uid) --regid=\(alice.gid) --init-groups -- env PS1='job$ ' bash --norc --noprofile -i")
        try tmux.waitFor("job$")
        try tmux.sendKeys("\(Products.nsgroup) --socket \(supervisor.socketPath) enter -T jobs -- sh -c 'while :; do sleep 0.1; done'")
        var leader: pid_t = 0
        try waitUntil("the session to start") {
            guard let session = (try supervisor.inspect("jobs")["sessions"] as? [[String: Any]])?.first,
                  let pid = session["pid"] as? Int else { return false }
            leader = pid_t(pid)
            return true
        }
        // The loop runs: its sleeps come and go.
        try waitUntil("a sleep in the session's process group") { Self.processGroup(leader).count >= 2 }

        try run("/usr/bin/tmux", ["-L", tmux.server, "send-keys", "-t", "t", "C-z"])
        try tmux.waitFor("Stopped")
        // Everything in the session's process group is stopped: the shell and its sleep.
        try waitUntil("the session's processes to be stopped (T): \(Self.processGroup(leader).map { "\($0)=\(Self.state($0) ?? "-")" })") {
            let members = Self.processGroup(leader)
            return !members.isEmpty && members.allSatisfy { Self.state($0) == "T" }
        }
        // And they stay stopped: no new sleep starts.
        let stopped = Set(Self.processGroup(leader))
        usleep(500_000)
        #expect(Set(Self.processGroup(leader)) == stopped)
        #expect(Self.state(leader) == "T")

        try tmux.sendKeys("fg")
        try waitUntil("the session to run again") {
            let members = Self.processGroup(leader)
            return Self.state(leader) != "T" && !members.isEmpty && !Set(members).isSubset(of: stopped)
        }
        #expect(Self.state(leader) != "T")
    }

    @Test func journalMessagesNameTheUsersBesideTheirUIDs() throws {
        try JournalTests.requireJournald()
        let journal = JournalTests()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice(), carol = try TestUser.carol()
        #expect(try supervisor.nsgroup(["create", "named"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["destroy", "named"], as: carol).status == 0)
        let created = try journal.one(supervisor, "groupCreated", ["NSGROUP_NAME=named"])
        #expect(created["MESSAGE"]?.hasPrefix("Created group named for uid \(alice.uid) (\(alice.name)), holder ") == true,
                "\(created["MESSAGE"] ?? "")")
        let destroyed = try journal.one(supervisor, "groupDestroyed", ["NSGROUP_NAME=named"])
        #expect(destroyed["MESSAGE"] == "Destroyed group named at the request of uid \(carol.uid) (\(carol.name))")
        let accepted = try journal.one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=destroy", "NSGROUP_NAME=named"])
        #expect(accepted["MESSAGE"] == "Accepted destroy of group named from uid \(carol.uid) (\(carol.name))")
    }
}
