#if canImport(Glibc)
import Glibc
#endif
import POSIX

/// nsgroupd's subtree: in the unified hierarchy `<ownUnified>/<subdirectory>` (or our own
/// cgroup itself when subdirectory is nil), and in each v1 hierarchy that carries one of our
/// controllers the same relative subdirectory below our own cgroup there.
///
/// Below the base: "supervisor", the daemon's own leaf, "users/UID/group-NAME/{holder,
/// session-ID}", a group per NAME, and "users/UID/guest-NAME/session-ID", the sessions UID
/// runs in someone else's group NAME. Processes live in leaves only: in cgroup2 a cgroup with
/// controllers enabled for its children may hold no process itself.
public struct CgroupTree: Sendable {
    public let layout: CgroupLayout
    /// The base's path below our own cgroup, components joined by "/"; "" for our own cgroup.
    public let subdirectory: String
    /// A component of the subdirectory that is not a single, plain name.
    let invalidName: String?

    /// `subdirectory` may have several components ("a/b"), each a plain name: not empty, not
    /// "." or "..", without "/", newline or NUL. A tree with any other is kept, but every
    /// operation that would touch a file throws (CgroupError "name").
    public init(layout: CgroupLayout, subdirectory: String?) {
        self.layout = layout
        guard let subdirectory else {
            self.subdirectory = ""
            self.invalidName = nil
            return
        }
        self.subdirectory = subdirectory
        let components = subdirectory.split(separator: "/", omittingEmptySubsequences: false)
        self.invalidName = components.first { !CgroupNode.isValidName($0) }.map(String.init)
    }

    /// The base itself.
    public var base: CgroupNode { node([]) }

    /// The base path in the unified hierarchy, e.g. "/nsgroupd" (what `cgroup` fields show).
    public var basePath: String { base.unifiedPath }

    /// The daemon's leaf, "supervisor".
    public var supervisorLeaf: CgroupNode { node(["supervisor"]) }

    /// A node below base, by relative components, e.g. node(["users", "1001", "lab"]).
    /// Components are checked as `init` says; a node with a bad one throws on every change.
    public func node(_ components: [String]) -> CgroupNode {
        let bad = invalidName ?? components.first { !CgroupNode.isValidName($0[...]) }
        return CgroupNode(layout: layout, subdirectory: subdirectory, relative: components.joined(separator: "/"), invalidName: bad)
    }

    /// users/UID.
    public func user(_ uid: UInt32) -> CgroupNode {
        node(["users", String(uid)])
    }

    /// users/UID/group-NAME. The group node's children are "holder" and "session-ID".
    /// The prefix keeps a group's directory apart from the interface files cgroupfs puts
    /// beside it ("tasks", "cgroup.procs", "pids.max" are valid group names).
    public func group(owner: UInt32, name: String) -> CgroupNode {
        node(["users", String(owner), Self.prefixed(Self.groupPrefix, name)])
    }

    /// users/UID/guest-NAME: the sessions a user who is not its owner runs in group NAME
    /// ("session-ID" children), charged to that user.
    public func guest(_ uid: UInt32, inGroup name: String) -> CgroupNode {
        node(["users", String(uid), Self.prefixed(Self.guestPrefix, name)])
    }

    /// The prefixed name; a name that is not plain on its own stays as it is, so that the
    /// node refuses it ("", ".", "..", "a/b" make no group).
    private static func prefixed(_ prefix: String, _ name: String) -> String {
        CgroupNode.isValidName(Substring(name)) ? prefix + name : name
    }

    public static let groupPrefix = "group-"
    public static let guestPrefix = "guest-"

    /// Makes base, base/supervisor and base/users (mkdir(2); EEXIST is fine) in the unified
    /// hierarchy and in every v1 hierarchy that carries one of our controllers, and enables
    /// the controllers that are `.unified` (+memory +pids +cpu, of those) in the
    /// cgroup.subtree_control of every cgroup from our own one down to base, and of base and
    /// users, so that users/UID and below can have limits. Controllers already enabled are
    /// not written again.
    ///
    /// Order: cgroup2 lets no cgroup but the root both hold processes and enable controllers
    /// for its children (EBUSY). Where our own cgroup is not the root and controllers are
    /// delegated to it (pure v2 under systemd, Delegate=yes), call `moveSelfToSupervisorLeaf()`
    /// first: it makes the leaf it needs, and our own cgroup is then empty.
    public func prepare() throws(CgroupError) {
        if let invalidName { throw CgroupNode.nameError(invalidName) }
        let levels = subdirectory.isEmpty ? [] : subdirectory.split(separator: "/").map(String.init)
        // Every level of the base, then its two children.
        var levelNodes: [CgroupNode] = []
        for count in 0...levels.count {
            levelNodes.append(CgroupNode(layout: layout, subdirectory: levels[..<count].joined(separator: "/"), relative: "", invalidName: nil))
        }
        for level in levelNodes.dropFirst() { try level.create() }
        try supervisorLeaf.create()
        let users = node(["users"])
        try users.create()
        guard !layout.unifiedControllers.isEmpty else { return }
        // From our own cgroup down to base: each must pass the controllers on to the next.
        for level in levelNodes { try level.delegateControllersToChildren() }
        try users.delegateControllersToChildren()
    }

    /// Moves this process into base/supervisor in every hierarchy: writes getpid() to its
    /// cgroup.procs (cgroup2 and v1 move the whole process, every thread). Makes base and the
    /// leaf first when they are missing (EEXIST is fine), so that it may come before `prepare()`.
    public func moveSelfToSupervisorLeaf() throws(CgroupError) {
        if let invalidName { throw CgroupNode.nameError(invalidName) }
        let levels = subdirectory.isEmpty ? [] : subdirectory.split(separator: "/").map(String.init)
        for count in 0..<levels.count {
            try CgroupNode(layout: layout, subdirectory: levels[...count].joined(separator: "/"), relative: "", invalidName: nil).create()
        }
        try supervisorLeaf.create()
        try supervisorLeaf.move(getpid())
    }

    /// The smallest limit of `controller` set on base or any cgroup above it, up to the top
    /// of what the mount shows, in the hierarchy of that controller: memory in bytes
    /// (memory.max, v1 memory.limit_in_bytes), pids as a count (pids.max); nil when unlimited
    /// everywhere, for cpu (a quota is no amount), and for an absent controller. What the
    /// supervisor must stay within, so that it can leave itself a reserve.
    public func inheritedLimit(_ controller: CgroupController) -> UInt64? {
        let file: String
        let mount: String
        let place = layout.place(of: controller)
        switch (controller, place) {
        case (.cpu, _), (_, .absent): return nil
        case (.memory, .unified): file = "memory.max"; mount = layout.unifiedMount
        case (.memory, .legacy(let legacyMount, _)): file = "memory.limit_in_bytes"; mount = legacyMount
        case (.pids, .unified): file = "pids.max"; mount = layout.unifiedMount
        case (.pids, .legacy(let legacyMount, _)): file = "pids.max"; mount = legacyMount
        }
        guard var directory = base.directory(in: place) else { return nil }
        var smallest: UInt64?
        while true {
            let value = controller == .memory && place != .unified
                ? CgroupFiles.legacyMemoryLimit(directory + "/" + file)
                : CgroupFiles.number(directory + "/" + file)
            if let value { smallest = min(smallest ?? value, value) }
            guard directory.count > mount.count, let slash = directory.lastIndex(of: "/") else { break }
            directory = String(directory[..<slash])
        }
        return smallest
    }
}
