#if canImport(Glibc)
import Glibc
#endif
import Namespaces
import POSIX

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

    /// One well-formed line of either file: `owner:start:count`, where owner is a name or a
    /// uid and count is above 0.
    struct Entry {
        let owner: String
        let start: UInt32
        let count: UInt32
    }

    /// The well-formed lines of `file`, in file order; none when it cannot be read.
    static func entries(_ file: String) -> [Entry] {
        guard let text = try? ProcFS.readText(file, limit: 1 << 20) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count == 3, let start = UInt32(fields[1]), let count = UInt32(fields[2]), count > 0 else { return nil }
            return Entry(owner: String(fields[0]), start: start, count: count)
        }
    }

    /// `name:start:count` (or `uid:start:count`) lines for this user, laid
    /// one after another from inside id 1.
    static func ranges(_ file: String, name: String?, id: uid_t) -> [IDMapping] {
        var next: UInt64 = 1
        var result: [IDMapping] = []
        var owners: Set<String> = [String(id)]
        if let name { owners.insert(name) }
        for entry in entries(file) where result.count < maxRanges && owners.contains(entry.owner) {
            // The kernel takes only ranges that fit in 32 bits, outside and inside.
            guard UInt64(entry.start) + UInt64(entry.count) <= UInt64(UInt32.max),
                  next + UInt64(entry.count) <= UInt64(UInt32.max) else { continue }
            result.append(IDMapping(inside: UInt32(next), outside: entry.start, count: entry.count))
            next += UInt64(entry.count)
        }
        return result
    }
}

/// Who owns each subordinate uid: /etc/subuid read once and kept, read again
/// on SIGHUP (reload) and whenever one stat(2) shows the file changed
/// (refreshIfChanged, once per accepted connection). Nothing here reads the
/// file per request, and owner names are resolved when the file is read,
/// not on the request path.
///
/// A process running as one of these ids (root inside its owner's user
/// namespace switching to a mapped id, as `setpriv --reuid` does) is that
/// owner to every per-user limit, and the journal names the owner beside it.
final class SubordinateOwners {
    struct Owner: Sendable, Equatable {
        let uid: uid_t
        let name: String
    }

    private struct Range {
        let start: UInt64
        let end: UInt64  // exclusive
        let owner: Owner
    }

    let path: String
    private var ranges: [Range] = []
    private var lookups: [uid_t: Owner?] = [:]
    private var signature: [Int64]?

    init(path: String = SubordinateIDs.uidFile) {
        self.path = path
        reload()
    }

    /// The person a uid counts as when it lies in someone's subordinate
    /// range, else nil. Never root, and never a range owner's own uid: a
    /// range that (wrongly) covers it does not make a person someone else.
    func owner(of uid: uid_t) -> Owner? {
        if uid == 0 { return nil }
        if let known = lookups[uid] { return known }
        // File order decides between overlapping ranges, as for newuidmap.
        var found = ranges.first { UInt64(uid) >= $0.start && UInt64(uid) < $0.end }?.owner
        if found?.uid == uid { found = nil }
        if lookups.count >= 65_536 { lookups.removeAll(keepingCapacity: true) }
        lookups[uid] = .some(found)
        return found
    }

    /// The uid that per-user limits count `uid` against.
    func chargedUID(_ uid: uid_t) -> uid_t { owner(of: uid)?.uid ?? uid }

    /// Who a per-user limit is about, as the subject of its message: "uid
    /// 1001 has" for a person, "uid 100007 is a subordinate uid of alice
    /// (uid 1001), who has" for an id charged to its range's owner. The verb
    /// is `has` unless given.
    func chargedSubject(_ uid: uid_t, _ verb: String = "has") -> String {
        guard let owner = owner(of: uid) else { return "uid \(uid) \(verb)" }
        return "uid \(uid) is a subordinate uid of \(owner.name) (uid \(owner.uid)), who \(verb)"
    }

    /// Reads the file again if its identity, size or modification time changed.
    func refreshIfChanged() {
        if currentSignature() != signature { reload() }
    }

    /// Reads the file (missing or unreadable: nobody has subordinate ids).
    func reload() {
        signature = currentSignature()
        lookups.removeAll()
        ranges = []
        var names: [String: Owner?] = [:]
        for entry in SubordinateIDs.entries(path) {
            let key = entry.owner
            let owner: Owner?
            if let cached = names[key] {
                owner = cached
            } else {
                if let uid = uid_t(key) {
                    owner = Owner(uid: uid, name: UserDatabase.user(uid: uid)?.name ?? key)
                } else {
                    owner = UserDatabase.user(named: key).map { Owner(uid: $0.uid, name: $0.name) }
                }
                names[key] = .some(owner)
            }
            guard let owner else { continue }
            ranges.append(Range(start: UInt64(entry.start), end: UInt64(entry.start) + UInt64(entry.count), owner: owner))
        }
    }

    private func currentSignature() -> [Int64]? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return [Int64(st.st_dev), Int64(st.st_ino), Int64(st.st_size),
                Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec), Int64(st.st_ctim.tv_sec), Int64(st.st_ctim.tv_nsec)]
    }
}
