#if canImport(Glibc)
import Glibc
#endif
import Client
import RPC

/// What nsgroup's exit status means, the same for every subcommand, so that
/// scripts can tell a command's own failure from nsgroup's (as `env`,
/// `nohup` and `docker run` do). README's "Exit codes" and nsgroup(1)'s
/// EXIT STATUS say the same.
enum ExitStatus {
    /// Everything asked for was done.
    static let success: Int32 = 0
    /// A usage error: an unknown option, a missing or malformed argument (EX_USAGE,
    /// what swift-argument-parser exits with for them).
    static let usage: Int32 = 64
    /// nsgroup itself or the supervisor failed: no supervisor, a refused
    /// request (not_found, permission_denied, …), a lost connection, a session
    /// whose exit status nobody knows any more.
    static let failure: Int32 = 125
    /// `enter`: the command was found but could not be run (EACCES, ENOEXEC, EISDIR, …).
    static let cannotExecute: Int32 = 126
    /// `enter`: the command was not found (ENOENT, ENOTDIR).
    static let notFound: Int32 = 127

    /// `enter`: the status of a command that signal N ended.
    static func signaled(_ signal: Int32) -> Int32 { 128 + signal }

    /// The status for a call that gave no result: 127 or 126 where the
    /// supervisor says `enter`'s command could not be exec'd (`operation_failed`
    /// with `data.step` `execve(…)`), as a shell says; 125 for anything else.
    static func of(_ error: ClientError) -> Int32 {
        guard case .server(let error) = error, error.reason == .operationFailed,
              let step = error.details["step"]?.stringValue, step.hasPrefix("execve("),
              let errno = error.details["errno"]?.stringValue
        else { return failure }
        switch errno {
        case "ENOENT", "ENOTDIR", "ELOOP", "ENAMETOOLONG": return notFound
        default: return cannotExecute
        }
    }
}
