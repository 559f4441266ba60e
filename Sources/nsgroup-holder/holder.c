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
 *   nsgroup-holder NAME [--wait] [--propagation] [--hostname NAME] [--proc]
 *                  [--devpts GID] [--tmpfs PATH OPTIONS]... [--loopback]
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
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ns_report.h"

#define STATUS_FD 3
#define SYNC_FD 4
#define MAX_TMPFS 32

struct tmpfs_mount {
    const char *path;
    const char *options;
};

struct config {
    int wait_for_go;
    int propagation;
    const char *hostname;
    int proc;
    const char *devpts_gid;
    struct tmpfs_mount tmpfs[MAX_TMPFS];
    int tmpfs_count;
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
        else if (strcmp(a, "--propagation") == 0)
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

/* Mounts a tmpfs on path, reached without following any symlink, so a link
 * planted in the tree cannot move the mount somewhere else. */
static int mount_tmpfs(const struct tmpfs_mount *m) {
    struct open_how how = {
        .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
        .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, AT_FDCWD, m->path, &how, sizeof how);
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
    /* Before anything is mounted: nothing mounted in here may reach the host. */
    if (c->propagation && mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        fail(NS_STAGE_MOUNT_PROPAGATION, -1);
    if (c->hostname && sethostname(c->hostname, strlen(c->hostname)) < 0)
        fail(NS_STAGE_SETHOSTNAME, -1);
    if (c->proc && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        fail(NS_STAGE_MOUNT_PROC, -1);
    if (c->devpts_gid) {
        char options[96];
        snprintf(options, sizeof options, "newinstance,ptmxmode=0666,mode=0620,gid=%s", c->devpts_gid);
        if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, options) < 0)
            fail(NS_STAGE_MOUNT_DEVPTS, -1);
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
