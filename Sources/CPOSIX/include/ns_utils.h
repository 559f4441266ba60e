/* Small helpers shared by the C files of CPOSIX, CSpawn and CBench (not part of
 * the CPOSIX module that Swift imports). Everything here is async-signal-safe. */
#ifndef NSGROUP_NS_UTILS_H
#define NSGROUP_NS_UTILS_H

#include <errno.h>
#include <unistd.h>

/* Retry a system call while it fails with EINTR. */
#define NS_RETRY(expr)                                  \
    ({                                                  \
        long _ns_r;                                     \
        do { _ns_r = (long)(expr); }                    \
        while (_ns_r == -1 && errno == EINTR);          \
        _ns_r;                                          \
    })

/* Close a descriptor if it is open, keeping errno, and mark it closed. */
static inline void ns_close(int *fd) {
    if (fd && *fd >= 0) {
        int saved = errno;
        close(*fd);
        *fd = -1;
        errno = saved;
    }
}

#define NS_AUTOCLOSE __attribute__((cleanup(ns_close)))

#endif
