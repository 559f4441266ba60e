#if canImport(Glibc)
import Glibc
#endif
import CPOSIX
import POSIX

/// A cgroup below nsgroupd's base, the same relative path in the unified hierarchy and in
/// every v1 hierarchy that carries one of our controllers. A value: nothing is opened or
/// made until a method is called.
public struct CgroupNode: Sendable, Equatable {
    public let layout: CgroupLayout
    /// The tree's base below our own cgroup ("nsgroupd"; "" when the base is our own cgroup).
    public let subdirectory: String
    /// The path below the base: "users/1001/lab"; "" for the base itself.
    public let relative: String
    /// The first component that is not a plain name, if any: every change throws then.
    let invalidName: String?

    init(layout: CgroupLayout, subdirectory: String, relative: String, invalidName: String?) {
        self.layout = layout
        self.subdirectory = subdirectory
        self.relative = relative
        self.invalidName = invalidName
    }

    /// Whether `name` may be one component of a cgroup path we build: not empty, not "." or
    /// "..", without "/", newline (it would break /proc/PID/cgroup's lines) or NUL.
    public static func isValidName(_ name: Substring) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.utf8.contains(where: { $0 == UInt8(ascii: "/") || $0 == 10 || $0 == 0 })
    }

    static func nameError(_ name: String) -> CgroupError {
        CgroupError(operation: "name", path: name, reason: "not a plain cgroup name (empty, \".\", \"..\", or with \"/\", newline or NUL)")
    }

    func checkName() throws(CgroupError) {
        if let invalidName { throw Self.nameError(invalidName) }
    }

    /// The node named `name` below this one.
    public func child(_ name: String) -> CgroupNode {
        CgroupNode(layout: layout, subdirectory: subdirectory, relative: relative.isEmpty ? name : relative + "/" + name,
                   invalidName: invalidName ?? (Self.isValidName(name[...]) ? nil : name))
    }

    /// subdirectory and relative joined: the path below our own cgroup, "" for our own cgroup.
    private var belowOwn: String {
        if subdirectory.isEmpty { return relative }
        if relative.isEmpty { return subdirectory }
        return subdirectory + "/" + relative
    }

    /// The path in the unified hierarchy: "/nsgroupd/users/1001/lab" (what /proc/PID/cgroup
    /// shows for a process in it, and what the supervisor displays).
    public var unifiedPath: String {
        let below = belowOwn
        if below.isEmpty { return layout.ownUnified }
        return (layout.ownUnified == "/" ? "" : layout.ownUnified) + "/" + below
    }

    /// The directory in the unified hierarchy.
    public var unifiedDirectory: String {
        directory(below: layout.unifiedOwnDirectory)
    }

    private func directory(below own: String) -> String {
        let below = belowOwn
        return below.isEmpty ? own : own + "/" + below
    }

    /// The directory of this node in the hierarchy of `place`; nil for `.absent`.
    public func directory(in place: ControllerPlace) -> String? {
        switch place {
        case .unified: return unifiedDirectory
        case .legacy(let mount, let own): return directory(below: CgroupLayout.directory(mount, own))
        case .absent: return nil
        }
    }

    /// The directory of this node in the hierarchy that has `controller`; nil when absent.
    public func directory(for controller: CgroupController) -> String? {
        directory(in: layout.place(of: controller))
    }

    /// The node's directories in the v1 hierarchies that carry one of our controllers.
    public var legacyDirectories: [String] {
        layout.legacyHierarchies.map { directory(below: CgroupLayout.directory($0.mount, $0.own)) }
    }

    /// The unified directory first, then the v1 ones.
    var allDirectories: [String] { [unifiedDirectory] + legacyDirectories }

    /// Whether writes create plain files: in a fake tree only.
    var creating: Bool { !layout.fileRoot.isEmpty }

    func write(_ value: String, _ path: String) throws(CgroupError) {
        do {
            try CgroupFiles.write(value, to: path, creating: creating)
        } catch {
            throw CgroupError(operation: "write \(value) to", path: path, errno: error)
        }
    }

    // MARK: Making and removing

    /// mkdir(2) in the unified hierarchy and in every v1 hierarchy that carries one of our
    /// controllers; the parent must exist, and a directory already there is fine.
    public func create() throws(CgroupError) {
        try checkName()
        for directory in allDirectories {
            do {
                try CgroupFiles.makeDirectory(directory)
            } catch {
                throw CgroupError(operation: "mkdir", path: directory, errno: error)
            }
        }
    }

    /// Enables the `.unified` controllers (+memory +pids +cpu, of those) in this node's
    /// cgroup.subtree_control, those not enabled already, in one write: its children can then
    /// have limits. Nothing to do when no controller is `.unified`. EBUSY: the node holds
    /// processes (cgroup2's "no internal processes"; the root cgroup is exempt).
    public func delegateControllersToChildren() throws(CgroupError) {
        try checkName()
        let wanted = layout.unifiedControllers
        guard !wanted.isEmpty else { return }
        let path = unifiedDirectory + "/cgroup.subtree_control"
        // The kernel lists them as "memory pids"; a fake tree keeps what was written, "+memory".
        let enabled = (CgroupFiles.text(path)?.split(whereSeparator: { $0 == " " || $0 == "\n" }) ?? [])
            .map { $0.hasPrefix("+") ? $0.dropFirst() : $0 }
        let missing = wanted.filter { !enabled.contains($0.rawValue[...]) }
        guard !missing.isEmpty else { return }
        try write(missing.map { "+" + $0.rawValue }.joined(separator: " "), path)
    }

    /// rmdir(2), depth first, children before their parent, in every hierarchy (all are tried
    /// before the first failure is thrown). A directory already gone is fine; one that still
    /// has processes fails with EBUSY.
    /// Our own cgroup (the base of a tree without subdirectory) is never removed: that throws.
    public func remove() throws(CgroupError) {
        try checkName()
        if belowOwn.isEmpty {
            throw CgroupError(operation: "rmdir", path: unifiedDirectory, reason: "this is our own cgroup, which is not ours to remove")
        }
        var failure: CgroupError?
        for directory in allDirectories {
            do {
                try Self.removeTree(directory)
            } catch {
                failure = failure ?? error
            }
        }
        if let failure { throw failure }
    }

    private static func removeTree(_ directory: String) throws(CgroupError) {
        let children: [String]
        do {
            children = try CgroupFiles.subdirectories(directory)
        } catch {
            if error.rawValue == ENOENT { return }
            throw CgroupError(operation: "open", path: directory, errno: error)
        }
        for child in children { try removeTree(directory + "/" + child) }
        do {
            try CgroupFiles.removeDirectory(directory)
        } catch {
            throw CgroupError(operation: "rmdir", path: directory, errno: error)
        }
    }

    /// Whether the node's unified directory exists.
    public func exists() -> Bool {
        invalidName == nil && CgroupFiles.isDirectory(unifiedDirectory)
    }

    /// Sets the extended attribute `name` ("trusted.…": root's only) of the node's unified
    /// directory to `value`. systemd marks its units' cgroups the same way.
    public func setAttribute(_ name: String, _ value: String) throws(CgroupError) {
        try checkName()
        let path = unifiedDirectory
        let result = value.withCString { bytes in setxattr(path, name, bytes, strlen(bytes), 0) }
        if result != 0 { throw CgroupError(operation: "setxattr \(name) of", path: path, errno: Errno(rawValue: errno)) }
    }

    /// The extended attribute `name` of the node's unified directory (up to 4 KiB), nil
    /// when it has none or cannot be read.
    public func attribute(_ name: String) -> String? {
        guard invalidName == nil else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = getxattr(unifiedDirectory, name, &buffer, buffer.count)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }

    /// The names of the node's subdirectories in the unified hierarchy (its child cgroups).
    public func childNames() -> [String] {
        guard invalidName == nil else { return [] }
        return (try? CgroupFiles.subdirectories(unifiedDirectory)) ?? []
    }

    // MARK: Membership

    /// Opens the unified directory O_RDONLY | O_DIRECTORY | O_CLOEXEC: the descriptor
    /// clone3(2)'s CLONE_INTO_CGROUP takes (Linux 5.7), so a child starts in the node and
    /// is never anywhere else (no window in which it runs unlimited, nothing to move).
    ///
    /// With CLONE_NEWCGROUP as well, the new cgroup namespace's root is this node, measured
    /// on Linux 6.18 (CgroupKernelTests): inside, /proc/self/cgroup says "0::/". The child's
    /// v1 memberships are different: the namespace takes the v1 cgroups the child has at the
    /// clone, its parent's, and the child joins this node's v1 cgroups only after, through
    /// `openLegacyProcs()`; its v1 lines then show the node's path relative to the parent's
    /// cgroup (as "/nsgroupd/users/0/lab/holder" from a parent in the v1 root). A child that
    /// wants every hierarchy rooted at the node would instead unshare(CLONE_NEWCGROUP) after
    /// its v1 writes (not measured here).
    public func openForClone() throws(CgroupError) -> FileDescriptor {
        try checkName()
        do {
            return try CgroupFiles.open(unifiedDirectory, O_RDONLY | O_DIRECTORY)
        } catch {
            throw CgroupError(operation: "open", path: unifiedDirectory, errno: error)
        }
    }

    /// Opens cgroup.procs O_WRONLY | O_CLOEXEC in every v1 hierarchy that carries one of our
    /// controllers (not the unified one): cgroup v1 has no CLONE_INTO_CGROUP, so a child
    /// writes "0" into each (itself) before it does anything else. Empty on a pure v2 host.
    public func openLegacyProcs() throws(CgroupError) -> CgroupProcsDescriptors {
        try openProcs(in: legacyDirectories)
    }

    /// Opens cgroup.procs in the unified hierarchy and every v1 one: a child
    /// that is already somewhere in the group writes "0" into each to move
    /// into this node everywhere (the holder into its leaf, once its cgroup
    /// namespace is made).
    public func openAllProcs() throws(CgroupError) -> CgroupProcsDescriptors {
        try openProcs(in: allDirectories)
    }

    private func openProcs(in directories: [String]) throws(CgroupError) -> CgroupProcsDescriptors {
        try checkName()
        var descriptors = CgroupProcsDescriptors()
        for directory in directories {
            let path = directory + "/cgroup.procs"
            do {
                let fd = try CgroupFiles.open(path, O_WRONLY | (creating ? O_CREAT : 0), mode: 0o644)
                descriptors.append(fd)
            } catch {
                throw CgroupError(operation: "open", path: path, errno: error)
            }
        }
        return descriptors
    }

    /// Writes pid into cgroup.procs in the unified hierarchy, then in every v1 one: the whole
    /// process moves (all its threads); its children stay where they are.
    public func move(_ pid: pid_t) throws(CgroupError) {
        try checkName()
        for directory in allDirectories {
            try write(String(pid), directory + "/cgroup.procs")
        }
    }

    /// Every process in this node and below (the unified cgroup.procs of each), with the
    /// leaf it is in, relative to this node: "holder", "session-3", "" for the node itself.
    /// Empty when the node cannot be read.
    public func processes() -> [(pid: pid_t, leaf: String)] {
        guard invalidName == nil else { return [] }
        var result: [(pid: pid_t, leaf: String)] = []
        Self.collect(unifiedDirectory, leaf: "", into: &result)
        return result
    }

    private static func collect(_ directory: String, leaf: String, into result: inout [(pid: pid_t, leaf: String)]) {
        if let bytes = try? CgroupFiles.readAll(directory + "/cgroup.procs") {
            var value: pid_t = 0
            var digits = false
            for byte in bytes {
                if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                    value = value &* 10 &+ pid_t(byte - UInt8(ascii: "0"))
                    digits = true
                } else {
                    if digits { result.append((value, leaf)) }
                    value = 0
                    digits = false
                }
            }
            if digits { result.append((value, leaf)) }
        }
        for child in (try? CgroupFiles.subdirectories(directory)) ?? [] {
            collect(directory + "/" + child, leaf: leaf.isEmpty ? child : leaf + "/" + child, into: &result)
        }
    }

    // MARK: Events, freezing, killing

    /// Whether a process is in the node or below (unified cgroup.events "populated 1").
    public var isPopulated: Bool {
        invalidName == nil && CgroupFiles.value("populated", in: unifiedDirectory + "/cgroup.events") == .number(1)
    }

    /// Whether the node is frozen, every process in it stopped (cgroup.events "frozen 1").
    /// After `setFrozen(true)` this turns true once the last process has stopped.
    public var isFrozen: Bool {
        invalidName == nil && CgroupFiles.value("frozen", in: unifiedDirectory + "/cgroup.events") == .number(1)
    }

    /// Freezes or thaws the node and everything below it (cgroup.freeze, Linux 5.2).
    public func setFrozen(_ frozen: Bool) throws(CgroupError) {
        try checkName()
        try write(frozen ? "1" : "0", unifiedDirectory + "/cgroup.freeze")
    }

    /// SIGKILL to every process in the node and below: cgroup.kill "1" (Linux 5.14), which
    /// also takes processes forked meanwhile. Where the file is missing, each process of
    /// `processes()` gets SIGKILL through a pidfd, repeated while new ones appear (at most
    /// 16 rounds). Processes have not necessarily gone on return: watch `isPopulated`.
    ///
    /// The base itself is refused (it holds the supervisor leaf, the daemon); a node below it
    /// that is not "supervisor" is what this is for.
    public func killAll() throws(CgroupError) {
        try checkName()
        if relative.isEmpty {
            throw CgroupError(operation: "kill", path: unifiedDirectory, reason: "the base holds the supervisor itself")
        }
        let path = unifiedDirectory + "/cgroup.kill"
        do {
            // Never created, in a fake tree neither: a missing file means an older kernel.
            try CgroupFiles.write("1", to: path, creating: false)
        } catch {
            guard error.rawValue == ENOENT else { throw CgroupError(operation: "write 1 to", path: path, errno: error) }
            try killEachProcess()
        }
    }

    /// The fallback of `killAll()` for kernels before 5.14.
    func killEachProcess(rounds: Int = 16) throws(CgroupError) {
        let path = unifiedPath
        var signalled: Set<pid_t> = []
        for _ in 0..<rounds {
            let fresh = processes().map(\.pid).filter { !signalled.contains($0) }
            if fresh.isEmpty { return }
            for pid in fresh {
                signalled.insert(pid)
                guard let process = try? Pidfd.open(pid: pid) else { continue }  // gone already
                // The pid may have been reused between the listing and pidfd_open: signal
                // only a process that is still in this subtree.
                guard let now = unifiedCgroup(ofProcess: pid), now == path || now.hasPrefix(path == "/" ? "/" : path + "/") else { continue }
                do {
                    try process.signal(SIGKILL)
                } catch {
                    if error != .noSuchProcess {
                        throw CgroupError(operation: "kill", path: "process \(pid)", errno: error)
                    }
                }
            }
        }
        throw CgroupError(operation: "kill", path: unifiedDirectory, reason: "processes kept appearing after \(rounds) rounds of SIGKILL")
    }
}

/// The v1 cgroup.procs descriptors of a node (`CgroupNode.openLegacyProcs()`), each closed
/// when the value goes away, as `FileDescriptor`s are.
public struct CgroupProcsDescriptors: ~Copyable {
    /// The descriptors, for a child to write "0" into; they stay owned here.
    public private(set) var rawValues: [Int32] = []

    public init() {}

    mutating func append(_ fd: consuming FileDescriptor) {
        rawValues.append(fd.release())
    }

    public var count: Int { rawValues.count }
    public var isEmpty: Bool { rawValues.isEmpty }

    deinit {
        // Closed the one way descriptors are closed here: by their owner going away.
        for fd in rawValues { _ = FileDescriptor(adopting: fd) }
    }
}
