#define _GNU_SOURCE
#include "ns_pty.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <termios.h>
#include <unistd.h>

#include "ns_sys.h"
#include "ns_utils.h"

#ifndef DEVPTS_SUPER_MAGIC
#define DEVPTS_SUPER_MAGIC 0x1cd1
#endif

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

/* The ptmx device, major 5 minor 2, whether reached as /dev/ptmx or as a
 * devpts instance's own ptmx node. */
static int is_ptmx(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0)
        return 0;
    return S_ISCHR(st.st_mode) && major(st.st_rdev) == 5 && minor(st.st_rdev) == 2;
}

/* A ptmx node of a devpts instance: what a group's dev/pts/ptmx must be. */
static int is_devpts_ptmx(int fd) {
    struct statfs fs;
    return is_ptmx(fd) && fstatfs(fd, &fs) == 0 && fs.f_type == DEVPTS_SUPER_MAGIC;
}

/* Opens the group's dev/pts/ptmx without opening anything else: the tree
 * belongs to the group's owner, who may have mounted a FIFO, a host device
 * or another file there. It is reached with O_PATH (no open of the file
 * itself, so no FIFO wait and no device open routine), without following
 * any symlink; only a devpts ptmx is then opened for real, through its
 * O_PATH descriptor, non-blocking, and checked to be the same file. */
static int open_group_ptmx(int root_fd, int flags) {
    /* root_fd is the group's root, or its devpts instance itself (a group
     * with an overlay root: its tree is closed to the supervisor's children). */
    struct statfs root_fs;
    const char *relative = fstatfs(root_fd, &root_fs) == 0 && root_fs.f_type == DEVPTS_SUPER_MAGIC ? "ptmx" : "dev/pts/ptmx";
    NS_AUTOCLOSE int path = ns_openat2(root_fd, relative, O_PATH | O_CLOEXEC, 0,
                                       RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
    if (path < 0)
        return -1;
    struct stat expected;
    if (!is_devpts_ptmx(path) || fstat(path, &expected) < 0) {
        errno = ENOTTY;
        return -1;
    }
    /* "/proc/self/fd/N" without snprintf: this runs in a child before exec. */
    char proc[32] = "/proc/self/fd/";
    char digits[12];
    int n = 0;
    for (unsigned value = (unsigned)path; n == 0 || value > 0; value /= 10)
        digits[n++] = (char)('0' + value % 10);
    size_t at = strlen(proc);
    while (n > 0)
        proc[at++] = digits[--n];
    proc[at] = '\0';
    NS_AUTOCLOSE int master = (int)NS_RETRY(open(proc, flags | O_NONBLOCK));
    if (master < 0)
        return -1;
    struct stat opened;
    if (fstat(master, &opened) < 0 || opened.st_dev != expected.st_dev || opened.st_ino != expected.st_ino ||
        !is_devpts_ptmx(master)) {
        errno = ENOTTY;
        return -1;
    }
    /* The master goes to the client, which reads and writes it blocking. */
    int status = fcntl(master, F_GETFL);
    if (status < 0 || fcntl(master, F_SETFL, status & ~O_NONBLOCK) < 0)
        return -1;
    int result = master;
    master = -1;
    return result;
}

int ns_pty_set_size(int fd, unsigned short rows, unsigned short cols) {
    struct winsize ws = { .ws_row = rows, .ws_col = cols };
    return (int)NS_RETRY(ioctl(fd, TIOCSWINSZ, &ws));
}

int ns_pty_get_size(int fd, unsigned short *rows, unsigned short *cols) {
    struct winsize ws;
    if (NS_RETRY(ioctl(fd, TIOCGWINSZ, &ws)) < 0)
        return -1;
    *rows = ws.ws_row;
    *cols = ws.ws_col;
    return 0;
}

int ns_pty_open(int root_fd, uid_t uid, gid_t tty_gid, unsigned short rows, unsigned short cols,
                int *master_out, int *slave_out) {
    const int flags = O_RDWR | O_NOCTTY | O_CLOEXEC;
    NS_AUTOCLOSE int master = -1;
    NS_AUTOCLOSE int slave = -1;

    /* The group's tree belongs to its users: see open_group_ptmx. The
     * host's /dev is root's. */
    if (root_fd >= 0)
        master = open_group_ptmx(root_fd, flags);
    else
        master = (int)NS_RETRY(open("/dev/ptmx", flags));
    if (master < 0)
        return -1;
    if (!is_ptmx(master)) {
        errno = ENOTTY;
        return -1;
    }
    int unlock = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
        return -1;
    slave = (int)ioctl(master, TIOCGPTPEER, flags);
    if (slave < 0)
        return -1;
    if (fchown(slave, uid, tty_gid) < 0 || fchmod(slave, 0620) < 0)
        return -1;
    if (rows > 0 && cols > 0 && ns_pty_set_size(master, rows, cols) < 0)
        return -1;
    *master_out = master;
    *slave_out = slave;
    master = -1;
    slave = -1;
    return 0;
}
