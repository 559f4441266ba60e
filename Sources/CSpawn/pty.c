#define _GNU_SOURCE
#include "ns_pty.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "ns_sys.h"
#include "ns_utils.h"

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

    /* The group's tree belongs to its users: resolve inside it without
     * following any symlink, then check that what opened is a ptmx. */
    if (root_fd >= 0)
        master = ns_openat2(root_fd, "dev/pts/ptmx", flags, 0,
                            RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
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
