#define _GNU_SOURCE
#include "ns_sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/vfs.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ns_utils.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int ns_pidfd_open(pid_t pid, unsigned int flags) {
    return (int)syscall(SYS_pidfd_open, pid, flags);
}

int ns_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

#ifndef PIDFD_SIGNAL_PROCESS_GROUP
#define PIDFD_SIGNAL_PROCESS_GROUP (1U << 2)
#endif

int ns_pidfd_send_signal_group(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, PIDFD_SIGNAL_PROCESS_GROUP);
}

int ns_pidfd_wait(int pidfd, siginfo_t *info, int options) {
    return (int)NS_RETRY(waitid((idtype_t)P_PIDFD, (id_t)pidfd, info, options));
}

/* Walks /proc/self/fd with getdents64 (no malloc) for kernels without
 * close_range. Only the flags 0 and CLOSE_RANGE_CLOEXEC are supported. */
static int close_range_by_listing(unsigned int first, unsigned int last, unsigned int flags) {
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -1;
    char buf[4096];
    for (;;) {
        long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
        if (n < 0) {
            ns_close(&dir);
            return -1;
        }
        if (n == 0)
            break;
        for (long off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            const char *p = d->d_name;
            if (*p < '0' || *p > '9')
                continue;
            unsigned long fd = 0;
            for (; *p >= '0' && *p <= '9'; p++)
                fd = fd * 10 + (unsigned long)(*p - '0');
            if (fd < first || fd > last || (int)fd == dir)
                continue;
            if (flags & CLOSE_RANGE_CLOEXEC)
                fcntl((int)fd, F_SETFD, FD_CLOEXEC);
            else
                close((int)fd);
        }
    }
    ns_close(&dir);
    return 0;
}

int ns_close_range(unsigned int first, unsigned int last, unsigned int flags) {
    if (syscall(SYS_close_range, first, last, flags) == 0)
        return 0;
    if (errno != ENOSYS && errno != EINVAL)
        return -1;
    return close_range_by_listing(first, last, flags);
}

int ns_openat2(int dirfd, const char *path, int flags, unsigned int mode, uint64_t resolve) {
    struct open_how how = { .flags = (uint64_t)flags, .mode = mode, .resolve = resolve };
    return (int)NS_RETRY(syscall(SYS_openat2, dirfd, path, &how, sizeof how));
}

void ns_siginfo_status(const siginfo_t *info, int *code, int *signal) {
    *code = -1;
    *signal = 0;
    switch (info->si_code) {
    case CLD_EXITED:
        *code = info->si_status;
        break;
    case CLD_KILLED:
    case CLD_DUMPED:
        *signal = info->si_status;
        break;
    default:
        break;
    }
}

pid_t ns_siginfo_pid(const siginfo_t *info) {
    return info->si_pid;
}

const char *ns_errno_name(int error) {
    return strerrorname_np(error);
}

ssize_t ns_getrandom(void *buffer, size_t length) {
    return getrandom(buffer, length, 0);
}

int ns_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int ns_accept_nonblocking(int listener) {
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}

int ns_signalfd(const int *signals, size_t count) {
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < count; i++)
        sigaddset(&set, signals[i]);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int ns_signalfd_next(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = NS_RETRY(read(fd, &info, sizeof info));
    return n == (ssize_t)sizeof info ? (int)info.ssi_signo : -1;
}

int ns_dumpable(void) {
    return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
}

long ns_filesystem_type(const char *path) {
    struct statfs fs;
    if (statfs(path, &fs) < 0)
        return -1;
    return (long)fs.f_type;
}
