import Testing
import Glibc
import Namespaces
import POSIX
import CPOSIX

// MARK: - Holders

@Suite("HolderSpawner with the real nsgroup-holder")
struct HolderSpawnTests {
    static let kindSets: [[NamespaceKind]] = [
        [.uts],
        [.net, .ipc],
        [.mnt, .pid],
        [.cgroup],
        NamespaceKind.defaultSet,
    ]

    @Test(arguments: kindSets)
    func requestedNamespacesAreNewOthersAreOurs(_ kinds: [NamespaceKind]) throws {
        let spec = HolderSpec(name: Sys.uniqueName("unit-ns"), namespaces: Set(kinds))
        try Groups.withHolder(spec) { holder throws in
            let alive = holder.pidfd.isAlive
            #expect(alive)
            for kind in NamespaceKind.allCases {
                let entry = kind == .time ? "time_for_children" : kind.rawValue
                let theirs = try #require(Sys.readLink("/proc/\(holder.pid)/ns/\(entry)"))
                let ours = try #require(Sys.readLink("/proc/self/ns/\(entry)"))
                if kinds.contains(kind) {
                    #expect(theirs != ours, "\(kind) was requested but is shared")
                } else {
                    #expect(theirs == ours, "\(kind) was not requested but is new")
                }
            }
            // What the spawner reports is what the kernel says, in kind order.
            #expect(holder.namespaces.map(\.kind) == kinds.sorted())
            for id in holder.namespaces {
                #expect(id.description == Sys.readLink("/proc/\(holder.pid)/ns/\(id.kind.holderEntry)"))
            }
            #expect(holder.startTime == (try ProcFS.startTime(pid: holder.pid)))
        }
    }

    @Test func holderIsInitOfItsPidNamespaceWithItsOwnProc() throws {
        let name = Sys.uniqueName("unit-pid")
        try Groups.withHolder(HolderSpec(name: name, namespaces: [.mnt, .pid])) { holder throws in
            let nspid = try #require(Sys.statusLine(holder.pid, "NSpid"))
            let ids = nspid.split(whereSeparator: { $0 == "\t" || $0 == " " })
            #expect(ids.count == 2)
            #expect(ids.first.map(String.init) == String(holder.pid))
            #expect(ids.last == "1")
            // The holder mounted a proc of its own pid namespace: pid 1 there is the holder.
            let cmdline = try #require(Sys.readFile("/proc/\(holder.pid)/root/proc/1/cmdline"))
            let argv = cmdline.split(separator: "\0").map(String.init)
            #expect(argv.count >= 2 && argv[1] == name, "pid 1 in the group's /proc is \(argv)")
        }
    }

    @Test func holderKeepsOnlyDevNullOnItsStandardDescriptors() throws {
        try Groups.withHolder(HolderSpec(name: Sys.uniqueName("unit-fds"), namespaces: [.uts, .mnt])) { holder throws in
            // The holder closes its status pipe right after reporting; look once it waits for signals.
            try #require(Sys.waitUntilWaitingForSignals(holder.pid))
            let fds = try #require(Sys.directoryEntries("/proc/\(holder.pid)/fd")).sorted()
            #expect(fds == ["0", "1", "2"])
            for fd in fds {
                #expect(Sys.readLink("/proc/\(holder.pid)/fd/\(fd)") == "/dev/null")
            }
        }
    }

    @Test func hostnameIsSetInTheGroupOnly() throws {
        let before = Sys.hostname()
        let wanted = "unit-host-\(String(UInt16.random(in: 0...UInt16.max), radix: 16))"
        try Groups.withHolder(HolderSpec(name: Sys.uniqueName("unit-uts"), namespaces: [.uts], hostname: wanted)) { holder throws in
            let (status, output) = try Sys.run(["/usr/bin/nsenter", "-t", String(holder.pid), "-u", "/usr/bin/hostname"])
            #expect(status == 0)
            #expect(output == wanted + "\n")
        }
        #expect(Sys.hostname() == before)
    }

    @Test func hostnameWithoutAUTSNamespaceIsNotApplied() throws {
        let before = Sys.hostname()
        try Groups.withHolder(HolderSpec(name: Sys.uniqueName("unit-nouts"), namespaces: [.ipc], hostname: "must-not-be-set")) { holder throws in
            let (status, output) = try Sys.run(["/usr/bin/nsenter", "-t", String(holder.pid), "-u", "/usr/bin/hostname"])
            #expect(status == 0)
            #expect(output == before + "\n")
        }
        #expect(Sys.hostname() == before)
    }

    @Test func hostnameTheKernelRefusesIsASpawnError() throws {
        let name = Sys.uniqueName("unit-badhost")
        let spawner = try HolderSpawner(executablePath: Sys.holderPath())
        do throws(SpawnError) {
            let holder = try spawner.spawn(HolderSpec(name: name, namespaces: [.uts], hostname: String(repeating: "h", count: 65)))
            Groups.stop(holder.pidfd)
            Issue.record("a 65-byte hostname was accepted")
        } catch {
            #expect(error.step == .sethostname)
            #expect(error.errno == .invalidArgument)
        }
        #expect(Sys.holderProcesses(named: name).isEmpty)
    }

    @Test func tmpfsIsMountedInsideAndDoesNotReachTheHost() throws {
        let directory = try Sys.makeTemporaryDirectory("nsg-unit-tmpfs")
        defer { Sys.removeTree(directory) }
        let hostDevice = try #require(Sys.statPath(directory)).st_dev
        let spec = HolderSpec(name: Sys.uniqueName("unit-tmpfs"), namespaces: [.mnt], tmpfs: [TmpfsMount(path: directory)])
        try Groups.withHolder(spec) { holder throws in
            let inside = try #require(Sys.statPath("/proc/\(holder.pid)/root\(directory)"))
            #expect(inside.st_dev != hostDevice, "no new file system at \(directory) in the group")
            #expect(inside.st_mode & 0o7777 == 0o700, "a tmpfs is 0700 unless its options say otherwise")
            let mountinfo = try #require(Sys.readFile("/proc/\(holder.pid)/mountinfo"))
            let line = mountinfo.split(separator: "\n").first { $0.split(separator: " ").dropFirst(4).first.map(String.init) == directory }
            let found = try #require(line, "no mount at \(directory) in the group's mountinfo")
            #expect(found.contains(" - tmpfs "))
            #expect(found.contains("nosuid") && found.contains("nodev"))
            // Nothing propagated back to the host.
            let ours = try #require(Sys.readFile("/proc/self/mountinfo"))
            #expect(!ours.contains(" \(directory) "))
            #expect(Sys.statPath(directory)?.st_dev == hostDevice)
        }
    }

    @Test func tmpfsOnAMissingPathFailsAndLeavesNoHolder() throws {
        let name = Sys.uniqueName("unit-tmpfs-missing")
        let path = "/nonexistent-\(name)"
        let spawner = try HolderSpawner(executablePath: Sys.holderPath())
        do throws(SpawnError) {
            let holder = try spawner.spawn(HolderSpec(name: name, namespaces: [.mnt], tmpfs: [TmpfsMount(path: path)]))
            Groups.stop(holder.pidfd)
            Issue.record("a tmpfs on a missing path was accepted")
        } catch {
            #expect(error.step == .mountTmpfs(path: path))
            #expect(error.errno == .noSuchFileOrDirectory)
            #expect(error.errno.name == "ENOENT")
            #expect(error.description == "mount(tmpfs, \(path)): \(String(cString: strerror(ENOENT)))")
        }
        #expect(Sys.holderProcesses(named: name).isEmpty, "the failed holder is still there")
    }

    @Test func failingTmpfsIsNamedByItsPosition() throws {
        let good = try Sys.makeTemporaryDirectory("nsg-unit-good")
        defer { Sys.removeTree(good) }
        let name = Sys.uniqueName("unit-tmpfs-second")
        let missing = "/nonexistent-second-\(name)"
        let spawner = try HolderSpawner(executablePath: Sys.holderPath())
        do throws(SpawnError) {
            let holder = try spawner.spawn(HolderSpec(name: name, namespaces: [.mnt],
                                                      tmpfs: [TmpfsMount(path: good), TmpfsMount(path: missing)]))
            Groups.stop(holder.pidfd)
            Issue.record("accepted")
        } catch {
            #expect(error.step == .mountTmpfs(path: missing))
            #expect(error.errno == .noSuchFileOrDirectory)
        }
        #expect(Sys.holderProcesses(named: name).isEmpty)
    }

    @Test func tmpfsIsNotMountedThroughASymlink() throws {
        let directory = try Sys.makeTemporaryDirectory("nsg-unit-link")
        defer { Sys.removeTree(directory) }
        let target = directory + "/target"
        let link = directory + "/link"
        #expect(mkdir(target, 0o755) == 0)
        #expect(symlink(target, link) == 0)
        let name = Sys.uniqueName("unit-tmpfs-link")
        let spawner = try HolderSpawner(executablePath: Sys.holderPath())
        do throws(SpawnError) {
            let holder = try spawner.spawn(HolderSpec(name: name, namespaces: [.mnt], tmpfs: [TmpfsMount(path: link)]))
            Groups.stop(holder.pidfd)
            Issue.record("a tmpfs was mounted through a symlink")
        } catch {
            #expect(error.step == .mountTmpfs(path: link))
            #expect(error.errno == Errno(rawValue: ELOOP))
        }
        #expect(Sys.holderProcesses(named: name).isEmpty)
    }

    @Test func killedThroughItsPidfdAndReaped() throws {
        let spawner = try HolderSpawner(executablePath: Sys.holderPath())
        let holder = try spawner.spawn(HolderSpec(name: Sys.uniqueName("unit-kill"), namespaces: [.uts]))
        let pidfd = holder.takePidfd()
        defer { Groups.stop(pidfd) }
        let aliveBefore = pidfd.isAlive
        #expect(aliveBefore)
        let early = try pidfd.reap()
        #expect(early == nil, "a running holder cannot be reaped")
        try pidfd.signal(SIGKILL)
        let status = try #require(try pidfd.reap(block: true))
        #expect(status == ExitStatus(code: nil, signal: SIGKILL))
        #expect(status.shellStatus == 128 + SIGKILL)
        let aliveAfter = pidfd.isAlive
        #expect(!aliveAfter)
        // Reaped already: what is left to say is that it ended.
        let again = try pidfd.reap()
        #expect(again == ExitStatus(code: nil, signal: nil))
    }

    @Test func sigtermEndsTheHolderCleanly() throws {
        let spawner = try HolderSpawner(executablePath: Sys.holderPath())
        let holder = try spawner.spawn(HolderSpec(name: Sys.uniqueName("unit-term"), namespaces: [.ipc]))
        defer { Groups.stop(holder.pidfd) }
        try holder.pidfd.signal(SIGTERM)
        #expect(try holder.pidfd.reap(block: true) == ExitStatus(code: 0, signal: nil))
    }

    @Test func otherSignalsAreIgnored() throws {
        let spawner = try HolderSpawner(executablePath: Sys.holderPath())
        let holder = try spawner.spawn(HolderSpec(name: Sys.uniqueName("unit-hup"), namespaces: [.ipc]))
        defer { Groups.stop(holder.pidfd) }
        try holder.pidfd.signal(SIGHUP)
        try holder.pidfd.signal(SIGINT)
        try holder.pidfd.signal(SIGUSR1)
        try holder.pidfd.signal(SIGTERM)
        // Had any of the others killed it, the status would name that signal.
        #expect(try holder.pidfd.reap(block: true) == ExitStatus(code: 0, signal: nil))
    }

    @Test func executableIsPinnedWhenTheSpawnerIsMade() throws {
        let directory = try Sys.makeTemporaryDirectory("nsg-unit-exe")
        defer { Sys.removeTree(directory) }
        let copy = directory + "/nsgroup-holder"
        let (copied, _) = try Sys.run(["/bin/cp", try Sys.holderPath(), copy])
        #expect(copied == 0)
        let spawner = try HolderSpawner(executablePath: copy)
        // Replace the file on disk with something that would fail as a holder.
        #expect(try Sys.run(["/bin/cp", "/bin/false", directory + "/other"]).status == 0)
        #expect(rename(directory + "/other", copy) == 0)
        let holder = try spawner.spawn(HolderSpec(name: Sys.uniqueName("unit-pinned"), namespaces: [.uts]))
        defer { Groups.stop(holder.pidfd) }
        let alive = holder.pidfd.isAlive
        #expect(alive)
    }

    @Test func spawnerRefusesWhatIsNotAnExecutableFile() throws {
        #expect(throws: Errno.noSuchFileOrDirectory) { _ = try HolderSpawner(executablePath: "/nonexistent/nsgroup-holder") }
        #expect(throws: Errno.permissionDenied) { _ = try HolderSpawner(executablePath: "/tmp") }
    }

    @Test func loopbackIsUpInTheGroupsNetworkNamespace() throws {
        try Groups.withHolder(HolderSpec(name: Sys.uniqueName("unit-lo"), namespaces: [.net])) { holder throws in
            let (status, output) = try Sys.run(["/usr/bin/nsenter", "-t", String(holder.pid), "-n", "/usr/sbin/ip", "-o", "link", "show", "lo"])
            #expect(status == 0)
            let flags = output.split(separator: "<").dropFirst().first?.split(separator: ">").first.map { $0.split(separator: ",").map(String.init) } ?? []
            #expect(flags.contains("LOOPBACK"), "\(output)")
            #expect(flags.contains("UP"), "lo is down in the group: \(output)")
            // Only lo: a new network namespace has nothing else.
            let (_, all) = try Sys.run(["/usr/bin/nsenter", "-t", String(holder.pid), "-n", "/usr/sbin/ip", "-o", "link", "show"])
            #expect(all.split(separator: "\n").count == 1, "\(all)")
        }
    }

    /// PID 1 of a pid namespace inherits the orphans of its namespace; the holder must reap them.
    @Test func holderReapsOrphansOfItsPidNamespace() throws {
        let kinds: Set<NamespaceKind> = [.pid, .mnt]
        try Groups.withHolder(HolderSpec(name: Sys.uniqueName("unit-reap"), namespaces: kinds)) { holder throws in
            let files = try NamespaceFiles(holder: holder.pidfd, kinds: kinds)
            let pipes = try StdioPipes()
            // The shell leaves a child behind and exits: the child becomes the holder's.
            let spec = Groups.session(["/bin/sh", "-c", "/bin/sleep 1000 & echo started"])
            let session = try SessionSpawner.spawn(spec, namespaces: files, stdio: pipes.childEnds)
            defer { Groups.stop(session) }
            pipes.closeChildEnds()
            #expect(Sys.readUntil(pipes.stdoutRead, contains: "started\n") == "started\n")
            let status = try session.reap(block: true)
            #expect(status == ExitStatus(code: 0, signal: nil))

            let children = (Sys.readFile("/proc/\(holder.pid)/task/\(holder.pid)/children") ?? "")
                .split(separator: " ").compactMap { pid_t($0) }
            try #require(children.count == 1, "the holder's children: \(children)")
            let orphan = children[0]
            defer { _ = kill(orphan, SIGKILL) }
            #expect(kill(orphan, SIGKILL) == 0)
            // Once reaped, the process is gone from /proc; a holder that does not
            // reap would leave a zombie there for good.
            var gone = false
            for _ in 0..<30_000 {
                if Sys.readFile("/proc/\(orphan)/stat") == nil { gone = true; break }
                usleep(1000)
            }
            #expect(gone, "the orphan is still there: \(Sys.readFile("/proc/\(orphan)/stat") ?? "")")
            let alive = holder.pidfd.isAlive
            #expect(alive, "reaping an orphan ended the holder")
        }
    }

    @Test func holderFileThatCannotBeExecutedIsAnExecError() throws {
        let directory = try Sys.makeTemporaryDirectory("nsg-unit-noexec")
        defer { Sys.removeTree(directory) }
        let copy = directory + "/nsgroup-holder"
        #expect(try Sys.run(["/bin/cp", try Sys.holderPath(), copy]).status == 0)
        #expect(chmod(copy, 0o644) == 0)
        let name = Sys.uniqueName("unit-noexec")
        let spawner = try HolderSpawner(executablePath: copy)
        do throws(SpawnError) {
            let holder = try spawner.spawn(HolderSpec(name: name, namespaces: [.uts]))
            Groups.stop(holder.pidfd)
            Issue.record("a file without exec permission ran as the holder")
        } catch {
            #expect(error.step == .execHolder)
            #expect(error.errno == .permissionDenied)
        }
    }

    @Test func programThatExitsWithoutReportingIsAnError() throws {
        let spawner = try HolderSpawner(executablePath: "/bin/true")
        do throws(SpawnError) {
            let holder = try spawner.spawn(HolderSpec(name: Sys.uniqueName("unit-true"), namespaces: [.uts]))
            Groups.stop(holder.pidfd)
            Issue.record("/bin/true was taken for a holder")
        } catch {
            #expect(error.step == .holderExitedDuringSetup)
            #expect(error.errno == Errno(rawValue: EPIPE))
        }
    }

    /// A HolderSpec may name the time kind: the holder must then get a time namespace
    /// of its own (its children's, time_for_children), with the offsets asked for.
    /// This kernel has time namespaces (5.6+), so refusing is a failure too.
    @Test func timeNamespaceIsCreated() throws {
        let spawner = try HolderSpawner(executablePath: Sys.holderPath())
        let spec = HolderSpec(name: Sys.uniqueName("unit-time"), namespaces: [.time], monotonicOffset: 1000, boottimeOffset: 2000)
        let holder = try spawner.spawn(spec)
        defer { Groups.stop(holder.pidfd) }
        Self.checkOwnTimeNamespace(holder)
        #expect(holder.namespaces.map(\.kind) == [.time])
        let offsets = Sys.readFile("/proc/\(holder.pid)/timens_offsets") ?? ""
        // The holder itself stays in ours: the offsets it wrote are its children's.
        let ours = Sys.readLink("/proc/self/ns/time")
        #expect(Sys.readLink("/proc/\(holder.pid)/ns/time") == ours)
        let lines = offsets.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(lines.contains(["monotonic", "1000", "0"]), "timens_offsets: \(offsets)")
        #expect(lines.contains(["boottime", "2000", "0"]), "timens_offsets: \(offsets)")
    }

    static func checkOwnTimeNamespace(_ holder: borrowing SpawnedHolder) {
        guard let ours = Sys.readLink("/proc/self/ns/time_for_children"),
              let theirs = Sys.readLink("/proc/\(holder.pid)/ns/time_for_children") else {
            Issue.record("cannot read time_for_children")
            return
        }
        #expect(theirs != ours, "the group's time namespace is the host's (\(theirs))")
        let reported = holder.namespaces.map(\.description)
        #expect(reported != [ours])
    }
}

// MARK: - Sessions

@Suite("SessionSpawner in a holder's namespaces")
struct SessionSpawnTests {
    static let kinds: Set<NamespaceKind> = [.mnt, .uts, .ipc, .pid, .net, .cgroup]

    /// Spawns `spec` in a fresh group and runs `body` with the session and its pipes;
    /// the session and the holder are killed and reaped afterwards.
    static func withSession<R>(_ spec: SessionSpec, kinds: Set<NamespaceKind> = kinds,
                               _ body: (borrowing SpawnedHolder, borrowing Pidfd, StdioPipes) throws -> R) throws -> R {
        try Groups.withHolder(HolderSpec(name: Sys.uniqueName("unit-session"), namespaces: kinds)) { holder throws in
            let files = try NamespaceFiles(holder: holder.pidfd, kinds: kinds)
            let pipes = try StdioPipes()
            let session = try SessionSpawner.spawn(spec, namespaces: files, stdio: pipes.childEnds)
            defer { Groups.stop(session) }
            pipes.closeChildEnds()
            return try body(holder, session, pipes)
        }
    }

    /// The SpawnError of a session that must not start.
    static func spawnFailure(_ spec: SessionSpec, kinds: Set<NamespaceKind> = [.uts]) throws -> SpawnError? {
        try Groups.withHolder(HolderSpec(name: Sys.uniqueName("unit-session-fail"), namespaces: kinds)) { holder throws in
            let files = try NamespaceFiles(holder: holder.pidfd, kinds: kinds)
            let pipes = try StdioPipes()
            do throws(SpawnError) {
                let session = try SessionSpawner.spawn(spec, namespaces: files, stdio: pipes.childEnds)
                Groups.stop(session)
                Issue.record("\(spec.argv) started")
                return nil
            } catch {
                return error
            }
        }
    }

    @Test func exitCodeArrivesThroughThePidfd() throws {
        try Self.withSession(Groups.session(["/bin/sh", "-c", "exit 7"])) { _, session, _ throws in
            let status = try #require(try session.reap(block: true))
            #expect(status == ExitStatus(code: 7, signal: nil))
            #expect(status.shellStatus == 7)
        }
    }

    @Test func deathBySignal() throws {
        try Self.withSession(Groups.session(["/bin/sh", "-c", "kill -TERM $$; exit 3"])) { _, session, _ throws in
            #expect(try session.reap(block: true) == ExitStatus(code: nil, signal: SIGTERM))
        }
    }

    @Test func killedThroughThePidfd() throws {
        try Self.withSession(Groups.session(["/bin/sh", "-c", "echo up; read line"])) { _, session, pipes throws in
            #expect(Sys.readUntil(pipes.stdoutRead, contains: "up\n") == "up\n")
            #expect(try session.reap() == nil)
            try session.signal(SIGKILL)
            let status = try #require(try session.reap(block: true))
            #expect(status.signal == SIGKILL)
            #expect(status.shellStatus == 137)
        }
    }

    @Test func missingProgramIsAnExecveError() throws {
        let error = try #require(try Self.spawnFailure(Groups.session(["/nonexistent"])))
        #expect(error.step == .execve(file: "/nonexistent"))
        #expect(error.errno == .noSuchFileOrDirectory)
    }

    @Test func nameIsSearchedInSearchPath() throws {
        let spec = Groups.session(["sh", "-c", "exit 3"], searchPath: "/nonexistent-dir::/usr/bin:/bin")
        try Self.withSession(spec) { _, session, _ throws in
            #expect(try session.reap(block: true) == ExitStatus(code: 3, signal: nil))
        }
    }

    @Test func nameMissingFromSearchPathIsAnExecveError() throws {
        let error = try #require(try Self.spawnFailure(Groups.session(["sh", "-c", "exit 0"], searchPath: "/nonexistent-a:/nonexistent-b")))
        #expect(error.step == .execve(file: "sh"))
        #expect(error.errno == .noSuchFileOrDirectory)
    }

    @Test func credentialsAreExactlyTheCallers() throws {
        let groups: [gid_t] = [4242, 100, 65534]
        let spec = Groups.session(["/bin/sh", "-c", "id -u; id -g; id -G; echo ready; read line"], uid: 65534, gid: 65534, groups: groups)
        try Self.withSession(spec) { _, session, pipes throws in
            let output = Sys.readUntil(pipes.stdoutRead, contains: "ready\n")
            let lines = output.split(separator: "\n").map(String.init)
            #expect(lines.count == 4)
            #expect(lines.first == "65534")
            #expect(lines.dropFirst().first == "65534")
            // id -G: the effective gid, then the supplementary groups (getgroups()).
            let fromInside = Set((lines.dropFirst(2).first ?? "").split(separator: " ").compactMap { gid_t($0) })
            #expect(fromInside == Set(groups + [65534]))

            // And as the kernel shows it from outside while the process waits.
            let pid = session.pid
            #expect(Sys.statusLine(pid, "Uid") == "65534\t65534\t65534\t65534")
            #expect(Sys.statusLine(pid, "Gid") == "65534\t65534\t65534\t65534")
            let shown = (Sys.statusLine(pid, "Groups") ?? "").split(separator: " ").compactMap { gid_t($0) }
            #expect(shown.sorted() == groups.sorted())
            #expect(try ProcFS.supplementaryGroups(pid: pid).sorted() == groups.sorted())
            #expect(Sys.statusLine(pid, "NoNewPrivs") == "1")
            for key in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
                #expect(Sys.statusLine(pid, key) == "0000000000000000", "\(key)")
            }
            Sys.write(pipes.stdinWrite, "done\n")
            #expect(try session.reap(block: true) == ExitStatus(code: 0, signal: nil))
        }
    }

    /// Blocked and ignored signals survive exec; a session must start with
    /// none, whatever the supervisor blocks or ignores itself. (Run under
    /// `swift test`, the test process ignores signal 32, as nsgroupd ignores
    /// 32 and 33: glibc's sigaction() refuses to touch those two, so the
    /// child's reset loop cannot undo it.)
    @Test func signalsAreNotInherited() throws {
        var block = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGUSR2)
        sigaddset(&block, SIGWINCH)
        var previous = sigset_t()
        #expect(pthread_sigmask(SIG_BLOCK, &block, &previous) == 0)
        defer { _ = pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try Self.withSession(Groups.session(["/bin/cat"])) { _, session, pipes throws in
            Sys.write(pipes.stdinWrite, "x\n")
            _ = Sys.readUntil(pipes.stdoutRead, contains: "x\n")
            #expect(Sys.statusLine(session.pid, "SigBlk") == "0000000000000000")
            #expect(Sys.statusLine(session.pid, "SigIgn") == "0000000000000000")
        }
    }

    /// Files opened while the holder lived keep its namespaces, but a pid
    /// namespace whose init is gone takes no new process.
    @Test func enteringAGroupWhoseHolderDied() throws {
        let kinds: Set<NamespaceKind> = [.pid, .uts]
        let spawner = try HolderSpawner(executablePath: Sys.holderPath())
        let holder = try spawner.spawn(HolderSpec(name: Sys.uniqueName("unit-gone"), namespaces: kinds))
        defer { Groups.stop(holder.pidfd) }
        let files = try NamespaceFiles(holder: holder.pidfd, kinds: kinds)
        try holder.pidfd.signal(SIGKILL)
        _ = try holder.pidfd.reap(block: true)
        let pipes = try StdioPipes()
        do throws(SpawnError) {
            let session = try SessionSpawner.spawn(Groups.session(["/bin/true"]), namespaces: files, stdio: pipes.childEnds)
            Groups.stop(session)
            Issue.record("a process started in a dead pid namespace")
        } catch {
            #expect(error.step == .clone3)
            #expect(error.errno == Errno(rawValue: ENOMEM))
        }
    }

    @Test func emptyGroupListGivesNoSupplementaryGroups() throws {
        let spec = Groups.session(["/bin/sh", "-c", "echo ready; read line"], uid: 65534, gid: 65534, groups: [])
        try Self.withSession(spec) { _, session, pipes throws in
            _ = Sys.readUntil(pipes.stdoutRead, contains: "ready\n")
            #expect(Sys.statusLine(session.pid, "Groups") == "")
            #expect(try ProcFS.supplementaryGroups(pid: session.pid) == [])
        }
    }

    @Test func onlyStandardDescriptorsSurviveAsListedFromInside() throws {
        // A descriptor the test process leaves inheritable on purpose: it must not reach the session.
        let leaked = try Sys.inheritableDescriptor()
        defer { close(leaked) }
        try Self.withSession(Groups.session(["/bin/ls", "/proc/self/fd"])) { _, session, pipes throws in
            let output = Sys.readAll(pipes.stdoutRead)
            #expect(try session.reap(block: true) == ExitStatus(code: 0, signal: nil))
            let fds = Set(output.split(separator: "\n").compactMap { Int($0) })
            // ls itself holds one more: the directory it is listing, at the lowest free number.
            #expect(fds == [0, 1, 2, 3], "descriptors in the session: \(fds.sorted())")
            #expect(!fds.contains(Int(leaked)))
        }
    }

    @Test func onlyStandardDescriptorsSurviveAsSeenFromOutside() throws {
        let leaked = try Sys.inheritableDescriptor()
        defer { close(leaked) }
        try Self.withSession(Groups.session(["/bin/cat"])) { _, session, pipes throws in
            // Once cat has echoed a line it is past its start-up and sits in its loop.
            Sys.write(pipes.stdinWrite, "ping\n")
            #expect(Sys.readUntil(pipes.stdoutRead, contains: "ping\n") == "ping\n")
            let fds = try #require(Sys.directoryEntries("/proc/\(session.pid)/fd")).sorted()
            #expect(fds == ["0", "1", "2"])
            #expect(try ProcFS.openDescriptorCount(pid: session.pid) == 3)
            Sys.closeQuietly(&pipes.stdinWrite)
            #expect(try session.reap(block: true) == ExitStatus(code: 0, signal: nil))
        }
    }

    @Test func standardDescriptorsAreTheGivenPipes() throws {
        let spec = Groups.session(["/bin/sh", "-c", "read line; echo \"out:$line\"; echo \"err:$line\" >&2"])
        try Self.withSession(spec) { _, session, pipes throws in
            Sys.write(pipes.stdinWrite, "hello\n")
            #expect(Sys.readUntil(pipes.stdoutRead, contains: "\n") == "out:hello\n")
            #expect(Sys.readUntil(pipes.stderrRead, contains: "\n") == "err:hello\n")
            #expect(try session.reap(block: true) == ExitStatus(code: 0, signal: nil))
        }
    }

    @Test func namespacesAreTheHolders() throws {
        try Self.withSession(Groups.session(["/bin/cat"])) { holder, session, pipes throws in
            Sys.write(pipes.stdinWrite, "x\n")
            _ = Sys.readUntil(pipes.stdoutRead, contains: "x\n")
            for kind in NamespaceKind.allCases where kind != .time {
                let theirs = Sys.readLink("/proc/\(session.pid)/ns/\(kind.rawValue)")
                #expect(theirs != nil)
                #expect(theirs == Sys.readLink("/proc/\(holder.pid)/ns/\(kind.rawValue)"), "\(kind)")
                if Self.kinds.contains(kind) {
                    #expect(theirs != Sys.readLink("/proc/self/ns/\(kind.rawValue)"), "\(kind)")
                }
            }
            // Inside the group's pid namespace, below its init (the holder).
            let nspid = (Sys.statusLine(session.pid, "NSpid") ?? "").split(whereSeparator: { $0 == "\t" || $0 == " " })
            #expect(nspid.count == 2)
            #expect(nspid.first.map(String.init) == String(session.pid))
            #expect((nspid.last.flatMap { Int($0) } ?? 0) > 1)
            // Its own session, with no controlling terminal.
            let stat = try #require(Sys.readFile("/proc/\(session.pid)/stat"))
            let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
            #expect(String(fields[3]) == String(session.pid), "session id")
            #expect(fields[4] == "0", "tty_nr")
            // The supervisor is the parent, so it can reap it.
            #expect(Sys.statusLine(session.pid, "PPid") == String(getpid()))
        }
    }

    @Test func environmentIsExactlyTheGivenOne() throws {
        let environment = ["PATH=/usr/bin:/bin", "HOME=/home/x", "USER=x", "LOGNAME=x", "SHELL=/bin/sh", "TERM=dumb"]
        let spec = Groups.session(["/usr/bin/env"], environment: environment)
        try Self.withSession(spec) { _, session, pipes throws in
            let output = Sys.readAll(pipes.stdoutRead)
            #expect(try session.reap(block: true) == ExitStatus(code: 0, signal: nil))
            #expect(output.split(separator: "\n").map(String.init).sorted() == environment.sorted())
        }
    }

    @Test func umaskIsReset() throws {
        try Self.withSession(Groups.session(["/bin/sh", "-c", "umask"])) { _, session, pipes throws in
            #expect(Sys.readAll(pipes.stdoutRead) == "0022\n")
            _ = try session.reap(block: true)
        }
    }

    @Test func existingDirectoryIsEntered() throws {
        let spec = Groups.session(["/bin/sh", "-c", "pwd"], cwd: "/usr/bin")
        try Self.withSession(spec) { _, session, pipes throws in
            #expect(Sys.readAll(pipes.stdoutRead) == "/usr/bin\n")
            #expect(try session.reap(block: true) == ExitStatus(code: 0, signal: nil))
        }
    }

    @Test func missingDirectoryFallsBackToRoot() throws {
        let spec = Groups.session(["/bin/sh", "-c", "pwd"], cwd: "/nonexistent-unit-dir", cwdFallback: true)
        try Self.withSession(spec) { _, session, pipes throws in
            #expect(Sys.readAll(pipes.stdoutRead) == "/\n")
            #expect(try session.reap(block: true) == ExitStatus(code: 0, signal: nil))
        }
    }

    @Test func missingDirectoryWithoutFallbackIsAChdirError() throws {
        let spec = Groups.session(["/bin/sh", "-c", "pwd"], cwd: "/nonexistent-unit-dir", cwdFallback: false)
        let error = try #require(try Self.spawnFailure(spec))
        #expect(error.step == .chdir(path: "/nonexistent-unit-dir"))
        #expect(error.errno == .noSuchFileOrDirectory)
    }

    @Test func directoryTheCallerMayNotEnter() throws {
        let directory = try Sys.makeTemporaryDirectory("nsg-unit-private")
        defer { Sys.removeTree(directory) }
        #expect(chmod(directory, 0o700) == 0)
        // Root may go there, uid 65534 may not: the check is made as the caller.
        let refused = try #require(try Self.spawnFailure(Groups.session(["/bin/sh", "-c", "pwd"], cwd: directory)))
        #expect(refused.step == .chdir(path: directory))
        #expect(refused.errno == .permissionDenied)

        let spec = Groups.session(["/bin/sh", "-c", "pwd"], cwd: directory, cwdFallback: true)
        try Self.withSession(spec) { _, session, pipes throws in
            #expect(Sys.readAll(pipes.stdoutRead) == "/\n")
            _ = try session.reap(block: true)
        }
    }

    /// Search permission is needed on every directory on the way, not only the last:
    /// the directory is entered after the switch to the caller's ids.
    @Test func directoryBelowOneTheCallerMayNotSearch() throws {
        let directory = try Sys.makeTemporaryDirectory("nsg-unit-parent")
        defer { Sys.removeTree(directory) }
        #expect(chmod(directory, 0o700) == 0)
        #expect(mkdir(directory + "/sub", 0o755) == 0)
        #expect(chmod(directory + "/sub", 0o755) == 0)
        let refused = try #require(try Self.spawnFailure(Groups.session(["/bin/sh", "-c", "pwd"], cwd: directory + "/sub")))
        #expect(refused.step == .chdir(path: "\(directory)/sub"))
        #expect(refused.errno == .permissionDenied)
    }

    /// The vfork-style children make themselves non-dumpable before they switch to the
    /// caller; that flag belongs to the memory they share with us, and must be ours again after.
    @Test func spawningLeavesTheSupervisorDumpable() throws {
        let before = ns_dumpable()
        try Self.withSession(Groups.session(["/bin/true"])) { _, session, _ throws in
            _ = try session.reap(block: true)
        }
        #expect(ns_dumpable() == before)
    }

    /// The loginuid asked for is the session's (written before entering any namespace);
    /// without one, the session keeps ours.
    @Test func loginuidIsTheGivenOne() throws {
        var spec = Groups.session(["/bin/cat", "/proc/self/loginuid"])
        spec.loginUID = 4321
        try Self.withSession(spec) { _, session, pipes throws in
            #expect(Sys.readAll(pipes.stdoutRead) == "4321")
            _ = try session.reap(block: true)
        }
        let ours = try #require(Sys.readFile("/proc/self/loginuid"))
        try Self.withSession(Groups.session(["/bin/cat", "/proc/self/loginuid"])) { _, session, pipes throws in
            #expect(Sys.readAll(pipes.stdoutRead) == ours)
            _ = try session.reap(block: true)
        }
    }

    /// Entering a group's user namespace (whose setgroups is "deny") with an explicit
    /// group list: the groups are set before joining it and kept; an empty list gives none.
    @Test(arguments: [[gid_t](), [4242, 4343]])
    func userNamespaceEntryKeepsTheGivenGroups(_ groups: [gid_t]) throws {
        let kinds: Set<NamespaceKind> = [.user, .mnt, .uts]
        let maps = UserMaps(uids: [IDMapping(inside: 0, outside: 3_900_000, count: 1)],
                            gids: [IDMapping(inside: 0, outside: 3_900_000, count: 1)])
        let holderSpec = HolderSpec(name: Sys.uniqueName("unit-userns"), namespaces: kinds, userMaps: maps)
        try Groups.withHolder(holderSpec) { holder throws in
            #expect(Sys.readFile("/proc/\(holder.pid)/setgroups") == "deny\n")
            let files = try NamespaceFiles(holder: holder.pidfd, kinds: kinds)
            var spec = Groups.session(["/bin/sh", "-c", "echo ready; read line"], uid: 0, gid: 0, groups: groups)
            spec.userNamespaceRoot = true
            let pipes = try StdioPipes()
            let session = try SessionSpawner.spawn(spec, namespaces: files, stdio: pipes.childEnds)
            defer { Groups.stop(session) }
            pipes.closeChildEnds()
            #expect(Sys.readUntil(pipes.stdoutRead, contains: "ready\n") == "ready\n")
            // As the host sees it: the owner's ids, exactly these groups, in the group's user namespace.
            #expect(Sys.statusLine(session.pid, "Uid") == "3900000\t3900000\t3900000\t3900000")
            let shown = (Sys.statusLine(session.pid, "Groups") ?? "").split(separator: " ").compactMap { gid_t($0) }
            #expect(shown.sorted() == groups.sorted())
            #expect(Sys.readLink("/proc/\(session.pid)/ns/user") == Sys.readLink("/proc/\(holder.pid)/ns/user"))
            Sys.write(pipes.stdinWrite, "done\n")
            #expect(try session.reap(block: true) == ExitStatus(code: 0, signal: nil))
        }
    }

    @Test func rootSessionKeepsItsIdentity() throws {
        let spec = Groups.session(["/bin/sh", "-c", "id -u; id -g"], uid: 0, gid: 0, groups: [0])
        try Self.withSession(spec) { _, session, pipes throws in
            #expect(Sys.readAll(pipes.stdoutRead) == "0\n0\n")
            #expect(try session.reap(block: true) == ExitStatus(code: 0, signal: nil))
        }
    }

    @Test func namespaceFilesFollowEnterOrder() throws {
        let kinds: Set<NamespaceKind> = [.mnt, .net, .pid, .uts]
        try Groups.withHolder(HolderSpec(name: Sys.uniqueName("unit-order"), namespaces: kinds)) { holder throws in
            let files = try NamespaceFiles(holder: holder.pidfd, kinds: kinds)
            #expect(files.kinds == NamespaceKind.enterOrder.filter { kinds.contains($0) })
            #expect(files.kinds == [.uts, .net, .pid, .mnt])
        }
    }

    @Test func namespaceFilesOfADeadHolderAreRefused() throws {
        let spawner = try HolderSpawner(executablePath: Sys.holderPath())
        let holder = try spawner.spawn(HolderSpec(name: Sys.uniqueName("unit-dead"), namespaces: [.uts]))
        defer { Groups.stop(holder.pidfd) }
        try holder.pidfd.signal(SIGKILL)
        _ = try holder.pidfd.reap(block: true)
        #expect(throws: Errno.self) { _ = try NamespaceFiles(holder: holder.pidfd, kinds: [.uts]) }
    }
}
