/* Starting a program straight into a cgroup. */
#ifndef NSGROUP_NS_CGROUP_H
#define NSGROUP_NS_CGROUP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* clone3(2) with CLONE_INTO_CGROUP | CLONE_PIDFD | extra_flags and SIGCHLD, with
 * every signal blocked across the clone, so that no handler of the caller's runs
 * in the child. Returns 0 in the child, whose signals stay blocked (*old is the
 * caller's mask, to restore before exec); in the caller the mask is restored and
 * it returns the child's pid with *pidfd set, or -1 with errno. */
long ns_clone3_into_cgroup(int cgroup_fd, uint64_t extra_flags, int *pidfd, sigset_t *old);

/* clone3(2) with CLONE_INTO_CGROUP | CLONE_PIDFD | extra_flags (CLONE_NEWCGROUP,
 * say): the child starts in the cgroup2 directory cgroup_fd (opened O_DIRECTORY),
 * then writes "0" into each of the count descriptors of v1 cgroup.procs files in
 * procs_fds (cgroup v1 has no CLONE_INTO_CGROUP), makes stdout_fd its standard
 * output unless it is -1, and execs path with argv and envp. The child calls only
 * async-signal-safe system calls; it exits 126 when a v1 write fails and 127 when
 * execve does. Returns the child's pid with *pidfd set, or -1 with errno. */
pid_t ns_clone_into_cgroup_exec(int cgroup_fd, const int *procs_fds, size_t count, uint64_t extra_flags,
                                int stdout_fd, const char *path, char *const argv[], char *const envp[],
                                int *pidfd);

#endif
