/*
 * The anchor of `nsgroup-bench throughput`: the least a line-oriented server
 * on a Unix socket can do per request. One thread, level-triggered epoll,
 * non-blocking sockets, a read of up to 64 KiB per wake-up, one reply line
 * per request line, written at once: the same shape as nsgroupd's loop,
 * minus JSON, policy and the journal.
 *
 * It runs in a forked child of the (multithreaded) benchmark, so after fork
 * it uses system calls and static memory only.
 */
#define _GNU_SOURCE
#include "CBench.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

enum {
    ECHO_MAX_CONNECTIONS = 64,
    ECHO_INPUT_CAPACITY = 1 << 16,
    ECHO_OUTPUT_CAPACITY = 1 << 16,
    ECHO_LISTENER = ECHO_MAX_CONNECTIONS, /* epoll tag of the listening socket */
};

struct echo_connection {
    int fd; /* -1: the slot is free */
    int writing; /* EPOLLOUT is in the interest set */
    size_t input_length;
    /* Echo mode: bytes of output queued, and how many of them are sent. */
    size_t output_length, output_sent;
    /* Fixed-reply mode: replies owed, and how much of the current one is sent. */
    size_t replies_owed, reply_sent;
    char input[ECHO_INPUT_CAPACITY];
    char output[ECHO_OUTPUT_CAPACITY];
};

/* Static, not malloc'd: the child must not allocate (see above). Untouched
 * pages cost the parent nothing. */
static struct echo_connection connections[ECHO_MAX_CONNECTIONS];
static const char *fixed_reply;
static size_t fixed_reply_length;
static int poller = -1;

static void close_connection(struct echo_connection *c) {
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
}

static void set_writing(struct echo_connection *c, int on) {
    if (c->writing == on)
        return;
    struct epoll_event event = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u32 = (uint32_t)(c - connections)};
    epoll_ctl(poller, EPOLL_CTL_MOD, c->fd, &event);
    c->writing = on;
}

/* Writes what is owed; returns -1 if the connection broke. */
static int flush(struct echo_connection *c) {
    for (;;) {
        const char *bytes;
        size_t length;
        if (fixed_reply) {
            if (c->replies_owed == 0)
                break;
            bytes = fixed_reply + c->reply_sent;
            length = fixed_reply_length - c->reply_sent;
        } else {
            if (c->output_sent == c->output_length)
                break;
            bytes = c->output + c->output_sent;
            length = c->output_length - c->output_sent;
        }
        ssize_t n = send(c->fd, bytes, length, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                set_writing(c, 1);
                return 0;
            }
            return -1;
        }
        if (fixed_reply) {
            c->reply_sent += (size_t)n;
            if (c->reply_sent == fixed_reply_length) {
                c->reply_sent = 0;
                c->replies_owed--;
            }
        } else {
            c->output_sent += (size_t)n;
            if (c->output_sent == c->output_length)
                c->output_sent = c->output_length = 0;
        }
    }
    set_writing(c, 0);
    return 0;
}

/* Turns complete input lines into owed replies, as far as output room allows. */
static void take_lines(struct echo_connection *c) {
    size_t start = 0;
    for (;;) {
        char *newline = memchr(c->input + start, '\n', c->input_length - start);
        if (!newline)
            break;
        size_t length = (size_t)(newline - (c->input + start)) + 1;
        if (fixed_reply) {
            c->replies_owed++;
        } else {
            if (c->output_length + length > ECHO_OUTPUT_CAPACITY)
                break; /* the rest waits until the client has read */
            memcpy(c->output + c->output_length, c->input + start, length);
            c->output_length += length;
        }
        start += length;
    }
    if (start > 0) {
        memmove(c->input, c->input + start, c->input_length - start);
        c->input_length -= start;
    }
}

static void readable(struct echo_connection *c) {
    if (c->input_length == ECHO_INPUT_CAPACITY) {
        close_connection(c); /* a line longer than 64 KiB: not a client of ours */
        return;
    }
    ssize_t n = recv(c->fd, c->input + c->input_length, ECHO_INPUT_CAPACITY - c->input_length, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close_connection(c);
        return;
    }
    if (n > 0)
        c->input_length += (size_t)n;
    take_lines(c);
    if (flush(c) < 0)
        close_connection(c);
}

static void accept_all(int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or out of descriptors: try again on the next wake-up */
        }
        struct echo_connection *c = NULL;
        for (int i = 0; i < ECHO_MAX_CONNECTIONS; i++)
            if (connections[i].fd < 0) {
                c = &connections[i];
                break;
            }
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->writing = 0;
        c->input_length = c->output_length = c->output_sent = c->replies_owed = c->reply_sent = 0;
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)(c - connections)};
        if (epoll_ctl(poller, EPOLL_CTL_ADD, fd, &event) < 0)
            close_connection(c);
    }
}

static void close_all_but(int keep) {
    if (keep > 0)
        syscall(SYS_close_range, 0U, (unsigned)keep - 1, 0U);
    if (syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0U) < 0)
        for (int fd = keep + 1; fd < 4096; fd++)
            close(fd);
}

static _Noreturn void serve(int listener) {
    close_all_but(listener);
    poller = epoll_create1(EPOLL_CLOEXEC);
    if (poller < 0)
        _exit(1);
    for (int i = 0; i < ECHO_MAX_CONNECTIONS; i++)
        connections[i].fd = -1;
    struct epoll_event event = {.events = EPOLLIN, .data.u32 = ECHO_LISTENER};
    if (epoll_ctl(poller, EPOLL_CTL_ADD, listener, &event) < 0)
        _exit(1);
    struct epoll_event events[64];
    for (;;) {
        int n = epoll_wait(poller, events, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        for (int i = 0; i < n; i++) {
            uint32_t tag = events[i].data.u32;
            if (tag == ECHO_LISTENER) {
                accept_all(listener);
                continue;
            }
            struct echo_connection *c = &connections[tag];
            if (c->fd < 0)
                continue; /* closed earlier in this batch */
            if ((events[i].events & EPOLLOUT) && flush(c) < 0) {
                close_connection(c);
                continue;
            }
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                readable(c);
        }
    }
}

int cbench_echo_spawn(const char *path, const void *reply, size_t reply_length, pid_t *pid) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    size_t path_length = strlen(path);
    if (path_length == 0 || path_length >= sizeof(address.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (reply && reply_length == 0) {
        errno = EINVAL;
        return -1;
    }
    memcpy(address.sun_path, path, path_length + 1);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0)
        return -1;
    if (bind(listener, (struct sockaddr *)&address, sizeof(address)) < 0 || listen(listener, 128) < 0) {
        int saved = errno;
        close(listener);
        errno = saved;
        return -1;
    }
    /* Set before fork: the child reads them from its copy of our memory. */
    fixed_reply = reply;
    fixed_reply_length = reply ? reply_length : 0;
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) {
        int saved = errno;
        close(listener);
        unlink(path);
        errno = saved;
        return -1;
    }
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        /* The parent may catch or block signals; SIGTERM must stop us. */
        struct sigaction default_action = {.sa_handler = SIG_DFL};
        for (int signal_number = 1; signal_number < NSIG; signal_number++)
            if (signal_number != SIGKILL && signal_number != SIGSTOP)
                sigaction(signal_number, &default_action, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        serve(listener);
    }
    close(listener);
    *pid = child;
    return 0;
}
