/* Running a short program to completion, for the benchmark. */
#ifndef NSGROUP_NS_RUN_H
#define NSGROUP_NS_RUN_H

#include <sys/types.h>

/* Forks and execs path with argv and envp, stdio on /dev/null; when uid is
 * not (uid_t)-1 the child first drops to uid and gid with no supplementary
 * groups. Waits for it and stores its wait status. Returns 0, or -1 with
 * errno when it could not be started. */
int ns_run_program(const char *path, char *const argv[], char *const envp[], uid_t uid, gid_t gid, int *wait_status);

#endif
