/*
 * The client loop of `nsgroup-bench throughput` and `scale`: one request
 * outstanding per connection, reply bytes checked only for their prefix, so
 * the client costs the same (and little) whichever server answers.
 */
#define _GNU_SOURCE
#include "CBench.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

uint64_t cbench_now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static int send_all(int fd, const char *bytes, size_t length) {
    while (length > 0) {
        ssize_t n = send(fd, bytes, length, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EPIPE ? ECONNRESET : errno;
        }
        bytes += n;
        length -= (size_t)n;
    }
    return 0;
}

/* Reads one line; bytes after its '\n' stay in buffer[0..*have). */
static int read_line(int fd, char *buffer, size_t capacity, size_t *have, const char *prefix, size_t prefix_length) {
    size_t position = 0; /* bytes of this line consumed so far */
    int matches = 1;
    for (;;) {
        if (*have > 0) {
            char *newline = memchr(buffer, '\n', *have);
            size_t take = newline ? (size_t)(newline - buffer) + 1 : *have;
            if (position < prefix_length) {
                size_t compare = prefix_length - position < take ? prefix_length - position : take;
                if (memcmp(buffer, prefix + position, compare) != 0)
                    matches = 0;
            }
            position += take;
            memmove(buffer, buffer + take, *have - take);
            *have -= take;
            if (newline)
                return matches && position > prefix_length ? 0 : EPROTO;
        }
        ssize_t n = recv(fd, buffer + *have, capacity - *have, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            return ECONNRESET;
        *have += (size_t)n;
    }
}

long cbench_roundtrips(int fd, const void *request, size_t request_length, const void *prefix,
                       size_t prefix_length, long count, uint64_t deadline_ns, uint64_t *latencies_ns,
                       int *error) {
    char buffer[1 << 16];
    size_t have = 0;
    long done = 0;
    *error = 0;
    while (done < count) {
        uint64_t start = cbench_now_ns();
        if (deadline_ns && start >= deadline_ns)
            break;
        int failed = send_all(fd, request, request_length);
        if (!failed)
            failed = read_line(fd, buffer, sizeof(buffer), &have, prefix, prefix_length);
        if (failed) {
            *error = failed;
            break;
        }
        if (latencies_ns)
            latencies_ns[done] = cbench_now_ns() - start;
        done++;
    }
    return done;
}
