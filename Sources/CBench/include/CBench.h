#ifndef CBENCH_H
#define CBENCH_H

/*
 * The benchmark's C side: a minimal line server over a Unix socket, the
 * anchor `nsgroup-bench throughput` measures nsgroupd against, and a lean
 * request-then-wait client loop that both servers are driven with.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Starts the anchor server in a forked child and returns its pid in *pid.
 *
 * The parent binds and listens on `path` (which must not exist) before it
 * forks, so the socket accepts connections as soon as this returns. The child
 * is one thread running level-triggered epoll, as nsgroupd does: it accepts
 * connections, reads what arrives, cuts it into lines at '\n' and answers
 * each line with one line.
 *
 *  - reply == NULL: the answer is the line itself (an echo).
 *  - otherwise: the answer is the `reply_length` bytes at `reply`, which
 *    should end in '\n' (the benchmark passes nsgroupd's own reply, so both
 *    servers move exactly the same bytes).
 *
 * The child calls only system calls and touches only static memory (no
 * malloc after fork in a multithreaded parent), closes every inherited
 * descriptor but its socket, resets every signal to its default action and
 * unblocks it, and dies with its parent (PR_SET_PDEATHSIG).
 * Stop it with SIGTERM and waitpid, then unlink the socket.
 * Returns 0, or -1 with errno set.
 */
int cbench_echo_spawn(const char *path, const void *reply, size_t reply_length, pid_t *pid);

/*
 * Sends `request` (one line, '\n' included) on the connected stream socket
 * `fd` and reads one reply line, `count` times, one request outstanding at a
 * time; stops early once CLOCK_MONOTONIC passes `deadline_ns` (0: no
 * deadline). Each reply must begin with the `prefix_length` bytes at
 * `prefix`. When `latencies_ns` is not NULL, the round trip of request i is
 * stored in latencies_ns[i] (room for `count`).
 *
 * Returns how many round trips completed. *error is 0, or the errno that
 * stopped it early (EPROTO: a reply without the prefix; ECONNRESET: the
 * server closed the connection).
 */
long cbench_roundtrips(int fd, const void *request, size_t request_length, const void *prefix,
                       size_t prefix_length, long count, uint64_t deadline_ns, uint64_t *latencies_ns,
                       int *error);

/* The pid the kernel reports for the other end of a connected Unix socket
 * (SO_PEERCRED): for a client, the process that called listen(). -1 on error. */
pid_t cbench_peer_pid(int fd);

/* Whether `path` is on a tmpfs (statfs f_type TMPFS_MAGIC). */
int cbench_is_tmpfs(const char *path);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t cbench_now_ns(void);

/*
 * A write lease on `path` (see lease.c): returns the read-only descriptor
 * that holds it, or -1 with errno set (EAGAIN: another descriptor is open on
 * the file). SIGIO is ignored from then on, process-wide.
 */
int cbench_lease_take(const char *path);

/* 1 once somebody has opened the leased file (a break is pending or done),
 * 0 while the lease is untouched, -1 with errno on error. */
int cbench_lease_broken(int fd);

/* Gives the lease up (so a waiting open proceeds at once) and closes `fd`.
 * 0, or -1 with errno if F_UNLCK failed (the descriptor is closed anyway,
 * which ends the lease too). */
int cbench_lease_release(int fd);

#include "ns_run.h"

#endif
