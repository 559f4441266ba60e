#if canImport(Glibc)
import Glibc
#endif
import Namespaces
import RPC

/// Someone a group is shared with: a user, or every member of a Unix group.
/// Kept by id (names can be reused); the name is what it was when shared.
enum Member: Sendable, Hashable, CustomStringConvertible {
    case user(uid: uid_t, name: String)
    case group(gid: gid_t, name: String)

    /// As it is written on the wire and in the CLI: "alice" or "@devs".
    var description: String {
        switch self {
        case .user(_, let name): return name
        case .group(_, let name): return "@" + name
        }
    }

    /// Reads "alice", "1001", "@devs" or "@1002" against the user and group
    /// databases; an unknown name is an error, a bare number is taken as is.
    static func resolve(_ text: String, method: String) throws(RPCError) -> Member {
        let shown = JSONValue.string(String(text.prefix(64))).serialized()
        if text.hasPrefix("@") {
            let name = String(text.dropFirst())
            if let gid = gid_t(name) { return .group(gid: gid, name: UserDatabase.groupName(gid: gid) ?? name) }
            guard !name.isEmpty, let gid = UserDatabase.groupID(named: name) else {
                throw .invalidParams("\(method): no group named \(shown)")
            }
            return .group(gid: gid, name: name)
        }
        if let uid = uid_t(text) { return .user(uid: uid, name: UserDatabase.user(uid: uid)?.name ?? text) }
        guard !text.isEmpty, let entry = UserDatabase.user(named: text) else {
            throw .invalidParams("\(method): no user named \(shown)")
        }
        return .user(uid: entry.uid, name: entry.name)
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
