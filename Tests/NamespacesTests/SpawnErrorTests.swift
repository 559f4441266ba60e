import CSpawn
import Glibc
@testable import Namespaces
import Testing

/// A step's description is what the journal and the protocol's `data.step`
/// show; these pin the wording each case always had.
@Suite("SpawnError steps")
struct SpawnErrorTests {
    private func report(_ stage: ns_stage, index: Int32 = -1, errno: Int32 = EPERM) -> ns_report {
        ns_report(stage: Int32(stage.rawValue), error: errno, index: index, pid: 0)
    }

    @Test func aChildsReportNamesTheItemAtItsIndex() {
        let setns = SpawnError(report: report(NS_STAGE_SETNS, index: 1), namespaces: [.mnt, .net])
        #expect(setns.step == .setns(kind: "net"))
        #expect(setns.description == "setns(net): Operation not permitted")
        #expect(SpawnError(report: report(NS_STAGE_SETNS, index: 5), namespaces: [.mnt]).step.description == "setns(?)")
        let tmpfs = SpawnError(report: report(NS_STAGE_MOUNT_TMPFS, index: 0, errno: ENOENT), tmpfs: ["/srv"])
        #expect(tmpfs.description == "mount(tmpfs, /srv): No such file or directory")
        #expect(tmpfs.errno == .noSuchFileOrDirectory)
        #expect(SpawnError(report: report(NS_STAGE_MOUNT_BIND, index: 0), binds: ["/t"]).step.description == "mount(bind, /t)")
        #expect(SpawnError(report: report(NS_STAGE_BIND_SOURCE, index: 0), binds: ["/t"], bindSources: ["/s"]).step.description
            == "open(/s)")
        #expect(SpawnError(report: report(NS_STAGE_TMPFS_NOT_OWNED, index: 0), tmpfs: ["/srv/tools"]).step.description
            == "tmpfs target /srv/tools is not the caller's")
        #expect(SpawnError(report: report(NS_STAGE_BIND_NOT_OWNED, index: 0), binds: ["/home/a"], bindSources: ["/srv/b"]).description
            == "bind /srv/b onto /home/a: not both directories of the caller's: Operation not permitted")
        #expect(SpawnError(report: report(NS_STAGE_RESOLVE_AS, index: 3), tmpfs: ["/a"]).step.description == "setfsuid/setgroups for ?")
    }

    @Test func aChildsReportNamesThePathsTheParentKnows() {
        #expect(SpawnError(report: report(NS_STAGE_CHDIR), cwd: "/work").step.description == "chdir(/work)")
        #expect(SpawnError(report: report(NS_STAGE_EXECVE), file: "/bin/zsh").step.description == "execve(/bin/zsh)")
        #expect(SpawnError(report: report(NS_STAGE_STDIO, index: 2)).step.description == "dup2(2)")
        #expect(SpawnError(report: report(NS_STAGE_RLIMIT, index: Int32(RLIMIT_NOFILE.rawValue))).step.description
            == "prlimit(RLIMIT_NOFILE)")
        #expect(SpawnError(report: report(NS_STAGE_RLIMIT, index: 99)).step.description == "prlimit(resource 99)")
        #expect(SpawnError(report: ns_report(stage: 999, error: EPERM, index: -1, pid: 0)).step == .stage(999))
        #expect(SpawnError(report: ns_report(stage: 999, error: EPERM, index: -1, pid: 0)).step.description == "stage 999")
    }

    @Test(arguments: [
        (NS_STAGE_SIGNALS, "sigaction"), (NS_STAGE_CLONE, "clone3"), (NS_STAGE_SETSID, "setsid"),
        (NS_STAGE_SETSID_HOLDER, "setsid"), (NS_STAGE_TIOCSCTTY, "ioctl(TIOCSCTTY)"), (NS_STAGE_SETGROUPS, "setgroups"),
        (NS_STAGE_SETGID, "setresgid"), (NS_STAGE_SETUID, "setresuid"), (NS_STAGE_NO_NEW_PRIVS, "prctl(PR_SET_NO_NEW_PRIVS)"),
        (NS_STAGE_CLOSE_FDS, "close_range"), (NS_STAGE_KEYRING, "keyctl(KEYCTL_JOIN_SESSION_KEYRING)"),
        (NS_STAGE_HOLDER_EXEC, "execveat(nsgroup-holder)"), (NS_STAGE_HOLDER_ARGS, "nsgroup-holder arguments"),
        (NS_STAGE_MOUNT_PROPAGATION, "mount(/, MS_REC|MS_SLAVE)"), (NS_STAGE_SETHOSTNAME, "sethostname"),
        (NS_STAGE_MOUNT_PROC, "mount(proc, /proc)"), (NS_STAGE_MOUNT_DEVPTS, "mount(devpts, /dev/pts)"),
        (NS_STAGE_LOOPBACK, "ioctl(lo, SIOCSIFFLAGS)"), (NS_STAGE_WAIT_PARENT, "waiting for the supervisor"),
        (NS_STAGE_SETID_HOLDER, "setresuid(0) in the user namespace"),
        (NS_STAGE_TIME_OFFSETS, "write(/proc/self/timens_offsets)"), (NS_STAGE_UNSHARE_TIME, "unshare(CLONE_NEWTIME)"),
        (NS_STAGE_DUMPABLE, "prctl(PR_SET_DUMPABLE)"), (NS_STAGE_LOGINUID, "write(/proc/self/loginuid)"),
    ])
    func stagesWithoutAnArgument(_ stage: ns_stage, _ text: String) {
        #expect(SpawnError(report: report(stage)).step.description == text)
    }

    @Test func theSupervisorsOwnSteps() {
        let steps: [(SpawnError.Step, String)] = [
            (.pipe2, "pipe2"), (.writeGoAhead, "write(go-ahead)"), (.readStat(pid: 42), "read /proc/42/stat"),
            (.readNamespaceLink(pid: 42, entry: "pid_for_children"), "readlink(/proc/42/ns/pid_for_children)"),
            (.holderExitedDuringSetup, "nsgroup-holder exited during set-up"), (.waitingForHolder, "waiting for nsgroup-holder"),
            (.writeMap(path: "/proc/42/uid_map"), "write(/proc/42/uid_map)"), (.recordHolder, "record the holder"),
            (.resourceLimitCount(3), "resource limits (3, not 16)"), (.pidfdOpen(pid: 42), "pidfd_open(42)"),
            (.openNamespaces(pid: 42), "open(/proc/42/ns)"), (.openPtmx, "open(/dev/pts/ptmx)"), (.signal, "pidfd_send_signal"),
            (.mkdir(path: "/run/netns"), "mkdir(/run/netns)"), (.makeShared(path: "/run/netns"), "mount(/run/netns, MS_SHARED)"),
            (.createFile(path: "/run/netns/lan"), "create /run/netns/lan"), (.open(path: "/proc/42/ns/net"), "open(/proc/42/ns/net)"),
            (.bindNamespace(target: "/run/netns/lan"), "mount(/run/netns/lan)"),
        ]
        for (step, text) in steps {
            #expect(step.description == text)
        }
    }

    @Test func stepsCompareByCaseAndArgument() {
        #expect(SpawnError.Step.mountTmpfs(path: "/a") == .mountTmpfs(path: "/a"))
        #expect(SpawnError.Step.mountTmpfs(path: "/a") != .mountBind(target: "/a"))
        #expect(SpawnError.Step.open(path: "/a") != .open(path: "/b"))
    }
}
