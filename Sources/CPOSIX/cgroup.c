#define _GNU_SOURCE
#include "ns_cgroup.h"

#include <errno.h>
#include <linux/sched.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ns_utils.h"

long ns_clone3_into_cgroup(int cgroup_fd, uint64_t extra_flags, int *pidfd, sigset_t *old) {
    int fd = -1;
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_INTO_CGROUP | CLONE_PIDFD | extra_flags;
    args.pidfd = (uint64_t)(uintptr_t)&fd;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)cgroup_fd;

    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, old);
    long child = syscall(SYS_clone3, &args, sizeof args);
    if (child == 0)
        return 0;
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, old, NULL);
    if (child < 0) {
        errno = saved;
        return -1;
    }
    *pidfd = fd;
    return child;
}

pid_t ns_clone_into_cgroup_exec(int cgroup_fd, const int *procs_fds, size_t count, uint64_t extra_flags,
                                int stdout_fd, const char *path, char *const argv[], char *const envp[],
                                int *pidfd) {
    /* No handler of the parent's may run in the child before exec. */
    sigset_t old;
    long child = ns_clone3_into_cgroup(cgroup_fd, extra_flags, pidfd, &old);
    if (child == 0) {
        for (size_t i = 0; i < count; i++)
            if (NS_RETRY(write(procs_fds[i], "0", 1)) != 1)
                _exit(126);
        if (stdout_fd >= 0 && dup2(stdout_fd, 1) < 0)
            _exit(127);
        sigprocmask(SIG_SETMASK, &old, NULL);
        execve(path, argv, envp);
        _exit(127);
    }
    return (pid_t)child;
}
