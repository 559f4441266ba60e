import Client
import Foundation
import Glibc
import POSIX
import RPC
import Testing

/// User namespaces for non-root users, time namespaces, ip netns interop,
/// mounts at creation and the event stream, end to end with the real
/// kernel and the real ip, mount and nsenter.
@Suite struct UserNamespaceTests {
    /// The user's own ranges in a subordinate id file, as newuidmap reads them.
    static func ranges(_ file: String, _ user: TestUser) throws -> [String] {
        try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
            .map { $0.split(separator: ":").map(String.init) }
            .filter { $0.count == 3 && ($0[0] == user.name || $0[0] == String(user.uid)) }
            .map { "\($0[1]) \($0[2])" }
    }

    @Test func theOwnerIsRootInsideAndMountsWhatTheHostNeverSees() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let created = try supervisor.nsgroup(["create", "own", "--ns", "user,mnt,uts,ipc,pid,net"], as: alice)
        #expect(created.status == 0, "\(created.stderr)")

        // The maps: root inside is alice; 1… are her own subordinate ids.
        let info = try supervisor.inspect("own")
        var inside = 1
        let expectedUIDs = ["0 \(alice.uid) 1"] + (try Self.ranges("/etc/subuid", alice)).map { range -> String in
            defer { inside += Int(range.split(separator: " ")[1])! }
            return "\(inside) \(range)"
        }
        #expect(info["uidMap"] as? [String] == expectedUIDs)
        #expect((info["gidMap"] as? [String])?.first == "0 \(alice.gid) 1")
        let maps = try supervisor.nsgroup(["enter", "own", "--", "cat", "/proc/self/uid_map"], as: alice).stdout
        #expect(maps.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") } == expectedUIDs)

        // Root inside, with every capability there.
        let status = try supervisor.nsgroup(["enter", "own", "--", "sh", "-c", "id -u; id -g; grep CapEff /proc/self/status"], as: alice)
        let lines = status.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "0")
        #expect(lines.dropFirst().first == "0")
        #expect(lines.last?.hasSuffix("000001ffffffffff") == true, "\(lines)")

        // A plain mount inside, seen by a second enter and not by the host.
        let mounted = try supervisor.nsgroup(["enter", "own", "--", "sh", "-c",
                                              "mount -t tmpfs userns-probe /mnt && echo inside > /mnt/f && readlink /proc/self/ns/mnt"], as: alice)
        #expect(mounted.status == 0, "\(mounted.stderr)")
        let groupMnt = mounted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(groupMnt != (try ProcFS.readLink("/proc/self/ns/mnt")), "the mount namespace differs inside and out")
        let again = try supervisor.nsgroup(["enter", "own", "--", "sh", "-c", "grep userns-probe /proc/mounts; cat /mnt/f"], as: alice)
        #expect(again.stdout.contains("userns-probe /mnt tmpfs"))
        #expect(again.stdout.hasSuffix("inside\n"))
        #expect(try String(contentsOfFile: "/proc/mounts", encoding: .utf8).contains("userns-probe") == false)

        // No privilege in the host's user namespace, seen from the host.
        let sleeper = try supervisor.startEnter("own", ["sleep", "30"], as: alice)
        defer { kill(sleeper.processIdentifier, SIGTERM); sleeper.waitUntilExit() }
        #expect(eventually { ((try? supervisor.inspect("own")["sessions"] as? [[String: Any]])??.count ?? 0) == 1 })
        let pid = pid_t(try #require((try supervisor.inspect("own")["sessions"] as? [[String: Any]])?.first?["pid"] as? Int))
        #expect(try ProcFS.statusField(pid: pid, "Uid") == "\(alice.uid)\t\(alice.uid)\t\(alice.uid)\t\(alice.uid)",
                "on the host it is alice, not root")
        #expect(try namespaceInode("/proc/\(pid)/ns/user") != namespaceInode("/proc/self/ns/user"),
                "its capabilities are those of its own user namespace")
        let shadow = try supervisor.nsgroup(["enter", "own", "--", "cat", "/etc/shadow"], as: alice)
        #expect(shadow.status != 0, "root inside must not read the host's /etc/shadow")
    }

    @Test func aUserWithoutSubordinateIDsGetsOneIDAndNoSetgroups() throws {
        let supervisor = try TestSupervisor()
        let frank = try TestUser.frank()
        #expect(try supervisor.nsgroup(["create", "single", "--ns", "user,mnt"], as: frank).status == 0)
        let info = try supervisor.inspect("single")
        #expect(info["uidMap"] as? [String] == ["0 \(frank.uid) 1"])
        #expect(info["gidMap"] as? [String] == ["0 \(frank.gid) 1"])
        let setgroups = try supervisor.nsgroup(["enter", "single", "--", "cat", "/proc/self/setgroups"], as: frank)
        #expect(setgroups.stdout == "deny\n")
    }

    @Test func aMemberEntersAsThemselvesAndAStrangerNotAtAll() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let dave = try TestUser.dave()
        #expect(try supervisor.nsgroup(["create", "team", "--ns", "user,mnt,pid", "--member", dave.name], as: alice).status == 0)
        // Only trusting the owner (see AttackTests for the refusal without it).
        let inside = try supervisor.nsgroup(["enter", "team", "--trust-owner", "--", "sh", "-c",
                                             "id -u; readlink /proc/self/ns/user; readlink /proc/self/ns/mnt"], as: dave)
        let lines = inside.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == String(dave.uid), "a member is not root inside")
        #expect(lines.dropFirst().first == (try ProcFS.readLink("/proc/self/ns/user")), "they stay in the host's user namespace")
        let namespaces = try #require(try supervisor.inspect("team")["namespaces"] as? [String: String])
        #expect(lines.last == namespaces["mnt"])
        let bob = try TestUser.bob()
        #expect(try supervisor.nsgroup(["enter", "team", "--", "true"], as: bob).status == 125)
    }
}

@Suite struct TimeNamespaceTests {
    @Test func uptimeInsideIsShiftedByTheOffset() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let created = try supervisor.nsgroup(["create", "later", "--ns", "time,mnt,pid",
                                              "--boottime-offset", "864000", "--monotonic-offset", "3600"], as: alice)
        #expect(created.status == 0, "\(created.stderr)")
        func uptime(_ text: String) -> Double { Double(text.split(separator: " ").first ?? "") ?? -1 }
        let before = uptime(try String(contentsOfFile: "/proc/uptime", encoding: .utf8))
        let inside = uptime(try supervisor.nsgroup(["enter", "later", "--", "cat", "/proc/uptime"], as: alice).stdout)
        let after = uptime(try String(contentsOfFile: "/proc/uptime", encoding: .utf8))
        #expect(inside >= before + 864_000 && inside <= after + 864_000 + 1, "uptime \(inside) inside, \(before)…\(after) outside")
        let offsets = try supervisor.nsgroup(["enter", "later", "--", "cat", "/proc/self/timens_offsets"], as: alice).stdout
        #expect(offsets.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") } == ["monotonic 3600 0", "boottime 864000 0"])
        let info = try supervisor.inspect("later")
        #expect(info["boottimeOffset"] as? Int == 864_000)
        #expect(info["monotonicOffset"] as? Int == 3600)
        // The group's time namespace is the holder's time_for_children.
        let holder = try supervisor.holderPID("later")
        let namespaces = try #require(info["namespaces"] as? [String: String])
        #expect(namespaces["time"] == (try ProcFS.readLink("/proc/\(holder)/ns/time_for_children")))
        #expect(namespaces["time"] != (try ProcFS.readLink("/proc/self/ns/time")))
        // And it survives a restart like any group.
        supervisor.stop()
        try supervisor.start()
        #expect(uptime(try supervisor.nsgroup(["enter", "later", "--", "cat", "/proc/uptime"], as: alice).stdout) > before + 864_000)
    }

    @Test func offsetsNeedATimeNamespace() throws {
        let supervisor = try TestSupervisor()
        let result = try supervisor.nsgroup(["create", "x", "--ns", "uts", "--boottime-offset", "5"])
        #expect(result.stderr == "nsgroup: create: time offsets need a time namespace\n")
    }
}

@Suite struct NetnsInteropTests {
    @Test func twoGroupsTalkOverAVethPairSetUpWithIp() throws {
        let supervisor = try TestSupervisor()
        let a = "nsg-t\(getpid())-a"
        let b = "nsg-t\(getpid())-b"
        #expect(try supervisor.nsgroup(["create", "left", "--ns", "net,uts", "--netns-name", a]).status == 0)
        #expect(try supervisor.nsgroup(["create", "right", "--ns", "net,uts", "--netns-name", b]).status == 0)
        #expect(FileManager.default.fileExists(atPath: "/run/netns/\(a)"))
        let left = try supervisor.holderPID("left")
        // ip and nsenter know them by name.
        #expect(try run("/usr/bin/ip", ["netns", "identify", String(left)]).stdout == a + "\n")
        let viaNsenter = try run("/usr/bin/nsenter", ["--net=/run/netns/\(a)", "readlink", "/proc/self/ns/net"]).stdout
        #expect(viaNsenter == (try ProcFS.readLink("/proc/\(left)/ns/net")) + "\n")
        let hostLinks = try run("/usr/bin/ip", ["-o", "link"]).stdout
        let hostAddresses = try run("/usr/bin/ip", ["-o", "addr"]).stdout
        // A veth pair between the two groups, with documentation-range addresses
        // (TEST-NET-2) that exist only inside those two namespaces.
        for command in [["netns", "exec", a, "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b],
                        ["netns", "exec", a, "ip", "addr", "add", "198.51.100.1/30", "dev", "va"],
                        ["netns", "exec", b, "ip", "addr", "add", "198.51.100.2/30", "dev", "vb"],
                        ["netns", "exec", a, "ip", "link", "set", "va", "up"],
                        ["netns", "exec", b, "ip", "link", "set", "vb", "up"]] {
            let result = try run("/usr/bin/ip", command)
            #expect(result.status == 0, "ip \(command.joined(separator: " ")): \(result.stderr)")
        }
        let ping = try run("/usr/bin/ip", ["netns", "exec", a, "ping", "-c", "1", "-W", "5", "198.51.100.2"])
        #expect(ping.status == 0, "\(ping.stdout) \(ping.stderr)")
        // The host's own network was never touched.
        #expect(try run("/usr/bin/ip", ["-o", "link"]).stdout == hostLinks)
        #expect(try run("/usr/bin/ip", ["-o", "addr"]).stdout == hostAddresses)
        // Destroy tears it all down.
        #expect(try supervisor.nsgroup(["destroy", "left"]).status == 0)
        #expect(try supervisor.nsgroup(["destroy", "right"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: "/run/netns/\(a)"))
        #expect(!FileManager.default.fileExists(atPath: "/run/netns/\(b)"))
    }

    @Test func publishingANetnsIsForRootAndAdmins() throws {
        let supervisor = try TestSupervisor()
        let refused = try supervisor.nsgroup(["create", "mine", "--ns", "net", "--netns-name", "nsg-t\(getpid())-x"], as: try TestUser.alice())
        #expect(refused.status == 125)
        #expect(refused.stderr.contains("publishing a net namespace in /run/netns is for root and members of nsgroup-admin"))
        let admin = try supervisor.nsgroup(["create", "theirs", "--ns", "net", "--netns-name", "nsg-t\(getpid())-y"], as: try TestUser.carol())
        #expect(admin.status == 0, "\(admin.stderr)")
        let taken = try supervisor.nsgroup(["create", "again", "--ns", "net", "--netns-name", "nsg-t\(getpid())-y"])
        #expect(taken.stderr == "nsgroup: /run/netns/nsg-t\(getpid())-y already exists\n")
        #expect(try supervisor.nsgroup(["destroy", "theirs"]).status == 0)
    }
}

@Suite struct CreationMountTests {
    @Test func bindMountsAreForRootAndAdminsAndAreNosuidNodev() throws {
        let supervisor = try TestSupervisor()
        let source = supervisor.directory + "/shared"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: false)
        try "from the host\n".write(toFile: source + "/note", atomically: false, encoding: .utf8)
        let target = supervisor.directory + "/inside"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)

        let refused = try supervisor.nsgroup(["create", "b", "--bind", "\(source):\(target)"], as: try TestUser.alice())
        #expect(refused.stderr.contains("bind mounts are for root and members of nsgroup-admin"))
        #expect(try supervisor.nsgroup(["create", "b", "--bind", "\(source):\(target):ro"]).status == 0)
        let inside = try supervisor.nsgroup(["enter", "b", "--", "sh", "-c", "cat \(target)/note; touch \(target)/x 2>&1; grep ' \(target) ' /proc/self/mountinfo"])
        #expect(inside.stdout.hasPrefix("from the host\n"))
        #expect(inside.stdout.contains("Read-only file system"))
        let mountLine = inside.stdout.split(separator: "\n").last.map(String.init) ?? ""
        #expect(mountLine.contains(" ro,") && mountLine.contains("nosuid") && mountLine.contains("nodev"), "\(mountLine)")
        #expect(try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8).contains(" \(target) ") == false)
        #expect((try supervisor.inspect("b")["binds"] as? [String]) == ["\(source):\(target):ro"])
    }

    @Test func tmpfsTakesSizeAndModeForEveryone() throws {
        let supervisor = try TestSupervisor()
        let target = supervisor.directory + "/scratch"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
        let alice = try TestUser.alice()
        chown(target, alice.uid, alice.gid)  // without a user namespace a tmpfs covers only a directory of one's own
        #expect(try supervisor.nsgroup(["create", "t", "--tmpfs", "\(target):size=8m,mode=0755"], as: alice).status == 0)
        let line = try supervisor.nsgroup(["enter", "t", "--", "grep", " \(target) ", "/proc/self/mountinfo"], as: alice).stdout
        #expect(line.contains("nosuid") && line.contains("nodev"), "\(line)")
        #expect(line.contains("size=8192k") && line.contains("mode=755"), "\(line)")
        for bad in ["\(target):size=lots", "\(target):mode=999", "\(target):uid=0", "\(target):size"] {
            let result = try supervisor.nsgroup(["create", "bad", "--tmpfs", bad], as: alice)
            #expect(result.status == 125, "\(bad)")
        }
    }
}

@Suite struct EventStreamTests {
    /// `nsgroup events --json` in the background, as `user`, read line by line.
    final class Watcher {
        let process = Process()
        let output = Pipe()
        private var buffer = Data()

        init(_ supervisor: TestSupervisor, as user: TestUser) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--",
                                 Products.nsgroup, "--socket", supervisor.socketPath, "events", "--json"]
            process.standardOutput = output
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        deinit {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        /// Events received so far, waiting up to `seconds` for at least
        /// `count`; fewer by then fails the test.
        func events(atLeast count: Int, seconds: Double = 10,
                    sourceLocation: SourceLocation = #_sourceLocation) -> [[String: Any]] {
            let fd = output.fileHandleForReading.fileDescriptor
            let deadline = Date().addingTimeInterval(seconds)
            var lines: [[String: Any]] { buffer.split(separator: 0x0A).compactMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] } }
            while lines.count < count && Date() < deadline {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 100) > 0 else { continue }
                var chunk = [UInt8](repeating: 0, count: 4096)
                let n = read(fd, &chunk, chunk.count)
                if n <= 0 { break }
                buffer.append(contentsOf: chunk[0..<n])
            }
            let received = lines
            if received.count < count {
                Issue.record("\(received.count) of \(count) events came within \(seconds) s: \(received)", sourceLocation: sourceLocation)
            }
            return received
        }
    }

    /// Waits until the supervisor has registered a subscriber of each of
    /// `users`. It writes the "Accepted subscribe" record of a request after
    /// the handler has registered the subscriber, so once that record is in
    /// the journal every later event reaches that subscriber.
    static func waitForSubscribers(_ supervisor: TestSupervisor, _ users: [TestUser],
                                   sourceLocation: SourceLocation = #_sourceLocation) throws {
        for user in users {
            try waitUntil("the supervisor to accept \(user.name)'s subscribe", timeoutSeconds: 10, sourceLocation: sourceLocation) {
                try !run("/usr/bin/journalctl", ["-o", "json", "--no-pager", "NSGROUP_SOCKET=\(supervisor.socketPath)",
                                                 "MESSAGE_ID=\(JournalTests.messageIDs["requestAccepted"]!)",
                                                 "NSGROUP_OPERATION=subscribe", "NSGROUP_CALLER_UID=\(user.uid)"]).stdout.isEmpty
            }
        }
    }

    @Test func subscribersSeeTheEventsOfGroupsTheyMaySee() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        let dave = try TestUser.dave()
        let owner = try Watcher(supervisor, as: alice)
        let stranger = try Watcher(supervisor, as: bob)
        let friend = try Watcher(supervisor, as: dave)
        try Self.waitForSubscribers(supervisor, [alice, bob, dave])
        #expect(try supervisor.nsgroup(["create", "watched", "--member", "nsg-dave"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["enter", "watched", "--", "sh", "-c", "exit 5"], as: alice).status == 5)
        #expect(try supervisor.nsgroup(["destroy", "watched"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["create", "bobs"], as: bob).status == 0)
        let seen = owner.events(atLeast: 4)
        #expect(seen.compactMap { $0["type"] as? String } == ["group-created", "session-started", "session-ended", "group-destroyed"])
        #expect(seen.allSatisfy { $0["group"] as? String == "watched" })
        #expect(seen.dropFirst(2).first?["code"] as? Int == 5)
        #expect((seen.dropFirst().first?["argv"] as? [String]) == ["sh", "-c", "exit 5"])
        #expect(friend.events(atLeast: 4).count == 4, "a member sees the group it was shared with")
        let bobs = stranger.events(atLeast: 1)
        #expect(bobs.compactMap { $0["group"] as? String } == ["bobs"], "a stranger sees only his own groups")
        // A holder killed from outside is a failed group.
        #expect(try supervisor.nsgroup(["create", "doomed"], as: alice).status == 0)
        kill(try supervisor.holderPID("doomed"), SIGKILL)
        let later = owner.events(atLeast: 6)
        #expect(later.last?["type"] as? String == "group-failed")
        #expect(later.last?["group"] as? String == "doomed")
    }

    /// Events cannot wait for their person's output budget: a subscriber behind on
    /// them while its person is over connections.output-per-user is dropped, long
    /// before its own connections.subscriber-buffer (256 KiB) is reached.
    @Test func aLaggingSubscriberIsDroppedWhileItsPersonIsOverTheOutputBudget() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor(config: "[connections]\noutput-per-user = 65536\nwrite-timeout = 60\nidle-timeout = 60\n")
        let bob = try TestUser.bob()
        let lazy = try RPCClient(socketPath: supervisor.socketPath)
        _ = try lazy.call("subscribe")
        // Root goes over its budget on another connection that never reads.
        let hog = try RPCClient(socketPath: supervisor.socketPath)
        var lines: [UInt8] = []
        for i in 0..<3000 { lines += Array("{\"jsonrpc\":\"2.0\",\"id\":\(i),\"method\":\"version\"}\n".utf8) }
        try hog.sendLine(lines)
        // Bob's groups come and go; root sees them all.
        var dropped = false
        var cycles = 0
        while cycles < 150 && !dropped {
            cycles += 1
            #expect(try supervisor.nsgroup(["create", "churn", "--ns", "uts"], as: bob).status == 0)
            #expect(try supervisor.nsgroup(["destroy", "churn"], as: bob).status == 0)
            var p = pollfd(fd: lazy.descriptor, events: Int16(POLLIN) | 0x2000 /* POLLRDHUP */, revents: 0)
            dropped = poll(&p, 1, 0) > 0 && p.revents & (0x2000 | Int16(POLLHUP)) != 0
        }
        #expect(dropped, "the lagging subscriber was kept through \(cycles) create/destroy cycles")
        #expect(eventually(timeoutSeconds: 10) {
            ((try? run("/usr/bin/journalctl", ["-o", "cat", "--no-pager", "NSGROUP_SOCKET=\(supervisor.socketPath)"]))?.stdout ?? "")
                .split(separator: "\n").contains { $0.hasPrefix("Dropping an event subscriber") && $0.hasSuffix("(connections.output-per-user = 65536)") }
        }, "the journal says why")
        withExtendedLifetime(hog) {}
    }

    @Test func aSubscriberThatDoesNotReadIsDroppedAndNothingElseSlows() throws {
        let supervisor = try TestSupervisor(config: "[connections]\nsubscriber-buffer = 4096\n")
        // Subscribe, then never read.
        let lazy = try RPCClient(socketPath: supervisor.socketPath)
        _ = try lazy.call("subscribe")
        #expect(try supervisor.nsgroup(["create", "busy"]).status == 0)
        // Enough events to fill the subscriber's small socket buffer and then
        // 4 KiB of queue; the server closing it shows as a hang-up on our end.
        let client = try RPCClient(socketPath: supervisor.socketPath)
        var dropped = false
        for _ in 0..<2000 where !dropped {
            _ = try client.call("destroy", NameParams(name: "busy").json)
            _ = try client.call("create", CreateParams(name: "busy", namespaces: ["uts"]).json)
            var p = pollfd(fd: lazy.descriptor, events: Int16(POLLIN) | 0x2000 /* POLLRDHUP */, revents: 0)
            dropped = poll(&p, 1, 0) > 0 && p.revents & (0x2000 | Int16(POLLHUP)) != 0
        }
        #expect(dropped, "the subscriber that never reads is dropped")
        // Its connection is closed: what it reads ends.
        var lines = 0
        while (try? lazy.readLine()) != nil { lines += 1 }
        #expect(lines > 0)
        #expect(try client.call("version").result["protocol"]?.int64Value == 1, "everyone else is served")
    }
}
