import Foundation
import Glibc
import POSIX
import Testing

/// `nsgroup cp`: files in and out of a group through the group's own tar, run as a
/// session of the caller's; modes kept, ownership that of whoever copies.
@Suite struct CopyTests {
    /// A directory below /tmp that everyone may pass through, removed afterwards, with
    /// directories in it owned by the given users.
    final class Scratch {
        let path: String
        init() throws {
            path = "/tmp/nsg-cp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            guard mkdir(path, 0o755) == 0 else { throw HarnessError("mkdir \(path): \(Errno.current)") }
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }

        /// `path/name`, a directory of `owner`'s with `mode`.
        @discardableResult
        func directory(_ name: String, owner: TestUser, mode: mode_t = 0o755) throws -> String {
            let full = path + "/" + name
            guard mkdir(full, mode) == 0, chown(full, owner.uid, owner.gid) == 0, chmod(full, mode) == 0 else {
                throw HarnessError("mkdir \(full): \(Errno.current)")
            }
            return full
        }
    }

    struct Status: Equatable, CustomStringConvertible {
        let mode: mode_t
        let uid: uid_t
        let gid: gid_t
        let type: mode_t
        var description: String { "type \(String(type, radix: 8)) mode \(String(mode, radix: 8)) \(uid):\(gid)" }
    }

    static func status(_ path: String) throws -> Status {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw HarnessError("lstat \(path): \(Errno.current)") }
        return Status(mode: info.st_mode & 0o7777, uid: info.st_uid, gid: info.st_gid, type: info.st_mode & S_IFMT)
    }

    /// Writes `contents` to `path` as `user` would have it: theirs, with `mode`.
    static func write(_ contents: String, to path: String, owner: TestUser, mode: mode_t) throws {
        try Data(contents.utf8).write(to: URL(fileURLWithPath: path))
        guard chown(path, owner.uid, owner.gid) == 0, chmod(path, mode) == 0 else { throw HarnessError("\(path): \(Errno.current)") }
    }

    static func contents(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }

    /// A tree of alice's: `tree/` 0750 with `a` 0640, `sub/` 0711 with `b` 0604 and an
    /// executable `run` 0751, and `link` → `a`.
    static func makeTree(in directory: String, owner: TestUser) throws -> String {
        let tree = directory + "/tree"
        for (path, mode) in [(tree, mode_t(0o750)), (tree + "/sub", 0o711)] {
            guard mkdir(path, 0o700) == 0, chown(path, owner.uid, owner.gid) == 0 else { throw HarnessError("mkdir \(path)") }
        }
        try write("alpha\n", to: tree + "/a", owner: owner, mode: 0o640)
        try write("beta\n", to: tree + "/sub/b", owner: owner, mode: 0o604)
        try write("#!/bin/sh\necho run\n", to: tree + "/sub/run", owner: owner, mode: 0o751)
        guard symlink("a", tree + "/link") == 0, lchown(tree + "/link", owner.uid, owner.gid) == 0 else { throw HarnessError("symlink") }
        // Modes last: 0711 and 0750 would not let the chmods above through for anyone but root, which we are.
        chmod(tree + "/sub", 0o711)
        chmod(tree, 0o750)
        return tree
    }

    /// The tree's entries' modes, types and contents, below `root`.
    static func expectTree(_ root: String, owner: TestUser, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let expected: [(String, mode_t, mode_t)] = [("", 0o750, S_IFDIR), ("/a", 0o640, S_IFREG), ("/sub", 0o711, S_IFDIR),
                                                    ("/sub/b", 0o604, S_IFREG), ("/sub/run", 0o751, S_IFREG)]
        for (path, mode, type) in expected {
            let status = try Self.status(root + path)
            #expect(status == Status(mode: mode, uid: owner.uid, gid: owner.gid, type: type), "\(root + path): \(status)", sourceLocation: sourceLocation)
        }
        #expect(contents(root + "/a") == "alpha\n", sourceLocation: sourceLocation)
        #expect(contents(root + "/sub/run") == "#!/bin/sh\necho run\n", sourceLocation: sourceLocation)
        #expect(try Self.status(root + "/link").type == S_IFLNK, sourceLocation: sourceLocation)
        #expect((try? ProcFS.readLink(root + "/link")) == "a", sourceLocation: sourceLocation)
    }

    @Test func aFileAndATreeGoInAndComeOutWithTheirModes() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "box", "--ns", "mnt,pid,uts"], as: alice).status == 0)
        let scratch = try Scratch()
        let local = try scratch.directory("local", owner: alice)
        let inside = try scratch.directory("inside", owner: alice)
        try Self.write("tool\n", to: local + "/tool", owner: alice, mode: 0o741)
        let tree = try Self.makeTree(in: local, owner: alice)

        // A file to a new name, and into an existing directory.
        var result = try supervisor.nsgroup(["cp", local + "/tool", "box:" + inside + "/renamed"], as: alice)
        #expect(result.status == 0 && result.stderr.isEmpty && result.stdout.isEmpty, "\(result)")
        #expect(try Self.status(inside + "/renamed") == Status(mode: 0o741, uid: alice.uid, gid: alice.gid, type: S_IFREG))
        #expect(Self.contents(inside + "/renamed") == "tool\n")
        result = try supervisor.nsgroup(["cp", local + "/tool", "box:" + inside], as: alice)
        #expect(result.status == 0, "\(result)")
        #expect(Self.contents(inside + "/tool") == "tool\n")
        // A file replaces a file.
        try Self.write("new tool\n", to: local + "/tool", owner: alice, mode: 0o700)
        #expect(try supervisor.nsgroup(["cp", local + "/tool", "box:" + inside + "/renamed"], as: alice).status == 0)
        #expect(Self.contents(inside + "/renamed") == "new tool\n")
        #expect(try Self.status(inside + "/renamed").mode == 0o700)

        // A tree into a new directory, and into an existing one (under its own name).
        #expect(try supervisor.nsgroup(["cp", tree, "box:" + inside + "/newtree"], as: alice).status == 0)
        try Self.expectTree(inside + "/newtree", owner: alice)
        #expect(try supervisor.nsgroup(["cp", tree + "/", "box:" + inside + "/"], as: alice).status == 0)
        try Self.expectTree(inside + "/tree", owner: alice)
        // A directory's contents (DIR/.) into an existing directory.
        let merged = try scratch.directory("merged", owner: alice)
        #expect(try supervisor.nsgroup(["cp", tree + "/.", "box:" + merged], as: alice).status == 0)
        #expect(Self.contents(merged + "/sub/b") == "beta\n")

        // And back out: a tree to a new name, a file into a directory.
        #expect(try supervisor.nsgroup(["cp", "box:" + inside + "/tree", local + "/back"], as: alice).status == 0)
        try Self.expectTree(local + "/back", owner: alice)
        let out = try scratch.directory("out", owner: alice)
        #expect(try supervisor.nsgroup(["cp", "box:" + inside + "/renamed", out], as: alice).status == 0)
        #expect(try Self.status(out + "/renamed") == Status(mode: 0o700, uid: alice.uid, gid: alice.gid, type: S_IFREG))

    }

    /// In alice's user-namespace group she is root: what she copies in is uid 0's inside
    /// and hers outside; what she and root copy out is theirs here.
    @Test func inAUserNamespaceGroupTheOwnerCopiesAsRootInside() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "lab", "--ns", "user,mnt,pid"], as: alice).status == 0)
        let scratch = try Scratch()
        let local = try scratch.directory("local", owner: alice)
        let inside = try scratch.directory("inside", owner: alice)
        try Self.write("notes\n", to: local + "/notes", owner: alice, mode: 0o640)
        let tree = try Self.makeTree(in: local, owner: alice)

        var result = try supervisor.nsgroup(["cp", local + "/notes", "lab:" + inside], as: alice)
        #expect(result.status == 0, "\(result)")
        #expect(try supervisor.nsgroup(["cp", tree, "lab:" + inside], as: alice).status == 0)
        let seen = try supervisor.nsgroup(["enter", "lab", "--", "stat", "-c", "%u:%g %a", inside + "/notes", inside + "/tree/sub/run"], as: alice)
        #expect(seen.stdout == "0:0 640\n0:0 751\n", "\(seen)")
        #expect(try Self.status(inside + "/notes") == Status(mode: 0o640, uid: alice.uid, gid: alice.gid, type: S_IFREG))
        try Self.expectTree(inside + "/tree", owner: alice)

        // Out again, by alice and by root (who enters as the namespace's root, through pipes).
        result = try supervisor.nsgroup(["cp", "lab:" + inside + "/tree", local + "/back"], as: alice)
        #expect(result.status == 0, "\(result)")
        try Self.expectTree(local + "/back", owner: alice)
        let rootOut = try scratch.directory("root-out", owner: TestUser(name: "root", uid: 0, gid: 0))
        result = try supervisor.nsgroup(["cp", "lab:" + inside + "/tree", rootOut])
        #expect(result.status == 0, "\(result)")
        try Self.expectTree(rootOut + "/tree", owner: TestUser(name: "root", uid: 0, gid: 0))
    }

    /// Root never takes a set-user-ID bit out of someone else's group: the owner's
    /// setuid file arrives as root's without it; alice keeps it on her own copy.
    @Test func rootCopiesOutNoSetUIDBits() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "lab", "--ns", "user,mnt,pid"], as: alice).status == 0)
        let scratch = try Scratch()
        let inside = try scratch.directory("inside", owner: alice)
        try Self.write("#!/bin/sh\n", to: inside + "/shell", owner: alice, mode: 0o4755)
        let rootOut = try scratch.directory("root-out", owner: TestUser(name: "root", uid: 0, gid: 0))
        let result = try supervisor.nsgroup(["cp", "lab:" + inside + "/shell", rootOut])
        #expect(result.status == 0, "\(result)")
        #expect(try Self.status(rootOut + "/shell") == Status(mode: 0o755, uid: 0, gid: 0, type: S_IFREG))
        let aliceOut = try scratch.directory("alice-out", owner: alice)
        #expect(try supervisor.nsgroup(["cp", "lab:" + inside + "/shell", aliceOut], as: alice).status == 0)
        #expect(try Self.status(aliceOut + "/shell").mode == 0o4755)
    }

    /// A member copies with their own rights: into and out of what is theirs, and is
    /// refused (permission denied, exit 125) where alice's 0700 directory keeps them out.
    @Test func aMemberCopiesWithTheirOwnRights() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        #expect(try supervisor.nsgroup(["create", "box", "--ns", "mnt,pid", "--member", bob.name], as: alice).status == 0)
        let scratch = try Scratch()
        let private_ = try scratch.directory("alice-only", owner: alice, mode: 0o700)
        try Self.write("secret\n", to: private_ + "/secret", owner: alice, mode: 0o600)
        let bobs = try scratch.directory("bob", owner: bob)
        try Self.write("from bob\n", to: bobs + "/mine", owner: bob, mode: 0o644)
        let inside = try scratch.directory("bob-inside", owner: bob)

        var result = try supervisor.nsgroup(["cp", bobs + "/mine", "box:" + inside], as: bob)
        #expect(result.status == 0, "\(result)")
        #expect(try Self.status(inside + "/mine") == Status(mode: 0o644, uid: bob.uid, gid: bob.gid, type: S_IFREG))

        result = try supervisor.nsgroup(["cp", bobs + "/mine", "box:" + private_ + "/planted"], as: bob)
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr.hasPrefix("nsgroup: cp: ") && result.stderr.contains("Permission denied"), "\(result.stderr)")
        #expect(access(private_ + "/planted", F_OK) != 0)

        result = try supervisor.nsgroup(["cp", "box:" + private_ + "/secret", bobs], as: bob)
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr.hasPrefix("nsgroup: cp: ") && result.stderr.contains("Permission denied"), "\(result.stderr)")
        #expect(access(bobs + "/secret", F_OK) != 0)

        let json = try supervisor.nsgroup(["cp", "--json", "box:" + private_ + "/secret", bobs], as: bob)
        #expect(json.status == 125)
        let object = try JSONSerialization.jsonObject(with: Data(json.stderr.utf8)) as? [String: Any]
        let error = object?["error"] as? [String: Any]
        #expect(error?["reason"] as? String == "permission_denied", "\(json.stderr)")
        #expect((error?["message"] as? String)?.hasPrefix("cp: in group box: ") == true, "\(json.stderr)")
    }

    /// 20 MiB of random bytes in and out, byte for byte.
    @Test func twentyMebibytesBothWaysIntact() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "box", "--ns", "mnt,pid"], as: alice).status == 0)
        let scratch = try Scratch()
        let local = try scratch.directory("local", owner: alice)
        let inside = try scratch.directory("inside", owner: alice)
        var bytes = [UInt8](repeating: 0, count: 20 << 20)
        for index in stride(from: 0, to: bytes.count, by: 8) {
            withUnsafeBytes(of: UInt64.random(in: 0...UInt64.max)) { random in
                for offset in 0..<8 { bytes[index + offset] = random[offset] }
            }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: local + "/big"))
        chown(local + "/big", alice.uid, alice.gid)
        #expect(try supervisor.nsgroup(["cp", local + "/big", "box:" + inside + "/big"], as: alice).status == 0)
        #expect(try run("/usr/bin/cmp", [local + "/big", inside + "/big"]).status == 0)
        #expect(try supervisor.nsgroup(["cp", "box:" + inside + "/big", local + "/back"], as: alice).status == 0)
        #expect(try run("/usr/bin/cmp", [local + "/big", local + "/back"]).status == 0)
        #expect(try Self.status(local + "/back").uid == alice.uid)
    }

    /// Names with spaces, newlines and tar's --transform specials, both ways and renamed.
    @Test func oddNamesSurvive() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "box"], as: alice).status == 0)
        let scratch = try Scratch()
        let local = try scratch.directory("local", owner: alice)
        let inside = try scratch.directory("in side", owner: alice)
        let odd = "a b\nc.*[x]$&,|\\"
        try Self.write("odd\n", to: local + "/" + odd, owner: alice, mode: 0o600)
        #expect(try supervisor.nsgroup(["cp", local + "/" + odd, "box:" + inside], as: alice).status == 0)
        #expect(Self.contents(inside + "/" + odd) == "odd\n")
        let renamed = "new\nname & \\1 ^"
        var result = try supervisor.nsgroup(["cp", local + "/" + odd, "box:" + inside + "/" + renamed], as: alice)
        #expect(result.status == 0, "\(result)")
        #expect(Self.contents(inside + "/" + renamed) == "odd\n")
        result = try supervisor.nsgroup(["cp", "box:" + inside + "/" + renamed, local + "/back " + odd], as: alice)
        #expect(result.status == 0, "\(result)")
        #expect(Self.contents(local + "/back " + odd) == "odd\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: local).sorted() == ["back " + odd, odd].sorted())
    }

    /// What cannot be done says so, exits 125 and changes nothing.
    @Test func errorsSaySoAndLoseNothing() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "box"], as: alice).status == 0)
        let scratch = try Scratch()
        let local = try scratch.directory("local", owner: alice)
        let inside = try scratch.directory("inside", owner: alice)
        try Self.write("keep\n", to: inside + "/file", owner: alice, mode: 0o644)
        try Self.write("keep\n", to: local + "/file", owner: alice, mode: 0o644)
        _ = try Self.makeTree(in: local, owner: alice)

        var result = try supervisor.nsgroup(["cp", "box:" + inside + "/missing", local], as: alice)
        #expect(result.status == 125)
        #expect(result.stderr == "nsgroup: cp: in group box: missing: Cannot stat: No such file or directory\n", "\(result.stderr)")
        let json = try supervisor.nsgroup(["cp", "box:" + inside + "/missing", local, "--json"], as: alice)
        #expect(json.status == 125)
        #expect(json.stderr == #"{"error":{"reason":"not_found","message":"cp: in group box: missing: Cannot stat: No such file or directory"}}"# + "\n",
                "\(json.stderr)")

        result = try supervisor.nsgroup(["cp", local + "/missing", "box:" + inside], as: alice)
        #expect(result.status == 125)
        #expect(result.stderr == "nsgroup: cp: \(local)/missing: No such file or directory\n", "\(result.stderr)")
        result = try supervisor.nsgroup(["cp", local + "/file", "box:" + inside + "/no/such/x"], as: alice)
        #expect(result.stderr == "nsgroup: cp: box:\(inside)/no/such: no such directory\n", "\(result.stderr)")
        #expect(result.status == 125)
        result = try supervisor.nsgroup(["cp", local + "/file", "box:" + inside + "/nodir/"], as: alice)
        #expect(result.stderr == "nsgroup: cp: box:\(inside)/nodir/: no such directory\n", "\(result.stderr)")

        // A directory never replaces a file, in either direction.
        result = try supervisor.nsgroup(["cp", local + "/tree", "box:" + inside + "/file"], as: alice)
        #expect(result.status == 125)
        #expect(result.stderr == "nsgroup: cp: cannot overwrite non-directory box:\(inside)/file with a directory\n", "\(result.stderr)")
        #expect(Self.contents(inside + "/file") == "keep\n")
        #expect(try supervisor.nsgroup(["cp", local + "/tree", "box:" + inside], as: alice).status == 0)
        result = try supervisor.nsgroup(["cp", "box:" + inside + "/tree", local + "/file"], as: alice)
        #expect(result.status == 125)
        #expect(result.stderr == "nsgroup: cp: cannot overwrite non-directory \(local)/file with a directory\n", "\(result.stderr)")
        #expect(Self.contents(local + "/file") == "keep\n")
        result = try supervisor.nsgroup(["cp", local + "/file", "box:" + inside + "/tree/sub/.."], as: alice)
        #expect(result.status == 0, "a directory destination takes the file under its name: \(result)")

        // Usage errors: 64.
        for arguments in [["cp", local + "/file", local + "/other"], ["cp", "box:/a", "box:/b"], ["cp", local + "/file", "box:"]] {
            let usage = try supervisor.nsgroup(arguments, as: alice)
            #expect(usage.status == 64, "\(arguments): \(usage)")
            #expect(usage.stderr.hasPrefix("nsgroup: "), "\(usage.stderr)")
        }
        // A group that is not there: the supervisor's not_found.
        result = try supervisor.nsgroup(["cp", local + "/file", "nothere:/tmp"], as: alice)
        #expect(result.status == 125 && result.stderr.contains("nothere"), "\(result)")
    }

    /// alice plants a symbolic link to /etc/shadow in her user-namespace group; root and
    /// an admin who trusts her copy it out: they get the link, never the file it names.
    @Test func aPlantedLinkToShadowComesOutAsALink() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let carol = try TestUser.carol()
        #expect(try supervisor.nsgroup(["create", "lab", "--ns", "user,mnt,pid"], as: alice).status == 0)
        let scratch = try Scratch()
        let inside = try scratch.directory("inside", owner: alice)
        let planted = try supervisor.nsgroup(["enter", "lab", "--", "ln", "-s", "/etc/shadow", inside + "/loot"], as: alice)
        try #require(planted.status == 0, "\(planted)")

        let rootOut = try scratch.directory("root-out", owner: TestUser(name: "root", uid: 0, gid: 0), mode: 0o700)
        var result = try supervisor.nsgroup(["cp", "lab:" + inside + "/loot", rootOut])
        #expect(result.status == 0, "\(result)")
        #expect(try Self.status(rootOut + "/loot").type == S_IFLNK)
        #expect((try? ProcFS.readLink(rootOut + "/loot")) == "/etc/shadow")
        // The same for the directory holding it.
        result = try supervisor.nsgroup(["cp", "lab:" + inside, rootOut + "/all"])
        #expect(result.status == 0, "\(result)")
        #expect(try Self.status(rootOut + "/all/loot").type == S_IFLNK)

        let carolOut = try scratch.directory("carol-out", owner: carol)
        result = try supervisor.nsgroup(["cp", "lab:" + inside + "/loot", carolOut], as: carol)
        #expect(result.status == 125 && result.stderr.contains("--trust-owner"), "\(result)")
        result = try supervisor.nsgroup(["cp", "--trust-owner", "lab:" + inside + "/loot", carolOut], as: carol)
        #expect(result.status == 0, "\(result)")
        #expect(try Self.status(carolOut + "/loot") == Status(mode: 0o777, uid: carol.uid, gid: carol.gid, type: S_IFLNK))
    }

    /// The tar root runs in alice's user-namespace group is hers to replace: hers answers
    /// with an archive holding more than was asked for. Root's side extracts only the
    /// name it asked for, so nothing else lands beside it.
    @Test func aReplacedTarInsideGetsOnlyTheAskedNameOut() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "lab", "--ns", "user,mnt,pid"], as: alice).status == 0)
        let scratch = try Scratch()
        let inside = try scratch.directory("inside", owner: alice)
        try Self.write("asked for\n", to: inside + "/loot", owner: alice, mode: 0o644)
        try Self.write("not asked for\n", to: inside + "/.bashrc", owner: alice, mode: 0o644)
        let plant = """
            mount -t tmpfs planted /usr/local/sbin && printf '#!/bin/sh\\nexec /usr/bin/tar -c -f - -C %s loot .bashrc\\n' "$1" >/usr/local/sbin/tar \
            && chmod 755 /usr/local/sbin/tar
            """
        let planted = try supervisor.nsgroup(["enter", "lab", "--", "sh", "-c", plant, "sh", inside], as: alice)
        try #require(planted.status == 0, "\(planted)")
        let rootOut = try scratch.directory("root-out", owner: TestUser(name: "root", uid: 0, gid: 0), mode: 0o700)
        let result = try supervisor.nsgroup(["cp", "lab:" + inside + "/loot", rootOut])
        #expect(result.status == 0, "\(result)")
        #expect(Self.contents(rootOut + "/loot") == "asked for\n")
        #expect(access(rootOut + "/.bashrc", F_OK) != 0, "the planted tar wrote beside what root asked for")
    }

    /// The classic attack on a privileged copy out (docker cp's CVEs): the archive the
    /// owner's tar sends names the asked-for path first as a symlink to a directory of
    /// root's, then a file below it, or climbs out with `..`. Root's extraction must
    /// write nothing outside the destination.
    @Test func aCraftedArchiveCannotWriteThroughALinkOrClimbOut() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "lab", "--ns", "user,mnt,pid"], as: alice).status == 0)
        let scratch = try Scratch()
        let root = TestUser(name: "root", uid: 0, gid: 0)
        let victim = try scratch.directory("victim", owner: root, mode: 0o700)
        let inside = try scratch.directory("inside", owner: alice)
        try Self.write("real\n", to: inside + "/loot", owner: alice, mode: 0o644)
        let archive = inside + "/crafted.tar"
        let craft = """
            import io, sys, tarfile
            archive, victim = sys.argv[1], sys.argv[2]
            with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as t:
                link = tarfile.TarInfo("loot"); link.type = tarfile.SYMTYPE; link.linkname = victim; t.addfile(link)
                for name in ["loot/pwned", "loot/../../pwned-up", "../pwned-up"]:
                    data = b"pwned\\n"; info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
            """
        let crafted = try run("/usr/bin/python3", ["-c", craft, archive, victim])
        try #require(crafted.status == 0, "\(crafted.stderr)")
        chown(archive, alice.uid, alice.gid)
        let plant = """
            mount -t tmpfs planted /usr/local/sbin && printf '#!/bin/sh\\nexec cat %s\\n' "$1" >/usr/local/sbin/tar \
            && chmod 755 /usr/local/sbin/tar
            """
        let planted = try supervisor.nsgroup(["enter", "lab", "--", "sh", "-c", plant, "sh", archive], as: alice)
        try #require(planted.status == 0, "\(planted)")
        let rootOut = try scratch.directory("root-out", owner: root, mode: 0o700)
        for destination in [rootOut, rootOut + "/renamed"] {
            _ = try supervisor.nsgroup(["cp", "lab:" + inside + "/loot", destination])
            #expect(access(victim + "/pwned", F_OK) != 0, "root's copy out wrote through the archive's link into \(victim)")
            #expect(access(scratch.path + "/pwned-up", F_OK) != 0 && access(rootOut + "/../pwned-up", F_OK) != 0,
                    "root's copy out climbed out of \(destination)")
        }
    }
}

