#define _GNU_SOURCE
#include "ns_fdpass.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ns_sys.h"
#include "ns_utils.h"

ssize_t ns_send_with_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds) {
    if (nfds > NS_MAX_FDS) {
        errno = EINVAL;
        return -1;
    }
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * NS_MAX_FDS)];
    } control;
    if (nfds > 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
    }
    return NS_RETRY(sendmsg(sock, &msg, MSG_NOSIGNAL));
}

ssize_t ns_recv_with_fds(int sock, void *buf, size_t len, int *fds, size_t *nfds, int *truncated) {
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * NS_MAX_FDS)];
    } control;
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof control.buf,
    };
    *nfds = 0;
    *truncated = 0;
    ssize_t n = NS_RETRY(recvmsg(sock, &msg, MSG_CMSG_CLOEXEC));
    if (n < 0)
        return -1;
    if (msg.msg_flags & MSG_CTRUNC)
        *truncated = 1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(c);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof(int), sizeof fd);
            if (*nfds < NS_MAX_FDS)
                fds[(*nfds)++] = fd;
            else {
                close(fd);
                *truncated = 1;
            }
        }
    }
    return n;
}

int ns_peer_credentials(int sock, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

int ns_peer_groups(int sock, gid_t *groups, int *count) {
    socklen_t len = (socklen_t)((size_t)*count * sizeof(gid_t));
    int r = getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, groups, &len);
    *count = (int)(len / sizeof(gid_t));
    return r;
}

int ns_peer_pidfd(int sock) {
    int fd = -1;
    socklen_t len = sizeof fd;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) < 0)
        return -1;
    return fd;
}
