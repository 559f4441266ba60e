import Testing
import Glibc
@testable import Supervisor
import Cgroups
import POSIX
import Systemd

/// What decides whether groups are units of systemd's, and what is sent and looked for when
/// they are. Starting scopes against a real systemd is `make systemd-check`'s (Tests/systemd).
@Suite("GroupUnits: each group a scope where systemd runs the machine")
struct GroupUnitsTests {
    /// A systemd host with only cgroup2, nsgroupd a service with Delegate=yes.
    static let pureMountinfo = """
        21 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
        26 21 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate

        """
    /// systemd-nspawn's container on this hybrid VM: cgroup2 without controllers, the v1
    /// controller hierarchies mounted read-only.
    static let containerMountinfo = """
        21 1 0:50 / / rw,relatime - tmpfs tmpfs rw
        30 21 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=755
        31 30 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw
        32 30 0:30 / /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory
        33 30 0:31 / /sys/fs/cgroup/pids ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,pids

        """
    static let containerCgroup = "2:pids:/\n1:memory:/\n0::/system.slice/nsgroupd.service\n"
    /// This VM itself: every controller in a writable v1 hierarchy.
    static let hybridMountinfo = """
        22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
        31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw

        """
    static let hybridCgroup = "8:pids:/\n4:memory:/\n1:cpu:/\n0::/\n"

    /// A fake root with the pure host's controllers offered to nsgroupd.service.
    static func pureLayout(_ root: String) throws -> CgroupLayout {
        try FakeRoot.write(root + "/sys/fs/cgroup/system.slice/nsgroupd.service/cgroup.controllers", "cpu memory pids\n")
        return try CgroupLayout.parse(mountinfo: pureMountinfo, cgroup: "0::/system.slice/nsgroupd.service\n", fileRoot: root)
    }

    @Test func onlyUnderSystemdAndOnlyWithTheControllersInTheUnifiedHierarchy() throws {
        let root = try FakeRoot.make()
        defer { Directory.removeTree(root) }
        let pure = try Self.pureLayout(root)
        #expect(GroupUnits.unavailable(booted: true, layout: pure) == nil)
        #expect(GroupUnits.unavailable(booted: false, layout: pure) == "systemd is not the init system")
        // The container of make systemd-check: read-only v1 hierarchies are not ours, so
        // nothing is in v1 for nsgroupd, and groups are units there.
        let container = try CgroupLayout.parse(mountinfo: Self.containerMountinfo, cgroup: Self.containerCgroup, fileRoot: root)
        #expect(GroupUnits.unavailable(booted: true, layout: container) == nil)
        // A hybrid host whose controllers nsgroupd uses in v1: a scope's v1 cgroups would be
        // systemd's, with no leaves of nsgroupd's in them; groups stay in nsgroupd's tree.
        let hybrid = try CgroupLayout.parse(mountinfo: Self.hybridMountinfo, cgroup: Self.hybridCgroup, fileRoot: root)
        let reason = try #require(GroupUnits.unavailable(booted: true, layout: hybrid))
        #expect(reason == "memory, pids, cpu are in a v1 hierarchy, where a scope's cgroups are systemd's alone")
    }

    @Test func namesOfUnitsAndWhereTheirCgroupsAre() throws {
        let root = try FakeRoot.make()
        defer { Directory.removeTree(root) }
        let cgroups = UnitCgroups(layout: try Self.pureLayout(root), instance: "/run/nsgroup")
        #expect(GroupUnits.scopeName("web.1_a-b") == "nsgroup-web.1_a-b.scope")
        #expect(GroupUnits.sliceName(1001) == "nsgroup-1001.slice")
        let node = cgroups.scopeNode(user: 1001, group: "web")
        // What /proc/PID/cgroup and `inspect` show, and where the files are: from the
        // hierarchy's root, not from nsgroupd's own cgroup.
        #expect(node.unifiedPath == "/nsgroup.slice/nsgroup-1001.slice/nsgroup-web.scope")
        #expect(node.unifiedDirectory == root + "/sys/fs/cgroup/nsgroup.slice/nsgroup-1001.slice/nsgroup-web.scope")
        #expect(node.child("holder").unifiedPath == "/nsgroup.slice/nsgroup-1001.slice/nsgroup-web.scope/holder")
    }

    @Test func scopesAreFoundByTheirSliceAndName() throws {
        let root = try FakeRoot.make()
        defer { Directory.removeTree(root) }
        let cgroups = UnitCgroups(layout: try Self.pureLayout(root), instance: "/run/nsgroup")
        let top = root + "/sys/fs/cgroup/nsgroup.slice"
        for directory in ["nsgroup-1001.slice/nsgroup-web.scope/holder", "nsgroup-1001.slice/nsgroup-db.scope",
                          "nsgroup-0.slice/nsgroup-admin.scope",
                          // Not ours: another slice's naming, a unit of another kind, a foreign name.
                          "nsgroup-x.slice/nsgroup-odd.scope", "nsgroup-1001.slice/nsgroup-web.service",
                          "nsgroup-1001.slice/other.scope"] {
            try FakeRoot.mkdirs(top + "/" + directory)
        }
        let found = cgroups.scopes().map { "\($0.user) \($0.name) \($0.node.unifiedPath)" }.sorted()
        #expect(found == [
            "0 admin /nsgroup.slice/nsgroup-0.slice/nsgroup-admin.scope",
            "1001 db /nsgroup.slice/nsgroup-1001.slice/nsgroup-db.scope",
            "1001 web /nsgroup.slice/nsgroup-1001.slice/nsgroup-web.scope",
        ])
    }

    @Test func aScopeIsThisInstancesOnlyWithItsMark() throws {
        let root = try FakeRoot.make()
        defer { Directory.removeTree(root) }
        let layout = try Self.pureLayout(root)
        let ours = UnitCgroups(layout: layout, instance: "/run/nsgroup")
        let another = UnitCgroups(layout: layout, instance: "/tmp/nsg-e2e-1/state")
        let web = ours.scopeNode(user: 1001, group: "web")
        let db = ours.scopeNode(user: 1001, group: "db")
        try FakeRoot.mkdirs(web.unifiedDirectory)
        try FakeRoot.mkdirs(db.unifiedDirectory)
        try ours.mark(web)
        try another.mark(db)
        #expect(ours.isOurs(web) && !another.isOurs(web))
        #expect(another.isOurs(db) && !ours.isOurs(db))
        // Unmarked (made by someone else, or systemd-run): nobody's.
        let plain = ours.scopeNode(user: 1001, group: "plain")
        try FakeRoot.mkdirs(plain.unifiedDirectory)
        #expect(!ours.isOurs(plain) && !another.isOurs(plain))
        #expect(web.attribute(UnitCgroups.mark) == "/run/nsgroup")
    }

    @Test func limitsBecomeUnitPropertiesAndAnUnsetOneIsInfinity() {
        let set = GroupUnits.properties(CgroupLimits(memory: 64 << 20, pids: 50, cpuWeight: 200, cpus: 1.5))
        #expect(set == [.uint64("MemoryMax", 64 << 20), .uint64("TasksMax", 50), .uint64("CPUWeight", 200),
                        .uint64("CPUQuotaPerSecUSec", 1_500_000)])
        // Unset: systemd's infinity (and "not set" for the weight), so that a limit nsgroupd.conf
        // no longer sets is taken off the slice at the next reload, and no systemd default
        // (DefaultTasksMax) binds a group nsgroupd would leave unlimited.
        let none = GroupUnits.properties(CgroupLimits())
        #expect(none == [.uint64("MemoryMax", .max), .uint64("TasksMax", .max), .uint64("CPUWeight", .max),
                         .uint64("CPUQuotaPerSecUSec", .max)])
    }
}

/// A directory standing for / (CgroupLayout's fileRoot), with only what these tests write.
private enum FakeRoot {
    struct Failure: Error { let call: String; let code: Int32 }

    static func make() throws -> String {
        var template = Array("/tmp/group-units.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw Failure(call: "mkdtemp", code: errno) }
        return String(cString: made)
    }

    static func mkdirs(_ path: String) throws {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/\(part)"
            guard mkdir(prefix, 0o755) == 0 || errno == EEXIST else { throw Failure(call: "mkdir " + prefix, code: errno) }
        }
    }

    static func write(_ path: String, _ text: String) throws {
        try mkdirs(String(path[..<path.lastIndex(of: "/")!]))
        guard let file = fopen(path, "w") else { throw Failure(call: "fopen " + path, code: errno) }
        fputs(text, file)
        fclose(file)
    }
}
