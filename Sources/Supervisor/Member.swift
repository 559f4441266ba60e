#if canImport(Glibc)
import Glibc
#endif
import POSIX
import RPC

/// Someone a group is shared with: a user, or every member of a Unix group.
/// Kept by id (names can be reused); the name is what it was when shared.
package enum Member: Sendable, Hashable, CustomStringConvertible {
    case user(uid: uid_t, name: String)
    case group(gid: gid_t, name: String)

    /// As it is written on the wire and in the CLI: "alice" or "@devs".
    package var description: String {
        switch self {
        case .user(_, let name): return name
        case .group(_, let name): return "@" + name
        }
    }

    /// Reads "alice", "1001", "@devs" or "@1002" against the user and group
    /// databases; an unknown name is an error, a bare number is taken as is.
    static func resolve(_ text: String, method: String) throws(RPCError) -> Member {
        let isGroup = text.hasPrefix("@")
        let name = isGroup ? String(text.dropFirst()) : text
        let shown = JSONValue.string(String(name.prefix(64))).serialized()
        guard !name.isEmpty, !name.utf8.contains(0), name.utf8.count <= 256 else {
            throw .invalidParams("\(method): invalid \(isGroup ? "group" : "user") name \(shown)")
        }
        if let id = canonicalID(name) {
            return isGroup ? .group(gid: id, name: UserDatabase.groupName(gid: id) ?? name)
                           : .user(uid: id, name: UserDatabase.user(uid: id)?.name ?? name)
        }
        if isGroup {
            guard let gid = UserDatabase.groupID(named: name) else { throw .invalidParams("\(method): no group named \(shown)") }
            return .group(gid: gid, name: name)
        }
        guard let entry = UserDatabase.user(named: name) else { throw .invalidParams("\(method): no user named \(shown)") }
        return .user(uid: entry.uid, name: entry.name)
    }

    /// The most users and groups one group is shared with.
    static let maxPerGroup = 64

    /// Resolves a request's list of members (create, share, unshare), each
    /// once, against the user and group databases.
    static func resolve(_ names: [String], method: String) throws(RPCError) -> [Member] {
        guard names.count <= maxPerGroup else {
            throw .invalidParams("\(method): a group is shared with at most \(maxPerGroup) users and groups")
        }
        var members: [Member] = []
        for name in names {
            let member = try resolve(name, method: method)
            if !members.contains(where: { $0.sameAs(member) }) { members.append(member) }
        }
        return members
    }

    /// A decimal id as the kernel would print it (no sign, no leading zero),
    /// below 4294967295, which means "no id" to the kernel.
    private static func canonicalID(_ text: String) -> UInt32? {
        guard text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let id = UInt32(text), String(id) == text, id != UInt32.max
        else { return nil }
        return id
    }

    /// Whether this member lets `caller` in.
    func admits(_ caller: PeerCredentials) -> Bool {
        switch self {
        case .user(let uid, _): return caller.uid == uid
        case .group(let gid, _): return caller.isMember(of: gid)
        }
    }

    /// The same member, ignoring the name it was recorded under.
    func sameAs(_ other: Member) -> Bool {
        switch (self, other) {
        case (.user(let a, _), .user(let b, _)): return a == b
        case (.group(let a, _), .group(let b, _)): return a == b
        default: return false
        }
    }
}
