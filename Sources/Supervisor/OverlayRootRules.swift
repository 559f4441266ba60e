#if canImport(Glibc)
import Glibc
#endif
import Namespaces
import RPC

/// create's root "overlay" (README, "A machine of your own"): the group's root
/// is a copy-on-write view of the host's, served by fuse-overlayfs that the
/// holder starts as itself: root of the group's user namespace, which is the
/// owner, with the owner's rights on every host file and none beyond them. The
/// supervisor opens nothing of it; everything is in holder.c (overlay_prepare).
///
/// Why FUSE and not the kernel's overlayfs: in a user namespace the kernel's
/// overlay shows the host's root-owned files as owned by nobody, so root
/// inside cannot write /usr or /etc; making them root's (an idmapped lower
/// layer) would also make root inside the owner of /etc/shadow and every other
/// root-only file, readable through the overlay. fuse-overlayfs shows them as
/// root's (squash_to_root) but opens them as the owner: what the owner may not
/// read stays unreadable, writes go to the upper layer.
enum OverlayRootRules {
    static let executable = "/usr/bin/fuse-overlayfs"
    /// Opened by the holder as the owner: open to users, as Debian's udev makes it (0666).
    static let fuseDevice = "/dev/fuse"

    /// Members (create's or share's) of a group with an overlay root: refused. The kernel
    /// lets only processes of the group's user namespace use its FUSE file system, and a
    /// member, trusting the owner or not, enters from the host's: nothing there would run.
    static func noMembers(_ method: String) -> RPCError {
        .invalidParams("\(method): a group with an overlay root has no members: its files are served to its user namespace only, where the owner is root and a member, entering from the host's, could run nothing")
    }

    /// The create-time rules of `root` and `persist` for a group of these kinds.
    static func check(root: GroupRoot, persist: String?, kinds: Set<NamespaceKind>) throws(RPCError) {
        guard root == .overlay else {
            if persist != nil { throw .invalidParams("create: \"persist\" needs \"root\" overlay") }
            return
        }
        guard kinds.contains(.mnt), kinds.contains(.user) else {
            throw .invalidParams("create: \"root\" overlay needs the mnt and user namespaces (add mnt,user to \"namespaces\"): the overlay is served as the group's owner, who is root only inside the group's user namespace")
        }
        if let persist, !HolderSpec.isValidMountPath(persist) {
            throw CreateHandler.badPath(persist, "persist")
        }
        if let missing { throw missing }
    }

    /// What this host lacks for an overlay root, or nil when it has it all (describe's `overlayRoot`).
    static var missing: RPCError? {
        hostLacks(device: fuseDevice, executable: executable, for: "\"root\" overlay", package: "fuse-overlayfs")
    }
}

/// What a feature that runs a host program as a group's owner lacks: its device open to every
/// user (a character device of mode 0666, as Debian's udev makes it), and the program.
func hostLacks(device: String, executable: String, for feature: String, package: String) -> RPCError? {
    var info = stat()
    guard stat(device, &info) == 0, info.st_mode & S_IFMT == S_IFCHR, info.st_mode & 0o006 == 0o006 else {
        return RPCError(.operationFailed, "create: \(feature) needs \(device) readable and writable by every user (mode 0666, as udev sets it)")
    }
    guard access(executable, X_OK) == 0 else {
        return RPCError(.operationFailed, "create: \(feature) needs \(executable) (Debian's \(package) package)")
    }
    return nil
}
