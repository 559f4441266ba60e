/* nsgroup-holder: keeps one group's namespaces alive.
 *
 * The supervisor clones this process straight into the group's new
 * namespaces and execs it, so it starts as a fresh, tiny program rather than
 * a copy of the daemon. It finishes the group's set-up from the inside,
 * reports on fd 3 (one ns_report: NS_STAGE_OK, or the failed step and its
 * errno), then waits. In a group with a pid namespace it is PID 1 and reaps
 * orphans. It ends on SIGTERM or SIGKILL; destroy sends SIGKILL through a pidfd.
 *
 * Usage (built by the supervisor, not meant for people):
 *   nsgroup-holder NAME [--wait] [--become-root] [--time-offsets MONOTONIC BOOTTIME]
 *                  [--propagation] [--hostname NAME] [--proc] [--devpts GID|-]
 *                  [--bind SOURCE TARGET ro|rw]... [--tmpfs PATH OPTIONS]... [--loopback]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ns_report.h"

#define STATUS_FD 3
#define SYNC_FD 4
#define MAX_TMPFS 32
#define MAX_BINDS 32

struct tmpfs_mount {
    const char *path;
    const char *options;
};

struct bind_mount {
    const char *source;
    const char *target;
    int read_only;
};

struct config {
    int wait_for_go;
    int become_root;
    const char *monotonic_offset;
    const char *boottime_offset;
    int propagation;
    const char *hostname;
    int proc;
    const char *devpts_gid;
    struct tmpfs_mount tmpfs[MAX_TMPFS];
    int tmpfs_count;
    struct bind_mount binds[MAX_BINDS];
    int bind_count;
    int loopback;
};

static void report(int stage, int error, int index) {
    struct ns_report r = { .stage = stage, .error = error, .index = index, .pid = 0 };
    ssize_t n;
    do {
        n = write(STATUS_FD, &r, sizeof r);
    } while (n < 0 && errno == EINTR);
}

__attribute__((noreturn)) static void fail(int stage, int index) {
    report(stage, errno, index);
    _exit(1);
}

static int parse(int argc, char **argv, struct config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int has_next = i + 1 < argc;
        if (strcmp(a, "--wait") == 0)
            c->wait_for_go = 1;
        else if (strcmp(a, "--become-root") == 0)
            c->become_root = 1;
        else if (strcmp(a, "--time-offsets") == 0 && i + 2 < argc) {
            c->monotonic_offset = argv[++i];
            c->boottime_offset = argv[++i];
        } else if (strcmp(a, "--bind") == 0 && i + 3 < argc && c->bind_count < MAX_BINDS) {
            c->binds[c->bind_count].source = argv[++i];
            c->binds[c->bind_count].target = argv[++i];
            c->binds[c->bind_count].read_only = strcmp(argv[++i], "ro") == 0;
            c->bind_count++;
        } else if (strcmp(a, "--propagation") == 0)
            c->propagation = 1;
        else if (strcmp(a, "--proc") == 0)
            c->proc = 1;
        else if (strcmp(a, "--loopback") == 0)
            c->loopback = 1;
        else if (strcmp(a, "--hostname") == 0 && has_next)
            c->hostname = argv[++i];
        else if (strcmp(a, "--devpts") == 0 && has_next)
            c->devpts_gid = argv[++i];
        else if (strcmp(a, "--tmpfs") == 0 && i + 2 < argc && c->tmpfs_count < MAX_TMPFS) {
            c->tmpfs[c->tmpfs_count].path = argv[++i];
            c->tmpfs[c->tmpfs_count].options = argv[++i];
            c->tmpfs_count++;
        } else
            return -1;
    }
    return argc >= 2 ? 0 : -1;
}

/* An O_PATH descriptor for path, reached without following any symlink, so
 * a link planted in the tree cannot move a mount somewhere else. */
static int open_path(const char *path, int flags) {
    struct open_how how = {
        .flags = (uint64_t)(O_PATH | O_CLOEXEC | flags),
        .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    return (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
}

/* Binds source (a path outside, as the host sees it) onto target, then makes
 * the new mount nosuid and nodev, and read-only if asked. Fails with
 * NS_STAGE_BIND_SOURCE when the source cannot be opened, NS_STAGE_MOUNT_BIND
 * for the rest, so that the report says which end was wrong. */
static int mount_bind(const struct bind_mount *b, int *stage) {
    *stage = NS_STAGE_BIND_SOURCE;
    int source = open_path(b->source, 0);
    if (source < 0)
        return -1;
    *stage = NS_STAGE_MOUNT_BIND;
    int target = open_path(b->target, 0);
    if (target < 0) {
        int saved = errno;
        close(source);
        errno = saved;
        return -1;
    }
    char from[64], to[64];
    snprintf(from, sizeof from, "/proc/self/fd/%d", source);
    snprintf(to, sizeof to, "/proc/self/fd/%d", target);
    int r = mount(from, to, NULL, MS_BIND, NULL);
    if (r == 0) {
        /* Nothing else runs in this mount namespace yet: the path still
         * names the mount just made. */
        unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (b->read_only ? MS_RDONLY : 0);
        r = mount(NULL, b->target, NULL, flags, NULL);
    }
    int saved = errno;
    close(source);
    close(target);
    errno = saved;
    return r;
}

/* Mounts a tmpfs on path, reached without following any symlink. */
static int mount_tmpfs(const struct tmpfs_mount *m) {
    int fd = open_path(m->path, O_DIRECTORY);
    if (fd < 0)
        return -1;
    char target[64];
    snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
    int r = mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, m->options);
    int saved = errno;
    close(fd);
    errno = saved;
    return r;
}

static int loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    int r = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (r == 0) {
        ifr.ifr_flags |= IFF_UP;
        r = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(s);
    errno = saved;
    return r;
}

static void set_up(const struct config *c) {
    if (setsid() < 0)
        fail(NS_STAGE_SETSID_HOLDER, -1);
    /* A time namespace's offsets can only be set before any process is in
     * it: the holder makes it for its children and never joins it. It has
     * every capability in its own user namespace already, maps or not. */
    if (c->monotonic_offset) {
        if (unshare(CLONE_NEWTIME) < 0)
            fail(NS_STAGE_UNSHARE_TIME, -1);
        char offsets[128];
        int len = snprintf(offsets, sizeof offsets, "monotonic %s 0\nboottime %s 0\n",
                           c->monotonic_offset, c->boottime_offset);
        int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, offsets, (size_t)len) != len)
            fail(NS_STAGE_TIME_OFFSETS, -1);
        close(fd);
    }
    /* Every namespace is final now: the supervisor may record them. */
    report(NS_STAGE_CLONED, 0, -1);
    if (c->wait_for_go) {
        char go;
        ssize_t n;
        do {
            n = read(SYNC_FD, &go, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1) {
            if (n == 0)
                errno = EPIPE;
            fail(NS_STAGE_WAIT_PARENT, -1);
        }
        close(SYNC_FD);
    }
    /* In a user namespace of its own the holder starts as an unmapped user;
     * the supervisor has written the maps by now: become root inside. */
    if (c->become_root && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
        fail(NS_STAGE_SETID_HOLDER, -1);
    /* Before anything is mounted: nothing mounted in here may reach the host. */
    if (c->propagation && mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        fail(NS_STAGE_MOUNT_PROPAGATION, -1);
    if (c->hostname && sethostname(c->hostname, strlen(c->hostname)) < 0)
        fail(NS_STAGE_SETHOSTNAME, -1);
    if (c->proc && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        fail(NS_STAGE_MOUNT_PROC, -1);
    if (c->devpts_gid) {
        /* "-": no gid option (in a user namespace the tty group may not be mapped). */
        char options[96];
        if (strcmp(c->devpts_gid, "-") == 0)
            snprintf(options, sizeof options, "newinstance,ptmxmode=0666,mode=0620");
        else
            snprintf(options, sizeof options, "newinstance,ptmxmode=0666,mode=0620,gid=%s", c->devpts_gid);
        if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, options) < 0)
            fail(NS_STAGE_MOUNT_DEVPTS, -1);
    }
    for (int i = 0; i < c->bind_count; i++) {
        int stage;
        if (mount_bind(&c->binds[i], &stage) < 0)
            fail(stage, i);
    }
    for (int i = 0; i < c->tmpfs_count; i++)
        if (mount_tmpfs(&c->tmpfs[i]) < 0)
            fail(NS_STAGE_MOUNT_TMPFS, i);
    if (c->loopback && loopback_up() < 0)
        fail(NS_STAGE_LOOPBACK, -1);
}

int main(int argc, char **argv) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);

    struct config c;
    if (parse(argc, argv, &c) < 0) {
        errno = EINVAL;
        fail(NS_STAGE_HOLDER_ARGS, -1);
    }
    set_up(&c);
    report(NS_STAGE_OK, 0, -1);
    close(STATUS_FD);

    /* Every signal stays blocked and is taken here: children are reaped,
     * SIGTERM ends the holder, anything else is ignored. */
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig == SIGCHLD) {
            while (waitpid(-1, NULL, WNOHANG | __WALL) > 0) {
            }
        } else if (sig == SIGTERM) {
            _exit(0);
        }
    }
}
