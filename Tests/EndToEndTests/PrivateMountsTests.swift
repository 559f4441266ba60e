import Foundation
import Glibc
import POSIX
import Testing

/// Issue 17: `create --private-tmp`, `--private-home` and `--home DIR`, against the real
/// kernel and the real holder: what the group sees, what the host keeps, whose the
/// mounts are, the tmpfs limits, and the paths a caller may not bind.
@Suite(.serialized) struct PrivateMountsTests {
    /// A name no other test and no earlier run uses.
    static func unique(_ prefix: String) -> String { "\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    /// Runs `script` with sh inside `group` as `user`; fails the test when it does not start.
    static func inside(_ supervisor: TestSupervisor, _ group: String, _ script: String, as user: TestUser,
                       sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandResult {
        try supervisor.nsgroup(["enter", group, "--cwd", "/", "--", "/bin/sh", "-c", script], as: user)
    }

    /// The options of the mount on `path` in the calling process's mountinfo.
    static let mountLine = #"awk -v p="$1" '$5 == p { print $6; for (i = 7; $i != "-"; i++) ; print $(i+1), $(i+3) }' /proc/self/mountinfo"#

    @Test(arguments: [false, true])
    func privateTmpHidesTheHostsTmpAndKeepsItsOwn(userNamespace: Bool) throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let hostFile = "/tmp/" + Self.unique("nsg-priv-host")
        let innerName = Self.unique("nsg-priv-inner")
        try AttackTests.writeFile(hostFile, "host\n", mode: 0o644)
        try AttackTests.writeFile("/var/tmp/" + innerName + "-host", "host\n", mode: 0o644)
        defer {
            unlink(hostFile)
            unlink("/var/tmp/" + innerName + "-host")
            unlink("/tmp/" + innerName)
            unlink("/var/tmp/" + innerName)
        }
        let kinds = userNamespace ? ["--ns", "user,mnt,pid"] : []
        let created = try supervisor.nsgroup(["create", "scratch", "--private-tmp"] + kinds, as: alice)
        try #require(created.status == 0, "\(created.stderr)")

        let result = try Self.inside(supervisor, "scratch", """
            ls -A /tmp /var/tmp | tr '\\n' ' '; echo
            test -e \(hostFile) && echo HOST-TMP-VISIBLE
            test -e /var/tmp/\(innerName)-host && echo HOST-VAR-TMP-VISIBLE
            echo inside > /tmp/\(innerName) && echo inside > /var/tmp/\(innerName) && cat /tmp/\(innerName)
            stat -c '%a %u' /tmp /var/tmp
            for p in /tmp /var/tmp; do set -- $p; \(Self.mountLine); done
            """, as: alice)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        // Both empty at first, the host's files not there, one's own written.
        #expect(lines.first == "/tmp:  /var/tmp: ", "\(result.stdout)")
        #expect(!result.stdout.contains("VISIBLE"), "\(result.stdout)")
        #expect(lines.contains("inside"))
        // Sticky and world-writable, root's (root inside: the owner, in a user namespace).
        #expect(lines.filter { $0 == "1777 0" }.count == 2, "\(result.stdout)")
        // Each a tmpfs, nosuid and nodev, of half of limits.tmpfs-size (1g by default); mountinfo
        // leaves out mode=1777, tmpfs's default, which stat showed.
        let mounts = lines.filter { $0.hasPrefix("rw,") || $0.hasPrefix("tmpfs ") }
        #expect(mounts.filter { $0.hasPrefix("rw,") && $0.contains("nosuid") && $0.contains("nodev") }.count == 2, "\(result.stdout)")
        #expect(mounts.filter { $0.hasPrefix("tmpfs ") && $0.contains("size=524288k") }.count == 2,
                "\(result.stdout)")
        // Nothing written inside reached the host.
        #expect(access("/tmp/" + innerName, F_OK) != 0)
        #expect(access("/var/tmp/" + innerName, F_OK) != 0)

        let group = try supervisor.inspect("scratch")
        #expect(group["privateTmp"] as? Bool == true)
        #expect(group["privateHome"] == nil)
        let text = try supervisor.nsgroup(["inspect", "scratch"], as: alice)
        #expect(text.stdout.contains("Private tmp: /tmp, /var/tmp\n"), "\(text.stdout)")
    }

    @Test func privateMountsNeedAMountNamespace() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        for option in [["--private-tmp"], ["--private-home"], ["--home", "/home/nsg-alice"]] {
            let refused = try supervisor.nsgroup(["create", "flat", "--ns", "uts,ipc"] + option, as: alice)
            #expect(refused.status != 0)
            #expect(refused.stderr == "nsgroup: create: \(option[0]) needs a mnt namespace\n", "\(refused.stderr)")
        }
        #expect(try supervisor.groupNames().isEmpty)
        // Twice the same target: refused, nothing made.
        let twice = try supervisor.nsgroup(["create", "twice", "--private-tmp", "--tmpfs", "/tmp"], as: alice)
        #expect(twice.stderr == "nsgroup: create: \"/tmp\" is the target of two mounts\n", "\(twice.stderr)")
    }

    @Test(arguments: [false, true])
    func privateHomeIsEmptyTheCallersAndWritable(userNamespace: Bool) throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let marker = Self.unique(".nsg-priv-marker")
        let home = "/home/nsg-alice"
        try AttackTests.writeFile(home + "/" + marker, "host\n", mode: 0o644, uid: alice.uid, gid: alice.gid)
        let written = Self.unique("nsg-priv-written")
        defer {
            unlink(home + "/" + marker)
            unlink(home + "/" + written)
        }
        let kinds = userNamespace ? ["--ns", "user,mnt,pid"] : []
        let created = try supervisor.nsgroup(["create", "den", "--private-home"] + kinds, as: alice)
        try #require(created.status == 0, "\(created.stderr)")
        let result = try Self.inside(supervisor, "den", """
            echo "[$(ls -A \(home))]"
            stat -c '%a %u %g' \(home)
            echo mine > \(home)/\(written) && cat \(home)/\(written)
            set -- \(home); \(Self.mountLine)
            """, as: alice)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "[]", "\(result.stdout)")
        // The owner's: alice, or root inside her own user namespace (alice outside).
        #expect(lines.dropFirst().first == (userNamespace ? "700 0 0" : "700 \(alice.uid) \(alice.gid)"), "\(result.stdout)")
        #expect(lines.contains("mine"))
        #expect(lines.contains { $0.hasPrefix("tmpfs ") && $0.contains("size=1048576k") }, "\(result.stdout)")
        #expect(access(home + "/" + written, F_OK) != 0, "written inside, found on the host")

        let group = try supervisor.inspect("den")
        #expect(group["privateHome"] as? Bool == true)
        #expect(group["home"] == nil)
        #expect((group["tmpfs"] as? [String])?.contains { $0.hasPrefix(home + ":mode=0700") } == true, "\(group)")
    }

    @Test(arguments: [false, true])
    func homeBindsADirectoryOfTheCallers(userNamespace: Bool) throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let base = try AttackTests.spawnAttackDirectory()
        defer { Directory.removeTree(base) }
        try AttackTests.makeDirectory(base + "/home", mode: 0o755, owner: alice)
        try AttackTests.writeFile(base + "/home/.profile-of-the-box", "box\n", mode: 0o644, uid: alice.uid, gid: alice.gid)
        let kinds = userNamespace ? ["--ns", "user,mnt,pid"] : []
        let created = try supervisor.nsgroup(["create", "box", "--home", base + "/home"] + kinds, as: alice)
        try #require(created.status == 0, "\(created.stderr)")
        let result = try Self.inside(supervisor, "box", """
            cat /home/nsg-alice/.profile-of-the-box
            echo back > /home/nsg-alice/written-inside
            """, as: alice)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "box\n")
        // The directory itself is there: what is written inside is in it on the host.
        #expect((try? String(contentsOfFile: base + "/home/written-inside", encoding: .utf8)) == "back\n")
        #expect(access("/home/nsg-alice/written-inside", F_OK) != 0)
        let group = try supervisor.inspect("box")
        #expect(group["privateHome"] as? Bool == true)
        #expect(group["home"] as? String == base + "/home")
        let text = try supervisor.nsgroup(["inspect", "box"], as: alice)
        #expect(text.stdout.contains("Private home: \(base)/home bound on the owner's home\n"), "\(text.stdout)")
    }

    /// The request record names the private mounts asked for, the directory included.
    @Test func theRequestRecordNamesThePrivateMounts() throws {
        try JournalTests.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let base = try AttackTests.spawnAttackDirectory()
        defer { Directory.removeTree(base) }
        try AttackTests.makeDirectory(base + "/home", mode: 0o755, owner: alice)
        let created = try supervisor.nsgroup(["create", "audited", "--private-tmp", "--home", base + "/home"], as: alice)
        try #require(created.status == 0, "\(created.stderr)")
        let record = try JournalTests().one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=create", "NSGROUP_NAME=audited"])
        #expect(record["NSGROUP_PRIVATE_TMP"] == "1")
        #expect(record["NSGROUP_PRIVATE_HOME"] == nil)
        #expect(record["NSGROUP_HOME"] == base + "/home")
    }

    /// `--home` is looked up with the caller's rights, without symlinks, and must be the
    /// caller's: another user's directory, a link to one's own and anything below a directory
    /// the caller may not search are refused; below such a directory, the same error whether
    /// the path exists or not.
    @Test(arguments: [false, true])
    func homeThatIsNotTheCallersIsRefusedWithoutAnOracle(userNamespace: Bool) throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        let base = try AttackTests.spawnAttackDirectory()
        defer { Directory.removeTree(base) }
        try AttackTests.makeDirectory(base + "/bob", mode: 0o755, owner: bob)
        try AttackTests.makeDirectory(base + "/bob-private", mode: 0o700, owner: bob)
        try AttackTests.makeDirectory(base + "/bob-private/present", mode: 0o755, owner: alice)
        try AttackTests.makeDirectory(base + "/bob-private/bobs", mode: 0o755, owner: bob)
        try AttackTests.makeDirectory(base + "/alice", mode: 0o755, owner: alice)
        try #require(symlink(base + "/alice", base + "/link") == 0)
        let kinds = userNamespace ? ["--ns", "user,mnt,pid"] : []

        func refusal(_ dir: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
            let result = try supervisor.nsgroup(["create", "stolen", "--home", dir] + kinds, as: alice)
            #expect(result.status != 0, "\(dir) was bound", sourceLocation: sourceLocation)
            #expect(try supervisor.groupNames().isEmpty, sourceLocation: sourceLocation)
            return result.stderr
        }
        // Another user's directory, open to all: not hers.
        let others = try refusal(base + "/bob")
        #expect(others.contains("bind \(base)/bob onto /home/nsg-alice: not both directories of the caller's: Operation not permitted"),
                "\(others)")
        // A link to her own: not followed.
        let link = try refusal(base + "/link")
        #expect(link.contains("open(\(base)/link): Too many levels of symbolic links"), "\(link)")
        // Below bob's 0700 directory: the same answer for what is there and what is not.
        let present = try refusal(base + "/bob-private/present")
        let absent = try refusal(base + "/bob-private/absent")
        #expect(present.contains("Permission denied"), "\(present)")
        #expect(present.replacing("present", with: "X") == absent.replacing("absent", with: "X"), "\(present) / \(absent)")
        let bobs = try refusal(base + "/bob-private/bobs")
        #expect(bobs.replacing("bobs", with: "X") == absent.replacing("absent", with: "X"), "\(bobs) / \(absent)")
        // Her own directory is fine (the refusals above were not about the group).
        let own = try supervisor.nsgroup(["create", "own", "--home", base + "/alice"] + kinds, as: alice)
        #expect(own.status == 0, "\(own.stderr)")
    }

    /// The tmpfs limits of nsgroupd.conf bind the private mounts: a private /tmp and
    /// /var/tmp have half of limits.tmpfs-size each, a private home all of it, and all
    /// count towards limits.tmpfs-per-user.
    @Test func privateMountsAreHeldToTheTmpfsLimits() throws {
        let supervisor = try TestSupervisor(config: "[limits]\ntmpfs-size = 4m\ntmpfs-per-user = 10m\n")
        let alice = try TestUser.alice()
        let created = try supervisor.nsgroup(["create", "small", "--private-tmp", "--private-home"], as: alice)
        try #require(created.status == 0, "\(created.stderr)")
        let result = try Self.inside(supervisor, "small", """
            dd if=/dev/zero of=/tmp/fill bs=1k count=3072 2>&1 | grep -o 'No space left on device'
            dd if=/dev/zero of=/var/tmp/fill bs=1k count=1024 2>/dev/null && echo var-tmp-1m-ok
            dd if=/dev/zero of=/home/nsg-alice/fill bs=1k count=5120 2>&1 | grep -o 'No space left on device'
            """, as: alice)
        #expect(result.stdout == "No space left on device\nvar-tmp-1m-ok\nNo space left on device\n", "\(result.stdout)\(result.stderr)")
        // 2m + 2m + 4m held; another private /tmp (4m) would make 12m.
        let more = try supervisor.nsgroup(["create", "more", "--private-tmp"], as: alice)
        #expect(more.status != 0)
        #expect(more.stderr.contains("12m of tmpfs mounts, more than allowed (limits.tmpfs-per-user = 10m)"), "\(more.stderr)")
        #expect(try supervisor.groupNames() == ["small"])
    }

    @Test func restartKeepsThePrivateMountsAndTheirSettings() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let base = try AttackTests.spawnAttackDirectory()
        defer { Directory.removeTree(base) }
        try AttackTests.makeDirectory(base + "/home", mode: 0o755, owner: alice)
        let created = try supervisor.nsgroup(["create", "lasting", "--private-tmp", "--home", base + "/home"], as: alice)
        try #require(created.status == 0, "\(created.stderr)")
        let wrote = try Self.inside(supervisor, "lasting", "echo kept > /tmp/kept", as: alice)
        try #require(wrote.status == 0, "\(wrote.stderr)")
        let before = try supervisor.inspect("lasting")

        supervisor.stop()
        try supervisor.start()

        let after = try supervisor.inspect("lasting")
        #expect(after["privateTmp"] as? Bool == true)
        #expect(after["privateHome"] as? Bool == true)
        #expect(after["home"] as? String == base + "/home")
        #expect(after["tmpfs"] as? [String] == before["tmpfs"] as? [String])
        let read = try Self.inside(supervisor, "lasting", "cat /tmp/kept", as: alice)
        #expect(read.stdout == "kept\n", "\(read.stderr)")
    }
}
