#define _GNU_SOURCE
#include "ns_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ns_cgroup.h"
#include "ns_fdpass.h"
#include "ns_pty.h"
#include "ns_sys.h"

#ifndef KEYCTL_GET_KEYRING_ID
#define KEYCTL_GET_KEYRING_ID 0
#endif
#ifndef KEY_SPEC_SESSION_KEYRING
#define KEY_SPEC_SESSION_KEYRING -3
#endif
#ifndef KEYCTL_JOIN_SESSION_KEYRING
#define KEYCTL_JOIN_SESSION_KEYRING 1
#endif
#include "ns_utils.h"

/* ---- helpers usable between fork and exec ------------------------------ */

static void report(int fd, int stage, int error, int index, pid_t pid) {
    struct ns_report r = { .stage = stage, .error = error, .index = index, .pid = pid };
    /* Smaller than PIPE_BUF: one atomic write. Nothing to do if it fails. */
    (void)NS_RETRY(write(fd, &r, sizeof r));
}

__attribute__((noreturn)) static void fail(int fd, int stage, int index) {
    report(fd, stage, errno, index, 0);
    _exit(127);
}

/* Every handler back to its default and every ignored signal back to
 * default too: ignored signals survive exec, and a session must not inherit
 * the supervisor's choices. glibc's sigaction refuses the two real-time
 * signals it reserves for itself (32 and 33), which a parent may well ignore,
 * so this goes to the kernel directly. Signals stay blocked until just
 * before exec. */
struct kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};

static void reset_signal_dispositions(void) {
    struct kernel_sigaction action;
    memset(&action, 0, sizeof action);
    action.handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        (void)syscall(SYS_rt_sigaction, sig, &action, NULL, sizeof action.mask);
    }
}

static void unblock_all_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
}

static long clone3_raw(struct clone_args *args) {
    return syscall(SYS_clone3, args, sizeof *args);
}

/* The children here are made by raw clone/clone3, behind glibc's back: its
 * setgroups/setresgid/setresuid wrappers would broadcast the change to every
 * thread on glibc's list (the supervisor's threads, which this child never
 * had) and wait for them. Straight to the kernel instead, as glibc's own
 * posix_spawn child does. The ids change for this process only, which is all
 * it has. */
static int raw_setgroups(size_t count, const gid_t *groups) {
    return (int)syscall(SYS_setgroups, count, groups);
}

static int raw_setresgid(gid_t gid) {
    return (int)syscall(SYS_setresgid, gid, gid, gid);
}

static int raw_setresuid(uid_t uid) {
    return (int)syscall(SYS_setresuid, uid, uid, uid);
}

/* dup2(from, to) that leaves `to` open across exec even when from == to:
 * dup2 of a descriptor onto itself changes nothing, close-on-exec included. */
static int place_fd(int from, int to) {
    if (from == to)
        return fcntl(to, F_SETFD, 0);
    return dup2(from, to);
}

/* A process that is about to become a user must not be ptrace-able or
 * dumpable by that user before it execs (it holds a copy of the supervisor's
 * memory); exec makes a process dumpable again as its new credentials allow.
 * Dumpability belongs to the memory, which the children of an enter never
 * share with the supervisor. */
static int not_dumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* Writes this process's audit loginuid (inherited by its children), through
 * the host's /proc: call it before entering a group's mount namespace, whose
 * /proc may be anything its owner mounted. A kernel without audit support
 * has no such file: nothing to keep then. */
static int write_loginuid(uint32_t loginuid) {
    char digits[16];
    char *end = digits + sizeof digits;
    char *p = end;
    do {
        *--p = (char)('0' + loginuid % 10);
        loginuid /= 10;
    } while (loginuid > 0);
    int fd = open("/proc/self/loginuid", O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    ssize_t n = NS_RETRY(write(fd, p, (size_t)(end - p)));
    int saved = errno;
    close(fd);
    if (n != end - p) {
        errno = n < 0 ? saved : EIO;
        return -1;
    }
    return 0;
}

/* execvp without malloc and without the /bin/sh fallback for ENOEXEC. Empty
 * PATH entries (meaning the current directory) are skipped. Returns with
 * errno set when nothing could be executed. */
static void exec_search(const char *file, const char *path, char *const argv[], char *const envp[]) {
    if (strchr(file, '/') != NULL || path == NULL) {
        execve(file, argv, envp);
        return;
    }
    size_t file_len = strlen(file);
    int saw_eacces = 0;
    int last_error = ENOENT;
    char buf[PATH_MAX];
    const char *p = path;
    for (;;) {
        const char *end = strchrnul(p, ':');
        size_t dir_len = (size_t)(end - p);
        if (dir_len > 0 && dir_len + 1 + file_len + 1 <= sizeof buf) {
            memcpy(buf, p, dir_len);
            buf[dir_len] = '/';
            memcpy(buf + dir_len + 1, file, file_len + 1);
            execve(buf, argv, envp);
            switch (errno) {
            case EACCES:
                saw_eacces = 1;
                break;
            case ENOENT:
            case ENOTDIR:
            case ESTALE:
            case ENODEV:
            case ETIMEDOUT:
                break;
            default:
                return; /* a real error with an existing file: report it */
            }
            last_error = errno;
        }
        if (*end == '\0')
            break;
        p = end + 1;
    }
    errno = saw_eacces ? EACCES : last_error;
}

/* Joins the cgroup whose cgroup.procs each of fds is (opened by the
 * supervisor) by writing "0": this process. */
static void join_cgroups(int status, const int *fds, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (NS_RETRY(write(fds[i], "0", 1)) != 1)
            fail(status, NS_STAGE_CGROUP_JOIN, (int)i);
}

/* ---- the holder ---------------------------------------------------------- */

__attribute__((noreturn)) static void holder_child(const struct ns_holder_spec *spec) {
    int status = spec->status_fd;
    reset_signal_dispositions();
    if (not_dumpable() < 0)
        fail(status, NS_STAGE_DUMPABLE, -1);

    /* Already in the group's unified cgroup (CLONE_INTO_CGROUP); now its v1
     * ones, then the cgroup namespace, whose root is where this process is
     * when it is made, then the holder's own leaf. Nothing here needs the id
     * maps: a child of CLONE_NEWUSER has every capability in its namespace,
     * and the cgroup.procs files were opened by the supervisor. */
    join_cgroups(status, spec->join_fds, spec->join_count);
    if (spec->unshare_cgroup && unshare(CLONE_NEWCGROUP) < 0)
        fail(status, NS_STAGE_UNSHARE_CGROUP, -1);
    join_cgroups(status, spec->leaf_fds, spec->leaf_count);

    /* In a new user namespace this process is an unmapped user until the
     * supervisor writes the maps, and exec would drop every capability of
     * a process that is not root inside. Wait for the maps, become root. */
    if (spec->user_namespace) {
        char mapped;
        if (NS_RETRY(read(spec->sync_fd, &mapped, 1)) != 1) {
            if (errno == 0)
                errno = EPIPE;
            fail(status, NS_STAGE_WAIT_PARENT, -1);
        }
        if (raw_setresgid(0) < 0 || raw_setresuid(0) < 0)
            fail(status, NS_STAGE_SETID_HOLDER, -1);
    }

    /* Move everything out of the way of 0-5, then place it. */
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0)
        fail(status, NS_STAGE_HOLDER_EXEC, -1);
    int st = fcntl(status, F_DUPFD_CLOEXEC, 10);
    if (st < 0)
        fail(status, NS_STAGE_HOLDER_EXEC, -1);
    int exe = fcntl(spec->exe_fd, F_DUPFD_CLOEXEC, 10);
    if (exe < 0)
        fail(st, NS_STAGE_HOLDER_EXEC, -1);
    int sync = -1;
    if (spec->sync_fd >= 0 && (sync = fcntl(spec->sync_fd, F_DUPFD_CLOEXEC, 10)) < 0)
        fail(st, NS_STAGE_HOLDER_EXEC, -1);
    for (int fd = 0; fd < 3; fd++)
        if (place_fd(null_fd, fd) < 0)
            fail(st, NS_STAGE_HOLDER_EXEC, -1);
    if (dup2(st, 3) < 0)
        fail(st, NS_STAGE_HOLDER_EXEC, -1);
    status = 3;
    if (sync >= 0 ? dup2(sync, 4) < 0 : (close(4), 0))
        fail(status, NS_STAGE_HOLDER_EXEC, -1);
    if (dup3(exe, 5, O_CLOEXEC) < 0 || ns_close_range(6, ~0U, 0) < 0)
        fail(status, NS_STAGE_HOLDER_EXEC, -1);
    char *const envp[] = { NULL };
    /* Every signal stays blocked across exec (the mask survives it; the
     * dispositions are all default already): the holder takes signals only
     * once its set-up is done and it waits for them in sigwaitinfo. */
    syscall(SYS_execveat, 5, "", spec->argv, envp, AT_EMPTY_PATH);
    fail(status, NS_STAGE_HOLDER_EXEC, -1);
}

int ns_spawn_holder(const struct ns_holder_spec *spec, pid_t *pid, int *pidfd) {
    int fd = -1;
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = spec->clone_flags | CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)&fd;
    args.exit_signal = SIGCHLD;
    if (spec->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)spec->cgroup_fd;
    }

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    long child = clone3_raw(&args);
    if (child == 0)
        holder_child(spec);
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (child < 0) {
        errno = saved;
        return -1;
    }
    *pid = (pid_t)child;
    *pidfd = fd;
    return 0;
}

/* ---- an anchor ----------------------------------------------------------- */

int ns_spawn_anchor(int cgroup_fd, pid_t *pid, int *pidfd, int *release_fd) {
    int gate[2];
    if (pipe2(gate, O_CLOEXEC) < 0)
        return -1;
    sigset_t old;
    long child = ns_clone3_into_cgroup(cgroup_fd, 0, pidfd, &old);
    if (child == 0) {
        /* Only async-signal-safe calls from here: the caller has threads. Every
         * signal stays blocked; SIGKILL ends it. */
        (void)prctl(PR_SET_NAME, "nsgroup-anchor", 0, 0, 0);
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (gate[0] != 3 && dup2(gate[0], 3) < 0)
            _exit(1);
        (void)ns_close_range(0, 2, 0);
        (void)ns_close_range(4, ~0U, 0);
        char byte;
        while (read(3, &byte, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    int saved = errno;
    close(gate[0]);
    if (child < 0) {
        close(gate[1]);
        errno = saved;
        return -1;
    }
    *pid = (pid_t)child;
    *release_fd = gate[1];
    return 0;
}

/* ---- entering a group ---------------------------------------------------- */

_Static_assert(NS_RLIMIT_COUNT == RLIM_NLIMITS, "NS_RLIMIT_COUNT must cover every resource limit");
_Static_assert(sizeof(struct ns_rlimit) == 16, "struct ns_rlimit must be the kernel's struct rlimit64");

int ns_read_rlimits(pid_t pid, struct ns_rlimit *limits) {
    if (pid <= 0) {
        errno = ESRCH;
        return -1;
    }
    for (int r = 0; r < NS_RLIMIT_COUNT; r++)
        if (syscall(SYS_prlimit64, pid, r, NULL, &limits[r]) < 0)
            return -1;
    return 0;
}

/* Sets this process's limit r to *want. A hard limit above the current one
 * needs CAP_SYS_RESOURCE: without it (a supervisor run with a bounding set
 * that lacks it) the limit is capped at the current hard one instead, so the
 * process never gets more than the caller had, only possibly less. */
static int set_rlimit(int r, const struct ns_rlimit *want) {
    if (syscall(SYS_prlimit64, 0, r, want, NULL) == 0)
        return 0;
    if (errno != EPERM)
        return -1;
    struct ns_rlimit have;
    if (syscall(SYS_prlimit64, 0, r, NULL, &have) < 0)
        return -1;
    if (want->max <= have.max) {
        errno = EPERM;
        return -1;
    }
    struct ns_rlimit capped = { .cur = want->cur < have.max ? want->cur : have.max, .max = have.max };
    return (int)syscall(SYS_prlimit64, 0, r, &capped, NULL);
}

__attribute__((noreturn)) static void session_child(const struct ns_enter_spec *spec, int status, int terminal) {
    /* Keep the status pipe clear of 0-2, which are about to be replaced. */
    if (status < 3 && (status = fcntl(status, F_DUPFD_CLOEXEC, 3)) < 0)
        _exit(127);
    if (not_dumpable() < 0)
        fail(status, NS_STAGE_DUMPABLE, -1);

    if (setsid() < 0)
        fail(status, NS_STAGE_SETSID, -1);

    int moved[3];
    for (int i = 0; i < 3; i++)
        if ((moved[i] = fcntl(terminal >= 0 ? terminal : spec->stdio[i], F_DUPFD_CLOEXEC, 3)) < 0)
            fail(status, NS_STAGE_STDIO, i);
    for (int i = 0; i < 3; i++)
        if (dup2(moved[i], i) < 0)
            fail(status, NS_STAGE_STDIO, i);
    if (spec->controlling_tty && ioctl(0, TIOCSCTTY, 0) < 0)
        fail(status, NS_STAGE_TIOCSCTTY, -1);

    /* This process holds a copy of the supervisor's whole descriptor table
     * (its connections, other groups' namespaces and holders' pidfds, other
     * launches' terminals), and from setresuid on it runs as the caller, who
     * can stall it before exec (a lease, FUSE): only the status channel
     * stays, on 3. Closed, not just marked close-on-exec. */
    if (status != 3) {
        if (dup3(status, 3, O_CLOEXEC) < 0)
            fail(status, NS_STAGE_CLOSE_FDS, -1);
        status = 3;
    }
    if (ns_close_range(4, ~0U, 0) < 0)
        fail(status, NS_STAGE_CLOSE_FDS, -1);

    /* The caller's resource limits, while this process still has
     * CAP_SYS_RESOURCE (a hard limit above the supervisor's needs it; see
     * set_rlimit for a supervisor without it):
     * RLIMIT_NPROC then counts the caller's processes from setresuid on, and
     * execve fails with EAGAIN if they already have too many. */
    if (spec->rlimits)
        for (int r = 0; r < NS_RLIMIT_COUNT; r++)
            if (set_rlimit(r, &spec->rlimits[r]) < 0)
                fail(status, NS_STAGE_RLIMIT, r);

    /* Into a user namespace the groups were set before joining it (the
     * group's setgroups may be "deny"). */
    if (!spec->userns_root && raw_setgroups(spec->ngroups, spec->groups) < 0)
        fail(status, NS_STAGE_SETGROUPS, -1);
    if (raw_setresgid(spec->gid) < 0)
        fail(status, NS_STAGE_SETGID, -1);
    if (raw_setresuid(spec->uid) < 0)
        fail(status, NS_STAGE_SETUID, -1);
    /* A session keyring of its own, owned by the caller, as pam_keyinit
     * gives a login: the supervisor's would otherwise be "possessed" by the
     * session, whatever its uid. Kernels without keyrings need nothing; nor
     * does a supervisor whose every keyctl a seccomp filter refuses (a
     * container's: systemd-nspawn denies the keyring calls with EPERM), since
     * the session inherits that filter and can reach no keyring at all. A
     * filter that let the session reach the supervisor's keyring while
     * refusing a new one is still a failure. */
    if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS) {
        int joined = errno;
        if (joined != EPERM || syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) >= 0 || errno != EPERM) {
            errno = joined;
            fail(status, NS_STAGE_KEYRING, -1);
        }
    }
    /* Only now, as the caller: every component of the path is looked up
     * with the caller's rights, so a directory below one the caller may not
     * search stays out of reach. */
    const char *cwd = spec->cwd ? spec->cwd : "/";
    if (chdir(cwd) < 0 && (!spec->cwd_fallback || chdir("/") < 0))
        fail(status, NS_STAGE_CHDIR, -1);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail(status, NS_STAGE_NO_NEW_PRIVS, -1);
    umask((mode_t)(spec->umask & 0777));
    if (ns_close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        fail(status, NS_STAGE_CLOSE_FDS, -1);
    unblock_all_signals();
    exec_search(spec->file, spec->search_path, spec->argv, spec->envp);
    fail(status, NS_STAGE_EXECVE, -1);
}

/* What the two children of an enter need. It lives on the supervisor's stack
 * when the first child is cloned, so the first child (a copy of the
 * supervisor's memory) and the session (sharing the first child's memory, or
 * a copy of it) find it at the same address. */
struct enter_context {
    const struct ns_enter_spec *spec;
    int status;
    int terminal; /* the pty's slave, once the first child opened it; else -1 */
    int gate[2];  /* the session waits on gate[0] until the first child has reported its pid */
};

/* The session goes on only once the supervisor knows its pid: the first child
 * writes one byte on the gate after its NS_STAGE_FORKED report. A first child
 * killed in between (its client went away, spawn-timeout) closes the gate
 * unwritten, and the session, whose pid nobody knows, exits before it does
 * anything as the caller. */
static void pass_gate(const struct enter_context *ctx) {
    close(ctx->gate[1]);
    char byte;
    if (NS_RETRY(read(ctx->gate[0], &byte, 1)) != 1)
        _exit(127);
    close(ctx->gate[0]);
}

static int session_entry(void *arg) {
    const struct enter_context *ctx = arg;
    pass_gate(ctx);
    session_child(ctx->spec, ctx->status, ctx->terminal);
}

__attribute__((noreturn)) static void enter_child(struct enter_context *ctx) {
    const struct ns_enter_spec *spec = ctx->spec;
    int status = ctx->status;
    reset_signal_dispositions();
    if (not_dumpable() < 0)
        fail(status, NS_STAGE_DUMPABLE, -1);
    /* The session's v1 cgroups (its unified one came with the clone), before
     * anything this process or the session does is charged anywhere else. */
    join_cgroups(status, spec->join_fds, spec->join_count);
    /* The terminal, through the group's tree as root of the host, before any
     * setns: the slave's owner and group are host ids. Its master goes back
     * to the supervisor beside a report; the session gets the slave. */
    if (spec->pty) {
        int master = -1, slave = -1;
        if (ns_pty_open(spec->pty_root_fd, spec->pty_uid, spec->tty_gid, spec->rows, spec->cols, &master, &slave) < 0)
            fail(status, NS_STAGE_OPEN_PTY, -1);
        struct ns_report r = { .stage = NS_STAGE_PTY_MASTER, .error = 0, .index = -1, .pid = 0 };
        if (ns_send_with_fds(status, &r, sizeof r, &master, 1) != (ssize_t)sizeof r)
            fail(status, NS_STAGE_OPEN_PTY, -1);
        close(master);
        ctx->terminal = slave;
    }
    /* The caller's audit identity, while /proc is still the host's. */
    if (spec->set_loginuid && write_loginuid(spec->loginuid) < 0)
        fail(status, NS_STAGE_LOGINUID, -1);
    /* Into a user namespace the supplementary groups are set here, as root
     * of the host's user namespace, and come along: inside, setgroups may
     * be denied, and dropping a group could open what it is denied. */
    if (spec->userns_root && raw_setgroups(spec->ngroups, spec->groups) < 0)
        fail(status, NS_STAGE_SETGROUPS, -1);

    /* nsenter's two passes: a namespace that cannot be entered yet (one
     * owned by a user namespace not yet entered) is tried again once every
     * other has been; only a failure in the second pass counts. */
    int entered[16] = { 0 };
    if (spec->ns_count > 16) {
        errno = E2BIG;
        fail(status, NS_STAGE_SETNS, 16);
    }
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < spec->ns_count; i++) {
            if (entered[i])
                continue;
            if (setns(spec->ns_fds[i], spec->ns_types[i]) == 0)
                entered[i] = 1;
            else if (pass == 1)
                fail(status, NS_STAGE_SETNS, (int)i);
        }

    /* A pid namespace applies to children only: the session is a child of
     * this process, but with CLONE_PARENT it becomes the supervisor's own
     * child, so the supervisor can watch and reap it by pidfd. Its pid is
     * reported at once, before it execs, so that the supervisor can kill it
     * whenever it likes (spawn-timeout, a client gone).
     *
     * It shares this process's memory (itself a private copy of the
     * supervisor's) on a stack of its own, without CLONE_VFORK: this process
     * reports and exits while the session goes on alone in that memory,
     * which nobody else touches any more. Not with a time namespace, whose
     * offsets only a process with a memory of its own can take on. */
    if (pipe2(ctx->gate, O_CLOEXEC) < 0)
        fail(status, NS_STAGE_CLONE, -1);
    long child;
    if (spec->share_memory) {
        const size_t stack_size = 256 * 1024, page = 4096;
        char *stack = mmap(NULL, stack_size + page, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED)
            fail(status, NS_STAGE_CLONE, -1);
        /* A guard page below the stack. */
        if (mprotect(stack, page, PROT_NONE) < 0)
            fail(status, NS_STAGE_CLONE, -1);
        child = clone(session_entry, stack + stack_size + page, CLONE_VM | CLONE_PARENT, (void *)ctx);
    } else {
        struct clone_args args;
        memset(&args, 0, sizeof args);
        args.flags = CLONE_PARENT;
        args.exit_signal = 0; /* required with CLONE_PARENT; SIGCHLD is inherited */
        child = clone3_raw(&args);
        if (child == 0) {
            pass_gate(ctx);
            session_child(spec, status, ctx->terminal);
        }
    }
    if (child < 0)
        fail(status, NS_STAGE_CLONE, -1);
    report(status, NS_STAGE_FORKED, 0, -1, (pid_t)child);
    (void)NS_RETRY(write(ctx->gate[1], "1", 1));
    _exit(0);
}

int ns_spawn_enter_start(const struct ns_enter_spec *spec, int *status_fd, pid_t *first_pid, int *first_pidfd) {
    /* A socket pair rather than a pipe: the terminal's master comes back on it. */
    int pipefd[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pipefd) < 0)
        return -1;
    struct enter_context ctx = { .spec = spec, .status = pipefd[1], .terminal = -1 };

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int pidfd = -1;
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    args.exit_signal = SIGCHLD;
    if (spec->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)spec->cgroup_fd;
    }
    long first = clone3_raw(&args);
    if (first == 0) {
        close(pipefd[0]);
        enter_child(&ctx);
    }
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(pipefd[1]);
    if (first < 0) {
        close(pipefd[0]);
        errno = saved;
        return -1;
    }
    /* The supervisor reads reports when the loop says there are some. */
    int flags = fcntl(pipefd[0], F_GETFL);
    if (flags < 0 || fcntl(pipefd[0], F_SETFL, flags | O_NONBLOCK) < 0) {
        saved = errno;
        (void)ns_pidfd_send_signal(pidfd, SIGKILL);
        (void)NS_RETRY(waitpid((pid_t)first, NULL, __WALL));
        close(pidfd);
        close(pipefd[0]);
        errno = saved;
        return -1;
    }
    *status_fd = pipefd[0];
    *first_pid = (pid_t)first;
    *first_pidfd = pidfd;
    return 0;
}
