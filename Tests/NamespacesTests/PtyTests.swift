import Testing
import Glibc
import Namespaces
import POSIX

private let tiocgptn: UInt = 0x8004_5430  // TIOCGPTN: the pty number of a master

private func major(_ dev: dev_t) -> UInt64 { ((UInt64(dev) >> 8) & 0xFFF) | ((UInt64(dev) >> 32) & ~0xFFF) }
private func minor(_ dev: dev_t) -> UInt64 { (UInt64(dev) & 0xFF) | ((UInt64(dev) >> 12) & ~0xFF) }

/// The pty number behind a master, as the kernel reports it.
private func ptyNumber(_ master: Int32) -> UInt32? {
    var n: UInt32 = 0
    return ioctl(master, tiocgptn, &n) == 0 ? n : nil
}

/// Fields of /proc/PID/stat after the command name; fields[0] is field 3 (state).
private func statFields(_ pid: pid_t) -> [Substring]? {
    guard let text = Sys.readFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
    return text[text.index(after: close)...].split(separator: " ")
}

@Suite("Pty")
struct PtyTests {
    static let ttyGroup: gid_t = 5

    @Test func hostPtyPair() throws {
        let pty = try Pty.open(holderPID: nil, uid: 65534, ttyGroup: Self.ttyGroup, rows: 33, columns: 111)
        let master = pty.master.rawValue
        let slave = pty.slave.rawValue
        #expect(isatty(slave) == 1)
        #expect(isatty(master) == 1)
        #expect(fcntl(master, F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(slave, F_GETFD) & FD_CLOEXEC != 0)

        let st = try #require(Sys.statFD(slave))
        #expect(st.st_mode & S_IFMT == S_IFCHR)
        #expect(st.st_uid == 65534)
        #expect(st.st_gid == Self.ttyGroup)
        #expect(st.st_mode & 0o7777 == 0o620)

        // The slave is the master's own peer: its minor is the master's pty number.
        let number = try #require(ptyNumber(master))
        #expect(minor(st.st_rdev) == UInt64(number))
        #expect(major(st.st_rdev) >= 136 && major(st.st_rdev) <= 143)
        // And it is the node the host's devpts shows for that number.
        let node = try #require(Sys.statPath("/dev/pts/\(number)"))
        #expect(node.st_rdev == st.st_rdev)
        #expect(node.st_ino == st.st_ino)
    }

    @Test func windowSizeIsSetAndReadBack() throws {
        let pty = try Pty.open(holderPID: nil, uid: 0, ttyGroup: Self.ttyGroup, rows: 24, columns: 80)
        let size = try #require(Pty.windowSize(pty.slave.rawValue))
        #expect(size.rows == 24 && size.columns == 80)
        try Pty.setWindowSize(pty.master.rawValue, rows: 50, columns: 132)
        let resized = try #require(Pty.windowSize(pty.slave.rawValue))
        #expect(resized.rows == 50 && resized.columns == 132)
        let fromMaster = try #require(Pty.windowSize(pty.master.rawValue))
        #expect(fromMaster.rows == 50 && fromMaster.columns == 132)
    }

    @Test func zeroSizeLeavesTheSizeUnset() throws {
        let pty = try Pty.open(holderPID: nil, uid: 0, ttyGroup: Self.ttyGroup, rows: 0, columns: 90)
        let size = try #require(Pty.windowSize(pty.slave.rawValue))
        #expect(size.rows == 0 && size.columns == 0)
    }

    @Test func windowSizeOfSomethingElse() throws {
        let (readEnd, writeEnd) = try Sys.pipe()
        defer { close(readEnd); close(writeEnd) }
        #expect(Pty.windowSize(readEnd) == nil)
        #expect(throws: Errno(rawValue: ENOTTY)) { try Pty.setWindowSize(readEnd, rows: 1, columns: 1) }
    }

    @Test func bytesFlowBetweenTheEnds() throws {
        let pty = try Pty.open(holderPID: nil, uid: 0, ttyGroup: Self.ttyGroup, rows: 24, columns: 80)
        Sys.write(pty.slave.rawValue, "to master\n")
        // The line discipline turns "\n" into "\r\n" on the way out.
        #expect(Sys.readUntil(pty.master.rawValue, contains: "\n") == "to master\r\n")
    }

    @Test func ptyInsideAGroupUsesTheGroupsOwnDevpts() throws {
        let spec = HolderSpec(name: Sys.uniqueName("unit-pty"), namespaces: [.mnt, .uts], ttyGroup: Self.ttyGroup)
        try Groups.withHolder(spec) { holder throws in
            let groupPts = try #require(Sys.statPath("/proc/\(holder.pid)/root/dev/pts"))
            let hostPts = try #require(Sys.statPath("/dev/pts"))
            #expect(groupPts.st_dev != hostPts.st_dev, "the holder did not mount a devpts instance of its own")

            let pty = try Pty.open(holderPID: holder.pid, uid: 65534, ttyGroup: Self.ttyGroup, rows: 10, columns: 20)
            let slave = try #require(Sys.statFD(pty.slave.rawValue))
            #expect(slave.st_dev == groupPts.st_dev)
            #expect(slave.st_dev != hostPts.st_dev)
            #expect(slave.st_uid == 65534)
            #expect(slave.st_gid == Self.ttyGroup)
            #expect(slave.st_mode & 0o7777 == 0o620)

            let number = try #require(ptyNumber(pty.master.rawValue))
            let node = try #require(Sys.statPath("/proc/\(holder.pid)/root/dev/pts/\(number)"))
            #expect(node.st_ino == slave.st_ino)
            #expect(node.st_rdev == slave.st_rdev)
            #expect(Pty.windowSize(pty.slave.rawValue).map { $0.rows == 10 && $0.columns == 20 } == true)
        }
    }

    @Test func ptyOfAMissingHolderFails() {
        #expect(throws: Errno.noSuchFileOrDirectory) {
            _ = try Pty.open(holderPID: 1 << 23, uid: 0, ttyGroup: Self.ttyGroup, rows: 1, columns: 1)
        }
    }

    /// The group's owner may bind-mount anything over dev/pts/ptmx inside it (as root of
    /// her user namespace). A FIFO there must be refused without being opened: a reader
    /// waiting in open(2) for a writer stays where it is, and nothing blocks.
    @Test func fifoOverPtmxIsRefusedWithoutOpeningIt() throws {
        let directory = try Sys.makeTemporaryDirectory("nsg-unit-ptmx")
        defer { Sys.removeTree(directory) }
        let fifo = directory + "/fifo"
        #expect(mkfifo(fifo, 0o666) == 0)
        let spec = HolderSpec(name: Sys.uniqueName("unit-ptmx-fifo"), namespaces: [.mnt, .uts], ttyGroup: Self.ttyGroup)
        try Groups.withHolder(spec) { holder throws in
            let mounted = try Sys.run(["/usr/bin/nsenter", "-t", String(holder.pid), "-m", "/bin/mount", "--bind", fifo, "/dev/pts/ptmx"])
            try #require(mounted.status == 0, "bind-mounting the FIFO over ptmx failed")
            // A reader blocked in open(2) until a writer comes.
            let reader = try Sys.spawn(["/bin/cat", fifo])
            defer { Sys.killAndWait(reader) }
            var blocked = false
            for _ in 0..<5000 where !blocked {
                let wchan = Sys.readFile("/proc/\(reader)/wchan") ?? ""
                blocked = wchan.contains("fifo") || wchan.contains("wait_for_partner")
                if !blocked { usleep(1000) }
            }
            try #require(blocked, "the reader never blocked opening the FIFO")

            #expect(throws: Errno(rawValue: ENOTTY)) {
                _ = try Pty.open(holderPID: holder.pid, uid: 65534, ttyGroup: Self.ttyGroup, rows: 1, columns: 1)
            }
            usleep(200_000)
            var status: Int32 = 0
            #expect(waitpid(reader, &status, WNOHANG) == 0, "the FIFO over ptmx was opened (its reader got through)")
        }
    }

    /// A device other than ptmx (here /dev/null, 1:3), or the host's own ptmx (5:2 but on
    /// devtmpfs, not the group's devpts), over dev/pts/ptmx is refused too.
    @Test(arguments: ["/dev/null", "/dev/ptmx"])
    func otherNodeOverPtmxIsRefused(_ node: String) throws {
        let spec = HolderSpec(name: Sys.uniqueName("unit-ptmx-dev"), namespaces: [.mnt, .uts], ttyGroup: Self.ttyGroup)
        try Groups.withHolder(spec) { holder throws in
            let mounted = try Sys.run(["/usr/bin/nsenter", "-t", String(holder.pid), "-m", "/bin/mount", "--bind", node, "/dev/pts/ptmx"])
            try #require(mounted.status == 0, "bind-mounting \(node) over ptmx failed")
            #expect(throws: Errno(rawValue: ENOTTY)) {
                _ = try Pty.open(holderPID: holder.pid, uid: 65534, ttyGroup: Self.ttyGroup, rows: 1, columns: 1)
            }
        }
    }

    /// An interactive session: its own session, with the group's pty slave as controlling terminal.
    @Test func sessionGetsThePtyAsControllingTerminal() throws {
        let kinds: Set<NamespaceKind> = [.mnt, .pid, .uts]
        try Groups.withHolder(HolderSpec(name: Sys.uniqueName("unit-ctty"), namespaces: kinds, ttyGroup: Self.ttyGroup)) { holder throws in
            let pty = try Pty.open(holderPID: holder.pid, uid: 65534, ttyGroup: Self.ttyGroup, rows: 24, columns: 80)
            let slave = pty.slave.rawValue
            let files = try NamespaceFiles(holder: holder.pidfd, kinds: kinds)
            let spec = Groups.session(["/bin/cat"], uid: 65534, gid: 65534, controllingTerminal: true)
            let session = try SessionSpawner.spawn(spec, namespaces: files, stdio: (slave, slave, slave))
            defer { Groups.stop(session) }

            let rdev = try #require(Sys.statFD(slave)).st_rdev
            let encoded = (minor(rdev) & 0xFF) | (major(rdev) << 8) | ((minor(rdev) & ~0xFF) << 12)
            let fields = try #require(statFields(session.pid))
            try #require(fields.count > 5)
            #expect(String(fields[3]) == String(session.pid), "session leader")
            #expect(String(fields[4]) == String(encoded), "controlling terminal is the pty slave")
            #expect(String(fields[5]) == String(session.pid), "in the foreground")

            // Typing reaches the program and its output comes back through the master.
            Sys.write(pty.master.rawValue, "typed\n")
            let seen = Sys.readUntil(pty.master.rawValue, contains: "typed\r\ntyped\r\n")
            #expect(seen == "typed\r\ntyped\r\n")
        }
    }
}
