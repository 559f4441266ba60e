#if canImport(Glibc)
import Glibc
#endif

/// Starts a program found on PATH (`arguments[0]`) with the given descriptors as its stdin,
/// stdout and stderr (posix_spawnp, dup2 onto 0, 1 and 2; the caller's own stay open) and
/// the caller's environment. The caller reaps the child.
public func spawnProgram(_ arguments: [String], stdin: Int32, stdout: Int32, stderr: Int32) -> Result<pid_t, Errno> {
    guard let program = arguments.first else { return .failure(Errno(rawValue: EINVAL)) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for (fd, target) in [(stdin, Int32(0)), (stdout, 1), (stderr, 2)] { posix_spawn_file_actions_adddup2(&actions, fd, target) }
    var pid: pid_t = 0
    let error = withCStringArray(arguments) { argv in posix_spawnp(&pid, program, &actions, nil, argv, environ) }
    return error == 0 ? .success(pid) : .failure(Errno(rawValue: error))
}
