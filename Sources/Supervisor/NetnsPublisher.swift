#if canImport(Glibc)
import Glibc
#endif
import CPOSIX
import Namespaces
import POSIX

/// Publishing a group's net namespace at /run/netns/NAME, the way `ip netns
/// add` makes its own, so that `ip netns exec NAME`, `ip netns identify` and
/// `nsenter --net=/run/netns/NAME` work on it.
package enum NetnsPublisher {
    static let directory = "/run/netns"

    /// `^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`: a file name that cannot be "." or "..".
    package static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        func alnum(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
        }
        guard let first = bytes.first, alnum(first), bytes.count <= 63 else { return false }
        return bytes.allSatisfy { alnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    static func path(_ name: String) -> String { directory + "/" + name }

    static func exists(_ name: String) -> Bool {
        var st = stat()
        return lstat(path(name), &st) == 0
    }

    /// Binds the holder's net namespace onto /run/netns/NAME. /run/netns is
    /// made a shared mount point first (as ip does), so the file shows in
    /// mount namespaces made afterwards too.
    static func publish(_ name: String, holder: borrowing Pidfd) throws(SpawnError) {
        if mkdir(directory, 0o755) < 0 && errno != EEXIST {
            throw SpawnError(step: .mkdir(path: directory), errno: .current)
        }
        if mount("", directory, "none", UInt(MS_SHARED | MS_REC), nil) < 0 {
            guard errno == EINVAL,
                  mount(directory, directory, "none", UInt(MS_BIND | MS_REC), nil) == 0,
                  mount("", directory, "none", UInt(MS_SHARED | MS_REC), nil) == 0
            else { throw SpawnError(step: .makeShared(path: directory), errno: .current) }
        }
        let target = path(name)
        let file = open(target, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0)
        if file < 0 { throw SpawnError(step: .createFile(path: target), errno: .current) }
        close(file)
        do throws(SpawnError) {
            let namespace: FileDescriptor
            do { namespace = try FileDescriptor.open("/proc/\(holder.pid)/ns/net", O_RDONLY) } catch {
                throw SpawnError(step: .open(path: "/proc/\(holder.pid)/ns/net"), errno: error)
            }
            guard holder.isAlive else { throw SpawnError(step: .open(path: "/proc/\(holder.pid)/ns/net"), errno: Errno(rawValue: ESRCH)) }
            if mount("/proc/self/fd/\(namespace.rawValue)", target, "none", UInt(MS_BIND), nil) < 0 {
                throw SpawnError(step: .bindNamespace(target: target), errno: .current)
            }
        } catch {
            unlink(target)
            throw error
        }
    }

    static let nsfsMagic = 0x6e73_6673

    /// Whether /run/netns/NAME holds the net namespace with this inode
    /// (a file of the namespace filesystem, nsfs, not one that merely has
    /// the same inode number somewhere else).
    static func isPublished(_ name: String, inode: UInt64) -> Bool {
        var st = stat()
        return stat(path(name), &st) == 0 && UInt64(st.st_ino) == inode
            && ns_filesystem_type(path(name)) == nsfsMagic
    }

    /// Removes /run/netns/NAME if the group published its net namespace there.
    static func unpublish(of record: GroupRecord) {
        guard let name = record.netnsName, let net = record.namespaces.first(where: { $0.kind == .net }) else { return }
        unpublish(name, inode: net.inode)
    }

    /// Removes /run/netns/NAME if it holds that namespace (and nothing else:
    /// a file of the same name made by someone else is left alone).
    static func unpublish(_ name: String, inode: UInt64) {
        guard isPublished(name, inode: inode) else { return }
        umount2(path(name), Int32(MNT_DETACH))
        unlink(path(name))
    }
}
