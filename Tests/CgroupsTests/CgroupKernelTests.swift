import Testing
import Glibc
@testable import Cgroups
import CPOSIX
import POSIX

/// The module against this machine's kernel, as root: a hybrid host (cgroup2 at
/// /sys/fs/cgroup/unified with no controllers, memory, pids and cpu in v1 hierarchies). Every
/// test works below a base of its own, "nsg-cgtest-<random>", and removes it, whatever happens.
@Suite(.serialized) struct CgroupKernelTests {
    /// A tree below a fresh base; `cleanUp` kills what is in it and removes it everywhere.
    final class RealTree {
        let layout: CgroupLayout
        let tree: CgroupTree
        /// Children the test started, reaped at clean-up.
        var children: [pid_t] = []

        init() throws {
            layout = try CgroupLayout.detect()
            tree = CgroupTree(layout: layout, subdirectory: Sys.randomName("nsg-cgtest-"))
        }

        /// The base's directories in the four hierarchies, as the test computes them.
        var baseDirectories: [String] {
            let memory = Sys.ownLegacyCgroup("memory") ?? "/"
            let base = tree.subdirectory
            return [
                "/sys/fs/cgroup/unified" + tree.basePath,
                "/sys/fs/cgroup/memory" + (memory == "/" ? "" : memory) + "/" + base,
                "/sys/fs/cgroup/pids/" + base,
                "/sys/fs/cgroup/cpu/" + base,
            ]
        }

        /// Kills everything below users (never the supervisor leaf: the test process may be
        /// there), reaps the children, removes the base. Records what fails.
        func cleanUp() {
            let users = tree.node(["users"])
            if users.exists() {
                do {
                    try users.killAll()
                    try Sys.waitUntil("the test's cgroups are empty") { !users.isPopulated }
                } catch {
                    Issue.record("clean-up: \(error)")
                }
            }
            for child in children { Sys.killAndReap(child) }
            do {
                try tree.base.remove()
            } catch {
                Issue.record("clean-up: \(error)")
            }
        }
    }

    @Test func detectFindsThisHostsHybridLayout() throws {
        let layout = try CgroupLayout.detect()
        let unifiedOwn = try #require(Sys.readFile("/proc/self/cgroup")?.split(separator: "\n").first { $0.hasPrefix("0::") })
        let own = { (controller: String) throws -> String in try #require(Sys.ownLegacyCgroup(controller)) }
        #expect(layout == CgroupLayout(
            unifiedMount: "/sys/fs/cgroup/unified", ownUnified: String(unifiedOwn.dropFirst(3)),
            places: [
                .memory: .legacy(mount: "/sys/fs/cgroup/memory", own: try own("memory")),
                .pids: .legacy(mount: "/sys/fs/cgroup/pids", own: try own("pids")),
                .cpu: .legacy(mount: "/sys/fs/cgroup/cpu", own: try own("cpu")),
            ],
            cpuAccounting: .legacy(mount: "/sys/fs/cgroup/cpuacct", own: try own("cpuacct")), fileRoot: ""))
        #expect(layout.summary == "cgroup2 at /sys/fs/cgroup/unified (membership, kill, freeze); memory: v1 at /sys/fs/cgroup/memory; pids: v1 at /sys/fs/cgroup/pids; cpu: v1 at /sys/fs/cgroup/cpu")
        // Our memory cgroup is not the root here: the test's nodes go below it.
        #expect(try own("memory") != "/")
    }

    /// A group's life: limits, processes placed in it, a fork bomb held at the pids limit,
    /// accounting, freezing, killing, removal from every hierarchy.
    @Test func aGroupLivesAndDiesInItsCgroup() throws {
        let real = try RealTree()
        defer { real.cleanUp() }
        let tree = real.tree

        try tree.prepare()
        for directory in real.baseDirectories {
            #expect(Sys.isDirectory(directory + "/supervisor"), "\(directory)")
            #expect(Sys.isDirectory(directory + "/users"), "\(directory)")
        }
        let group = tree.group(owner: 0, name: "lab")
        try tree.user(0).create()
        try group.create()
        try group.delegateControllersToChildren()
        let limits = CgroupLimits(memory: 64 << 20, pids: 5, cpuWeight: 50, cpus: 0.5)
        try group.apply(limits)
        #expect(group.readLimits() == limits)
        let memoryDirectory = try #require(group.directory(for: .memory))
        #expect(Sys.readFile(memoryDirectory + "/memory.limit_in_bytes") == "67108864\n")
        #expect(Sys.readFile(try #require(group.directory(for: .pids)) + "/pids.max") == "5\n")
        #expect(Sys.readFile(try #require(group.directory(for: .cpu)) + "/cpu.shares") == "512\n")
        #expect(Sys.readFile(try #require(group.directory(for: .cpu)) + "/cpu.cfs_quota_us") == "50000\n")

        // One process in the holder leaf, moved in before it does anything.
        let holder = group.child("holder")
        try holder.create()
        let sleeper = try Sys.GatedShell("exec sleep 60")
        real.children.append(sleeper.pid)
        try holder.move(sleeper.pid)
        sleeper.release()
        #expect(unifiedCgroup(ofProcess: sleeper.pid) == holder.unifiedPath)
        #expect(group.usage().pids == 1)
        #expect(group.isPopulated)

        // A fork bomb in a session leaf: the group's pids limit holds it at five processes.
        let session = group.child("session-1")
        try session.create()
        // The sleeps' stderr is not the pipe, which then ends with the shell.
        let bomb = try Sys.GatedShell("for i in 1 2 3 4 5 6 7 8; do sleep 60 2>/dev/null & done; wait", captureErrors: true)
        real.children.append(bomb.pid)
        try session.move(bomb.pid)
        bomb.release()
        // dash gives up at the first fork refused, leaving the sleeps it did start.
        let status = try Sys.reap(bomb.pid)
        #expect(status != 0)
        let errors = try Sys.readToEnd(try #require(bomb.errors))
        close(bomb.errors!)
        #expect(errors.contains("fork"), "the shell said: \(errors)")
        let pidsDirectory = try #require(group.directory(for: .pids))
        #expect(Sys.readFile(pidsDirectory + "/pids.peak") == "5\n")
        // The refusal is counted where the fork was tried (Linux 6.18 counts v1 events locally).
        let sessionPids = try #require(session.directory(for: .pids))
        let events = try #require(Sys.readFile(sessionPids + "/pids.events"))
        #expect(events.hasPrefix("max ") && events != "max 0\n", "pids.events: \(events)")
        #expect(group.usage().pids == 4)

        // processes() lists exactly what /proc says is there: the sleeper and three sleeps.
        try Sys.waitUntil("the bomb's sleeps have exec'd") {
            group.processes().allSatisfy { Sys.readFile("/proc/\($0.pid)/comm") == "sleep\n" }
        }
        let listed = group.processes()
        #expect(listed.count == 4)
        #expect(Set(listed.map(\.pid)) == Sys.processesInUnifiedCgroup(group.unifiedPath))
        #expect(listed.filter { $0.leaf == "holder" }.map(\.pid) == [sleeper.pid])
        #expect(listed.filter { $0.leaf == "session-1" }.count == 3)
        #expect(Set(group.childNames()) == ["holder", "session-1"])

        let usage = group.usage()
        #expect((usage.memory ?? 0) > 0)
        #expect((usage.memoryPeak ?? 0) >= (usage.memory ?? 0))
        #expect((usage.cpuUsec ?? 0) > 0)
        #expect(usage.pids == 4)
        #expect(group.oomKills() == 0)

        // Freezing and thawing.
        try group.setFrozen(true)
        try Sys.waitUntil("the group is frozen") { group.isFrozen }
        #expect(holder.isFrozen && session.isFrozen)  // everything below freezes with it
        #expect(Sys.readFile(group.unifiedDirectory + "/cgroup.freeze") == "1\n")
        try group.setFrozen(false)
        try Sys.waitUntil("the group is thawed") { !group.isFrozen }
        #expect(!holder.isFrozen)

        // A populated cgroup cannot be removed.
        let busy = try #require(throws: CgroupError.self) { try group.remove() }
        #expect(busy.errno == Errno(rawValue: EBUSY))

        try group.killAll()
        try Sys.waitUntil("the group is empty") { !group.isPopulated }
        #expect(try Sys.reap(sleeper.pid) == 128 + SIGKILL)
        #expect(group.processes().isEmpty)
        #expect(Sys.processesInUnifiedCgroup(group.unifiedPath).isEmpty)

        try tree.base.remove()
        #expect(!group.exists())
        for directory in real.baseDirectories {
            #expect(!Sys.exists(directory), "\(directory) is still there")
        }
    }

    /// clone3 with CLONE_INTO_CGROUP starts a child in the node; the v1 cgroup.procs
    /// descriptors take it into the node's v1 cgroups before it execs.
    @Test(arguments: [false, true])
    func cloneIntoCgroupStartsTheChildThere(newNamespace: Bool) throws {
        let real = try RealTree()
        defer { real.cleanUp() }
        try real.tree.prepare()
        let group = real.tree.group(owner: 0, name: "lab")
        try real.tree.user(0).create()
        try group.create()
        let holder = group.child("holder")
        try holder.create()

        let directory = try holder.openForClone()
        let procs = try holder.openLegacyProcs()
        let count = procs.count
        #expect(count == 3)
        let (readEnd, writeEnd) = try Sys.pipe()
        defer { close(readEnd) }
        var pidfd: Int32 = -1
        let cloneFlags: UInt64 = newNamespace ? 0x0200_0000 : 0  // CLONE_NEWCGROUP
        let pid = Sys.withCStrings(["/bin/cat", "/proc/self/cgroup"]) { argv in
            Sys.withCStrings(Sys.environment) { envp in
                procs.rawValues.withUnsafeBufferPointer { fds in
                    ns_clone_into_cgroup_exec(directory.rawValue, fds.baseAddress, fds.count, cloneFlags, writeEnd,
                                              "/bin/cat", argv, envp, &pidfd)
                }
            }
        }
        close(writeEnd)
        try #require(pid > 0, "clone3: \(String(cString: strerror(errno)))")
        real.children.append(pid)
        let process = Pidfd(pid: pid, adopting: pidfd)
        let output = try Sys.readToEnd(readEnd)
        #expect(try Sys.reap(pid) == 0)
        _ = process

        let lines = Set(output.split(separator: "\n").map(String.init))
        let below = "/" + real.tree.subdirectory + "/users/0/group-lab/holder"
        let memory = try #require(Sys.ownLegacyCgroup("memory"))
        if newNamespace {
            // The new namespace's root is the node in the unified hierarchy; in v1 it is where
            // the child was at the clone, its parent's cgroups, below which it then moved.
            #expect(lines.contains("0::/"), "\(output)")
            #expect(lines.contains { $0.hasSuffix(":memory:" + below) }, "\(output)")
            #expect(lines.contains { $0.hasSuffix(":pids:" + below) }, "\(output)")
            #expect(lines.contains { $0.hasSuffix(":cpu:" + below) }, "\(output)")
        } else {
            #expect(lines.contains("0::" + holder.unifiedPath), "\(output)")
            #expect(lines.contains { $0.hasSuffix(":memory:" + memory + below) }, "\(output)")
            #expect(lines.contains { $0.hasSuffix(":pids:" + below) }, "\(output)")
            #expect(lines.contains { $0.hasSuffix(":cpu:" + below) }, "\(output)")
        }
    }

    /// killAll's way on kernels without cgroup.kill (before 5.14): each process by pidfd.
    @Test func theKillFallbackSignalsEveryProcess() throws {
        let real = try RealTree()
        defer { real.cleanUp() }
        try real.tree.prepare()
        let group = real.tree.group(owner: 0, name: "lab")
        try real.tree.user(0).create()
        try group.create()
        let session = group.child("session-7")
        try session.create()
        var shells: [pid_t] = []
        for _ in 0..<3 {
            let shell = try Sys.GatedShell("sleep 60 & sleep 60")
            real.children.append(shell.pid)
            shells.append(shell.pid)
            try session.move(shell.pid)
            shell.release()
        }
        try Sys.waitUntil("every shell has started its two sleeps") { group.processes().count == 9 }

        try group.killEachProcess()
        try Sys.waitUntil("the group is empty") { !group.isPopulated }
        for shell in shells { #expect(try Sys.reap(shell) == 128 + SIGKILL) }
    }

    /// The daemon's own move, and back.
    @Test func moveSelfToSupervisorLeafMovesTheWholeProcess() throws {
        let real = try RealTree()
        let before = try #require(Sys.readFile("/proc/self/cgroup"))
        var origins: [String] = []
        for line in before.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let path = fields[2] == "/" ? "" : String(fields[2])
            switch fields[1] {
            case "": origins.append("/sys/fs/cgroup/unified" + path)
            case "memory", "pids", "cpu": origins.append("/sys/fs/cgroup/\(fields[1])" + path)
            default: break
            }
        }
        #expect(origins.count == 4)
        defer {
            for origin in origins {
                do { try Sys.writeFile(origin + "/cgroup.procs", String(getpid())) } catch { Issue.record("moving back: \(error)") }
            }
            #expect(Sys.readFile("/proc/self/cgroup") == before)
            real.cleanUp()
        }

        try real.tree.moveSelfToSupervisorLeaf()
        try real.tree.prepare()
        let now = try #require(Sys.readFile("/proc/self/cgroup"))
        let leaf = "/" + real.tree.subdirectory + "/supervisor"
        let memory = try #require(Sys.ownLegacyCgroup("memory"))
        #expect(now.contains("0::" + real.tree.supervisorLeaf.unifiedPath + "\n"))
        #expect(real.tree.supervisorLeaf.unifiedPath == leaf)
        #expect(memory.hasSuffix(leaf))
        #expect(now.contains(":pids:" + leaf + "\n"))
        #expect(now.contains(":cpu:" + leaf + "\n"))
        // Every thread went along (cgroup.procs moves the whole process).
        for thread in (try? Directory.entries("/proc/self/task")) ?? [] {
            #expect(Sys.readFile("/proc/self/task/\(thread)/cgroup") == now)
        }
    }
}
