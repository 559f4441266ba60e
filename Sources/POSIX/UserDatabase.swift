#if canImport(Glibc)
import Glibc
#endif

/// An entry of the password database.
public struct UserEntry: Sendable, Hashable {
    public let name: String
    public let uid: uid_t
    public let gid: gid_t
    public let home: String
    public let shell: String
}

/// Lookups in the user and group databases (NSS), with the reentrant calls.
public enum UserDatabase {
    private static func withBuffer<R>(_ body: (UnsafeMutablePointer<CChar>, Int) -> (Int32, R?)) -> R? {
        var size = 4096
        while size <= 1 << 20 {
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let (status, result) = body(buffer, size)
            if status == ERANGE { size *= 4; continue }
            return result
        }
        return nil
    }

    private static func entry(_ pw: passwd) -> UserEntry {
        UserEntry(name: String(cString: pw.pw_name), uid: pw.pw_uid, gid: pw.pw_gid,
                  home: String(cString: pw.pw_dir), shell: String(cString: pw.pw_shell))
    }

    public static func user(uid: uid_t) -> UserEntry? {
        withBuffer { buffer, size in
            var pw = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let status = getpwuid_r(uid, &pw, buffer, size, &result)
            return (status, result == nil ? nil : entry(pw))
        }
    }

    public static func user(named name: String) -> UserEntry? {
        withBuffer { buffer, size in
            var pw = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let status = getpwnam_r(name, &pw, buffer, size, &result)
            return (status, result == nil ? nil : entry(pw))
        }
    }

    /// The gid of a group by name.
    public static func groupID(named name: String) -> gid_t? {
        withBuffer { buffer, size in
            var gr = group()
            var result: UnsafeMutablePointer<group>?
            let status = getgrnam_r(name, &gr, buffer, size, &result)
            return (status, result == nil ? nil : gr.gr_gid)
        }
    }

    /// The name of a group by gid.
    public static func groupName(gid: gid_t) -> String? {
        withBuffer { buffer, size in
            var gr = group()
            var result: UnsafeMutablePointer<group>?
            let status = getgrgid_r(gid, &gr, buffer, size, &result)
            return (status, result == nil ? nil : String(cString: gr.gr_name))
        }
    }

    /// The groups the database gives a user (getgrouplist), primary group included.
    public static func groupList(uid: uid_t, primary: gid_t) -> [gid_t] {
        guard let user = user(uid: uid) else { return [primary] }
        var count: Int32 = 64
        while true {
            var groups = [gid_t](repeating: 0, count: Int(count))
            let previous = count
            if getgrouplist(user.name, primary, &groups, &count) >= 0 {
                return Array(groups[0..<Int(count)])
            }
            if count <= previous { count = previous * 2 }
        }
    }
}
