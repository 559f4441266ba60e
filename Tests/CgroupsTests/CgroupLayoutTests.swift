import Testing
import Glibc
import Cgroups
import POSIX

/// Hosts as /proc/self/mountinfo and /proc/self/cgroup describe them, parsed against fake trees.
enum Hosts {
    /// This VM: cgroup2 at /sys/fs/cgroup/unified with no controllers but hugetlb, every
    /// controller in a v1 hierarchy of its own, our memory cgroup below the root.
    static let hybridMountinfo = """
        22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
        23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
        34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
        37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
        38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
        39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw

        """
    static let hybridCgroup = """
        9:name=systemd:/
        8:pids:/
        7:blkio:/
        6:freezer:/
        5:devices:/
        4:memory:/process_api/0d856adb
        3:cpuset:/
        2:cpuacct:/
        1:cpu:/
        0::/

        """

    /// A systemd host with only cgroup2, nsgroupd a service with Delegate=yes.
    static let pureMountinfo = """
        21 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
        22 21 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
        23 21 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
        26 22 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot

        """
    static let pureCgroup = "0::/system.slice/nsgroupd.service\n"

    /// An older hybrid host: cpu and cpuacct share a hierarchy (systemd's /sys/fs/cgroup/cpu is
    /// a symlink to it), net_cls and net_prio share another.
    static let combinedMountinfo = """
        22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
        25 22 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
        26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
        27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
        30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
        31 25 0:29 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpuset
        32 25 0:30 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,net_cls,net_prio
        33 25 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
        34 25 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,memory

        """
    static let combinedCgroup = """
        9:memory:/system.slice/nsgroupd.service
        8:pids:/system.slice/nsgroupd.service
        6:net_cls,net_prio:/
        5:cpuset:/
        4:cpu,cpuacct:/system.slice/nsgroupd.service
        1:name=systemd:/system.slice/nsgroupd.service
        0::/system.slice/nsgroupd.service

        """
}

@Suite struct CgroupLayoutTests {
    @Test func aHybridHostHasItsControllersInV1() throws {
        let root = try Sys.temporaryDirectory("cgroups-layout")
        defer { Directory.removeTree(root) }
        try Sys.writeFile(root + "/sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n")

        let layout = try CgroupLayout.parse(mountinfo: Hosts.hybridMountinfo, cgroup: Hosts.hybridCgroup, fileRoot: root)

        #expect(layout == CgroupLayout(
            unifiedMount: root + "/sys/fs/cgroup/unified", ownUnified: "/",
            places: [
                .memory: .legacy(mount: root + "/sys/fs/cgroup/memory", own: "/process_api/0d856adb"),
                .pids: .legacy(mount: root + "/sys/fs/cgroup/pids", own: "/"),
                .cpu: .legacy(mount: root + "/sys/fs/cgroup/cpu", own: "/"),
            ],
            cpuAccounting: .legacy(mount: root + "/sys/fs/cgroup/cpuacct", own: "/"), fileRoot: root))
        #expect(layout.summary == "cgroup2 at \(root)/sys/fs/cgroup/unified (membership, kill, freeze); memory: v1 at \(root)/sys/fs/cgroup/memory; pids: v1 at \(root)/sys/fs/cgroup/pids; cpu: v1 at \(root)/sys/fs/cgroup/cpu")
        #expect(layout.unifiedControllers.isEmpty)
    }

    /// A container systemd-nspawn booted on a hybrid host: the v1 controller hierarchies are
    /// mounted read-only and only the unified one is delegated. No limit goes to v1 there.
    @Test func readOnlyV1HierarchiesAreNotUsed() throws {
        let mountinfo = Hosts.hybridMountinfo
            .replacing("/sys/fs/cgroup/memory rw,relatime", with: "/sys/fs/cgroup/memory ro,nosuid,relatime")
            .replacing("/sys/fs/cgroup/pids rw,relatime", with: "/sys/fs/cgroup/pids ro,relatime")
        let root = try Sys.temporaryDirectory("cgroups-layout")
        defer { Directory.removeTree(root) }
        let layout = try CgroupLayout.parse(mountinfo: mountinfo, cgroup: Hosts.hybridCgroup, fileRoot: root)
        #expect(layout.place(of: .memory) == .absent)
        #expect(layout.place(of: .pids) == .absent)
        #expect(layout.place(of: .cpu) == .legacy(mount: root + "/sys/fs/cgroup/cpu", own: "/"))
        #expect(layout.summary.contains("memory: none"))
    }

    @Test func aPureV2HostHasEveryControllerInTheUnifiedHierarchy() throws {
        let root = try Sys.temporaryDirectory("cgroups-layout")
        defer { Directory.removeTree(root) }
        try Sys.writeFile(root + "/sys/fs/cgroup/system.slice/nsgroupd.service/cgroup.controllers", "cpuset cpu io memory pids\n")

        let layout = try CgroupLayout.parse(mountinfo: Hosts.pureMountinfo, cgroup: Hosts.pureCgroup, fileRoot: root)

        #expect(layout == CgroupLayout(
            unifiedMount: root + "/sys/fs/cgroup", ownUnified: "/system.slice/nsgroupd.service",
            places: [.memory: .unified, .pids: .unified, .cpu: .unified], cpuAccounting: .absent, fileRoot: root))
        #expect(layout.summary == "cgroup2 at \(root)/sys/fs/cgroup (membership, kill, freeze); memory: v2; pids: v2; cpu: v2")
        #expect(layout.legacyHierarchies.isEmpty)
    }

    /// What our own cgroup's cgroup.controllers does not list, and no v1 hierarchy carries, is absent.
    @Test func aControllerNeitherOfferedNorMountedIsAbsent() throws {
        let root = try Sys.temporaryDirectory("cgroups-layout")
        defer { Directory.removeTree(root) }
        try Sys.writeFile(root + "/sys/fs/cgroup/system.slice/nsgroupd.service/cgroup.controllers", "memory\n")

        let layout = try CgroupLayout.parse(mountinfo: Hosts.pureMountinfo, cgroup: Hosts.pureCgroup, fileRoot: root)

        #expect(layout.places == [.memory: .unified, .pids: .absent, .cpu: .absent])
        #expect(layout.summary.hasSuffix("memory: v2; pids: none; cpu: none"))
    }

    @Test func aHostWithoutCgroup2IsRefused() throws {
        let v1Only = Hosts.hybridMountinfo.split(separator: "\n").filter { !$0.contains("cgroup2") }.joined(separator: "\n")
        let error = try #require(throws: CgroupError.self) {
            try CgroupLayout.parse(mountinfo: v1Only, cgroup: Hosts.hybridCgroup)
        }
        #expect(error.errno == nil)
        #expect(error.description == "detect /proc/self/mountinfo: no cgroup2 (unified) hierarchy is mounted, which nsgroupd needs (mount -t cgroup2 none /sys/fs/cgroup/unified)")

        // A kernel without cgroup2 at all has no "0::" line either.
        let noUnifiedLine = Hosts.hybridCgroup.split(separator: "\n").filter { !$0.hasPrefix("0::") }.joined(separator: "\n")
        let older = try #require(throws: CgroupError.self) {
            try CgroupLayout.parse(mountinfo: v1Only, cgroup: noUnifiedLine)
        }
        #expect(older.description.contains("no cgroup2 (unified) hierarchy"))
    }

    @Test func combinedV1MountsCarryEachOfTheirControllers() throws {
        let root = try Sys.temporaryDirectory("cgroups-layout")
        defer { Directory.removeTree(root) }
        try Sys.writeFile(root + "/sys/fs/cgroup/unified/system.slice/nsgroupd.service/cgroup.controllers", "\n")

        let layout = try CgroupLayout.parse(mountinfo: Hosts.combinedMountinfo, cgroup: Hosts.combinedCgroup, fileRoot: root)

        let own = "/system.slice/nsgroupd.service"
        let cpu = ControllerPlace.legacy(mount: root + "/sys/fs/cgroup/cpu,cpuacct", own: own)
        #expect(layout.places == [
            .memory: .legacy(mount: root + "/sys/fs/cgroup/memory", own: own),
            .pids: .legacy(mount: root + "/sys/fs/cgroup/pids", own: own),
            .cpu: cpu,
        ])
        #expect(layout.cpuAccounting == cpu)
        #expect(layout.ownUnified == own)
        #expect(layout.legacyHierarchies.map(\.mount) == [
            root + "/sys/fs/cgroup/memory", root + "/sys/fs/cgroup/pids", root + "/sys/fs/cgroup/cpu,cpuacct",
        ])
    }

    /// A mount that shows a cgroup below the hierarchy's root (a container's): our cgroup is
    /// relative to it; mount points with blanks come octal-escaped.
    @Test func pathsAreRelativeToWhatAMountShows() throws {
        let mountinfo = """
            50 40 0:40 /lxc/c1 /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw
            51 40 0:41 /lxc/c1 /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids

            """
        let cgroup = "3:pids:/lxc/c1/inner\n0::/lxc/c1\n"
        let layout = try CgroupLayout.parse(mountinfo: mountinfo, cgroup: cgroup, fileRoot: "/nonexistent")
        #expect(layout.unifiedMount == "/nonexistent/sys/fs/cgroup x")
        #expect(layout.ownUnified == "/")
        #expect(layout.places == [.memory: .absent, .pids: .legacy(mount: "/nonexistent/sys/fs/cgroup/pids", own: "/inner"), .cpu: .absent])

        // A cgroup outside what every cgroup2 mount shows cannot be reached.
        #expect(throws: CgroupError.self) {
            try CgroupLayout.parse(mountinfo: mountinfo, cgroup: "0::/elsewhere\n")
        }
    }

    @Test func aProcessCgroupIsItsUnifiedLine() throws {
        let root = try Sys.temporaryDirectory("cgroups-proc")
        defer { Directory.removeTree(root) }
        try Sys.writeFile(root + "/77/cgroup", "4:memory:/a\n0::/nsgroupd/users/1001/lab/holder\n")
        try Sys.writeFile(root + "/78/cgroup", "4:memory:/a\n")
        #expect(unifiedCgroup(ofProcess: 77, procRoot: root) == "/nsgroupd/users/1001/lab/holder")
        #expect(unifiedCgroup(ofProcess: 78, procRoot: root) == nil)
        #expect(unifiedCgroup(ofProcess: 79, procRoot: root) == nil)
        let own = try #require(Sys.readFile("/proc/self/cgroup")?.split(separator: "\n").first { $0.hasPrefix("0::") })
        #expect(unifiedCgroup(ofProcess: getpid()) == String(own.dropFirst(3)))
    }

    @Test func errorsReadLikeTheShell() {
        let denied = CgroupError(operation: "mkdir", path: "/sys/fs/cgroup/unified/nsgroupd/users", errno: Errno(rawValue: EACCES))
        #expect(denied.description == "mkdir /sys/fs/cgroup/unified/nsgroupd/users: Permission denied")
        #expect(denied.errno == Errno(rawValue: EACCES))
    }
}
