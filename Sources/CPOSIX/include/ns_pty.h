/* Pseudo-terminals for interactive sessions. */
#ifndef NSGROUP_NS_PTY_H
#define NSGROUP_NS_PTY_H

#include <sys/types.h>

/* Opens a new pty master through the ptmx of the devpts instance at
 * root_fd/dev/pts/ptmx (root_fd: /proc/HOLDER/root of the group, or -1 for the
 * host's /dev/ptmx). Symlinks are not followed; a group's ptmx is reached
 * with O_PATH first and opened only once it is known to be a devpts ptmx
 * (character device 5:2 on a devpts file system), so nothing else planted
 * there (a FIFO, a host device) is ever opened: that fails with ENOTTY. The slave is unlocked, opened through TIOCGPTPEER (never by
 * path), owned by uid with group tty_gid and mode 0620, and sized rows x cols
 * when both are non-zero. Returns 0 with *master and *slave set, or -1 with errno.
 * Async-signal-safe: an enter's first child calls it, off the supervisor's thread. */
int ns_pty_open(int root_fd, uid_t uid, gid_t tty_gid, unsigned short rows, unsigned short cols,
                int *master, int *slave);

/* Sets the window size of a terminal (TIOCSWINSZ). */
int ns_pty_set_size(int fd, unsigned short rows, unsigned short cols);

/* Reads the window size of a terminal (TIOCGWINSZ). */
int ns_pty_get_size(int fd, unsigned short *rows, unsigned short *cols);

#endif
