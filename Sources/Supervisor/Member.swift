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

    /// The database question `text` ("alice", "1001", "@devs", "@1002")
    /// needs, or nil for text that is refused before any lookup.
    static func query(_ text: String) -> NameQuery? {
        let isGroup = text.hasPrefix("@")
        let name = isGroup ? String(text.dropFirst()) : text
        guard !name.isEmpty, !name.utf8.contains(0), name.utf8.count <= 256 else { return nil }
        if let id = canonicalID(name) { return isGroup ? .group(gid: id) : .user(uid: id) }
        return isGroup ? .groupNamed(name) : .userNamed(name)
    }

    /// The questions a request's member list needs (create, share, unshare),
    /// none when the list is refused before any lookup.
    static func queries(_ texts: [String]) -> Set<NameQuery> {
        guard texts.count <= maxPerGroup else { return [] }
        return Set(texts.compactMap(query))
    }

    /// Reads "alice", "1001", "@devs" or "@1002" against the answers of the
    /// user and group databases (looked up off the loop before the handler
    /// ran, see NameService); an unknown name is an error, a bare number is
    /// taken as is.
    static func resolve(_ text: String, method: String, names: NameAnswers) throws(RPCError) -> Member {
        let isGroup = text.hasPrefix("@")
        let name = isGroup ? String(text.dropFirst()) : text
        let shown = JSONValue.string(String(name.prefix(64))).serialized()
        guard let query = query(text) else {
            throw .invalidParams("\(method): invalid \(isGroup ? "group" : "user") name \(shown)")
        }
        let answer = names.answer(query)
        if answer == .unknown {
            throw RPCError(.internalError, "\(method): the \(isGroup ? "group" : "user") database did not answer for \(shown) in time; try again later")
        }
        switch query {
        case .user(let uid): return .user(uid: uid, name: answer.userEntry?.name ?? name)
        case .group(let gid):
            if case .group(_, let found) = answer { return .group(gid: gid, name: found) }
            return .group(gid: gid, name: name)
        case .groupNamed:
            guard case .group(let gid, _) = answer else { throw .invalidParams("\(method): no group named \(shown)") }
            return .group(gid: gid, name: name)
        case .userNamed:
            guard let entry = answer.userEntry else { throw .invalidParams("\(method): no user named \(shown)") }
            return .user(uid: entry.uid, name: entry.name)
        }
    }

    /// The most users and groups one group is shared with.
    static let maxPerGroup = 64

    /// Resolves a request's list of members (create, share, unshare), each
    /// once, against the answers looked up for it.
    static func resolve(_ names: [String], method: String, names answers: NameAnswers) throws(RPCError) -> [Member] {
        guard names.count <= maxPerGroup else {
            throw .invalidParams("\(method): a group is shared with at most \(maxPerGroup) users and groups")
        }
        var members: [Member] = []
        for name in names {
            let member = try resolve(name, method: method, names: answers)
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
