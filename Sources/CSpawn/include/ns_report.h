/* What a child process tells its parent over the CLOEXEC status pipe.
 *
 * Every process that nsgroup starts (the holder, the two processes of an
 * enter) runs only async-signal-safe C between fork and exec. When a step
 * fails it writes one ns_report naming the step and errno, then exits; the
 * Swift side turns that into "setns(net): Operation not permitted". Records
 * are smaller than PIPE_BUF, so each write is atomic.
 */
#ifndef NSGROUP_NS_REPORT_H
#define NSGROUP_NS_REPORT_H

#include <stdint.h>

typedef enum ns_stage {
    NS_STAGE_OK = 0,            /* success; for the holder: set up and running */
    NS_STAGE_FORKED,            /* enter: the session process exists, pid is set */
    NS_STAGE_CLONED,            /* holder: its namespaces are final (time made); it waits to go on */
    /* enter, first child (in the supervisor's namespaces) */
    NS_STAGE_SIGNALS,
    NS_STAGE_SETNS,             /* index: position in the namespace list */
    NS_STAGE_CLONE,
    /* enter, second child (inside the group) */
    NS_STAGE_CHDIR,
    NS_STAGE_SETSID,
    NS_STAGE_TIOCSCTTY,
    NS_STAGE_STDIO,
    NS_STAGE_SETGROUPS,
    NS_STAGE_SETGID,
    NS_STAGE_SETUID,
    NS_STAGE_NO_NEW_PRIVS,
    NS_STAGE_CLOSE_FDS,
    NS_STAGE_EXECVE,
    NS_STAGE_KEYRING,
    /* holder */
    NS_STAGE_HOLDER_EXEC,       /* the supervisor's child could not exec the holder */
    NS_STAGE_HOLDER_ARGS,       /* the holder did not understand its arguments */
    NS_STAGE_MOUNT_PROPAGATION,
    NS_STAGE_SETHOSTNAME,
    NS_STAGE_MOUNT_PROC,
    NS_STAGE_MOUNT_DEVPTS,
    NS_STAGE_MOUNT_TMPFS,       /* index: position in the tmpfs list */
    NS_STAGE_LOOPBACK,
    NS_STAGE_SETSID_HOLDER,
    NS_STAGE_WAIT_PARENT,       /* the holder did not get the go-ahead from the supervisor */
    NS_STAGE_SETID_HOLDER,      /* user namespace: becoming root inside */
    NS_STAGE_TIME_OFFSETS,
    NS_STAGE_UNSHARE_TIME,
    NS_STAGE_MOUNT_BIND,        /* index: position in the bind list */
    NS_STAGE_USER_MAPS,         /* the supervisor could not write the id maps */
    NS_STAGE_BIND_SOURCE,       /* index: position in the bind list; its source could not be opened */
    NS_STAGE_DUMPABLE,          /* prctl(PR_SET_DUMPABLE, 0) in a child */
    NS_STAGE_LOGINUID,          /* enter, first child: writing the caller's loginuid */
    NS_STAGE_RESOLVE_AS,        /* holder: taking on or giving back the caller's fs ids (index: tmpfs) */
    NS_STAGE_RLIMIT,            /* enter, second child: setting the caller's limit (index: resource) */
    NS_STAGE_TMPFS_NOT_OWNED,   /* holder, --require-owner: a tmpfs target is not the caller's (index: tmpfs) */
    NS_STAGE_OPEN_PTY,          /* enter, first child: opening the session's terminal failed */
    NS_STAGE_PTY_MASTER,        /* enter, first child: the terminal's master is attached (SCM_RIGHTS) */
    NS_STAGE_CGROUP_JOIN,       /* holder or first child: joining a cgroup (index: which cgroup.procs) */
    NS_STAGE_UNSHARE_CGROUP,    /* holder: unshare(CLONE_NEWCGROUP) once in the group's cgroup */
    NS_STAGE_BIND_NOT_OWNED,    /* holder, --own-bind: an end of the bind is not the owner's (index: bind) */
    /* holder, --overlay-root */
    NS_STAGE_OVERLAY_FUSE,      /* opening /dev/fuse or mounting the FUSE file system */
    NS_STAGE_OVERLAY_UPPER,     /* the upper layer: its tmpfs, the persist directory, upper/ and work/ */
    NS_STAGE_PERSIST_NOT_OWNED, /* the persist directory is not the owner's */
    NS_STAGE_PERSIST_BUSY,      /* the persist directory is locked by another group's overlay */
    NS_STAGE_OVERLAY_DAEMON,    /* starting fuse-overlayfs (fork, its namespace, exec) */
    NS_STAGE_OVERLAY_MOUNTS,    /* /proc, /sys, /dev into the new root, or the staging tmpfs */
    NS_STAGE_PIVOT_ROOT,        /* pivot_root into the overlay and detaching the host's root */
} ns_stage;

/* The holder of a group with an overlay root keeps an O_PATH descriptor of
 * its own devpts instance (/dev/pts) here: a terminal for a session is
 * opened through /proc/HOLDER/fd/NS_HOLDER_DEVPTS_FD, since the group's
 * tree, served by FUSE to the group's user namespace only, is closed to the
 * supervisor's children. */
#define NS_HOLDER_DEVPTS_FD 100

struct ns_report {
    int32_t stage;   /* ns_stage */
    int32_t error;   /* errno, 0 for success records */
    int32_t index;   /* which item of a list the stage worked on, or -1 */
    int32_t pid;     /* NS_STAGE_FORKED: the session's pid as the supervisor sees it */
};

#endif
