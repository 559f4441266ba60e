/* Thin wrappers for system calls that glibc 2.36 does not wrap, or that Swift
 * cannot see (they need _GNU_SOURCE). Each returns what the call returns and
 * sets errno like libc does. */
#ifndef NSGROUP_NS_SYS_H
#define NSGROUP_NS_SYS_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h> /* setxattr, getxattr: the marks on cgroups (CgroupNode) */

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* O_PATH, which Swift's Glibc module does not export. */
static const int NS_O_PATH = 010000000;
/* openat2's RESOLVE_NO_SYMLINKS (linux/openat2.h): no symlink in any component of the path. */
static const uint64_t NS_RESOLVE_NO_SYMLINKS = 0x04;

/* pidfd_open(2): a file descriptor that refers to process pid. */
int ns_pidfd_open(pid_t pid, unsigned int flags);
/* pidfd_send_signal(2): signals the process behind pidfd; signal 0 tests that it lives. */
int ns_pidfd_send_signal(int pidfd, int sig);
/* The same to the process group the pidfd's process leads (PIDFD_SIGNAL_PROCESS_GROUP,
 * Linux 6.9); EINVAL on older kernels. */
int ns_pidfd_send_signal_group(int pidfd, int sig);
/* waitid(P_PIDFD, pidfd, ...): reaps the child behind pidfd. With WNOHANG
 * returns 0 and info->si_pid == 0 while it is still running. */
int ns_pidfd_wait(int pidfd, siginfo_t *info, int options);
/* close_range(2), falling back to walking /proc/self/fd when the kernel lacks it. */
int ns_close_range(unsigned int first, unsigned int last, unsigned int flags);
/* openat2(2) with the RESOLVE_* flags in resolve. */
int ns_openat2(int dirfd, const char *path, int flags, unsigned int mode, uint64_t resolve);
/* Reads the exit code and signal out of a siginfo from waitid. */
void ns_siginfo_status(const siginfo_t *info, int *code, int *signal);
/* The siginfo's pid (si_pid), for Swift which cannot see through the union. */
pid_t ns_siginfo_pid(const siginfo_t *info);
/* accept4(2) with SOCK_CLOEXEC | SOCK_NONBLOCK. */
int ns_accept_nonblocking(int listener);
/* The symbolic name of an errno value ("ENOENT"), or NULL (strerrorname_np). */
const char *ns_errno_name(int error);
/* getrandom(2) with no flags: length random bytes from the kernel's pool (blocks only
 * until the pool is first initialised, early at boot). */
ssize_t ns_getrandom(void *buffer, size_t length);
/* pipe2(2) with O_CLOEXEC. */
int ns_pipe_cloexec(int fds[2]);
/* The magic number of the filesystem path is on (statfs f_type), or -1 with errno. */
long ns_filesystem_type(const char *path);
/* prctl(PR_GET_DUMPABLE): whether this process may be dumped and ptraced by its own uid. */
int ns_dumpable(void);
/* Blocks the signals and returns a non-blocking, close-on-exec signalfd for them. */
int ns_signalfd(const int *signals, size_t count);
/* Reads one signal from a signalfd: its number, or -1 (EAGAIN when none is pending). */
int ns_signalfd_next(int fd);

#endif
