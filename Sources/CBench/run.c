#define _GNU_SOURCE
#include "ns_run.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ns_sys.h"
#include "ns_utils.h"

int ns_run_program(const char *path, char *const argv[], char *const envp[], uid_t uid, gid_t gid, int *wait_status) {
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        /* null_fd may itself be 0, 1 or 2 when the caller had those closed:
         * dup2 onto itself would leave it close-on-exec. */
        for (int fd = 0; fd < 3; fd++)
            if (null_fd == fd ? fcntl(fd, F_SETFD, 0) < 0 : dup2(null_fd, fd) < 0)
                _exit(126);
        if (uid != (uid_t)-1) {
            if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
                _exit(126);
        }
        ns_close_range(3, ~0U, 0);
        execve(path, argv, envp);
        _exit(127);
    }
    int saved = errno;
    ns_close(&null_fd);
    if (pid < 0) {
        errno = saved;
        return -1;
    }
    if (NS_RETRY(waitpid(pid, wait_status, 0)) < 0)
        return -1;
    return 0;
}
