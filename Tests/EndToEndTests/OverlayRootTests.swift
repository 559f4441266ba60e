import Foundation
import Glibc
import POSIX
import Testing

/// Issue 17: `create --root overlay [--persist DIR]`, against the real kernel, the real
/// fuse-overlayfs and the real dpkg: root inside can install and change anything, the
/// host never changes, root inside reads nothing the owner could not, the upper layer
/// is charged and bounded, and nothing written there runs as anyone but the owner.
@Suite(.serialized) struct OverlayRootTests {
    static func unique(_ prefix: String) -> String { "\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    /// root's PATH inside (an enter takes the caller's environment, and alice's has no sbin).
    static let path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    static func inside(_ supervisor: TestSupervisor, _ group: String, _ script: String, as user: TestUser? = nil) throws -> CommandResult {
        try supervisor.nsgroup(["enter", group, "--cwd", "/", "--env", path, "--", "/bin/sh", "-c", script], as: user)
    }

    /// A one-file Debian package, nsg-probe-TAG, installing /usr/share/nsg-probe-TAG/hello;
    /// in alice's home, readable by everyone (an overlay group has a /tmp and /var/tmp of its own).
    static func package(_ tag: String) throws -> String {
        let tree = "/home/nsg-alice/" + unique("nsg-deb")
        try FileManager.default.createDirectory(atPath: tree + "/DEBIAN", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: tree + "/usr/share/nsg-probe-\(tag)", withIntermediateDirectories: true)
        try "Package: nsg-probe-\(tag)\nVersion: 1.0\nArchitecture: all\nMaintainer: nsgroup tests <root@localhost>\nDescription: a probe\n"
            .write(toFile: tree + "/DEBIAN/control", atomically: true, encoding: .utf8)
        try "hello\n".write(toFile: tree + "/usr/share/nsg-probe-\(tag)/hello", atomically: true, encoding: .utf8)
        let deb = tree + ".deb"
        let built = try run("/usr/bin/dpkg-deb", ["--root-owner-group", "--build", tree, deb])
        try? FileManager.default.removeItem(atPath: tree)
        try #require(built.status == 0, "dpkg-deb: \(built.stderr)")
        chmod(deb, 0o644)
        return deb
    }

    static func sha(_ path: String) throws -> String {
        try run("/usr/bin/sha256sum", [path]).stdout
    }

    /// The pid of fuse-overlayfs: the holder's child.
    static func overlayDaemon(_ supervisor: TestSupervisor, _ group: String) throws -> pid_t {
        let holder = try supervisor.holderPID(group)
        let children = try String(contentsOfFile: "/proc/\(holder)/task/\(holder)/children", encoding: .utf8)
        for pid in children.split(separator: " ").compactMap({ pid_t($0) }) {
            if let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8), comm == "fuse-overlayfs\n" { return pid }
        }
        throw HarnessError("group \(group) has no fuse-overlayfs among \(children)")
    }

    /// alice, root inside, installs a package with the real dpkg, adds a user and writes
    /// to /usr: all of it there inside, none of it on the host.
    @Test func aPackageManagerWritesInsideAndTheHostNeverChanges() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let tag = Self.unique("p")
        let deb = try Self.package(tag)
        defer { unlink(deb) }
        let before = try ["/var/lib/dpkg/status", "/etc/passwd", "/etc/group", "/etc/shadow"].map(Self.sha)

        let created = try supervisor.nsgroup(["create", "box", "--root", "overlay"], as: alice)
        try #require(created.status == 0, "\(created.stderr)")
        let result = try Self.inside(supervisor, "box", """
            id -u
            dpkg -i \(deb) >/dev/null && dpkg-query -W -f '${Status}\\n' nsg-probe-\(tag)
            cat /usr/share/nsg-probe-\(tag)/hello
            useradd -M web-\(tag.suffix(6)) && id -u web-\(tag.suffix(6)) >/dev/null && echo useradd-ok
            echo probe > /usr/bin/nsg-probe-\(tag) && cat /usr/bin/nsg-probe-\(tag)
            echo logged >> /var/log/apt/term.log && tail -n 1 /var/log/apt/term.log
            stat -c '%U %a' /usr/bin /etc
            """, as: alice)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "0\ninstall ok installed\nhello\nuseradd-ok\nprobe\nlogged\nroot 755\nroot 755\n", "\(result.stdout)")

        // The host: no package, no file, no user, not one byte of its databases changed.
        #expect(try run("/usr/bin/dpkg-query", ["-W", "nsg-probe-\(tag)"]).status != 0)
        #expect(access("/usr/share/nsg-probe-\(tag)", F_OK) != 0)
        #expect(access("/usr/bin/nsg-probe-\(tag)", F_OK) != 0)
        #expect(try ["/var/lib/dpkg/status", "/etc/passwd", "/etc/group", "/etc/shadow"].map(Self.sha) == before)

        // inspect says so.
        let group = try supervisor.inspect("box")
        #expect(group["root"] as? String == "overlay")
        #expect(group["persist"] == nil)
        let text = try supervisor.nsgroup(["inspect", "box"], as: alice)
        #expect(text.stdout.contains("Root:        overlay of the host's, changes on a tmpfs, gone with the group\n"), "\(text.stdout)")
        // The record of the request names the root.
        let request = try JournalTests().one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=create", "NSGROUP_NAME=box"])
        #expect(request["NSGROUP_ROOT"] == "overlay", "\(request)")

        // Gone with the group: a new one starts from the host's root again.
        #expect(try supervisor.nsgroup(["destroy", "box"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["create", "box", "--root", "overlay"], as: alice).status == 0)
        let again = try Self.inside(supervisor, "box", "test -e /usr/bin/nsg-probe-\(tag) && echo KEPT || echo fresh", as: alice)
        #expect(again.stdout == "fresh\n", "\(again.stdout) \(again.stderr)")
    }

    /// root inside is the owner: what alice may not read on the host, she may not read
    /// inside either. /etc/shadow is a stand-in with every password locked; root's home,
    /// bob's private file and the host's private keys stay closed.
    @Test func rootInsideReadsNothingTheOwnerCannot() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        let secretDirectory = "/home/nsg-bob/" + Self.unique("nsg-secret")
        try FileManager.default.createDirectory(atPath: secretDirectory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: secretDirectory) }
        try AttackTests.writeFile(secretDirectory + "/key", "bob's secret\n", mode: 0o600)
        chown(secretDirectory + "/key", bob.uid, bob.gid)
        chown(secretDirectory, bob.uid, bob.gid)
        chmod(secretDirectory, 0o700)
        try AttackTests.writeFile("/root/nsg-overlay-secret", "root's secret\n", mode: 0o600)
        defer { unlink("/root/nsg-overlay-secret") }

        try #require(try supervisor.nsgroup(["create", "box", "--root", "overlay"], as: alice).status == 0)
        let result = try Self.inside(supervisor, "box", """
            cut -d: -f2 /etc/shadow | sort -u
            cat /root/nsg-overlay-secret 2>/dev/null || echo root-denied
            cat \(secretDirectory)/key 2>/dev/null || echo bob-denied
            ls -A /etc/ssl/private | wc -l
            grep -c . /etc/shadow
            """, as: alice)
        #expect(result.status == 0, "\(result.stderr)")
        let users = try String(contentsOfFile: "/etc/passwd", encoding: .utf8).split(separator: "\n").count
        #expect(result.stdout == "*\nroot-denied\nbob-denied\n0\n\(users)\n", "\(result.stdout)")
    }

    /// With --persist the upper layer is alice's directory: a later group finds what the
    /// first one wrote. On the host every file there belongs to alice or her subordinate
    /// ids, never to root, whatever root inside did (chown 0, set-uid): the owner's upper
    /// layer never runs as anyone else. One directory serves one group at a time.
    @Test func persistKeepsChangesForTheNextGroupWithTheOwnersIDsOnly() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let directory = "/var/tmp/" + Self.unique("nsg-keep")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        chown(directory, alice.uid, alice.gid)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        try #require(try supervisor.nsgroup(["create", "kept", "--root", "overlay", "--persist", directory], as: alice).status == 0)
        let written = try Self.inside(supervisor, "kept", """
            echo persisted > /usr/local/bin/kept && chmod 4755 /usr/local/bin/kept
            cp /usr/bin/id /usr/local/bin/rootly && chown 0:0 /usr/local/bin/rootly && chmod 6755 /usr/local/bin/rootly
            chown 42:42 /usr/local/bin/kept
            """, as: alice)
        #expect(written.status == 0, "\(written.stderr)")
        let busy = try supervisor.nsgroup(["create", "second", "--root", "overlay", "--persist", directory], as: alice)
        #expect(busy.status == 125)
        #expect(busy.stderr == "nsgroup: cannot create group \"second\": persist directory \(directory) is in use by another group: Device or resource busy\n", "\(busy.stderr)")

        #expect(try supervisor.nsgroup(["destroy", "kept"], as: alice).status == 0)
        try #require(try supervisor.nsgroup(["create", "kept", "--root", "overlay", "--persist", directory], as: alice).status == 0)
        let again = try Self.inside(supervisor, "kept", "cat /usr/local/bin/kept", as: alice)
        #expect(again.stdout == "persisted\n", "\(again.stdout) \(again.stderr)")
        #expect((try supervisor.inspect("kept"))["persist"] as? String == directory)

        // On the host: alice's and her subordinate ids' files, nothing of root's.
        var info = stat()
        #expect(stat(directory + "/upper/usr/local/bin/rootly", &info) == 0)
        #expect(info.st_uid == alice.uid, "root inside's set-uid file is uid \(info.st_uid) on the host")
        #expect(stat(directory + "/upper/usr/local/bin/kept", &info) == 0)
        #expect(info.st_uid != 0 && info.st_uid != alice.uid, "uid 42 inside is a subordinate id of alice's, not \(info.st_uid)")
        let rootOwned = try run("/usr/bin/find", [directory, "-uid", "0", "-o", "-gid", "0"])
        #expect(rootOwned.stdout.isEmpty, "root-owned files in the upper layer: \(rootOwned.stdout)")
        // And root inside's set-uid "id", run by bob on the host, makes him alice at most.
        let bob = try TestUser.bob()
        let ran = try run(directory + "/upper/usr/local/bin/rootly", ["-u"], as: bob)
        #expect(ran.stdout == "\(alice.uid)\n", "\(ran)")
    }

    /// The persist directory must be alice's own, reached without a symlink; it needs an
    /// overlay root.
    @Test func persistIsTheOwnersDirectoryOnly() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        let bobs = "/var/tmp/" + Self.unique("nsg-notyours")
        try FileManager.default.createDirectory(atPath: bobs, withIntermediateDirectories: false)
        chown(bobs, bob.uid, bob.gid)
        chmod(bobs, 0o777)
        let link = "/home/nsg-alice/" + Self.unique("nsg-link")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/home/nsg-alice")
        defer {
            try? FileManager.default.removeItem(atPath: bobs)
            unlink(link)
        }
        let notHers = try supervisor.nsgroup(["create", "box", "--root", "overlay", "--persist", bobs], as: alice)
        #expect(notHers.status == 125)
        #expect(notHers.stderr == "nsgroup: cannot create group \"box\": persist directory \(bobs) is not the owner's: Operation not permitted\n", "\(notHers.stderr)")
        #expect(FileManager.default.fileExists(atPath: bobs + "/upper") == false, "something was written in bob's directory")
        let linked = try supervisor.nsgroup(["create", "box", "--root", "overlay", "--persist", link], as: alice)
        #expect(linked.status == 125)
        #expect(linked.stderr.contains("Too many levels of symbolic links"), "\(linked.stderr)")
        let flat = try supervisor.nsgroup(["create", "box", "--persist", "/home/nsg-alice"], as: alice)
        #expect(flat.status == 125)
        #expect(flat.stderr == "nsgroup: create: --persist needs --root overlay\n", "\(flat.stderr)")
        let noUser = try supervisor.nsgroup(["create", "box", "--root", "overlay", "--ns", "mnt,pid"], as: alice)
        #expect(noUser.status == 125)
        #expect(noUser.stderr.hasPrefix("nsgroup: create: --root overlay needs the mnt and user namespaces"), "\(noUser.stderr)")
        #expect(try supervisor.groupNames().isEmpty)
    }

    /// An overlay group outlives a restart (or a crash) of the supervisor with its changes:
    /// taken back, entered again with and without a terminal, still charged.
    @Test(arguments: [false, true])
    func anOverlayGroupSurvivesARestart(crash: Bool) throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        try #require(try supervisor.nsgroup(["create", "box", "--root", "overlay"], as: alice).status == 0)
        #expect(try Self.inside(supervisor, "box", "echo kept > /etc/nsg-restart", as: alice).status == 0)
        let holder = try supervisor.holderPID("box")
        supervisor.stop(signal: crash ? SIGKILL : SIGTERM)
        try supervisor.start()
        #expect(try supervisor.holderPID("box") == holder)
        let group = try supervisor.inspect("box")
        #expect(group["root"] as? String == "overlay")
        let again = try Self.inside(supervisor, "box", "cat /etc/nsg-restart", as: alice)
        #expect(again.stdout == "kept\n", "\(again.stdout) \(again.stderr)")
        // A terminal comes from the holder's devpts descriptor, as before the restart.
        let tty = try run("/usr/bin/script", ["-qec", "\(Products.nsgroup) --socket \(supervisor.socketPath) enter box --tty -- tty", "/dev/null"], as: alice)
        #expect(tty.status == 0 && tty.stdout.contains("/dev/pts/"), "\(tty)")
        #expect(access("/etc/nsg-restart", F_OK) != 0)
    }

    /// The upper layer is a tmpfs of limits.tmpfs-size, counted with /run's and /dev/shm's
    /// towards limits.tmpfs-per-user: a write past it fails inside, a group past it is refused.
    @Test func theUpperLayerIsChargedAndBounded() throws {
        let supervisor = try TestSupervisor(config: "[limits]\ntmpfs-size = 8m\ntmpfs-per-user = 16m\n")
        let alice = try TestUser.alice()
        try #require(try supervisor.nsgroup(["create", "box", "--root", "overlay"], as: alice).status == 0)
        let filled = try Self.inside(supervisor, "box", "dd if=/dev/zero of=/big bs=1M count=20 2>&1 | grep -o 'No space left on device'; df -k / | tail -n 1", as: alice)
        #expect(filled.stdout.contains("No space left on device"), "\(filled.stdout)")
        #expect(filled.stdout.contains(" 8192 "), "the upper layer is not 8m: \(filled.stdout)")
        // 8m for the upper layer and 2m each for /run and /dev/shm: 12m, and 12m more is too much.
        let second = try supervisor.nsgroup(["create", "more", "--root", "overlay"], as: alice)
        #expect(second.status == 125)
        #expect(second.stderr == "nsgroup: create: uid \(alice.uid) would have 24m of tmpfs mounts, more than allowed (limits.tmpfs-per-user = 16m)\n", "\(second.stderr)")
    }

    /// root enters alice's overlay group as root of its user namespace, which is alice: the
    /// program she planted in /usr/local/sbin runs with her rights, never host root's. A group
    /// with an overlay root has no members: a member enters from the host's user namespace,
    /// where the kernel serves none of its files.
    @Test func rootRunsTheOwnersFilesAsHerAndMembersAreRefused() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        try #require(try supervisor.nsgroup(["create", "trap", "--root", "overlay"], as: alice).status == 0)
        let planted = try Self.inside(supervisor, "trap", """
            printf '#!/bin/sh\\nreadlink /proc/self/ns/user; head -n 1 /proc/self/uid_map; grep CapEff /proc/self/status; id -u\\n' > /usr/local/sbin/true
            chmod 755 /usr/local/sbin/true
            """, as: alice)
        try #require(planted.status == 0, "\(planted.stderr)")
        let groupUserNS = try namespaceInode("/proc/\(try supervisor.holderPID("trap"))/ns/user")
        let lines = try AttackTests.evidence(try supervisor.nsgroup(["enter", "trap", "--env", Self.path, "--", "true"]))
        #expect(lines[0] == "user:[\(groupUserNS)]", "\(lines)")
        #expect(lines[1].split(separator: " ").map(String.init) == ["0", String(alice.uid), "1"], "\(lines)")
        #expect(lines[3] == "0")
        #expect((try? String(contentsOfFile: "/usr/local/sbin/true", encoding: .utf8))?.contains("uid_map") != true,
                "the planted file reached the host")

        let members = try supervisor.nsgroup(["create", "shared", "--root", "overlay", "--member", "nsg-dave"], as: alice)
        #expect(members.status == 125)
        #expect(members.stderr.hasPrefix("nsgroup: create: a group with an overlay root has no members"), "\(members.stderr)")
        let share = try supervisor.nsgroup(["share", "trap", "nsg-dave"], as: alice)
        #expect(share.status == 125)
        #expect(share.stderr.hasPrefix("nsgroup: share: a group with an overlay root has no members"), "\(share.stderr)")
    }

    /// fuse-overlayfs is alice's: stopped, it stalls only what reads her files. bob's list
    /// and alice's own destroy are answered; and when it ends, the group ends with it.
    @Test func aStoppedOverlayStallsOnlyItsOwnGroup() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        try #require(try supervisor.nsgroup(["create", "stuck", "--root", "overlay"], as: alice).status == 0)
        try #require(try supervisor.nsgroup(["create", "ended", "--root", "overlay"], as: alice).status == 0)
        let daemon = try Self.overlayDaemon(supervisor, "stuck")
        #expect(kill(daemon, SIGSTOP) == 0)
        // A session that reads her files waits on the stopped daemon.
        let waiting = try supervisor.startEnter("stuck", ["/bin/cat", "/etc/hostname"], as: alice)
        defer { if waiting.isRunning { waiting.terminate() } }
        usleep(300_000)
        let list = try run("/usr/bin/timeout", ["20", Products.nsgroup, "--socket", supervisor.socketPath, "list"], as: bob)
        #expect(list.status == 0, "bob's list waited on alice's stopped overlay: \(list)")
        let destroyed = try run("/usr/bin/timeout", ["20", Products.nsgroup, "--socket", supervisor.socketPath, "destroy", "stuck"], as: alice)
        #expect(destroyed.status == 0, "\(destroyed)")
        #expect(kill(daemon, 0) != 0 || (try? String(contentsOfFile: "/proc/\(daemon)/stat", encoding: .utf8))?.contains(") Z") == true)

        let other = try Self.overlayDaemon(supervisor, "ended")
        #expect(kill(other, SIGKILL) == 0)
        #expect(eventually(timeoutSeconds: 10) { (try? supervisor.groupNames().contains("ended")) == false },
                "the group outlived its overlay")
    }
}
