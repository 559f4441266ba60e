#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Client
import POSIX
import RPC

/// What the shells complete beyond subcommands and flags. The generated
/// scripts (`nsgroup --generate-completion-script bash|zsh|fish`) run
/// `nsgroup ---completion SUBCOMMAND -- ARGUMENT …` for these, and print the
/// words it returns; a completion prints nothing at all when it fails (no
/// supervisor, a slow one, an unreadable user database).
enum Completion {
    /// Group names, from the supervisor's `list`: exactly the groups the user
    /// may see, since the supervisor decides that.
    static let groupName = CompletionKind.custom { words, _, prefix in
        groupNames(socketPath: socketPath(in: words)).filter { $0.hasPrefix(prefix) }
    }

    /// `create --ns`: a comma-separated list, so the item after the last comma
    /// is completed, and each candidate is the whole word the shell replaces.
    static let namespaceKinds = CompletionKind.custom { _, _, prefix in
        commaListCandidates(prefix: prefix, items: namespaceKindNames)
    }

    /// share and unshare members: users, and `@group` for a Unix group.
    /// bash splits words at `@` (it is in COMP_WORDBREAKS), so there `@adm`
    /// arrives as a word `@` and the word `adm`, which then completes to a
    /// group name without the `@`.
    static let member = CompletionKind.custom { words, index, prefix in
        if index > 0, index - 1 < words.count, words[index - 1] == "@" {
            return memberCandidates(prefix: "@" + prefix).map { String($0.dropFirst()) }
        }
        return memberCandidates(prefix: prefix)
    }

    /// The kinds `create --ns` accepts (the Namespaces module's NamespaceKind,
    /// which the CLI does not link).
    static let namespaceKindNames = ["mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time"]

    /// How long a completion waits for the supervisor: a shell waits for it.
    static let timeoutMilliseconds = 500

    /// At most this many names from the user or group database.
    static let maxDatabaseNames = 500

    /// The socket named by a `--socket PATH` (or `--socket=PATH`) on the
    /// command line being completed, else $NSGROUP_SOCKET, else the default.
    static func socketPath(in words: [String]) -> String {
        var socket: String?
        for (index, word) in words.enumerated() {
            if word == "--socket", index + 1 < words.count {
                socket = words[index + 1]
            } else if word.hasPrefix("--socket=") {
                socket = String(word.dropFirst("--socket=".count))
            }
        }
        return GlobalOptions.socketPath(explicit: socket)
    }

    /// The names `list` returns, or none when the supervisor cannot be asked.
    static func groupNames(socketPath: String) -> [String] {
        guard let client = try? RPCClient(socketPath: socketPath) else { return [] }
        var timeout = timeval(tv_sec: timeoutMilliseconds / 1000, tv_usec: (timeoutMilliseconds % 1000) * 1000)
        let size = socklen_t(MemoryLayout<timeval>.size)
        guard setsockopt(client.descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, size) == 0,
              setsockopt(client.descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, size) == 0,
              let result = try? client.call("list").result,
              let list = try? ListResult(json: result)
        else { return [] }
        return list.groups.map(\.name)
    }

    /// `mnt,u` → `mnt,user`, `mnt,uts`: the items not already in the list
    /// that start with what follows the last comma, each with the list before it.
    static func commaListCandidates(prefix: String, items: [String]) -> [String] {
        let parts = prefix.split(separator: ",", omittingEmptySubsequences: false)
        let partial = parts.last.map(String.init) ?? ""
        let before = parts.dropLast().map(String.init)
        let head = before.isEmpty ? "" : before.joined(separator: ",") + ","
        return items.filter { $0.hasPrefix(partial) && !before.contains($0) }.map { head + $0 }
    }

    /// Users whose names start with `prefix`, or `@groups` when it starts
    /// with `@`. Only people's accounts and groups (ids 1000 to 59999, Debian's
    /// range for them), not system ones, and at most `maxDatabaseNames`.
    static func memberCandidates(prefix: String) -> [String] {
        if prefix.hasPrefix("@") {
            let wanted = String(prefix.dropFirst())
            return databaseNames(userDatabaseFile: "/etc/group").filter { $0.hasPrefix(wanted) }.map { "@" + $0 }
        }
        return databaseNames(userDatabaseFile: "/etc/passwd").filter { $0.hasPrefix(prefix) }
    }

    /// The names of /etc/passwd or /etc/group (`name:x:id:…`) with an id in
    /// the people's range, sorted. The files, not getpwent(3) and getgrent(3):
    /// the release CLI is linked statically, and static glibc's NSS loads
    /// modules at run time, which crashes there.
    static func databaseNames(userDatabaseFile path: String) -> [String] {
        guard let text = try? ProcFS.readText(path, limit: 16 << 20) else { return [] }
        var names: [String] = []
        for line in text.split(separator: "\n") where names.count < maxDatabaseNames {
            let fields = line.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false)
            guard fields.count >= 3, !fields[0].isEmpty, let id = UInt32(fields[2]), (1000...59999).contains(id) else { continue }
            names.append(String(fields[0]))
        }
        return names.sorted()
    }
}
