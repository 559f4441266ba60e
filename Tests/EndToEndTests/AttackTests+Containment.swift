import Cgroups
import Foundation
import Glibc
import POSIX
import Testing

/// Issue 14 (a cgroup per group) attacked by hostile local users: escaping the group's
/// cgroup, spending someone else's limits, stopping someone else's processes, and making the
/// supervisor's own tree or timers work against a group's owner.
///
/// Each test says in its comment whether the attack **FAILS** on the code of df2ed74 (a real
/// finding: the test fails there, and what it observed) or **holds** (the code already stops
/// it; kept as a regression test).
///
/// Serialized: some of them look at timing (idle) or hold a gigabyte of memory.
@Suite("Attacks on containment (issue 14)", .serialized)
struct ContainmentAttackTests {
    typealias C = ContainmentTests

    /// Counts in a loop into `file`, a number per line overwritten (as the freeze test does).
    static func counter(_ file: String) -> [String] {
        ["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > \(file); sleep 0.01; done"]
    }

    static func count(_ file: String) -> Int { C.counted(file) }

    /// The uid a process runs as (host view), or nil when it is gone.
    static func uid(of pid: pid_t) -> uid_t? {
        C.file("/proc/\(pid)/status").split(separator: "\n").first { $0.hasPrefix("Uid:") }
            .flatMap { $0.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first }
            .flatMap { uid_t($0) }
    }

    // MARK: Escaping the cgroup (holds)

    /// holds. Root of the group's user namespace (its owner) mounts cgroup2 and the v1 memory
    /// hierarchy inside (both work: the cgroup namespace is rooted at the group) and tries to
    /// move itself out or into the holder's leaf, make a sub-cgroup, freeze its group or raise
    /// its memory limit. The kernel refuses all of it: every file and directory nsgroupd made
    /// is host root's, which is nobody inside. On the host side, nothing in the tree, in any
    /// hierarchy, is writable by anyone but root.
    @Test func namespaceRootCannotLeaveOrReshapeItsCgroup() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let created = try supervisor.nsgroup(["create", "jail", "--ns", "user,mnt,pid,cgroup,uts", "--memory", "64M", "--pids", "40"], as: alice)
        try #require(created.status == 0, "\(created.stderr)")
        let script = """
            mount -t tmpfs none /mnt || echo NO-TMPFS
            mkdir /mnt/u /mnt/m
            mount -t cgroup2 none /mnt/u || echo NO-CGROUP2
            mount -t cgroup -o memory none /mnt/m || echo NO-MEMORY
            for f in /mnt/u/cgroup.procs /mnt/u/holder/cgroup.procs /mnt/u/cgroup.freeze /mnt/u/cgroup.subtree_control \
                     /mnt/u/cgroup.max.descendants /mnt/m/cgroup.procs /mnt/m/holder/cgroup.procs /mnt/m/tasks; do
                (echo $$ > $f) 2>/dev/null && echo "WROTE $f"
            done
            (echo 9999999999 > /mnt/m/memory.limit_in_bytes) 2>/dev/null && echo "WROTE memory.limit_in_bytes"
            (echo 1 > /mnt/m/memory.oom_control) 2>/dev/null && echo "WROTE memory.oom_control"
            mkdir /mnt/u/escape 2>/dev/null && echo MKDIR-UNIFIED
            mkdir /mnt/m/escape 2>/dev/null && echo MKDIR-MEMORY
            grep '^0::' /proc/self/cgroup
            """
        let inside = try supervisor.nsgroup(["enter", "jail", "--", "/bin/sh", "-c", script], as: alice)
        #expect(inside.status == 0, "\(inside.stderr)")
        // The mounts work (so the refusals below are the kernel's permission checks, not a missing mount).
        #expect(!inside.stdout.contains("NO-"), "\(inside.stdout)")
        #expect(!inside.stdout.contains("WROTE") && !inside.stdout.contains("MKDIR"), "\(inside.stdout)")
        #expect(inside.stdout.contains("0::/session-"), "\(inside.stdout)")
        let group = "users/\(alice.uid)/group-jail"
        #expect(C.file(C.directory(supervisor, group, "memory") + "/memory.limit_in_bytes") == String(64 << 20))
        #expect(C.file(C.directory(supervisor, group) + "/cgroup.freeze") == "0")

        // Every directory and file nsgroupd made, in every hierarchy: root's, and writable by root only.
        for controller in [nil, "memory", "pids", "cpu"] {
            let base = C.directory(supervisor, "", controller)
            let enumerator = FileManager.default.enumerator(atPath: base)
            var checked = 0
            while let relative = enumerator?.nextObject() as? String {
                var status = stat()
                guard lstat(base + "/" + relative, &status) == 0 else { continue }
                checked += 1
                #expect(status.st_uid == 0 && status.st_gid == 0, "\(base)/\(relative) belongs to \(status.st_uid):\(status.st_gid)")
                #expect(status.st_mode & 0o022 == 0, "\(base)/\(relative) has mode \(String(status.st_mode & 0o7777, radix: 8))")
            }
            #expect(checked > 10, "nothing to check below \(base)")
        }
    }

    // MARK: Freezing other people's processes (FAILS)

    /// FAILS on df2ed74. The owner may not send SIGSTOP to root's session, nor to a member's
    /// (`signal` refuses her: theOwnerCannotSignalRootsSession), but `freeze` does the same
    /// thing without asking whose processes are in the group: root's session, and a member's,
    /// stop where they are, for as long as she likes, with whatever they hold. Observed: both
    /// counters stand still after alice's freeze (freeze answers ok); a root session holding
    /// `flock` on a host file keeps it locked for everyone while frozen (dpkg's lock,
    /// /etc/passwd.lock...). Destroy (kill) was always the owner's; an indefinite stop of
    /// someone else's process is new with issue 14.
    ///
    /// Fix: freeze (and thaw, which is the same decision) by the owner only while every
    /// session running in the group is her own (its uid is the owner's or a subordinate uid of
    /// hers); otherwise permission_denied naming the other sessions' users, as signal does;
    /// admins keep the right. An enter by someone else into a frozen group is refused already.
    @Test func theOwnerCannotFreezeRootsOrAMembersSession() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let dave = try TestUser.dave()
        let scratch = supervisor.directory + "/counters"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o777])
        #expect(try supervisor.nsgroup(["create", "shared", "--ns", "uts,ipc", "--member", dave.name], as: alice).status == 0)
        let rootSession = try BackgroundProcess(Products.nsgroup, ["--socket", supervisor.socketPath, "enter", "shared", "--"]
                                                + Self.counter(scratch + "/root"), log: supervisor.directory + "/root-session.log")
        let daveSession = try supervisor.startEnter("shared", Self.counter(scratch + "/dave"), as: dave)
        defer {
            _ = try? supervisor.nsgroup(["thaw", "shared"])
            daveSession.terminate()
            rootSession.stop(SIGKILL)
        }
        try waitUntil("both counters to count", timeoutSeconds: 10) {
            Self.count(scratch + "/root") > 10 && Self.count(scratch + "/dave") > 10
        }

        let freeze = try supervisor.nsgroup(["freeze", "shared"], as: alice)
        usleep(300_000)
        let before = (root: Self.count(scratch + "/root"), dave: Self.count(scratch + "/dave"))
        usleep(700_000)
        let after = (root: Self.count(scratch + "/root"), dave: Self.count(scratch + "/dave"))
        #expect(after.root > before.root, "alice (the owner) stopped root's session with freeze (status \(freeze.status): \(freeze.stderr))")
        #expect(after.dave > before.dave, "alice (the owner) stopped her member's session with freeze (status \(freeze.status): \(freeze.stderr))")
    }

    // MARK: Spending someone else's limits (FAILS)

    /// FAILS on df2ed74. A member's sessions run in the owner's group, so the kernel charges
    /// them to the owner's per-user cgroup (users/OWNER), never to the member's. Bob, a
    /// member of one of alice's groups, fills alice's pids-per-user from there: alice can
    /// start nothing in any of her other groups; and bob's own pids-per-user does not count
    /// any of it, so he has his whole allowance again in a group of his own. Observed (limit
    /// 40): alice's `enter mine` fails with "its pids limit, or its owner's, is reached",
    /// and bob runs 45 + 30 processes.
    ///
    /// Fix: a session belongs below the person who started it. Put the session of anyone
    /// whose charged uid is not the group's cgroupUser in a cgroup below *their* user node
    /// (users/MEMBER/guest-OWNER-NAME/session-ID, limited by the group's limits too), keep a
    /// list of them with the group, and kill those cgroups with the group's on destroy; or, at
    /// least, give such a session's leaf the member's own per-user pids and memory limits
    /// (which bounds each session, not the member's total). Root and admins may stay charged
    /// to the owner (they chose to enter).
    @Test func aMembersSessionsAreChargedToTheMemberNotTheOwner() throws {
        let supervisor = try TestSupervisor(config: "[limits]\npids-per-user = 40\n")
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        #expect(try supervisor.nsgroup(["create", "shared", "--ns", "uts", "--member", bob.name], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["create", "mine", "--ns", "uts"], as: alice).status == 0)
        let sleepers = { (count: Int) in ["/bin/sh", "-c", "for i in $(seq \(count)); do sleep 1000 & done; wait"] }
        let inShared = try supervisor.startEnter("shared", sleepers(45), as: bob)
        defer { inShared.terminate() }
        let alicePids = C.directory(supervisor, "users/\(alice.uid)", "pids") + "/pids.current"
        let bobsProcesses = {
            C.pids(below: C.directory(supervisor, "")).filter { Self.uid(of: $0) == bob.uid }.count
        }
        // Bob's sleepers start (wherever they are charged).
        try waitUntil("bob's sleepers", timeoutSeconds: 15) { bobsProcesses() >= 35 }
        usleep(1_000_000)

        // Alice can still use her own group.
        let mine = try supervisor.nsgroup(["enter", "mine", "--", "/bin/echo", "mine"], as: alice)
        #expect(mine.status == 0 && mine.stdout == "mine\n",
                "bob (a member) used up alice's pids-per-user (users/\(alice.uid) pids.current \(C.file(alicePids))): \(mine.stderr)")

        // And bob has one allowance, not one of his own plus one per group shared with him.
        #expect(try supervisor.nsgroup(["create", "bobs", "--ns", "uts"], as: bob).status == 0)
        let inOwn = try supervisor.startEnter("bobs", sleepers(30), as: bob)
        defer { inOwn.terminate() }
        usleep(2_000_000)
        let total = bobsProcesses()
        #expect(total <= 40, "bob runs \(total) processes under nsgroupd with pids-per-user = 40")
    }

    /// holds. A group created by one of alice's subordinate uids (root inside her user
    /// namespace switching to a mapped id) lives in alice's cgroup, under her per-user limits.
    @Test func aGroupOfASubordinateUIDIsInItsOwnersCgroup() throws {
        let supervisor = try TestSupervisor(config: "[limits]\npids-per-user = 77\n")
        let alice = try TestUser.alice()
        let subuids = try String(contentsOfFile: "/etc/subuid", encoding: .utf8).split(separator: "\n")
            .map { $0.split(separator: ":") }.first { $0.count == 3 && $0[0] == alice.name }
        let start = try #require(subuids.flatMap { uid_t($0[1]) }, "\(alice.name) has no range in /etc/subuid")
        let created = try run("/usr/bin/setpriv", ["--reuid=\(start + 7)", "--regid=\(start + 7)", "--clear-groups", "--",
                                                   Products.nsgroup, "--socket", supervisor.socketPath, "create", "sub", "--ns", "uts"])
        try #require(created.status == 0, "\(created.stderr)")
        #expect(try supervisor.inspect("sub")["cgroup"] as? String == supervisor.cgroupBase + "/users/\(alice.uid)/group-sub")
        #expect(unifiedCgroup(ofProcess: try supervisor.holderPID("sub")) == supervisor.cgroupBase + "/users/\(alice.uid)/group-sub/holder")
        #expect(C.file(C.directory(supervisor, "users/\(alice.uid)", "pids") + "/pids.max") == "77")
        #expect(!FileManager.default.fileExists(atPath: C.directory(supervisor, "users/\(start + 7)")))
    }

    // MARK: Limits across a restart (FAILS)

    /// FAILS on df2ed74. An administrator lowers the per-user limits in nsgroupd.conf and
    /// restarts nsgroupd (rather than reloading it). Per-user limits are written only when a
    /// user's cgroup is made (and on SIGHUP), so everyone who kept a group across the restart
    /// keeps the old limits for as long as they keep one; only new users get the new ones.
    /// Observed: users/ALICE keeps pids.max 4096 and memory.limit_in_bytes at half the
    /// machine while bob, new, gets 50 and 256M.
    ///
    /// Fix: at start-up, once the groups are taken back (Supervisor.start after
    /// readoptGroups), call containment.applyUserLimits(), as the SIGHUP path does.
    @Test func perUserLimitsLoweredAcrossARestartApplyToUsersWhoKeptTheirGroups() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        #expect(try supervisor.nsgroup(["create", "keep", "--ns", "uts"], as: alice).status == 0)
        let pidsMax = { (user: TestUser) in C.file(C.directory(supervisor, "users/\(user.uid)", "pids") + "/pids.max") }
        let memoryMax = { (user: TestUser) in C.file(C.directory(supervisor, "users/\(user.uid)", "memory") + "/memory.limit_in_bytes") }
        #expect(pidsMax(alice) == "4096")

        supervisor.stop()
        try PolicyTests.writeConfig(supervisor, "[limits]\npids-per-user = 50\nmemory-per-user = 256m\n")
        try supervisor.start()
        #expect(try supervisor.groupNames() == ["keep"])
        #expect(try supervisor.nsgroup(["create", "fresh", "--ns", "uts"], as: bob).status == 0)
        #expect(pidsMax(bob) == "50", "holds for a new user")
        #expect(memoryMax(bob) == String(256 << 20), "holds for a new user")
        #expect(pidsMax(alice) == "50", "alice kept her old per-user pids limit across the restart")
        #expect(memoryMax(alice) == String(256 << 20), "alice kept her old per-user memory limit across the restart")
    }

    // MARK: Destroy, re-create and restart (FAILS)

    /// FAILS on df2ed74. PROTOCOL.md §8.5: destroy answers "only after the holder has been
    /// reaped. ... when {} arrives the work is done. A script can destroy web && create web".
    /// But the answer waits for the holder alone: the group's other processes got cgroup.kill
    /// and may still be dying (a gigabyte takes a while to free), so its cgroup is still
    /// populated, and the create right after finds it, kills it again and cannot remove it.
    /// Observed (every run of 5 here with 2 GiB; by hand 6 of 6 with 1 and 2 GiB):
    /// `nsgroup: cannot create group "big": its cgroup: rmdir .../users/UID/big/session-1:
    /// Device or resource busy`. Only the owner's own re-create fails (another user's "big"
    /// is users/OTHER/big), but the promise "when {} arrives the work is done" is broken:
    /// processes of a group without a pid namespace may still run after destroy answers.
    ///
    /// Fix: finish the destroy waiters (and unregister the name) only once the group's cgroup
    /// is empty: after the holder is reaped, if `node.isPopulated`, watch the unified
    /// cgroup.events (it is pollable; inotify IN_MODIFY works) or check on each sweep turn,
    /// and answer then (bounded, say by spawn-timeout, after which answer with an error).
    /// Alternatively let prepareGroup move a still-populated old cgroup aside (a fresh
    /// directory name per group instance, e.g. NAME-INSTANCE), so a re-create never waits.
    @Test func destroyThenCreateOfTheSameNameSucceedsAsDocumented() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "big", "--ns", "uts"], as: alice).status == 0)
        let hog = try supervisor.startEnter("big", ["/usr/bin/python3", "-c",
                                                    "import time\nx = b'\\x01' * (2 << 30)\ntime.sleep(1000)"], as: alice)
        defer { hog.terminate() }
        let usage = C.directory(supervisor, "users/\(alice.uid)/group-big", "memory") + "/memory.usage_in_bytes"
        try waitUntil("the session to hold its 2 GiB", timeoutSeconds: 30) { (UInt64(C.file(usage)) ?? 0) >= 2 << 30 }

        // The documented script, as alice.
        let nsgroup = "\(Products.nsgroup) --socket \(supervisor.socketPath)"
        let script = try run("/bin/sh", ["-c", "\(nsgroup) destroy big && \(nsgroup) create big --ns uts"], as: alice)
        #expect(script.status == 0, "destroy big && create big failed: \(script.stderr)")
    }

    /// FAILS on df2ed74. A session that leaves a daemon behind keeps its cgroup
    /// (users/UID/NAME/session-N) after it ends. After a restart, session numbers start again
    /// past the sessions still running only, so the next enter gets a number whose cgroup is
    /// still there and populated: prepareSession tries to remove it and the enter fails.
    /// Observed: `nsgroup: cannot enter group "keep": its session's cgroup: rmdir
    /// .../keep/session-1: Device or resource busy` (the enter after it works: next number).
    /// A member can leave many such cgroups behind in a group of the owner's.
    ///
    /// Fix: in Readoption (removeStrays, for live groups), `sessions.noteTaken(N)` for every
    /// session-N cgroup found, and put the populated ones into `leftovers` so the sweep removes
    /// them once empty; and in prepareSession, never reuse an existing populated cgroup: take
    /// the next number instead of failing.
    @Test func anEnterAfterARestartDoesNotCollideWithALeftoverSessionCgroup() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "keep", "--ns", "uts"], as: alice).status == 0)
        let daemon = try supervisor.nsgroup(["enter", "keep", "--", "/bin/sh", "-c", C.daemon], as: alice)
        #expect(daemon.status == 0, "\(daemon.stderr)")
        let group = C.directory(supervisor, "users/\(alice.uid)/group-keep")
        var leftover = ""
        try waitUntil("the daemon in a session cgroup of its own") {
            leftover = ((try? FileManager.default.contentsOfDirectory(atPath: group)) ?? [])
                .first { $0.hasPrefix("session-") && !C.pids(below: group + "/" + $0).isEmpty } ?? ""
            return !leftover.isEmpty
        }

        supervisor.stop()
        try supervisor.start()
        let entered = try supervisor.nsgroup(["enter", "keep", "--", "/bin/echo", "hello"], as: alice)
        #expect(entered.status == 0 && entered.stdout == "hello\n",
                "the first enter after a restart collided with \(leftover): \(entered.stderr)")
    }

    // MARK: Idle (FAILS)

    /// FAILS on df2ed74 (about 19 runs in 20: it passes only when a sweep turn happens to fall
    /// inside the short session). PROTOCOL.md §8.2: idle is counted "from its creation and
    /// again from the end of each last session". The sweep notices a session only if it is
    /// running at one of its turns, once a second; nothing resets the clock when a session
    /// ends. A group used by short sessions (a CI job's `nsgroup enter g -- make test`, a
    /// script's many quick commands) is destroyed under them, its tmpfs contents with it.
    /// Observed: created with --idle 3s, a session at 2.3 s that ends at once, the group is
    /// gone by 4.5 s (it should live until 5.3 s at least).
    ///
    /// Fix: set group.lastActive = monotonicSeconds() when a session starts (EnterHandler
    /// ended(), on success) and when one ends (SessionTable's onEnded / Containment
    /// sessionEnded), not only on sweep turns.
    @Test func aShortSessionResetsTheIdleClock() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "lazy", "--ns", "uts", "--idle", "3s"], as: alice).status == 0)
        let created = Date()
        usleep(2_300_000)
        let quick = try supervisor.nsgroup(["enter", "lazy", "--", "/bin/true"], as: alice)
        #expect(quick.status == 0, "\(quick.stderr)")
        let ended = Date()
        // 2.2 s after the session ended: 0.8 s of idle time left.
        let wait = 4.5 - Date().timeIntervalSince(created)
        if wait > 0 { usleep(UInt32(wait * 1_000_000)) }
        #expect(try supervisor.groupNames().contains("lazy"),
                "destroyed as idle \(String(format: "%.1f", Date().timeIntervalSince(ended))) s after its last session ended (idle 3s)")
    }

    // MARK: Names (FAILS, and holds)

    /// FAILS on df2ed74. Group names may contain '.' and '_', so a valid name can be the name
    /// of a file cgroupfs puts in every users/UID: the mkdir of the group's cgroup meets the
    /// file (EEXIST, taken as "already there"), and the create fails with a cgroup path in the
    /// message. Observed for each name below, e.g. `cannot create group "tasks": its cgroup:
    /// write -1 to .../users/1001/tasks/memory.limit_in_bytes: Not a directory`, `cannot
    /// create group "cgroup.kill": its cgroup: mkdir .../users/1001/cgroup.kill/holder: Not a
    /// directory`. Nothing is left behind, and no file is written (checked by hand).
    ///
    /// Fix: name each group's cgroup so that it can never be an interface file of any
    /// hierarchy, e.g. "group-NAME" (or "NAME.group": kernel files have no such suffix), in
    /// CgroupTree.group and removeStrays (which then skips names without the prefix); or at
    /// least refuse such names up front with invalid_name, naming the rule.
    @Test(arguments: ["cgroup.procs", "cgroup.kill", "cgroup.freeze", "tasks", "notify_on_release", "pids.max", "cpu.stat", "memory.pressure"])
    func aGroupNamedLikeACgroupFileCanBeCreated(_ name: String) throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let created = try supervisor.nsgroup(["create", name, "--ns", "uts"], as: alice)
        #expect(created.status == 0, "\(created.stderr)")
        // The users/UID files are untouched.
        #expect(C.file(C.directory(supervisor, "users/\(alice.uid)", "pids") + "/pids.max") == "4096")
        if created.status == 0 {
            #expect(try supervisor.nsgroup(["enter", name, "--", "/bin/true"], as: alice).status == 0)
            #expect(try supervisor.nsgroup(["destroy", name], as: alice).status == 0)
        }
    }

    /// holds. Names like the tree's own leaves ("supervisor", "holder", "session-1", "users")
    /// are plain groups below their owner: destroying the one named "supervisor" leaves the
    /// supervisor alone in its leaf, and a session in "holder" is not in anybody's holder leaf.
    @Test func groupsNamedLikeTheTreesLeavesStayBelowTheirOwner() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        for name in ["supervisor", "holder", "session-1", "users"] {
            let created = try supervisor.nsgroup(["create", name, "--ns", "uts"], as: alice)
            try #require(created.status == 0, "\(created.stderr)")
            #expect(try supervisor.inspect(name)["cgroup"] as? String == supervisor.cgroupBase + "/users/\(alice.uid)/group-\(name)")
        }
        let inside = try supervisor.nsgroup(["enter", "holder", "--", "/bin/cat", "/proc/self/cgroup"], as: alice)
        #expect(inside.stdout.contains("0::\(supervisor.cgroupBase)/users/\(alice.uid)/group-holder/session-"), "\(inside.stdout)")
        #expect(try supervisor.nsgroup(["destroy", "supervisor"], as: alice).status == 0)
        #expect(C.isAlive(supervisor.pid))
        #expect(unifiedCgroup(ofProcess: supervisor.pid) == supervisor.cgroupBase + "/supervisor")
        #expect(try supervisor.nsgroup(["list"], as: alice).status == 0)
        #expect(try supervisor.groupNames().sorted() == ["holder", "session-1", "users"])
    }
}
