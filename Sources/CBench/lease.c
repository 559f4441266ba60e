/*
 * A file lease held against the supervisor, for `nsgroup-bench latency`:
 * the way a user can make an exec (or any open) of her file wait.
 *
 * fcntl(2): a write lease (F_WRLCK) is broken by any other open of the file,
 * for reading too, which is how execve opens a program; the opener then waits
 * in the kernel (break_lease) until the holder gives the lease up or
 * /proc/sys/fs/lease-break-time seconds pass. It may be taken only while no
 * other descriptor is open on the file; the descriptor it is taken on may be
 * read-only (the kernel counts the taker's own reader or writer), and it
 * should be: a descriptor open for writing would make the exec that is
 * finally let through fail with ETXTBSY. Taking a lease on a file one does
 * not own needs CAP_LEASE (root has it).
 */
#define _GNU_SOURCE
#include "CBench.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

int cbench_lease_take(const char *path) {
    /* When the lease is broken the kernel signals its owner, with SIGIO
     * unless F_SETSIG says otherwise; SIGIO's default action ends the
     * process. The benchmark watches the lease with F_GETLEASE instead. */
    signal(SIGIO, SIG_IGN);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fcntl(fd, F_SETLEASE, F_WRLCK) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int cbench_lease_broken(int fd) {
    int type = fcntl(fd, F_GETLEASE);
    if (type < 0)
        return -1;
    /* While a break is pending F_GETLEASE reports the type the lease is
     * being broken to (F_RDLCK for a reader, F_UNLCK for a writer). */
    return type != F_WRLCK;
}

int cbench_lease_release(int fd) {
    int result = fcntl(fd, F_SETLEASE, F_UNLCK);
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}
