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
 *   nsgroup-holder NAME [--wait] [--time-offsets MONOTONIC BOOTTIME]
 *                  [--propagation] [--hostname NAME] [--proc] [--devpts GID|-]
 *                  [--bind SOURCE TARGET ro|rw]... [--resolve-as UID GID GROUPS|-]
 *                  [--require-owner] [--tmpfs PATH OPTIONS]... [--shared-tmpfs PATH OPTIONS]...
 *                  [--own-bind SOURCE TARGET UID]... [--loopback]
 *                  [--overlay-root EXECUTABLE tmpfs OPTIONS | --overlay-root EXECUTABLE persist DIR]
 *
 * --resolve-as: tmpfs targets are looked up with these filesystem ids and
 * supplementary groups (GROUPS: comma-separated gids, or "-" for none), the
 * caller's, so that a path below a directory the caller may not search
 * fails as it would for the caller; the mount itself is then made as root.
 *
 * --require-owner (with --resolve-as): every tmpfs target must be a directory
 * owned by that uid, so a caller may hide only a directory of their own from
 * the others who enter the group as themselves (EPERM otherwise). This tells
 * the caller nothing a stat(2) of their own could not.
 *
 * --shared-tmpfs: a tmpfs on a directory of the host that everyone shares
 * (/tmp, /var/tmp for create's privateTmp), looked up as the holder itself,
 * never as the caller and with no owner check: it is root's, and covering it
 * with an empty sticky 1777 tmpfs takes nothing from anyone. Kept in the one
 * tmpfs list, in order, so a report's index names the right path.
 *
 * --own-bind (create's home): SOURCE bound onto TARGET, both directories
 * looked up with --resolve-as (when given) and without symlinks, both owned
 * by UID (as the holder sees ids: 0 in a user namespace, where the owner is
 * root) -- NS_STAGE_BIND_NOT_OWNED (EPERM) otherwise. Kept in the bind list.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ns_report.h"

#define STATUS_FD 3
#define SYNC_FD 4
/* create's limits (32 each), privateTmp's two mounts and privateHome's one,
 * and an overlay root's /run and /dev/shm. */
#define MAX_TMPFS 37
#define MAX_BINDS 33
#define MAX_GROUPS 65536

/* The new mount API (Linux 5.2, mount_setattr 5.12), by raw system call:
 * glibc 2.36's wrappers and <linux/mount.h> do not mix. */
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef MOUNT_ATTR_NOSUID
#define MOUNT_ATTR_NOSUID 0x00000002
#endif
#ifndef MOUNT_ATTR_NODEV
#define MOUNT_ATTR_NODEV 0x00000004
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

struct holder_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};

struct tmpfs_mount {
    const char *path;
    const char *options;
    int shared;                 /* --shared-tmpfs: looked up as the holder, no owner check */
};

struct bind_mount {
    const char *source;
    const char *target;
    int read_only;
    int own;                    /* --own-bind: looked up as the caller, both ends owned by owner */
    uid_t owner;
};

struct config {
    int wait_for_go;
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
    int resolve_as;             /* look tmpfs targets up as resolve_uid, resolve_gid, groups */
    uid_t resolve_uid;
    gid_t resolve_gid;
    size_t resolve_group_count;
    int require_owner;          /* each tmpfs target must be owned by resolve_uid */
    const char *overlay_executable; /* --overlay-root: fuse-overlayfs, or NULL for the host's root */
    const char *overlay_upper;  /* its upper layer's tmpfs options, or NULL with overlay_persist */
    const char *overlay_persist; /* the owner's directory holding upper/ and work/ */
};

/* Where bind and tmpfs targets are looked up: the host's tree (AT_FDCWD), or
 * with --overlay-root the new root, before pivot_root makes it "/". */
static int root_fd = AT_FDCWD;
/* fuse-overlayfs, the holder's child: when it ends, so does the group. */
static pid_t overlay_daemon = -1;

/* The caller's supplementary groups for --resolve-as (too big for the stack). */
static gid_t resolve_groups[MAX_GROUPS];

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

/* A decimal id below 2^32 - 1 (which means "no change" to the set*id calls). */
static int parse_id(const char *text, unsigned int *id) {
    if (*text < '0' || *text > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || value >= UINT32_MAX)
        return -1;
    *id = (unsigned int)value;
    return 0;
}

/* "-" or "G1,G2,...", into resolve_groups. */
static int parse_groups(const char *text, size_t *count) {
    *count = 0;
    if (strcmp(text, "-") == 0)
        return 0;
    char buf[16];
    for (const char *p = text;;) {
        const char *end = strchrnul(p, ',');
        size_t len = (size_t)(end - p);
        if (len == 0 || len >= sizeof buf || *count >= MAX_GROUPS)
            return -1;
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (parse_id(buf, &resolve_groups[*count]) < 0)
            return -1;
        (*count)++;
        if (*end == '\0')
            return 0;
        p = end + 1;
    }
}

static int parse(int argc, char **argv, struct config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int has_next = i + 1 < argc;
        if (strcmp(a, "--wait") == 0)
            c->wait_for_go = 1;
        else if (strcmp(a, "--time-offsets") == 0 && i + 2 < argc) {
            c->monotonic_offset = argv[++i];
            c->boottime_offset = argv[++i];
        } else if (strcmp(a, "--bind") == 0 && i + 3 < argc && c->bind_count < MAX_BINDS) {
            c->binds[c->bind_count].source = argv[++i];
            c->binds[c->bind_count].target = argv[++i];
            c->binds[c->bind_count].read_only = strcmp(argv[++i], "ro") == 0;
            c->bind_count++;
        } else if (strcmp(a, "--overlay-root") == 0 && i + 3 < argc && !c->overlay_executable) {
            c->overlay_executable = argv[++i];
            const char *kind = argv[++i];
            if (strcmp(kind, "tmpfs") == 0)
                c->overlay_upper = argv[++i];
            else if (strcmp(kind, "persist") == 0)
                c->overlay_persist = argv[++i];
            else
                return -1;
        } else if (strcmp(a, "--own-bind") == 0 && i + 3 < argc && c->bind_count < MAX_BINDS) {
            struct bind_mount *b = &c->binds[c->bind_count];
            b->source = argv[++i];
            b->target = argv[++i];
            if (parse_id(argv[++i], &b->owner) < 0)
                return -1;
            b->own = 1;
            c->bind_count++;
        } else if (strcmp(a, "--resolve-as") == 0 && i + 3 < argc) {
            if (parse_id(argv[++i], &c->resolve_uid) < 0 || parse_id(argv[++i], &c->resolve_gid) < 0 ||
                parse_groups(argv[++i], &c->resolve_group_count) < 0)
                return -1;
            c->resolve_as = 1;
        } else if (strcmp(a, "--require-owner") == 0)
            c->require_owner = 1;
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
        else if ((strcmp(a, "--tmpfs") == 0 || strcmp(a, "--shared-tmpfs") == 0) && i + 2 < argc &&
                 c->tmpfs_count < MAX_TMPFS) {
            c->tmpfs[c->tmpfs_count].shared = a[2] == 's';
            c->tmpfs[c->tmpfs_count].path = argv[++i];
            c->tmpfs[c->tmpfs_count].options = argv[++i];
            c->tmpfs_count++;
        } else
            return -1;
    }
    /* Whose the targets must be is known only from --resolve-as. */
    if (c->require_owner && !c->resolve_as)
        return -1;
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

/* A bind or tmpfs target: looked up like open_path on the host, or inside
 * the new root with --overlay-root, where "/" and ".." stop at that root. */
static int open_target(const char *path, int flags) {
    if (root_fd == AT_FDCWD)
        return open_path(path, flags);
    struct open_how how = {
        .flags = (uint64_t)(O_PATH | O_CLOEXEC | flags),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    return (int)syscall(SYS_openat2, root_fd, path, &how, sizeof how);
}

/* The holder's own supplementary groups, given back after each lookup as the caller. */
static gid_t own_groups[MAX_GROUPS];
static int own_group_count = -1;

/* Takes on (on != 0) or gives back the caller's filesystem ids and
 * groups. The holder is single-threaded: the glibc wrappers change this one
 * thread, which is the process. A non-zero fsuid also drops the filesystem
 * capabilities (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, ...) from the
 * effective set; setfsuid(0) brings them back. */
static int resolve_as(const struct config *c, int on) {
    if (on) {
        if (own_group_count < 0 && (own_group_count = getgroups(MAX_GROUPS, own_groups)) < 0)
            return -1;
        if (setgroups(c->resolve_group_count, resolve_groups) < 0)
            return -1;
        setfsgid(c->resolve_gid);
        setfsuid(c->resolve_uid);
        /* setfs*id report no error: read back what they did. */
        if ((gid_t)setfsgid((gid_t)-1) != c->resolve_gid || (uid_t)setfsuid((uid_t)-1) != c->resolve_uid) {
            errno = EPERM;
            return -1;
        }
        return 0;
    }
    setfsuid(0);
    setfsgid(0);
    if ((uid_t)setfsuid((uid_t)-1) != 0 || (gid_t)setfsgid((gid_t)-1) != 0) {
        errno = EPERM;
        return -1;
    }
    return setgroups((size_t)own_group_count, own_groups);
}

/* A detached copy of the mount at `from` (a descriptor, not AT_RECURSIVE: only that
 * mount), made nosuid and nodev, and read-only if asked, before anything can reach
 * it; -1 with errno on failure. */
static int nosuid_copy(int from, int read_only) {
    int tree = (int)syscall(SYS_open_tree, from, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    if (tree < 0)
        return -1;
    struct holder_mount_attr attr = {
        .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (read_only ? MOUNT_ATTR_RDONLY : 0),
    };
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
        int saved = errno;
        close(tree);
        errno = saved;
        return -1;
    }
    return tree;
}

/* Attaches a detached tree on the directory or file `target` is a descriptor of. */
static int attach_tree(int tree, int target) {
    return (int)syscall(SYS_move_mount, tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

/* Binds source (a path outside, as the host sees it) onto target: a detached
 * copy of the source mount (open_tree), made nosuid and nodev (and read-only
 * if asked) while still detached (mount_setattr), then attached on the
 * target's descriptor (move_mount). Nothing is looked up by path after the
 * two O_PATH opens, so no component can be swapped in between; the flags
 * are in place before the mount is reachable at all. Fails with
 * NS_STAGE_BIND_SOURCE when the source cannot be opened, NS_STAGE_MOUNT_BIND
 * for the rest, so that the report says which end was wrong. An --own-bind
 * opens both ends as the caller (a failure to take on or give back the
 * caller's ids counts as the source's) and needs both owned by b->owner. */
static int mount_bind(const struct config *c, const struct bind_mount *b, int *stage) {
    int as_caller = b->own && c->resolve_as;
    *stage = NS_STAGE_BIND_SOURCE;
    if (as_caller && resolve_as(c, 1) < 0)
        return -1;
    int source = open_path(b->source, b->own ? O_DIRECTORY : 0);
    int saved = errno;
    int target = -1, tree = -1, r = -1;
    if (source >= 0) {
        target = open_target(b->target, b->own ? O_DIRECTORY : 0);
        saved = errno;
    }
    if (as_caller && resolve_as(c, 0) < 0) {
        saved = errno;
        if (target >= 0)
            close(target);
        target = -1;
        if (source >= 0)
            close(source);
        errno = saved;
        return -1;
    }
    errno = saved;
    if (source < 0)
        return -1;
    *stage = NS_STAGE_MOUNT_BIND;
    if (target < 0)
        goto out;
    /* A directory only onto a directory, anything else only onto a
     * non-directory: move_mount says EINVAL, mount(2) said ENOTDIR. */
    struct stat from, to;
    if (fstat(source, &from) < 0 || fstat(target, &to) < 0)
        goto out;
    if (S_ISDIR(from.st_mode) != S_ISDIR(to.st_mode)) {
        errno = ENOTDIR;
        goto out;
    }
    if (b->own && (from.st_uid != b->owner || to.st_uid != b->owner)) {
        *stage = NS_STAGE_BIND_NOT_OWNED;
        errno = EPERM;
        goto out;
    }
    /* Like MS_BIND without MS_REC: only the mount itself. */
    if ((tree = nosuid_copy(source, b->read_only)) < 0)
        goto out;
    r = attach_tree(tree, target);
out:
    saved = errno;
    close(source);
    if (target >= 0)
        close(target);
    if (tree >= 0)
        close(tree);
    errno = saved;
    return r;
}

/* Mounts a tmpfs on path, reached without following any symlink, and looked
 * up as the caller with --resolve-as; with --require-owner only on a
 * directory the caller owns (NS_STAGE_TMPFS_NOT_OWNED, EPERM). */
static int mount_tmpfs(const struct config *c, const struct tmpfs_mount *m, int *stage) {
    int as_caller = c->resolve_as && !m->shared;
    *stage = NS_STAGE_RESOLVE_AS;
    if (as_caller && resolve_as(c, 1) < 0)
        return -1;
    *stage = NS_STAGE_MOUNT_TMPFS;
    int fd = open_target(m->path, O_DIRECTORY);
    int saved = errno;
    if (as_caller && resolve_as(c, 0) < 0) {
        /* Holding the caller's ids for the rest of the set-up would be worse. */
        *stage = NS_STAGE_RESOLVE_AS;
        if (fd >= 0)
            close(fd);
        return -1;
    }
    errno = saved;
    if (fd < 0)
        return -1;
    if (c->require_owner && !m->shared) {
        struct stat st;
        int r = fstat(fd, &st);
        if (r < 0 || st.st_uid != c->resolve_uid) {
            if (r == 0)
                *stage = NS_STAGE_TMPFS_NOT_OWNED;
            saved = r < 0 ? errno : EPERM;
            close(fd);
            errno = saved;
            return -1;
        }
    }
    char target[64];
    snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
    int r = mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, m->options);
    saved = errno;
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

/* ---- --overlay-root ---------------------------------------------------- */

/* Directories of the host, one level each, whose entries the owner may not
 * read get a blank stand-in in a fresh upper layer. A package manager and the
 * shadow tools open such entries (dpkg's and apt's lock files, apt's partial/
 * directories, ldconfig's cache, /etc/shadow), and the overlay cannot copy
 * them up: it reads as the owner, who may not. A stand-in has the entry's
 * mode and nothing of its content: an empty file, or an empty opaque
 * directory; /etc/shadow and /etc/gshadow (and their backups) list every
 * user of /etc/passwd and group of /etc/group with a locked password. Only
 * names that a listing of the directory shows anyway are used. */
static const char *const standin_dirs[] = {
    "/etc", "/etc/polkit-1", "/etc/security", "/etc/ssl", "/var/cache", "/var/cache/apt/archives",
    "/var/cache/debconf", "/var/lib", "/var/lib/apt/lists", "/var/lib/dpkg", "/var/lib/dpkg/triggers",
    "/var/log", "/var/log/apt", NULL,
};

/* Where the upper layer is, in the daemon's mount namespace. */
#define OVERLAY_UPPER "/run/upper"
#define OVERLAY_WORK "/run/work"

/* One line per entry of source (/etc/passwd or /etc/group) into fd: its name
 * with a locked password, in shadow(5) or gshadow(5) form (a group keeps its
 * members, which /etc/group shows). */
static void write_locked(int fd, const char *source, int group) {
    static char text[1 << 20];
    int in = open(source, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return;
    size_t len = 0;
    ssize_t n;
    while (len < sizeof text - 1 && (n = read(in, text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)n;
    close(in);
    text[len] = 0;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        if (!end)
            end = line + strlen(line);
        char *colon = memchr(line, ':', (size_t)(end - line));
        if (colon && colon > line) {
            if (group) {
                /* name:password:gid:members */
                char *members = colon + 1;
                for (int field = 0; field < 2 && members; field++) {
                    char *next = memchr(members, ':', (size_t)(end - members));
                    members = next ? next + 1 : NULL;
                }
                dprintf(fd, "%.*s:*::%.*s\n", (int)(colon - line), line,
                        members ? (int)(end - members) : 0, members ? members : "");
            } else {
                dprintf(fd, "%.*s:*:::::::\n", (int)(colon - line), line);
            }
        }
        line = *end ? end + 1 : end;
    }
}

/* upper/PATH and its parents, each with the mode of the host's directory. */
static int upper_dirs(const char *path, char *upper, size_t size) {
    size_t base = strlen(OVERLAY_UPPER);
    if ((size_t)snprintf(upper, size, "%s%s", OVERLAY_UPPER, path) >= size)
        return -1;
    for (char *p = upper + base + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char saved = *p;
        *p = 0;
        struct stat st;
        if (lstat(upper + base, &st) < 0 || !S_ISDIR(st.st_mode))
            return -1;
        if (mkdir(upper, st.st_mode & 07777) < 0 && errno != EEXIST)
            return -1;
        *p = saved;
        if (!saved)
            return 0;
    }
}

static void make_standins(void) {
    for (int i = 0; standin_dirs[i]; i++) {
        int lower = open(standin_dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (lower < 0)
            continue;
        DIR *listing = fdopendir(lower);
        if (!listing) {
            close(lower);
            continue;
        }
        int upper = -1;
        struct dirent *e;
        while ((e = readdir(listing))) {
            const char *name = e->d_name;
            if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                continue;
            struct stat st;
            if (fstatat(lower, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                continue;
            int is_dir = S_ISDIR(st.st_mode);
            if (!is_dir && !S_ISREG(st.st_mode))
                continue;
            if (faccessat(lower, name, is_dir ? R_OK | X_OK : R_OK, AT_EACCESS) == 0 || errno != EACCES)
                continue;
            if (upper < 0) {
                char path[PATH_MAX];
                if (upper_dirs(standin_dirs[i], path, sizeof path) < 0 ||
                    (upper = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)) < 0)
                    break;
            }
            mode_t mode = st.st_mode & 07777;
            if (is_dir) {
                /* fuse-overlayfs takes this file as "opaque": nothing of the host's directory shows. */
                if (mkdirat(upper, name, mode) == 0) {
                    int sub = openat(upper, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                    if (sub >= 0) {
                        int marker = openat(sub, ".wh..wh..opq", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0);
                        if (marker >= 0)
                            close(marker);
                        close(sub);
                    }
                }
                continue;
            }
            int fd = openat(upper, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode);
            if (fd < 0)
                continue;
            if (strcmp(standin_dirs[i], "/etc") == 0) {
                if (strcmp(name, "shadow") == 0 || strcmp(name, "shadow-") == 0)
                    write_locked(fd, "/etc/passwd", 0);
                else if (strcmp(name, "gshadow") == 0 || strcmp(name, "gshadow-") == 0)
                    write_locked(fd, "/etc/group", 1);
            }
            close(fd);
        }
        if (upper >= 0)
            close(upper);
        closedir(listing);
    }
}

/* The holder's child that becomes fuse-overlayfs, in a mount namespace of
 * its own (a copy of the group's): empty read-only tmpfs mounts hide the
 * host's /tmp and /var/tmp from the lower layer, and the upper layer goes
 * on /run, which hides the staging tmpfs and with it the FUSE mount itself
 * (a lower layer that held its own overlay would recurse). Reports a failed
 * step on `ready`; exec closes it. */
__attribute__((noreturn)) static void overlay_daemon_child(const struct config *c, int fuse, int persist, int ready) {
    int stage = NS_STAGE_OVERLAY_UPPER;
    umask(0);
    /* The persist directory's mount is copied while it is still in this
     * namespace (open_tree clones only from the caller's), then attached
     * in the new one. */
    int tree = -1;
    if (persist >= 0 && (tree = nosuid_copy(persist, 0)) < 0)
        goto failed;
    stage = NS_STAGE_OVERLAY_DAEMON;
    if (unshare(CLONE_NEWNS) < 0)
        goto failed;
    static const char *const hidden[] = {"/tmp", "/var/tmp", NULL};
    for (int i = 0; hidden[i]; i++)
        if (mount("tmpfs", hidden[i], "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "mode=1777,size=4k") < 0 &&
            errno != ENOENT)
            goto failed;
    stage = NS_STAGE_OVERLAY_UPPER;
    if (tree >= 0) {
        int run = open_path("/run", O_DIRECTORY);
        if (run < 0 || attach_tree(tree, run) < 0)
            goto failed;
        close(tree);
        close(run);
    } else if (mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, c->overlay_upper) < 0) {
        goto failed;
    }
    /* A fresh upper layer gets the stand-ins; one kept in a persist directory has them already. */
    int fresh = mkdir(OVERLAY_UPPER, 0755) == 0;
    if (!fresh && errno != EEXIST)
        goto failed;
    if (mkdir(OVERLAY_WORK, 0700) < 0 && errno != EEXIST)
        goto failed;
    /* Both must be directories, not links the owner left in the persist directory. */
    struct stat st;
    if (lstat(OVERLAY_UPPER, &st) < 0 || !S_ISDIR(st.st_mode) || lstat(OVERLAY_WORK, &st) < 0 || !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        goto failed;
    }
    if (fresh)
        make_standins();
    stage = NS_STAGE_OVERLAY_DAEMON;
    /* Only the FUSE descriptor and the persist directory's lock go on. */
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0 || fcntl(fuse, F_SETFD, 0) < 0 ||
        (persist >= 0 && fcntl(persist, F_SETFD, 0) < 0))
        goto failed;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        goto failed;
    char mountpoint[32];
    snprintf(mountpoint, sizeof mountpoint, "/dev/fd/%d", fuse);
    /* static_nlink: a directory's link count is 1 (as on btrfs) instead of one stat of every
     * entry to count its subdirectories; it more than halves the first command's start. */
    char *argv[] = {"fuse-overlayfs", "-f", "-o",
                    "lowerdir=/,upperdir=" OVERLAY_UPPER ",workdir=" OVERLAY_WORK ",squash_to_root,static_nlink", mountpoint, NULL};
    char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(c->overlay_executable, argv, envp);
failed:;
    struct ns_report r = { .stage = stage, .error = errno, .index = -1, .pid = 0 };
    ssize_t n;
    do {
        n = write(ready, &r, sizeof r);
    } while (n < 0 && errno == EINTR);
    _exit(127);
}

/* The new root, before binds and tmpfs mounts go into it: the persist
 * directory opened (as the holder: the owner, root here) and locked; a
 * staging tmpfs on /run, where the FUSE file system is mounted on a
 * descriptor of /dev/fuse opened here (the kernel wants it opened in the
 * group's user namespace) and passed to fuse-overlayfs; then the host's
 * /proc, /sys and /dev (with the group's own /proc and devpts, when it
 * has them) bound into it. Targets are looked up inside it from here on. */
static void overlay_prepare(const struct config *c) {
    int persist = -1;
    if (c->overlay_persist) {
        struct open_how how = {
            .flags = (uint64_t)(O_RDONLY | O_DIRECTORY | O_CLOEXEC),
            .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        persist = (int)syscall(SYS_openat2, AT_FDCWD, c->overlay_persist, &how, sizeof how);
        struct stat st;
        if (persist < 0 || fstat(persist, &st) < 0)
            fail(NS_STAGE_OVERLAY_UPPER, -1);
        /* The owner is root in the group's user namespace. */
        if (st.st_uid != 0) {
            errno = EPERM;
            fail(NS_STAGE_PERSIST_NOT_OWNED, -1);
        }
        /* Held, by the holder and fuse-overlayfs, for as long as the group lives. */
        if (flock(persist, LOCK_EX | LOCK_NB) < 0) {
            if (errno != EWOULDBLOCK)
                fail(NS_STAGE_OVERLAY_UPPER, -1);
            errno = EBUSY;
            fail(NS_STAGE_PERSIST_BUSY, -1);
        }
    }
    /* Kept for the terminals of sessions (ns_report.h, NS_HOLDER_DEVPTS_FD). */
    int pts = open_path("/dev/pts", O_DIRECTORY);
    if (pts < 0 || dup3(pts, NS_HOLDER_DEVPTS_FD, O_CLOEXEC) < 0)
        fail(NS_STAGE_OVERLAY_MOUNTS, -1);
    close(pts);
    if (mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700,size=16k") < 0 ||
        mkdir("/run/root", 0755) < 0)
        fail(NS_STAGE_OVERLAY_MOUNTS, -1);
    int fuse = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fuse < 0)
        fail(NS_STAGE_OVERLAY_FUSE, -1);
    char options[128];
    snprintf(options, sizeof options, "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions", fuse);
    if (mount("fuse-overlayfs", "/run/root", "fuse.fuse-overlayfs", MS_NOSUID | MS_NODEV, options) < 0)
        fail(NS_STAGE_OVERLAY_FUSE, -1);
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0)
        fail(NS_STAGE_OVERLAY_DAEMON, -1);
    pid_t pid = fork();
    if (pid < 0)
        fail(NS_STAGE_OVERLAY_DAEMON, -1);
    if (pid == 0) {
        close(ready[0]);
        overlay_daemon_child(c, fuse, persist, ready[1]);
    }
    overlay_daemon = pid;
    close(ready[1]);
    /* The daemon holds the connection now: with no copy here, its end ends it (ENOTCONN, never a hang). */
    close(fuse);
    struct ns_report r;
    ssize_t n;
    do {
        n = read(ready[0], &r, sizeof r);
    } while (n < 0 && errno == EINTR);
    close(ready[0]);
    if (n == (ssize_t)sizeof r) {
        report(r.stage, r.error, -1);
        _exit(1);
    }
    if (n != 0)
        fail(NS_STAGE_OVERLAY_DAEMON, -1);
    if ((root_fd = open("/run/root", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        fail(NS_STAGE_OVERLAY_MOUNTS, -1);
    static const char *const kept[] = {"/proc", "/sys", "/dev", NULL};
    for (int i = 0; kept[i]; i++) {
        int tree = (int)syscall(SYS_open_tree, AT_FDCWD, kept[i], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        int target = tree < 0 ? -1 : open_target(kept[i], O_DIRECTORY);
        if (target < 0 || attach_tree(tree, target) < 0)
            fail(NS_STAGE_OVERLAY_MOUNTS, i);
        close(tree);
        close(target);
    }
}

/* The overlay becomes "/" for the holder and everything that joins the group;
 * the host's root, stacked on it by pivot_root(".", "."), is detached. */
static void overlay_pivot(void) {
    if (fchdir(root_fd) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        fail(NS_STAGE_PIVOT_ROOT, -1);
    close(root_fd);
    root_fd = AT_FDCWD;
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
    if (c->overlay_executable)
        overlay_prepare(c);
    for (int i = 0; i < c->bind_count; i++) {
        int stage;
        if (mount_bind(c, &c->binds[i], &stage) < 0)
            fail(stage, i);
    }
    for (int i = 0; i < c->tmpfs_count; i++) {
        int stage;
        if (mount_tmpfs(c, &c->tmpfs[i], &stage) < 0)
            fail(stage, i);
    }
    if (c->overlay_executable)
        overlay_pivot();
    if (c->loopback && loopback_up() < 0)
        fail(NS_STAGE_LOOPBACK, -1);
}

int main(int argc, char **argv) {
    /* The supervisor execs the holder with every signal blocked already;
     * this is for anyone else who starts it. */
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
            pid_t ended;
            while ((ended = waitpid(-1, NULL, WNOHANG | __WALL)) > 0) {
                if (ended == overlay_daemon)
                    _exit(1);
            }
        } else if (sig == SIGTERM) {
            _exit(0);
        }
    }
}
