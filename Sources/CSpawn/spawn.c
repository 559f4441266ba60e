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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ns_sys.h"

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

/* ---- the holder ---------------------------------------------------------- */

__attribute__((noreturn)) static void holder_child(const struct ns_holder_spec *spec) {
    int status = spec->status_fd;
    reset_signal_dispositions();

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
        if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
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
        if (dup2(null_fd, fd) < 0)
            fail(st, NS_STAGE_HOLDER_EXEC, -1);
    if (dup2(st, 3) < 0)
        fail(st, NS_STAGE_HOLDER_EXEC, -1);
    status = 3;
    if (sync >= 0 ? dup2(sync, 4) < 0 : (close(4), 0))
        fail(status, NS_STAGE_HOLDER_EXEC, -1);
    if (dup3(exe, 5, O_CLOEXEC) < 0 || ns_close_range(6, ~0U, 0) < 0)
        fail(status, NS_STAGE_HOLDER_EXEC, -1);
    char *const envp[] = { NULL };
    unblock_all_signals();
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

/* ---- entering a group ---------------------------------------------------- */

__attribute__((noreturn)) static void session_child(const struct ns_enter_spec *spec, int status) {
    /* Keep the status pipe clear of 0-2, which are about to be replaced. */
    if (status < 3 && (status = fcntl(status, F_DUPFD_CLOEXEC, 3)) < 0)
        _exit(127);

    const char *cwd = spec->cwd ? spec->cwd : "/";
    if (chdir(cwd) < 0 && (!spec->cwd_fallback || chdir("/") < 0))
        fail(status, NS_STAGE_CHDIR, -1);
    if (setsid() < 0)
        fail(status, NS_STAGE_SETSID, -1);

    int moved[3];
    for (int i = 0; i < 3; i++)
        if ((moved[i] = fcntl(spec->stdio[i], F_DUPFD_CLOEXEC, 3)) < 0)
            fail(status, NS_STAGE_STDIO, i);
    for (int i = 0; i < 3; i++)
        if (dup2(moved[i], i) < 0)
            fail(status, NS_STAGE_STDIO, i);
    if (spec->controlling_tty && ioctl(0, TIOCSCTTY, 0) < 0)
        fail(status, NS_STAGE_TIOCSCTTY, -1);

    if (!spec->userns_root && setgroups(spec->ngroups, spec->groups) < 0)
        fail(status, NS_STAGE_SETGROUPS, -1);
    if (setresgid(spec->gid, spec->gid, spec->gid) < 0)
        fail(status, NS_STAGE_SETGID, -1);
    if (setresuid(spec->uid, spec->uid, spec->uid) < 0)
        fail(status, NS_STAGE_SETUID, -1);
    /* A session keyring of its own, owned by the caller, as pam_keyinit
     * gives a login: the supervisor's would otherwise be "possessed" by the
     * session, whatever its uid. Kernels without keyrings need nothing. */
    if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS)
        fail(status, NS_STAGE_KEYRING, -1);
    /* The directory was entered with root's rights; make sure the caller may
     * be there too (chdir(".") checks search permission as the new uid). */
    if (chdir(".") < 0 && (!spec->cwd_fallback || chdir("/") < 0))
        fail(status, NS_STAGE_CHDIR, -1);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail(status, NS_STAGE_NO_NEW_PRIVS, -1);
    umask(022);
    if (spec->nofile_soft > 0) {
        struct rlimit limit;
        if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && spec->nofile_soft <= limit.rlim_max) {
            limit.rlim_cur = spec->nofile_soft;
            (void)setrlimit(RLIMIT_NOFILE, &limit);
        }
    }
    if (ns_close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        fail(status, NS_STAGE_CLOSE_FDS, -1);
    unblock_all_signals();
    exec_search(spec->file, spec->search_path, spec->argv, spec->envp);
    fail(status, NS_STAGE_EXECVE, -1);
}

/* What the two children of an enter need; lives on the supervisor's stack,
 * which the children may read because the supervisor waits for them. */
struct enter_context {
    const struct ns_enter_spec *spec;
    int status;
    char *session_stack; /* top of the session's stack, when sharing memory */
};

static int session_entry(void *arg) {
    const struct enter_context *ctx = arg;
    session_child(ctx->spec, ctx->status);
}

__attribute__((noreturn)) static void enter_child(const struct enter_context *ctx) {
    const struct ns_enter_spec *spec = ctx->spec;
    int status = ctx->status;
    reset_signal_dispositions();
    /* Into a user namespace, no host group may come along. */
    if (spec->userns_root && setgroups(0, NULL) < 0)
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
     * child, so the supervisor can watch and reap it by pidfd. */
    long child;
    if (ctx->session_stack) {
        child = clone(session_entry, ctx->session_stack, CLONE_VM | CLONE_VFORK | CLONE_PARENT, (void *)ctx);
    } else {
        struct clone_args args;
        memset(&args, 0, sizeof args);
        args.flags = CLONE_PARENT;
        args.exit_signal = 0; /* required with CLONE_PARENT; SIGCHLD is inherited */
        child = clone3_raw(&args);
        if (child == 0)
            session_child(spec, status);
    }
    if (child < 0)
        fail(status, NS_STAGE_CLONE, -1);
    report(status, NS_STAGE_FORKED, 0, -1, (pid_t)child);
    _exit(0);
}

static int enter_entry(void *arg) {
    enter_child(arg);
}

static int read_report(int fd, struct ns_report *r) {
    size_t got = 0;
    while (got < sizeof *r) {
        ssize_t n = NS_RETRY(read(fd, (char *)r + got, sizeof *r - got));
        if (n <= 0)
            return got == 0 ? 0 : -1;
        got += (size_t)n;
    }
    return 1;
}

int ns_spawn_enter(const struct ns_enter_spec *spec, pid_t *pid, struct ns_report *out) {
    memset(out, 0, sizeof *out);
    out->index = -1;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        out->stage = NS_STAGE_CLONE;
        out->error = errno;
        return -1;
    }
    NS_AUTOCLOSE int rd = pipefd[0];
    NS_AUTOCLOSE int wr = pipefd[1];

    /* Two stacks for the vfork-style children, one mapping with a guard
     * page below each. */
    const size_t stack_size = 256 * 1024, page = 4096;
    char *stacks = NULL;
    struct enter_context ctx = { .spec = spec, .status = wr, .session_stack = NULL };
    if (spec->share_memory) {
        stacks = mmap(NULL, 2 * (stack_size + page), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stacks == MAP_FAILED) {
            out->stage = NS_STAGE_CLONE;
            out->error = errno;
            return -1;
        }
        mprotect(stacks, page, PROT_NONE);
        mprotect(stacks + stack_size + page, page, PROT_NONE);
        ctx.session_stack = stacks + 2 * (stack_size + page);
    }

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    long first;
    if (spec->share_memory) {
        first = clone(enter_entry, stacks + stack_size + page, CLONE_VM | CLONE_VFORK | SIGCHLD, &ctx);
    } else {
        struct clone_args args;
        memset(&args, 0, sizeof args);
        args.exit_signal = SIGCHLD;
        first = clone3_raw(&args);
        if (first == 0) {
            close(rd);
            enter_child(&ctx);
        }
    }
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (stacks)
        munmap(stacks, 2 * (stack_size + page));
    ns_close(&wr);
    if (first < 0) {
        out->stage = NS_STAGE_CLONE;
        out->error = saved;
        return -1;
    }
    (void)NS_RETRY(waitpid((pid_t)first, NULL, __WALL));

    /* End of file arrives once the first child has exited and the session
     * has exec'd (the pipe is close-on-exec) or died. */
    pid_t session = 0;
    int failed = 0;
    struct ns_report r;
    int got;
    while ((got = read_report(rd, &r)) > 0) {
        if (r.stage == NS_STAGE_FORKED)
            session = r.pid;
        else if (r.stage != NS_STAGE_OK && !failed) {
            *out = r;
            failed = 1;
        }
    }
    if (!failed && (got < 0 || session <= 0)) {
        out->stage = NS_STAGE_CLONE;
        out->error = ECHILD;
        failed = 1;
    }
    if (failed) {
        if (session > 0)
            (void)NS_RETRY(waitpid(session, NULL, __WALL));
        return -1;
    }
    *pid = session;
    return 0;
}
