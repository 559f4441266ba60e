/*
 * Small facts the benchmark needs that Swift's Glibc module does not reach.
 */
#define _GNU_SOURCE
#include "CBench.h"

#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/vfs.h>

pid_t cbench_peer_pid(int fd) {
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) < 0)
        return -1;
    return credentials.pid;
}

int cbench_is_tmpfs(const char *path) {
    struct statfs info;
    return statfs(path, &info) == 0 && info.f_type == TMPFS_MAGIC;
}
