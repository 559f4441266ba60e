import Foundation
import Client
import RPC
import Glibc
import POSIX
import Testing

/// Who runs whose files: the owner of a group shapes its mount tree (as root inside her
/// user namespace, or through a tmpfs), so nobody may run there with more than her rights.
extension AttackTests {
    /// What the planted `true` prints about the process that ran it: its user namespace,
    /// its uid map, its effective capabilities and its uid.
    static let plant = """
        mount -t tmpfs planted /usr/local/sbin && cat > /usr/local/sbin/true <<'X'
        #!/bin/sh
        readlink /proc/self/ns/user; head -n 1 /proc/self/uid_map; grep CapEff /proc/self/status; id -u
        X
        chmod 755 /usr/local/sbin/true
        """

    /// The four lines the planted program printed, checked for shape.
    static func evidence(_ result: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        let lines = result.stdout.split(separator: "\n").map(String.init)
        try #require(result.status == 0 && lines.count == 4, "the planted program did not run: \(result)", sourceLocation: sourceLocation)
        return lines
    }

    /// alice owns a group with a user namespace and plants `true` over /usr/local/sbin,
    /// first on root's PATH. root runs `true` there: it runs, but inside her user
    /// namespace, as its root, which is alice on the host; never as host root. An admin
    /// who is not root is a member here: refused unless trusting her, then himself.
    @Test func rootAndAdminsRunThePlantedTrueWithOnlyTheOwnersRights() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "trap", "--ns", "user,mnt,pid,uts,ipc"], as: alice).status == 0)
        let planted = try supervisor.nsgroup(["enter", "trap", "--", "sh", "-c", Self.plant], as: alice)
        try #require(planted.status == 0, "alice could not plant: \(planted.stderr)")
        let groupUserNS = try namespaceInode("/proc/\(try supervisor.holderPID("trap"))/ns/user")
        let hostUserNS = try namespaceInode("/proc/self/ns/user")

        let lines = try Self.evidence(try supervisor.nsgroup(["enter", "trap", "--", "true"]))
        #expect(lines[0] == "user:[\(groupUserNS)]", "ran outside the group's user namespace: \(lines)")
        #expect(lines[0] != "user:[\(hostUserNS)]")
        // uid 0 inside is alice outside, and nobody else is mapped to 0.
        #expect(lines[1].split(separator: " ").map(String.init) == ["0", String(alice.uid), "1"], "\(lines)")
        #expect(lines[3] == "0")
        let journal = JournalTests()
        #expect(try journal.one(supervisor, "sessionStarted", ["NSGROUP_CALLER_UID=0"])["NSGROUP_ENTERED_AS"] == "namespace-root")

        let carol = try TestUser.carol()
        let refused = try supervisor.nsgroup(["enter", "trap", "--", "true"], as: carol)
        #expect(refused.status == 125 && refused.stdout.isEmpty, "an admin ran the owner's file without trusting her")
        #expect(refused.stderr.contains("--trust-owner"), "\(refused.stderr)")
        let trusting = try Self.evidence(try supervisor.nsgroup(["enter", "trap", "--trust-owner", "--", "/usr/local/sbin/true"], as: carol))
        #expect(trusting[0] == "user:[\(hostUserNS)]")
        #expect(trusting[2] == "CapEff:\t0000000000000000")
        #expect(trusting[3] == String(carol.uid))
        #expect(try journal.one(supervisor, "sessionStarted", ["NSGROUP_CALLER_UID=\(carol.uid)"])["NSGROUP_ENTERED_AS"] == "trusting-owner")
        // The same process cannot touch what only host root may: root's own 0700 home.
        let probe = try supervisor.nsgroup(["enter", "trap", "--", "sh", "-c", "ls /root >/dev/null 2>&1 && echo READ || echo DENIED"])
        #expect(probe.stdout == "DENIED\n", "\(probe.stdout) \(probe.stderr)")
    }

    /// A member is refused unless he says he trusts the owner; then he runs her file as
    /// himself, from the host's user namespace, with no capabilities.
    @Test func aMemberEntersAUserNamespaceGroupOnlyTrustingItsOwner() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let dave = try TestUser.dave()
        #expect(try supervisor.nsgroup(["create", "trap", "--ns", "user,mnt,pid,uts,ipc", "--member", dave.name], as: alice).status == 0)
        try #require(try supervisor.nsgroup(["enter", "trap", "--", "sh", "-c", Self.plant], as: alice).status == 0)

        let refused = try supervisor.nsgroup(["enter", "trap", "--", "/usr/local/sbin/true"], as: dave)
        #expect(refused.status == 125)
        #expect(refused.stdout.isEmpty, "the planted program ran for a member who did not trust the owner")
        #expect(refused.stderr.contains("group \"trap\" has a user namespace: its owner (uid \(alice.uid)) is root inside it"), "\(refused.stderr)")
        #expect(refused.stderr.contains("--trust-owner"))

        let lines = try Self.evidence(try supervisor.nsgroup(["enter", "trap", "--trust-owner", "--", "/usr/local/sbin/true"], as: dave))
        #expect(lines[0] == "user:[\(try namespaceInode("/proc/self/ns/user"))]")
        #expect(lines[2] == "CapEff:\t0000000000000000")
        #expect(lines[3] == String(dave.uid))
        let started = try JournalTests().one(supervisor, "sessionStarted", ["NSGROUP_CALLER_UID=\(dave.uid)"])
        #expect(started["NSGROUP_ENTERED_AS"] == "trusting-owner")

        // Sharing such a group says what members take on.
        let shared = try supervisor.nsgroup(["share", "trap", "nsg-erin"], as: alice)
        #expect(shared.status == 0)
        #expect(shared.stderr.contains("members must trust you"), "\(shared.stderr)")
    }

    /// Without a user namespace a tmpfs goes only where nobody else's programs or
    /// configuration live: not over a PATH directory, /root or /etc/profile.d.
    @Test(arguments: ["/usr/local/sbin", "/usr/bin", "/root", "/etc/profile.d", "/home/nsg-dave", "/lib"])
    func noTmpfsOverOthersFiles(_ path: String) throws {
        let supervisor = try TestSupervisor()
        let refused = try supervisor.nsgroup(["create", "cover", "--ns", "mnt,uts,ipc,pid", "--tmpfs", path], as: try TestUser.alice())
        #expect(refused.status == 125)
        #expect(refused.stderr == "nsgroup: create: a tmpfs on \"\(path)\" is not allowed: without a user namespace tmpfs mounts go only at or below /tmp, /var/tmp, /mnt, /srv, /media, ~ (access.tmpfs-paths), where no one else's programs live\n")
        #expect(try supervisor.groupNames().isEmpty)
    }

    /// Where a tmpfs is allowed (at or below access.tmpfs-paths, on a directory of her own)
    /// it is the owner's, mode 0700, and bounded in size.
    @Test func anAllowedTmpfsIsTheOwnersAndBounded() throws {
        let supervisor = try TestSupervisor(config: "[limits]\ntmpfs-size = 4m\ntmpfs-per-user = 10m\n")
        let alice = try TestUser.alice()
        let home = try #require(UserDatabase.user(uid: alice.uid)?.home)
        let mine = "/mnt/nsg-att-\(getpid())"
        try Self.makeDirectory(mine, mode: 0o755, owner: alice)
        defer { rmdir(mine) }
        #expect(try supervisor.nsgroup(["create", "scratch", "--ns", "mnt,uts", "--tmpfs", mine, "--tmpfs", home], as: alice).status == 0)
        var st = stat()
        #expect(stat("/proc/\(try supervisor.holderPID("scratch"))/root\(mine)", &st) == 0)
        #expect(st.st_uid == alice.uid && st.st_gid == alice.gid)
        #expect(st.st_mode & 0o7777 == 0o700)
        let mounts = try String(contentsOfFile: "/proc/\(try supervisor.holderPID("scratch"))/mounts", encoding: .utf8)
        #expect(mounts.contains("tmpfs \(mine) tmpfs rw,nosuid,nodev,relatime,size=4096k,mode=700,uid=\(alice.uid),gid=\(alice.gid)"), "\(mounts)")

        let huge = try supervisor.nsgroup(["create", "huge", "--ns", "mnt", "--tmpfs", "/srv:size=999999999999g"], as: alice)
        #expect(huge.stderr == "nsgroup: create: the tmpfs on \"/srv\" asks for size=999999999999g, more than one mount may have (limits.tmpfs-size = 4m)\n")
        // 8m held (two mounts of 4m, the size each gets when it names none); 4m more passes 10m.
        let more = try supervisor.nsgroup(["create", "more", "--ns", "mnt", "--tmpfs", "/srv:size=4m"], as: alice)
        #expect(more.stderr == "nsgroup: create: uid \(alice.uid) would have 12m of tmpfs mounts, more than allowed (limits.tmpfs-per-user = 10m)\n")
        #expect(try supervisor.groupNames() == ["scratch"])
    }
}

extension AttackTests {
    /// Root's scripted enter into someone else's user-namespace group goes through pipes the
    /// CLI relays: stdin in, stdout and stderr out, the exit status back, as with its own
    /// descriptors. Sent its own descriptors, the supervisor refuses, saying it needs pipes.
    @Test func rootsStdioIsRelayedThroughPipes() throws {
        let supervisor = try TestSupervisor()
        #expect(try supervisor.nsgroup(["create", "lab", "--ns", "user,mnt,pid"], as: try TestUser.alice()).status == 0)
        let input = Data((0..<20_000).map { "line \($0)\n" }.joined().utf8)
        let result = try supervisor.nsgroup(["enter", "lab", "--", "sh", "-c", "wc -l; ls -l /proc/self/fd/0 /proc/self/fd/1 | grep -c pipe; echo to-stderr >&2; exit 3"],
                                            stdin: input)
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stdout == "20000\n2\n")
        #expect(result.stderr == "to-stderr\n")

        let client = try RPCClient(socketPath: supervisor.socketPath)
        let files = (0..<3).map { _ in open("/dev/null", O_RDWR | O_CLOEXEC) }
        defer { for fd in files { close(fd) } }
        let refused = serverError { () throws(ClientError) in
            try client.call("enter", EnterParams(name: "lab", argv: ["true"], tty: false).json, descriptors: files)
        }
        #expect(refused?.reason == .permissionDenied)
        #expect(refused?.details["needs"] == "pipes")
        #expect(refused?.message.hasPrefix("enter: root enters group \"lab\" through the user namespace of its owner") == true)
    }
}
