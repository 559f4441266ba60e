#if canImport(Glibc)
import Glibc
#endif
import RPC

/// Where a client finds the supervisor: its socket on this machine, or the supervisor of
/// another host, reached through `ssh HOST nsgroup bridge` (SSHTunnel).
public enum Endpoint: Sendable, Equatable, CustomStringConvertible {
    case socket(String)
    case remote(RemoteHost)

    /// The socket's path, or the host as the user wrote it.
    public var description: String {
        switch self {
        case .socket(let path): return path
        case .remote(let host): return host.description
        }
    }

    /// The host, for messages that must say which one ("HOST: …"); nil for the local socket.
    public var host: RemoteHost? {
        if case .remote(let host) = self { return host }
        return nil
    }
}

/// A host as `--host` and NSGROUP_HOST name it: `[user@]host[:port]`, an IPv6 address in
/// brackets (`[::1]:2222`, or bare without a port: `::1`). Only what ssh is given; everything
/// else (keys, agent, known hosts, proxies) is the user's own ssh configuration.
///
/// A host is letters, digits, '.', '_', '-' (and ':' in an IPv6 address), a user the same
/// without ':': nothing ssh could take as an option, and nothing that means something in a
/// shell or in ssh's `%` expansions (a ProxyCommand with `%h`).
public struct RemoteHost: Sendable, Equatable, CustomStringConvertible {
    public let user: String?
    public let host: String
    public let port: Int?

    /// nil for anything else: empty parts, other characters, a leading '-' (an option to
    /// ssh), a port outside 1…65535.
    public init?(parsing text: String) {
        var rest = Substring(text)
        var user: String?
        if let at = rest.lastIndex(of: "@") {
            user = String(rest[..<at])
            rest = rest[rest.index(after: at)...]
            guard let user, !user.isEmpty else { return nil }
        }
        var port: Int?
        let host: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let number = Int(after.dropFirst()) else { return nil }
                port = number
            }
        } else if rest.filter({ $0 == ":" }).count > 1 {
            host = rest  // an IPv6 address without brackets: no port
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let number = Int(rest[rest.index(after: colon)...]) else { return nil }
            port = number
        } else {
            host = rest
        }
        guard !host.isEmpty, !host.hasPrefix("-"), !(user?.hasPrefix("-") ?? false) else { return nil }
        if let port, !(1...65535).contains(port) { return nil }
        func plain(_ word: Substring, colon: Bool) -> Bool {
            word.unicodeScalars.allSatisfy { scalar in
                (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z") || (scalar >= "0" && scalar <= "9")
                    || scalar == "." || scalar == "_" || scalar == "-" || (colon && scalar == ":")
            }
        }
        guard plain(host, colon: true), plain(Substring(user ?? ""), colon: false) else { return nil }
        self.user = user
        self.host = String(host)
        self.port = port
    }

    public var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return (user.map { "\($0)@" } ?? "") + shownHost + (port.map { ":\($0)" } ?? "")
    }

    /// ssh's destination and options for this host: `-p PORT` when a port is given, then
    /// `user@host` (a literal IPv6 address without its brackets, as ssh takes it).
    public var sshArguments: [String] {
        (port.map { ["-p", String($0)] } ?? []) + ["--", (user.map { "\($0)@" } ?? "") + host]
    }
}
