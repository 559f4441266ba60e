import Testing
import Glibc
import Cgroups
import POSIX

/// The module against a temporary directory standing for /: mkdir makes plain directories,
/// writes make plain files, and the files a kernel would fill in are written by the test.
@Suite struct CgroupFakeTreeTests {
    /// A fake pure v2 host (Hosts.pure*), the tree's base at nsgroupd.service/nsgroupd.
    final class PureHost {
        let root: String
        let layout: CgroupLayout
        let tree: CgroupTree
        /// The directory of our own cgroup.
        var own: String { root + "/sys/fs/cgroup/system.slice/nsgroupd.service" }
        var base: String { own + "/nsgroupd" }

        init() throws {
            let root = try Sys.temporaryDirectory("cgroups-fake")
            do {
                try Sys.writeFile(root + "/sys/fs/cgroup/system.slice/nsgroupd.service/cgroup.controllers", "cpuset cpu io memory pids\n")
                layout = try CgroupLayout.parse(mountinfo: Hosts.pureMountinfo, cgroup: Hosts.pureCgroup, fileRoot: root)
            } catch {
                Directory.removeTree(root)
                throw error
            }
            self.root = root
            tree = CgroupTree(layout: layout, subdirectory: "nsgroupd")
        }

        deinit { Directory.removeTree(root) }
    }

    /// A fake hybrid host (Hosts.hybrid*), as this VM is, the tree's base at nsgroupd.
    final class HybridHost {
        let root: String
        let layout: CgroupLayout
        let tree: CgroupTree
        var unified: String { root + "/sys/fs/cgroup/unified/nsgroupd" }
        var memory: String { root + "/sys/fs/cgroup/memory/process_api/0d856adb/nsgroupd" }
        var pids: String { root + "/sys/fs/cgroup/pids/nsgroupd" }
        var cpu: String { root + "/sys/fs/cgroup/cpu/nsgroupd" }

        init() throws {
            let root = try Sys.temporaryDirectory("cgroups-fake")
            do {
                try Sys.writeFile(root + "/sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n")
                for mount in ["memory/process_api/0d856adb", "pids", "cpu", "cpuacct"] {
                    try Sys.makeDirectories(root + "/sys/fs/cgroup/" + mount)
                }
                layout = try CgroupLayout.parse(mountinfo: Hosts.hybridMountinfo, cgroup: Hosts.hybridCgroup, fileRoot: root)
            } catch {
                Directory.removeTree(root)
                throw error
            }
            self.root = root
            tree = CgroupTree(layout: layout, subdirectory: "nsgroupd")
        }

        deinit { Directory.removeTree(root) }
    }

    @Test func pureV2PathsAndLimitFiles() throws {
        let host = try PureHost()
        #expect(host.tree.basePath == "/system.slice/nsgroupd.service/nsgroupd")

        // The daemon first leaves its own cgroup, which can then pass controllers on.
        try host.tree.moveSelfToSupervisorLeaf()
        #expect(Sys.readFile(host.base + "/supervisor/cgroup.procs") == String(getpid()))
        try host.tree.prepare()
        for directory in [host.own, host.base, host.base + "/users"] {
            #expect(Sys.readFile(directory + "/cgroup.subtree_control") == "+memory +pids +cpu", "\(directory)")
        }
        #expect(Sys.isDirectory(host.base + "/supervisor"))

        let lab = host.tree.node(["users", "1001", "group-lab"])
        #expect(lab == host.tree.group(owner: 1001, name: "lab"))
        #expect(lab.relative == "users/1001/group-lab")
        #expect(lab.unifiedPath == "/system.slice/nsgroupd.service/nsgroupd/users/1001/group-lab")
        #expect(host.tree.guest(1002, inGroup: "lab").relative == "users/1002/guest-lab")
        #expect(lab.child("holder").unifiedPath == lab.unifiedPath + "/holder")
        let directory = host.base + "/users/1001/group-lab"
        #expect(lab.unifiedDirectory == directory)
        #expect(lab.directory(for: .memory) == directory)
        try host.tree.user(1001).create()
        try host.tree.user(1001).delegateControllersToChildren()
        try lab.create()
        #expect(lab.exists())
        #expect(host.tree.user(1001).childNames() == ["group-lab"])

        let limits = CgroupLimits(memory: 64 << 20, pids: 5, cpuWeight: 50, cpus: 1.5)
        try lab.apply(limits)
        #expect(Sys.readFile(directory + "/memory.max") == "67108864")
        #expect(Sys.readFile(directory + "/pids.max") == "5")
        #expect(Sys.readFile(directory + "/cpu.weight") == "50")
        #expect(Sys.readFile(directory + "/cpu.max") == "150000 100000")
        #expect(lab.readLimits() == limits)

        try lab.apply(CgroupLimits())
        #expect(Sys.readFile(directory + "/memory.max") == "max")
        #expect(Sys.readFile(directory + "/pids.max") == "max")
        #expect(Sys.readFile(directory + "/cpu.weight") == "100")
        #expect(Sys.readFile(directory + "/cpu.max") == "max 100000")
        #expect(lab.readLimits() == CgroupLimits())

        // What the kernel would show.
        try Sys.writeFile(directory + "/memory.current", "1048576\n")
        try Sys.writeFile(directory + "/memory.peak", "2097152\n")
        try Sys.writeFile(directory + "/pids.current", "3\n")
        try Sys.writeFile(directory + "/cpu.stat", """
            usage_usec 123456
            user_usec 100000
            system_usec 23456
            nice_usec 0
            nr_periods 0
            nr_throttled 0
            throttled_usec 0

            """)
        try Sys.writeFile(directory + "/memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n")
        #expect(lab.usage() == CgroupUsage(memory: 1_048_576, memoryPeak: 2_097_152, pids: 3, cpuUsec: 123_456))
        #expect(lab.oomKills() == 2)

        try Sys.writeFile(directory + "/cgroup.events", "populated 1\nfrozen 0\n")
        #expect(lab.isPopulated && !lab.isFrozen)
        try Sys.writeFile(directory + "/cgroup.events", "populated 0\nfrozen 1\n")
        #expect(!lab.isPopulated && lab.isFrozen)
        try lab.setFrozen(true)
        #expect(Sys.readFile(directory + "/cgroup.freeze") == "1")
        try lab.setFrozen(false)
        #expect(Sys.readFile(directory + "/cgroup.freeze") == "0")

        // cgroup.kill is never made: where it exists, "1" goes in.
        try Sys.writeFile(directory + "/cgroup.kill", "")
        try lab.killAll()
        #expect(Sys.readFile(directory + "/cgroup.kill") == "1")

        try lab.move(4242)
        #expect(Sys.readFile(directory + "/cgroup.procs") == "4242")
        let legacy = try lab.openLegacyProcs()
        let none = legacy.isEmpty
        #expect(none)
        let clone = try lab.openForClone()
        var status = stat()
        #expect(fstat(clone.rawValue, &status) == 0 && status.st_mode & S_IFMT == S_IFDIR)
    }

    @Test func processesComeWithTheirLeaf() throws {
        let host = try PureHost()
        let lab = host.tree.group(owner: 1001, name: "lab")
        let directory = host.base + "/users/1001/group-lab"
        try Sys.writeFile(directory + "/cgroup.procs", "")
        try Sys.writeFile(directory + "/holder/cgroup.procs", "10\n11\n")
        try Sys.writeFile(directory + "/session-3/cgroup.procs", "12\n")
        try Sys.writeFile(directory + "/session-3/inner/cgroup.procs", "13\n")

        let found = lab.processes().map { "\($0.pid) \($0.leaf)" }.sorted()
        #expect(found == ["10 holder", "11 holder", "12 session-3", "13 session-3/inner"])
        #expect(Set(lab.childNames()) == ["holder", "session-3"])
        #expect(host.tree.group(owner: 1001, name: "none").processes().isEmpty)
    }

    /// The smallest limit at base or above it, up to the mount.
    @Test func inheritedLimitsAreTheSmallestAbove() throws {
        let host = try PureHost()
        try host.tree.prepare()
        #expect(host.tree.inheritedLimit(.memory) == nil)
        try Sys.writeFile(host.root + "/sys/fs/cgroup/system.slice/memory.max", "2147483648\n")
        try Sys.writeFile(host.own + "/memory.max", "max\n")
        try Sys.writeFile(host.base + "/memory.max", "4294967296\n")
        try Sys.writeFile(host.own + "/pids.max", "max\n")
        #expect(host.tree.inheritedLimit(.memory) == 2_147_483_648)
        #expect(host.tree.inheritedLimit(.pids) == nil)
        #expect(host.tree.inheritedLimit(.cpu) == nil)
    }

    @Test func hybridPathsAndLegacyFiles() throws {
        let host = try HybridHost()
        try host.tree.prepare()
        for directory in [host.unified, host.memory, host.pids, host.cpu] {
            #expect(Sys.isDirectory(directory + "/supervisor"), "\(directory)")
            #expect(Sys.isDirectory(directory + "/users"), "\(directory)")
        }
        // No controller is in the unified hierarchy: nothing to enable; cpuacct has its own
        // hierarchy, which carries none of ours.
        #expect(!Sys.exists(host.unified + "/cgroup.subtree_control"))
        #expect(!Sys.exists(host.root + "/sys/fs/cgroup/cpuacct/nsgroupd"))
        #expect(host.tree.basePath == "/nsgroupd")

        let lab = host.tree.group(owner: 1001, name: "lab")
        try host.tree.user(1001).create()
        try lab.create()
        let relative = "/users/1001/group-lab"
        #expect(lab.unifiedPath == "/nsgroupd/users/1001/group-lab")
        #expect(lab.directory(for: .memory) == host.memory + relative)
        #expect(lab.legacyDirectories == [host.memory + relative, host.pids + relative, host.cpu + relative])

        let limits = CgroupLimits(memory: 64 << 20, pids: 5, cpuWeight: 50, cpus: 0.25)
        try lab.apply(limits)
        #expect(Sys.readFile(host.memory + relative + "/memory.limit_in_bytes") == "67108864")
        #expect(Sys.readFile(host.pids + relative + "/pids.max") == "5")
        #expect(Sys.readFile(host.cpu + relative + "/cpu.shares") == "512")
        #expect(Sys.readFile(host.cpu + relative + "/cpu.cfs_period_us") == "100000")
        #expect(Sys.readFile(host.cpu + relative + "/cpu.cfs_quota_us") == "25000")
        #expect(lab.readLimits() == limits)

        try lab.apply(CgroupLimits())
        #expect(Sys.readFile(host.memory + relative + "/memory.limit_in_bytes") == "-1")
        #expect(Sys.readFile(host.pids + relative + "/pids.max") == "max")
        #expect(Sys.readFile(host.cpu + relative + "/cpu.shares") == "1024")
        #expect(Sys.readFile(host.cpu + relative + "/cpu.cfs_quota_us") == "-1")
        // What a kernel shows for "no limit" in v1 memory: the largest page count, in bytes.
        try Sys.writeFile(host.memory + relative + "/memory.limit_in_bytes", "9223372036854771712\n")
        #expect(lab.readLimits() == CgroupLimits())

        // Weights survive the trip through shares.
        for weight: UInt64 in [1, 33, 99, 101, 250, 9999, 10_000] {
            try lab.apply(CgroupLimits(cpuWeight: weight))
            #expect(lab.readLimits().cpuWeight == weight)
        }

        try Sys.writeFile(host.memory + relative + "/memory.usage_in_bytes", "1234\n")
        try Sys.writeFile(host.memory + relative + "/memory.max_usage_in_bytes", "5678\n")
        try Sys.writeFile(host.memory + relative + "/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n")
        try Sys.writeFile(host.pids + relative + "/pids.current", "2\n")
        try Sys.writeFile(host.unified + relative + "/cpu.stat", "usage_usec 42\nuser_usec 40\nsystem_usec 2\n")
        #expect(lab.usage() == CgroupUsage(memory: 1234, memoryPeak: 5678, pids: 2, cpuUsec: 42))
        #expect(lab.oomKills() == 4)

        try lab.move(4242)
        for directory in [host.unified, host.memory, host.pids, host.cpu] {
            #expect(Sys.readFile(directory + relative + "/cgroup.procs") == "4242", "\(directory)")
        }
        let legacy = try lab.openLegacyProcs()
        let count = legacy.count
        #expect(count == 3)
    }

    /// Where cpu and cpuacct share a hierarchy, CPU time comes from cpuacct.usage when the
    /// unified cpu.stat is missing (kernels before 4.20).
    @Test func cpuTimeFallsBackOnCpuacct() throws {
        let root = try Sys.temporaryDirectory("cgroups-fake")
        defer { Directory.removeTree(root) }
        let own = "/system.slice/nsgroupd.service"
        try Sys.writeFile(root + "/sys/fs/cgroup/unified" + own + "/cgroup.controllers", "")
        for mount in ["memory", "pids", "cpu,cpuacct"] { try Sys.makeDirectories(root + "/sys/fs/cgroup/" + mount + own) }
        let layout = try CgroupLayout.parse(mountinfo: Hosts.combinedMountinfo, cgroup: Hosts.combinedCgroup, fileRoot: root)
        let tree = CgroupTree(layout: layout, subdirectory: nil)
        #expect(tree.basePath == own)
        try tree.prepare()
        let node = tree.node(["users"])
        #expect(node.legacyDirectories.count == 3)
        try Sys.writeFile(root + "/sys/fs/cgroup/cpu,cpuacct" + own + "/users/cpuacct.usage", "5000000\n")
        #expect(node.usage().cpuUsec == 5000)
        try Sys.writeFile(root + "/sys/fs/cgroup/unified" + own + "/users/cpu.stat", "usage_usec 7\n")
        #expect(node.usage().cpuUsec == 7)
        #expect(node.usage().memory == nil)

        // The base is our own cgroup here: it is not removed, and a base is never killed.
        let notRemoved = try #require(throws: CgroupError.self) { try tree.base.remove() }
        #expect(notRemoved.description.contains("our own cgroup"))
        #expect(Sys.isDirectory(root + "/sys/fs/cgroup/unified" + own + "/users"))
        try Sys.writeFile(root + "/sys/fs/cgroup/unified" + own + "/cgroup.kill", "")
        let notKilled = try #require(throws: CgroupError.self) { try tree.base.killAll() }
        #expect(notKilled.description.contains("supervisor"))
        #expect(Sys.readFile(root + "/sys/fs/cgroup/unified" + own + "/cgroup.kill") == "")
    }

    @Test func aLimitForAnAbsentControllerIsRefusedBeforeAnythingIsWritten() throws {
        let root = try Sys.temporaryDirectory("cgroups-fake")
        defer { Directory.removeTree(root) }
        try Sys.writeFile(root + "/sys/fs/cgroup/system.slice/nsgroupd.service/cgroup.controllers", "memory pids\n")
        let layout = try CgroupLayout.parse(mountinfo: Hosts.pureMountinfo, cgroup: Hosts.pureCgroup, fileRoot: root)
        let tree = CgroupTree(layout: layout, subdirectory: "nsgroupd")
        try tree.prepare()
        #expect(Sys.readFile(root + "/sys/fs/cgroup/system.slice/nsgroupd.service/nsgroupd/cgroup.subtree_control") == "+memory +pids")
        let node = tree.node(["users"])

        let error = try #require(throws: CgroupError.self) {
            try node.apply(CgroupLimits(memory: 1 << 20, cpus: 2))
        }
        #expect(error.description.contains("no cpu controller"))
        #expect(!Sys.exists(node.unifiedDirectory + "/memory.max"))
        // No limit for it is fine.
        try node.apply(CgroupLimits(memory: 1 << 20))
        #expect(Sys.readFile(node.unifiedDirectory + "/memory.max") == "1048576")
        #expect(node.usage().cpuUsec == nil)

        #expect(throws: CgroupError.self) { try node.apply(CgroupLimits(cpuWeight: 0)) }
        #expect(throws: CgroupError.self) { try node.apply(CgroupLimits(cpus: 0.001)) }
        #expect(throws: CgroupError.self) { try node.apply(CgroupLimits(cpus: .nan)) }
    }

    /// (A name with NUL is refused too, `aNameWithNulIsRefused`: kept out of the arguments,
    /// whose names go into the test log.)
    @Test(arguments: ["", ".", "..", "a/b", "../x", "bad\nname"])
    func namesThatAreNotPlainAreRefused(_ name: String) throws {
        let host = try HybridHost()
        let nodes = [
            host.tree.node(["users", name]),
            host.tree.group(owner: 1001, name: name),
            host.tree.user(1001).child(name),
            host.tree.group(owner: 1001, name: name).child("holder"),
        ] + (name == "a/b" ? [] : [CgroupTree(layout: host.layout, subdirectory: name).node(["users"])])
        for node in nodes {
            let error = try #require(throws: CgroupError.self) { try node.create() }
            #expect(error.operation == "name")
            #expect(throws: CgroupError.self) { try node.apply(CgroupLimits()) }
            #expect(throws: CgroupError.self) { try node.move(1) }
            #expect(throws: CgroupError.self) { try node.remove() }
            #expect(throws: CgroupError.self) { try node.killAll() }
            #expect(!node.exists())
            #expect(node.usage() == CgroupUsage())
        }
        if name != "a/b" {
            // A base below our own cgroup may be several levels deep, each a plain name.
            #expect(throws: CgroupError.self) { try CgroupTree(layout: host.layout, subdirectory: name).prepare() }
        }
        // Nothing was made anywhere.
        #expect(!Sys.exists(host.unified))
        #expect(!Sys.exists(host.root + "/sys/fs/cgroup/unified/x"))
    }

    @Test func aNameWithNulIsRefused() throws {
        let host = try HybridHost()
        let error = try #require(throws: CgroupError.self) { try host.tree.group(owner: 1001, name: "a\0b").create() }
        #expect(error.operation == "name")
        #expect(throws: CgroupError.self) { try CgroupTree(layout: host.layout, subdirectory: "a\0b").prepare() }
        #expect(!Sys.exists(host.unified))
    }

    /// A symlink in a path we build is not followed.
    @Test func symlinksAreNotFollowed() throws {
        let host = try HybridHost()
        try host.tree.prepare()
        let elsewhere = try Sys.temporaryDirectory("cgroups-elsewhere")
        defer { Directory.removeTree(elsewhere) }
        #expect(symlink(elsewhere, host.unified + "/users/1001") == 0)
        let lab = host.tree.group(owner: 1001, name: "lab")
        // The symlink last (the parent of a mkdir): O_NOFOLLOW | O_DIRECTORY says ENOTDIR.
        let error = try #require(throws: CgroupError.self) { try lab.create() }
        #expect(error.errno == Errno(rawValue: ENOTDIR))
        // The symlink on the way: RESOLVE_NO_SYMLINKS says ELOOP.
        #expect(mkdir(elsewhere + "/group-lab", 0o755) == 0)
        let moving = try #require(throws: CgroupError.self) { try lab.move(1) }
        #expect(moving.errno == Errno(rawValue: ELOOP))
        #expect(lab.usage() == CgroupUsage())
        #expect(lab.childNames().isEmpty)
        #expect(rmdir(elsewhere + "/group-lab") == 0)
        #expect(!Sys.exists(elsewhere + "/group-lab"))
        #expect(!Sys.exists(elsewhere + "/cgroup.procs"))
    }
}
