/* Sending and receiving file descriptors beside bytes on a Unix stream socket
 * (SCM_RIGHTS). */
#ifndef NSGROUP_NS_FDPASS_H
#define NSGROUP_NS_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/* The most descriptors one message may carry in nsgroup's protocol. A
 * message with more is truncated by the kernel (MSG_CTRUNC) and refused. */
#define NS_MAX_FDS 8

/* Sends len bytes with nfds descriptors attached to the first byte (sendmsg
 * with SCM_RIGHTS, MSG_NOSIGNAL). Returns bytes sent or -1 with errno. */
ssize_t ns_send_with_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds);

/* Receives up to len bytes and any descriptors sent with them (close-on-exec).
 * *nfds is set to how many arrived (at most NS_MAX_FDS); *truncated is set when
 * the kernel dropped control data (MSG_CTRUNC) — every fd that did arrive is
 * still returned so the caller can close it. Returns bytes read, 0 at end of
 * stream, or -1 with errno. */
ssize_t ns_recv_with_fds(int sock, void *buf, size_t len, int *fds, size_t *nfds, int *truncated);

/* The peer's credentials (SO_PEERCRED). */
int ns_peer_credentials(int sock, pid_t *pid, uid_t *uid, gid_t *gid);

/* The peer's supplementary groups as the kernel recorded them at connect time
 * (SO_PEERGROUPS). *count is the capacity of groups on entry and the number
 * of groups on return; with ERANGE it is the capacity needed. */
int ns_peer_groups(int sock, gid_t *groups, int *count);

/* A pidfd for the peer (SO_PEERPIDFD, Linux 6.5+), or -1 with errno. */
int ns_peer_pidfd(int sock);

#endif
