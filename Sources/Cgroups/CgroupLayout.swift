#if canImport(Glibc)
import Glibc
#endif
import POSIX

/// The resource controllers nsgroupd sets limits with.
public enum CgroupController: String, CaseIterable, Sendable {
    case memory, pids, cpu
}

/// Where a controller lives for this process.
public enum ControllerPlace: Sendable, Equatable {
    /// Enabled in the unified (v2) hierarchy for our subtree: listed in our own cgroup's
    /// cgroup.controllers.
    case unified
    /// A v1 hierarchy mounted at `mount`, in which our cgroup is `own` ("/" or "/a/b"),
    /// relative to what the mount shows (the hierarchy's root outside containers).
    case legacy(mount: String, own: String)
    /// Neither.
    case absent
}

/// Which cgroup hierarchies this process has and where it is in each: learnt from
/// /proc/self/mountinfo, /proc/self/cgroup and the unified hierarchy's cgroup.controllers.
///
/// Every path here carries the file root it was parsed with (a fake tree's directory in
/// tests, "" for the real system), so that paths built from it need no prefix.
public struct CgroupLayout: Sendable, Equatable {
    /// Where cgroup2 is mounted: "/sys/fs/cgroup" (pure v2) or "/sys/fs/cgroup/unified" (hybrid).
    public var unifiedMount: String
    /// Our cgroup in it, from the "0::" line of /proc/self/cgroup: "/" or
    /// "/system.slice/nsgroupd.service" (relative to what the mount shows, as `legacy`'s own).
    public var ownUnified: String
    /// Every controller of `CgroupController`, each with its place.
    public var places: [CgroupController: ControllerPlace]
    /// The v1 hierarchy carrying cpuacct, if one is mounted (`.legacy`; else `.absent`): where
    /// `CgroupNode.usage()` reads CPU time when the unified cpu.stat cannot be read. Only a
    /// hierarchy that also carries one of our controllers ("cpu,cpuacct") has our nodes.
    public var cpuAccounting: ControllerPlace
    /// The directory that stood for / when this layout was parsed: "" for the real system.
    /// Writes there create plain files (a fake tree has none to begin with).
    public var fileRoot: String

    public init(unifiedMount: String, ownUnified: String, places: [CgroupController: ControllerPlace],
                cpuAccounting: ControllerPlace = .absent, fileRoot: String = "") {
        self.unifiedMount = unifiedMount
        self.ownUnified = ownUnified
        self.places = places
        self.cpuAccounting = cpuAccounting
        self.fileRoot = fileRoot
    }

    /// The place of `controller`: `.absent` when the layout does not say.
    public func place(of controller: CgroupController) -> ControllerPlace {
        places[controller] ?? .absent
    }

    /// The controllers enabled in the unified hierarchy for our subtree.
    public var unifiedControllers: [CgroupController] {
        CgroupController.allCases.filter { place(of: $0) == .unified }
    }

    /// The v1 hierarchies that carry at least one of our controllers, as (mount, own), each
    /// once, in the order of `CgroupController.allCases`.
    public var legacyHierarchies: [(mount: String, own: String)] {
        var result: [(mount: String, own: String)] = []
        for controller in CgroupController.allCases {
            if case .legacy(let mount, let own) = place(of: controller), !result.contains(where: { $0.mount == mount }) {
                result.append((mount, own))
            }
        }
        return result
    }

    /// Reads /proc/self/mountinfo and /proc/self/cgroup (below procRoot, for tests) and, for
    /// the unified hierarchy, `<unifiedMount><ownUnified>/cgroup.controllers` to learn which
    /// controllers v2 offers us. A controller is `.unified` if listed there; else `.legacy`
    /// if a v1 hierarchy carrying it is mounted read-write (v1 mounts may combine controllers,
    /// "cpu,cpuacct" in the super options); else `.absent`.
    ///
    /// Throws when no cgroup2 (unified) hierarchy is mounted: nsgroupd needs it for membership
    /// (CLONE_INTO_CGROUP), cgroup.kill and cgroup.freeze.
    public static func detect(procRoot: String = "/proc") throws(CgroupError) -> CgroupLayout {
        let mountinfo: String
        let cgroup: String
        do {
            mountinfo = try ProcFS.readText(procRoot + "/self/mountinfo", limit: 1 << 24)
        } catch {
            throw CgroupError(operation: "read", path: procRoot + "/self/mountinfo", errno: error)
        }
        do {
            cgroup = try ProcFS.readText(procRoot + "/self/cgroup")
        } catch {
            throw CgroupError(operation: "read", path: procRoot + "/self/cgroup", errno: error)
        }
        return try parse(mountinfo: mountinfo, cgroup: cgroup)
    }

    /// The same from texts, for fake trees: the text of /proc/self/mountinfo, the text of
    /// /proc/self/cgroup, and the directory that stands for / (`fileRoot`), below which the
    /// unified cgroup.controllers is read (an unreadable one offers nothing). Every path in the
    /// layout starts with fileRoot.
    public static func parse(mountinfo: String, cgroup: String, fileRoot: String = "") throws(CgroupError) -> CgroupLayout {
        let mounts = mountinfo.split(separator: "\n").compactMap(Mount.init)
        let memberships = cgroup.split(separator: "\n").compactMap(Membership.init)

        guard let unifiedOwn = memberships.first(where: { $0.controllers.isEmpty && $0.hierarchy == 0 })?.path else {
            throw CgroupError(operation: "detect", path: "/proc/self/cgroup",
                              reason: "no \"0::\" line: this kernel has no cgroup2 (unified) hierarchy, which nsgroupd needs")
        }
        let unifiedMounts = mounts.filter { $0.type == "cgroup2" }
        guard !unifiedMounts.isEmpty else {
            throw CgroupError(operation: "detect", path: "/proc/self/mountinfo",
                              reason: "no cgroup2 (unified) hierarchy is mounted, which nsgroupd needs (mount -t cgroup2 none /sys/fs/cgroup/unified)")
        }
        guard let (unified, ownUnified) = unifiedMounts.lazy.compactMap({ mount in
            mount.relative(unifiedOwn).map { (mount, $0) }
        }).first else {
            throw CgroupError(operation: "detect", path: "/proc/self/mountinfo",
                              reason: "no cgroup2 mount shows our own cgroup \(unifiedOwn)")
        }
        let unifiedMount = fileRoot + unified.point
        let offered = CgroupFiles.text(directory(unifiedMount, ownUnified) + "/cgroup.controllers")?
            .split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init) ?? []

        /// The v1 hierarchy carrying `name` that shows our cgroup there. One mounted read-only
        /// is not ours to use: systemd-nspawn mounts a container's v1 controller hierarchies so,
        /// and systemd in such a container delegates only the unified one.
        func legacy(_ name: String) -> ControllerPlace {
            guard let own = memberships.first(where: { $0.controllers.contains(name) })?.path else { return .absent }
            for mount in mounts where mount.type == "cgroup" && mount.superOptions.contains(name) && !mount.readOnly {
                if let relative = mount.relative(own) {
                    return .legacy(mount: fileRoot + mount.point, own: relative)
                }
            }
            return .absent
        }

        var places: [CgroupController: ControllerPlace] = [:]
        for controller in CgroupController.allCases {
            places[controller] = offered.contains(controller.rawValue) ? .unified : legacy(controller.rawValue)
        }
        return CgroupLayout(unifiedMount: unifiedMount, ownUnified: ownUnified, places: places,
                            cpuAccounting: legacy("cpuacct"), fileRoot: fileRoot)
    }

    /// One line an administrator reads in --version and the startup log:
    /// "cgroup2 at /sys/fs/cgroup/unified (membership, kill, freeze); memory: v1 at
    /// /sys/fs/cgroup/memory; pids: v2; cpu: none".
    public var summary: String {
        var parts = ["cgroup2 at \(unifiedMount) (membership, kill, freeze)"]
        for controller in CgroupController.allCases {
            switch place(of: controller) {
            case .unified: parts.append("\(controller.rawValue): v2")
            case .legacy(let mount, _): parts.append("\(controller.rawValue): v1 at \(mount)")
            case .absent: parts.append("\(controller.rawValue): none")
            }
        }
        return parts.joined(separator: "; ")
    }

    /// A mount's directory for the cgroup `own` ("/" or "/a/b") in it.
    static func directory(_ mount: String, _ own: String) -> String {
        own == "/" ? mount : mount + own
    }

    /// The same hierarchies with "our own cgroup" at their roots: the layout of a tree that
    /// addresses cgroups by their full path, as systemd names its units' ("/nsgroup.slice/…").
    public var atHierarchyRoots: CgroupLayout {
        func rooted(_ place: ControllerPlace) -> ControllerPlace {
            if case .legacy(let mount, _) = place { return .legacy(mount: mount, own: "/") }
            return place
        }
        return CgroupLayout(unifiedMount: unifiedMount, ownUnified: "/", places: places.mapValues(rooted),
                            cpuAccounting: rooted(cpuAccounting), fileRoot: fileRoot)
    }

    /// The directory of our own cgroup in the unified hierarchy.
    var unifiedOwnDirectory: String { Self.directory(unifiedMount, ownUnified) }
}

/// One line of /proc/self/mountinfo (proc(5)): "ID PARENT MAJ:MIN ROOT POINT OPTIONS
/// [OPTIONAL...] - TYPE SOURCE SUPER-OPTIONS", with blanks in paths written as octal escapes.
struct Mount {
    var root: String
    var point: String
    var type: String
    var superOptions: [String]
    /// Mounted read-only (the per-mount options, not the super options, say "ro").
    var readOnly: Bool

    init?(_ line: Substring) {
        let fields = line.split(separator: " ")
        // The separator comes after the six fixed fields and any optional ones.
        guard fields.count > 7, let dash = fields[6...].firstIndex(of: "-"), dash + 1 < fields.count else { return nil }
        root = Mount.unescape(fields[3])
        point = Mount.unescape(fields[4])
        type = String(fields[dash + 1])
        readOnly = fields[5].split(separator: ",").contains("ro")
        superOptions = dash + 3 < fields.count ? fields[dash + 3].split(separator: ",").map(String.init) : []
    }

    /// `path` (a cgroup as /proc/self/cgroup names it) relative to this mount's root, "/"
    /// for the root itself; nil when the mount does not show it.
    func relative(_ path: String) -> String? {
        if root == "/" { return path }
        if path == root { return "/" }
        if path.hasPrefix(root + "/") { return String(path.dropFirst(root.count)) }
        return nil
    }

    /// Undoes the kernel's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash).
    static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "\\"), index + 4 <= utf8.count,
               let value = octal(utf8[(index + 1)..<(index + 4)]) {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func octal(_ digits: ArraySlice<UInt8>) -> UInt8? {
        guard digits.count == 3 else { return nil }
        var value: UInt16 = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "7") else { return nil }
            value = value * 8 + UInt16(digit - UInt8(ascii: "0"))
        }
        return value <= 0xFF ? UInt8(value) : nil
    }
}

/// One line of /proc/PID/cgroup (cgroups(7)): "HIERARCHY-ID:CONTROLLERS:PATH"; the unified
/// hierarchy's line is "0::PATH".
struct Membership {
    var hierarchy: Int
    var controllers: [String]
    var path: String

    init?(_ line: Substring) {
        let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count == 3, let hierarchy = Int(fields[0]), fields[2].hasPrefix("/") else { return nil }
        self.hierarchy = hierarchy
        controllers = fields[1].split(separator: ",").map(String.init)
        path = String(fields[2])
    }
}

/// Which cgroup a process is in, in the unified hierarchy: the path of the "0::" line of
/// /proc/PID/cgroup (relative to the reader's cgroup namespace), for re-adoption checks;
/// nil when the process is gone or the line is missing.
public func unifiedCgroup(ofProcess pid: pid_t, procRoot: String = "/proc") -> String? {
    guard let text = try? ProcFS.readText(procRoot + "/\(pid)/cgroup") else { return nil }
    for line in text.split(separator: "\n") {
        if let membership = Membership(line), membership.hierarchy == 0, membership.controllers.isEmpty {
            return membership.path
        }
    }
    return nil
}
