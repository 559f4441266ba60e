#if canImport(Glibc)
import Glibc
#endif
import Namespaces

/// /etc/subuid and /etc/subgid: the ranges of ids a user may map into user
/// namespaces of theirs, as newuidmap(1) and newgidmap(1) read them.
enum SubordinateIDs {
    static let uidFile = "/etc/subuid"
    static let gidFile = "/etc/subgid"

    /// The maps for a group with a user namespace owned by `owner`: root
    /// inside is the owner (uid and primary gid), and 1, 2, … are the owner's
    /// own subordinate ranges, in file order, if it has any; nobody else's.
    static func maps(for owner: PeerCredentials) -> UserMaps {
        let name = UserDatabase.user(uid: owner.uid)?.name
        return UserMaps(uids: [IDMapping(inside: 0, outside: owner.uid, count: 1)] + ranges(uidFile, name: name, id: owner.uid),
                        gids: [IDMapping(inside: 0, outside: owner.gid, count: 1)] + ranges(gidFile, name: name, id: owner.uid))
    }

    /// The kernel takes at most 340 lines in a map.
    static let maxRanges = 339

    /// `name:start:count` (or `uid:start:count`) lines for this user, laid
    /// one after another from inside id 1.
    static func ranges(_ file: String, name: String?, id: uid_t) -> [IDMapping] {
        guard let text = try? ProcFS.readText(file, limit: 1 << 20) else { return [] }
        var next: UInt64 = 1
        var result: [IDMapping] = []
        var owners: Set<String> = [String(id)]
        if let name { owners.insert(name) }
        for line in text.split(separator: "\n") where result.count < maxRanges {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 3, owners.contains(fields[0]),
                  let start = UInt32(fields[1]), let count = UInt32(fields[2]), count > 0,
                  UInt64(start) + UInt64(count) <= UInt64(UInt32.max), next + UInt64(count) <= UInt64(UInt32.max)
            else { continue }
            result.append(IDMapping(inside: UInt32(next), outside: start, count: count))
            next += UInt64(count)
        }
        return result
    }
}
