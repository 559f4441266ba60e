/* Starting processes for nsgroup: the holder of a group, and a process that
 * enters a group. All work between fork and exec happens here, in C, using
 * async-signal-safe calls only (no malloc, no locks, no Swift).
 */
#ifndef NSGROUP_NS_SPAWN_H
#define NSGROUP_NS_SPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "ns_report.h"

/* What the supervisor needs to start a holder. */
struct ns_holder_spec {
    unsigned long long clone_flags; /* CLONE_NEW* bits for the new namespaces */
    int exe_fd;                     /* the holder executable, opened by the supervisor */
    char *const *argv;              /* the holder's argv, NULL-terminated */
    int status_fd;                  /* write end of the status pipe; becomes fd 3 */
    int sync_fd;                    /* read end of the go-ahead pipe; becomes fd 4, or -1 */
    int user_namespace;             /* the clone makes a user namespace: before exec the child
                                       waits for one byte on sync_fd (its maps are written) and
                                       becomes root inside, so that exec keeps its capabilities
                                       there */
    /* Cgroups. With cgroup_fd >= 0 the clone lands in that directory of the
     * unified hierarchy (CLONE_INTO_CGROUP): the group's cgroup. The child
     * then writes "0" to each of join_fds (cgroup.procs of the group's cgroup
     * in every v1 hierarchy, which has no CLONE_INTO_CGROUP), makes its cgroup
     * namespace with unshare_cgroup (so that its root is the group's cgroup
     * in every hierarchy, not the supervisor's), and last moves into its own
     * leaf by writing "0" to each of leaf_fds (the holder's cgroup.procs, in
     * the unified hierarchy and every v1 one). All before anything else. */
    int cgroup_fd;
    const int *join_fds;
    size_t join_count;
    int unshare_cgroup;
    const int *leaf_fds;
    size_t leaf_count;
};

/* Clones a child straight into new namespaces (clone3 with CLONE_PIDFD) and
 * makes it exec the holder with fds 0-2 on /dev/null, the status pipe on 3
 * and the go-ahead pipe on 4. Returns 0 and sets *pid and *pidfd, or -1 with
 * errno set (the clone itself failed). A failing step in the child arrives
 * later as an ns_report on the status pipe. */
int ns_spawn_holder(const struct ns_holder_spec *spec, pid_t *pid, int *pidfd);

/* An anchor: a process that does nothing but wait, cloned into the cgroup
 * `cgroup_fd` (CLONE_INTO_CGROUP). systemd makes a scope only around a
 * process that already runs (StartTransientUnit's PIDs); the anchor is that
 * process while a group's scope is made, before its holder exists. It keeps
 * no descriptor of its caller but the read end of a pipe, and exits when
 * that pipe closes (*release_fd closed, or the caller gone). Named
 * "nsgroup-anchor" (comm). Returns -1 with errno on failure. */
int ns_spawn_anchor(int cgroup_fd, pid_t *pid, int *pidfd, int *release_fd);

/* The resource limits of a process: one per resource, RLIMIT_CPU (0) to
 * RLIMIT_RTTIME (15), in the kernel's struct rlimit64 layout. */
#define NS_RLIMIT_COUNT 16
struct ns_rlimit {
    uint64_t cur;
    uint64_t max;
};

/* Reads every resource limit of process pid with prlimit64(pid, r, NULL, &old)
 * into limits[0..NS_RLIMIT_COUNT-1]. Returns 0, or -1 with errno set (ESRCH:
 * no such process). The pid may have been reused: check the process's pidfd
 * afterwards. */
int ns_read_rlimits(pid_t pid, struct ns_rlimit *limits);

/* What the supervisor needs to start a process inside a group. */
struct ns_enter_spec {
    const int *ns_fds;        /* namespace fds, already open, in the order to enter */
    const int *ns_types;      /* the CLONE_NEW* type of each, checked by setns */
    size_t ns_count;
    const char *cwd;          /* directory inside the group */
    int cwd_fallback;         /* if cwd cannot be entered as the caller, use "/" */
    uid_t uid;
    gid_t gid;
    const gid_t *groups;      /* supplementary groups, exactly the caller's */
    size_t ngroups;
    int stdio[3];             /* become fds 0, 1 and 2 (unless pty is set) */
    int pty;                  /* open a terminal for the session (its slave becomes fds 0-2, and
                                 the controlling terminal with controlling_tty); the first child
                                 opens it, before any setns, and sends the master back beside an
                                 NS_STAGE_PTY_MASTER report */
    int pty_root_fd;          /* with pty: the group's /proc/HOLDER/root (O_PATH), whose
                                 dev/pts/ptmx is used, or -1 for the host's /dev/ptmx */
    uid_t pty_uid;            /* with pty: the slave's owner; its group is tty_gid, mode 0620 */
    gid_t tty_gid;
    unsigned short rows, cols; /* with pty: its size, when both are non-zero */
    int controlling_tty;      /* make stdio[0] the controlling terminal */
    const struct ns_rlimit *rlimits; /* NS_RLIMIT_COUNT limits, the caller's, set in the session
                                  process before it drops to uid (raising a hard limit needs
                                  CAP_SYS_RESOURCE, and RLIMIT_NPROC counts against the new
                                  uid from setresuid on); NULL keeps the supervisor's */
    int userns_root;          /* entering the group's user namespace (as its root: uid and gid
                                 are the ids inside, normally 0): the supplementary groups are
                                 set to groups/ngroups (possibly none) before setns, in the
                                 host's user namespace, and not set after (setgroups may be
                                 denied there) */
    int set_loginuid;         /* write loginuid to /proc/self/loginuid before entering any
                                 namespace (the host's /proc); the session inherits it */
    uint32_t loginuid;        /* the caller's audit loginuid; 4294967295 means "unset" */
    unsigned int umask;       /* the session's file mode creation mask: the caller's */
    int share_memory;         /* the session shares the first child's memory (CLONE_VM, a stack
                                 of its own) instead of a copy; not with a time namespace */
    const char *file;         /* argv[0] to run: a path, or a name searched in search_path */
    const char *search_path;  /* PATH used when file has no '/' */
    char *const *argv;
    char *const *envp;
    /* The session's cgroup: the first child is cloned into cgroup_fd (a
     * directory of the unified hierarchy, CLONE_INTO_CGROUP) when it is >= 0,
     * and writes "0" to each of join_fds (its cgroup.procs in every v1
     * hierarchy) before anything else; the session, its child, inherits
     * both. */
    int cgroup_fd;
    const int *join_fds;
    size_t join_count;
};

/* Starts the process in two steps, in nsenter's order, and returns without
 * waiting for either: a first child (a copy of the supervisor's memory)
 * enters every namespace with setns, then clones the session process
 * (CLONE_PARENT, so the supervisor is its parent) because a new pid
 * namespace applies only to children, reports NS_STAGE_FORKED with its pid
 * and exits. Both make themselves non-dumpable first; the first writes the
 * caller's loginuid (set_loginuid) before any setns. The session process
 * starts a new session, installs its stdio, takes the caller's resource
 * limits (rlimits), drops to the caller's groups, gid and uid, then changes
 * directory with the caller's rights, sets no_new_privs and the caller's umask, marks every other
 * fd close-on-exec and execs.
 *
 * With pty, the first child opens the terminal first (ns_pty_open, through
 * the group's tree, which its owner shapes: never on the supervisor's thread).
 *
 * Returns 0 with *status_fd (the supervisor's end of the status channel, a
 * SOCK_SEQPACKET socket pair: close-on-exec and non-blocking), *first_pid
 * and *first_pidfd set, or -1 with errno set (socketpair, clone3). The
 * channel then carries one ns_report per message, in order: with pty,
 * NS_STAGE_PTY_MASTER with the master attached; then a failure of the first
 * child (and nothing more), or NS_STAGE_FORKED with the session's pid
 * followed by the session's failure if it fails before exec. End of file
 * comes once the first child has exited and the session has exec'd (the
 * channel is close-on-exec) or died: end of file after FORKED and no failure
 * means the session runs the program. Nothing here waits; the caller watches
 * the channel, reaps the first child and watches the session. */
int ns_spawn_enter_start(const struct ns_enter_spec *spec, int *status_fd, pid_t *first_pid, int *first_pidfd);

#endif
