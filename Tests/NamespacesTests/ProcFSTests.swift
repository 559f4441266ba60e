import Testing
import Glibc
import Namespaces
import POSIX

@Suite("ProcFS")
struct ProcFSTests {
    // MARK: start time

    @Test func ownStartTimeIsStable() throws {
        let first = try ProcFS.startTime(pid: getpid())
        let second = try ProcFS.startTime(pid: getpid())
        #expect(first == second)
        #expect(first > 0)
    }

    @Test func aFreshChildStartedNoEarlierThanUs() throws {
        let ours = try ProcFS.startTime(pid: getpid())
        var (readEnd, writeEnd) = try Sys.pipe()
        defer { Sys.closeQuietly(&readEnd); Sys.closeQuietly(&writeEnd) }
        let child = try Sys.spawn(["/bin/cat"], stdin: readEnd)
        defer { Sys.killAndWait(child) }
        let theirs = try ProcFS.startTime(pid: child)
        #expect(theirs >= ours)
        #expect(try ProcFS.startTime(pid: child) == theirs)
    }

    /// The command name may hold spaces and parentheses; the fields after it still count right.
    @Test func startTimeOfAProcessWithAnAwkwardName() throws {
        let directory = try Sys.makeTemporaryDirectory("nsg-unit-comm")
        defer { Sys.removeTree(directory) }
        let awkward = "a) 1 2 (b) c"
        #expect(symlink("/bin/cat", directory + "/" + awkward) == 0)

        var (readEnd, writeEnd) = try Sys.pipe()
        defer { Sys.closeQuietly(&readEnd); Sys.closeQuietly(&writeEnd) }
        let before = try Sys.spawn(["/bin/cat"], stdin: readEnd)
        defer { Sys.killAndWait(before) }
        let odd = try Sys.spawn([directory + "/" + awkward], stdin: readEnd)
        defer { Sys.killAndWait(odd) }
        let after = try Sys.spawn(["/bin/cat"], stdin: readEnd)
        defer { Sys.killAndWait(after) }

        // spawn returns before the child's exec: its comm is the parent thread's until then.
        var comm = ""
        for _ in 0..<500 {
            comm = Sys.readFile("/proc/\(odd)/comm") ?? ""
            if comm == awkward + "\n" { break }
            usleep(10_000)
        }
        #expect(comm == awkward + "\n", "the name did not take within 5 s: \(comm)")
        let start = try ProcFS.startTime(pid: odd)
        #expect(try ProcFS.startTime(pid: before) <= start)
        #expect(start <= (try ProcFS.startTime(pid: after)))
    }

    @Test func startTimeOfAMissingProcessFails() {
        #expect(throws: Errno.noSuchFileOrDirectory) { _ = try ProcFS.startTime(pid: 1 << 23) }
    }

    // MARK: status

    @Test func ownSupplementaryGroupsMatchGetgroups() throws {
        let count = getgroups(0, nil)
        try #require(count >= 0)
        var groups = [gid_t](repeating: 0, count: Int(count))
        let got = getgroups(count, &groups)
        try #require(got == count)
        #expect(try ProcFS.supplementaryGroups(pid: getpid()).sorted() == groups.sorted())
    }

    /// A process whose groups differ from ours: what /proc says is what the process itself sees.
    @Test func supplementaryGroupsOfAnotherProcess() throws {
        let groups: [gid_t] = [3, 70, 4000, 65534]
        let us = try Pidfd.open(pid: getpid())
        let files = try NamespaceFiles(holder: us, kinds: [])
        let pipes = try StdioPipes()
        let spec = Groups.session(["/bin/sh", "-c", "id -G; read line"], uid: 65534, gid: 65534, groups: groups)
        let child = try SessionSpawner.spawn(spec, namespaces: files, stdio: pipes.childEnds)
        defer { Groups.stop(child) }
        pipes.closeChildEnds()
        let line = Sys.readUntil(pipes.stdoutRead, contains: "\n")
        let fromInside = Set(line.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { gid_t($0) })
        let fromProc = try ProcFS.supplementaryGroups(pid: child.pid)
        #expect(fromProc.sorted() == groups.sorted())
        #expect(Set(fromProc).union([65534]) == fromInside)
    }

    @Test func statusFieldReadsOneLine() throws {
        #expect(try ProcFS.statusField(pid: getpid(), "Pid") == String(getpid()))
        #expect(try ProcFS.statusField(pid: getpid(), "Tgid") == String(getpid()))
        #expect(try ProcFS.statusField(pid: getpid(), "NoSuchKey") == nil)
        // A key is matched whole: "Pid" is not "PPid".
        #expect(try ProcFS.statusField(pid: getpid(), "PPid") == String(getppid()))
    }

    @Test func residentSizeIsPositive() throws {
        let kib = try ProcFS.residentKiB(pid: getpid())
        #expect(kib > 0)
        // VmRSS as the status file spells it ("12345 kB").
        let line = try #require(Sys.statusLine(getpid(), "VmRSS"))
        #expect(line.hasSuffix(" kB"))
    }

    @Test func residentSizeOfAHolderIsSmall() throws {
        try Groups.withHolder(HolderSpec(name: Sys.uniqueName("unit-rss"), namespaces: [.uts])) { holder throws in
            let kib = try ProcFS.residentKiB(pid: holder.pid)
            #expect(kib > 0)
            // A static C program with no Swift runtime (Package.swift): well under 1 MiB.
            #expect(kib < 1024, "holder RSS is \(kib) KiB")
        }
    }

    @Test func residentSizeOfAMissingProcessFails() {
        #expect(throws: Errno.self) { _ = try ProcFS.residentKiB(pid: 1 << 23) }
    }

    // MARK: descriptors

    /// A shell that opens one more descriptor when told to: the count goes up by exactly one.
    @Test func openDescriptorCountFollowsAnOpen() throws {
        let pipesIn = try Sys.pipe()
        var inRead = pipesIn.read, inWrite = pipesIn.write
        let pipesOut = try Sys.pipe()
        var outRead = pipesOut.read, outWrite = pipesOut.write
        defer {
            Sys.closeQuietly(&inRead); Sys.closeQuietly(&inWrite)
            Sys.closeQuietly(&outRead); Sys.closeQuietly(&outWrite)
        }
        // Descriptor 7 is closed first: the child inherits whatever tests running beside this
        // one have open, and 7 may be one of them.
        let script = "exec 7<&-; echo ready; read a; exec 7</dev/null; echo opened; read b; exec 7<&-; echo closed; read c"
        let child = try Sys.spawn(["/bin/sh", "-c", script], stdin: inRead, stdout: outWrite)
        defer { Sys.killAndWait(child) }
        Sys.closeQuietly(&inRead)
        Sys.closeQuietly(&outWrite)

        #expect(Sys.readUntil(outRead, contains: "ready\n") == "ready\n")
        let before = try ProcFS.openDescriptorCount(pid: child)
        #expect(before == Sys.directoryEntries("/proc/\(child)/fd")?.count)

        Sys.write(inWrite, "go\n")
        #expect(Sys.readUntil(outRead, contains: "opened\n") == "opened\n")
        let opened = try ProcFS.openDescriptorCount(pid: child)
        #expect(opened == before + 1)
        #expect(Sys.readLink("/proc/\(child)/fd/7") == "/dev/null")

        Sys.write(inWrite, "go\n")
        #expect(Sys.readUntil(outRead, contains: "closed\n") == "closed\n")
        #expect(try ProcFS.openDescriptorCount(pid: child) == before)
    }

    @Test func openDescriptorCountOfAMissingProcessFails() {
        #expect(throws: Errno.noSuchFileOrDirectory) { _ = try ProcFS.openDescriptorCount(pid: 1 << 23) }
    }

    // MARK: links and text

    @Test func readLinkAndReadText() throws {
        #expect(try ProcFS.readLink("/proc/self/ns/net") == Sys.readLink("/proc/self/ns/net"))
        #expect(throws: Errno.noSuchFileOrDirectory) { _ = try ProcFS.readLink("/nonexistent-unit-link") }
        #expect(throws: Errno.invalidArgument) { _ = try ProcFS.readLink("/proc/self/status") }  // not a link
        #expect(try ProcFS.readText("/proc/self/comm") == Sys.readFile("/proc/self/comm"))
        #expect(try ProcFS.readText("/proc/self/status", limit: 10).utf8.count == 10)
    }

    /// /proc/PID/limits, which the supervisor reads where prlimit(2) of another user's
    /// process needs a capability it lacks, says what getrlimit says, for every resource.
    @Test func resourceLimitsAreGetrlimits() throws {
        let limits = try ProcFS.resourceLimits(pid: getpid())
        #expect(limits.count == 16)
        for (resource, limit) in limits.enumerated() {
            var own = rlimit()
            #expect(getrlimit(__rlimit_resource_t(UInt32(resource)), &own) == 0)
            #expect(limit == ResourceLimit(soft: UInt64(own.rlim_cur), hard: UInt64(own.rlim_max)), "resource \(resource)")
        }
    }
}
