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
    /// `name` is the owner's user name (CallerIdentity), if it has one.
    static func maps(for owner: PeerCredentials, name: String?) -> UserMaps {
        UserMaps(uids: [IDMapping(inside: 0, outside: owner.uid, count: 1)] + ranges(uidFile, name: name, id: owner.uid),
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
/// not on the request path; once the loop runs, that reading (and its NSS
/// lookups) happens on the NameService's worker and the result is swapped
/// in on the loop, so a connection accepted meanwhile is charged by the
/// table in force until then.
///
/// A process running as one of these ids (root inside its owner's user
/// namespace switching to a mapped id, as `setpriv --reuid` does) is that
/// owner to every per-user limit, and the journal names the owner beside it.
final class SubordinateOwners {
    struct Owner: Sendable, Equatable {
        let uid: uid_t
        let name: String
    }

    struct Range: Sendable {
        let start: UInt64
        let end: UInt64  // exclusive
        let owner: Owner
    }

    let path: String
    /// Set by the Supervisor: re-reads then run on its worker (see reload).
    var names: NameService?
    private var rereading = false
    private var rereadAgain = false
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
        // A re-read already under way reads the file as it is when it runs.
        if !rereading, currentSignature() != signature { reload() }
    }

    /// Reads the file again (missing or unreadable: nobody has subordinate
    /// ids). Without a NameService (start-up, tests) at once; with one, on its
    /// worker, since owner names are resolved through NSS: the table in force
    /// stays until the new one is swapped in on the loop. If the worker does
    /// not finish in time, the old table stays and the next accept tries again
    /// (the file's signature is not taken).
    func reload() {
        guard let names else {
            apply(Self.read(path))
            return
        }
        guard !rereading else {
            rereadAgain = true  // what is being read may predate the change that asked
            return
        }
        rereading = true
        let path = self.path
        names.run({ Self.read(path) }) { [weak self] table in
            guard let self else { return }
            self.rereading = false
            if let table { self.apply(table) }
            if self.rereadAgain {
                self.rereadAgain = false
                self.reload()
            }
        }
    }

    private func apply(_ table: Table) {
        signature = table.signature
        ranges = table.ranges
        lookups.removeAll()
    }

    /// One reading of the file: its signature and its ranges with their owners
    /// resolved (NSS: run on the NameService's worker, or before the loop runs).
    struct Table: Sendable {
        let signature: [Int64]?
        let ranges: [Range]
    }

    static func read(_ path: String) -> Table {
        let signature = signature(path)
        var ranges: [Range] = []
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
        return Table(signature: signature, ranges: ranges)
    }

    private func currentSignature() -> [Int64]? { Self.signature(path) }

    private static func signature(_ path: String) -> [Int64]? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return [Int64(st.st_dev), Int64(st.st_ino), Int64(st.st_size),
                Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec), Int64(st.st_ctim.tv_sec), Int64(st.st_ctim.tv_nsec)]
    }
}
