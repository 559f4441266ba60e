#if canImport(Glibc)
import Glibc
#endif

/// Starts a program found on PATH (`arguments[0]`) with the given descriptors as its stdin,
/// stdout and stderr (posix_spawnp, dup2 onto 0, 1 and 2; the caller's own stay open) and
/// the caller's environment. The caller reaps the child.
///
/// The child starts with no signal blocked and every signal at its default action (the
/// caller may block them for a signalfd, and a blocked mask survives exec), but those in
/// `ignored`, which it starts ignoring: what a terminal sends the foreground process group
/// (Ctrl-C, Ctrl-\, Ctrl-Z) is then the caller's alone to pass on. An ignored disposition
/// is the one thing posix_spawn cannot set, so it is set here around the spawn (a signal
/// of those pending meanwhile is lost; the caller has them blocked anyway).
public func spawnProgram(_ arguments: [String], stdin: Int32, stdout: Int32, stderr: Int32,
                         ignored: [Int32] = []) -> Result<pid_t, Errno> {
    guard let program = arguments.first else { return .failure(Errno(rawValue: EINVAL)) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for (fd, target) in [(stdin, Int32(0)), (stdout, 1), (stderr, 2)] { posix_spawn_file_actions_adddup2(&actions, fd, target) }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal: Int32 in 1..<32 where signal != SIGKILL && signal != SIGSTOP && !ignored.contains(signal) {
        sigaddset(&defaults, signal)
    }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var previous: [(Int32, sigaction)] = []
    for signal in ignored {
        var ignore = sigaction()
        ignore.__sigaction_handler.sa_handler = SIG_IGN
        var old = sigaction()
        if sigaction(signal, &ignore, &old) == 0 { previous.append((signal, old)) }
    }
    defer { for (signal, old) in previous { var old = old; sigaction(signal, &old, nil) } }
    var pid: pid_t = 0
    let error = withCStringArray(arguments) { argv in posix_spawnp(&pid, program, &actions, &attributes, argv, environ) }
    return error == 0 ? .success(pid) : .failure(Errno(rawValue: error))
}
