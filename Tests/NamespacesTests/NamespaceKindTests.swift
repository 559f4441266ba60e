import Testing
import Glibc
import Namespaces
import POSIX

@Suite("NamespaceKind and NamespaceID")
struct NamespaceKindTests {
    // MARK: NamespaceID text

    @Test func parsesWhatTheKernelWrites() throws {
        let id = try #require(NamespaceID("mnt:[4026531841]"))
        #expect(id.kind == .mnt)
        #expect(id.inode == 4_026_531_841)
        #expect(id.description == "mnt:[4026531841]")
        #expect(id == NamespaceID(kind: .mnt, inode: 4_026_531_841))
    }

    @Test(arguments: NamespaceKind.allCases)
    func printsAndParsesEveryKind(_ kind: NamespaceKind) throws {
        for inode: UInt64 in [0, 1, 4_026_531_840, 4_026_532_999, UInt64.max] {
            let id = NamespaceID(kind: kind, inode: inode)
            #expect(id.description == "\(kind.rawValue):[\(inode)]")
            #expect(NamespaceID(id.description) == id)
        }
    }

    @Test(arguments: [
        "", "mnt", "mnt:", "mnt:[", "mnt:[]", "mnt:]", "mnt:[abc]", "mnt:[12a]", "mnt:[1", "mnt:1]", "mnt:1",
        "mnt:[-1]", "mnt:[18446744073709551616]", "MNT:[1]", "mount:[1]", "pid_for_children:[1]",
        "time_for_children:[1]", "mnt :[1]", " mnt:[1]", "mnt:[1] ", "mnt:[ 1]", "mnt:[1 ]", "mnt:[1]]",
        "mnt:[[1]", "mnt::[1]", "mnt:[1]x", ":[1]", "net:[0x10]", "net:[1.0]",
    ])
    func rejectsGarbage(_ text: String) {
        #expect(NamespaceID(text) == nil, "\(text) parsed as \(String(describing: NamespaceID(text)))")
    }

    /// Only the kernel's own spelling is accepted: anything that parses prints back as it was written.
    @Test(arguments: ["net:[+4026531840]", "mnt:[04026531841]", "uts:[+0]"])
    func acceptsOnlyTheCanonicalSpelling(_ text: String) {
        if let id = NamespaceID(text) {
            #expect(id.description == text, "\(text) was accepted as \(id)")
        }
    }

    // MARK: /proc/self/ns

    @Test(arguments: NamespaceKind.allCases)
    func readingOurOwnNamespaceMatchesReadlink(_ kind: NamespaceKind) throws {
        let link = try #require(Sys.readLink("/proc/self/ns/\(kind.rawValue)"))
        let id = try NamespaceID.read(pid: getpid(), kind: kind)
        #expect(id.description == link)
        #expect(id.kind == kind)
        // The inode in the link is the inode of the namespace file.
        let st = try #require(Sys.statPath("/proc/self/ns/\(kind.rawValue)"))
        #expect(UInt64(st.st_ino) == id.inode)
    }

    @Test func childrenEntriesAreReadToo() throws {
        for (kind, entry) in [(NamespaceKind.pid, "pid_for_children"), (.time, "time_for_children")] {
            let link = try #require(Sys.readLink("/proc/self/ns/\(entry)"))
            let id = try NamespaceID.read(pid: getpid(), kind: kind, entry: entry)
            #expect(id.description == link)
        }
        #expect(NamespaceKind.time.holderEntry == "time_for_children")
        for kind in NamespaceKind.allCases where kind != .time {
            #expect(kind.holderEntry == kind.rawValue)
        }
    }

    @Test func readingAMissingProcessFails() {
        // pid_max is at most 2^22, so this pid cannot exist.
        #expect(throws: Errno.noSuchFileOrDirectory) { _ = try NamespaceID.read(pid: 1 << 23, kind: .net) }
    }

    // MARK: clone flags

    /// The values `man 2 clone` / <linux/sched.h> give.
    static let documentedFlags: [(NamespaceKind, Int32)] = [
        (.mnt, 0x0002_0000),    // CLONE_NEWNS
        (.cgroup, 0x0200_0000), // CLONE_NEWCGROUP
        (.uts, 0x0400_0000),    // CLONE_NEWUTS
        (.ipc, 0x0800_0000),    // CLONE_NEWIPC
        (.user, 0x1000_0000),   // CLONE_NEWUSER
        (.pid, 0x2000_0000),    // CLONE_NEWPID
        (.net, 0x4000_0000),    // CLONE_NEWNET
        (.time, 0x0000_0080),   // CLONE_NEWTIME
    ]

    @Test(arguments: documentedFlags)
    func cloneFlagIsTheDocumentedConstant(_ kind: NamespaceKind, _ flag: Int32) {
        #expect(kind.cloneFlag == flag)
    }

    /// NS_GET_NSTYPE (ioctl_ns(2)) makes the kernel itself say which CLONE_NEW*
    /// type a namespace file has.
    @Test(arguments: NamespaceKind.allCases)
    func cloneFlagIsWhatTheKernelReports(_ kind: NamespaceKind) throws {
        let fd = open("/proc/self/ns/\(kind.rawValue)", O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        let nsGetNSType: UInt = 0xB703  // _IO(0xb7, 0x3)
        let type = ioctl(fd, nsGetNSType)
        #expect(type == kind.cloneFlag, "kernel says 0x\(String(type, radix: 16)) for \(kind)")
    }

    @Test func cloneFlagsAreDistinctSingleBits() {
        let flags = NamespaceKind.allCases.map(\.cloneFlag)
        #expect(Set(flags).count == flags.count)
        for flag in flags { #expect(flag.nonzeroBitCount == 1) }
    }

    // MARK: order

    @Test func enterOrderHasEveryKindOnce() {
        let order = NamespaceKind.enterOrder
        #expect(order.count == NamespaceKind.allCases.count)
        #expect(Set(order) == Set(NamespaceKind.allCases))
    }

    @Test func enterOrderIsNsentersOrder() throws {
        let order = NamespaceKind.enterOrder
        // The user namespace first (the supervisor enters as root), and the pid
        // namespace before mnt, as util-linux nsenter does.
        #expect(order.first == .user)
        let pid = try #require(order.firstIndex(of: .pid))
        let mnt = try #require(order.firstIndex(of: .mnt))
        #expect(pid < mnt)
    }

    @Test func defaultSetIsUniqueAndHasNeitherUserNorTime() {
        let defaults = NamespaceKind.defaultSet
        #expect(Set(defaults).count == defaults.count)
        #expect(!defaults.contains(.user))
        #expect(!defaults.contains(.time))
        #expect(defaults.sorted() == defaults, "listed in kind order")
    }

    @Test func orderingIsDeclarationOrder() {
        #expect(NamespaceKind.allCases.sorted() == NamespaceKind.allCases)
        #expect(NamespaceKind.mnt < .time)
        #expect(!(NamespaceKind.net < .net))
    }

    @Test func rawValuesAreTheProcNames() throws {
        let entries = Set(try #require(Sys.directoryEntries("/proc/self/ns")))
        for kind in NamespaceKind.allCases {
            #expect(entries.contains(kind.rawValue), "/proc/self/ns has no \(kind.rawValue)")
        }
    }
}
