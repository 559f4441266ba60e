import Foundation
import Glibc
import POSIX
import Testing

/// create / list / inspect / destroy through the real CLI, checked against
/// what the kernel says about the holder.
@Suite struct GroupLifecycleTests {
    static let allKinds = ["mnt", "uts", "ipc", "pid", "net", "cgroup"]

    @Test func defaultGroupHasItsOwnNamespacesOfEveryDefaultKind() throws {
        let supervisor = try TestSupervisor()
        let created = try supervisor.nsgroup(["create", "web"])
        #expect(created.status == 0, "\(created.stderr)")
        let info = try supervisor.inspect("web")
        let holder = try supervisor.holderPID("web")
        let namespaces = try #require(info["namespaces"] as? [String: String])
        #expect(Set(namespaces.keys) == Set(Self.allKinds))
        for kind in Self.allKinds {
            let holderInode = try namespaceInode("/proc/\(holder)/ns/\(kind)")
            let hostInode = try namespaceInode("/proc/self/ns/\(kind)")
            #expect(holderInode != hostInode, "\(kind) should be the group's own")
            #expect(namespaces[kind] == "\(kind):[\(holderInode)]", "the id is written as the kernel writes it")
        }
        // Kinds not requested stay the host's.
        for kind in ["user", "time"] {
            #expect(try namespaceInode("/proc/\(holder)/ns/\(kind)") == namespaceInode("/proc/self/ns/\(kind)"))
        }
        // The holder is PID 1 of the group's pid namespace.
        let nspid = try #require(try ProcFS.statusField(pid: holder, "NSpid"))
        #expect(nspid.split(whereSeparator: { $0 == "\t" || $0 == " " }).last == "1")
    }

    @Test func onlyRequestedKindsAreNew() throws {
        let supervisor = try TestSupervisor()
        let created = try supervisor.nsgroup(["create", "partial", "--ns", "uts,net"])
        #expect(created.status == 0, "\(created.stderr)")
        let holder = try supervisor.holderPID("partial")
        for kind in Self.allKinds {
            let differs = try namespaceInode("/proc/\(holder)/ns/\(kind)") != namespaceInode("/proc/self/ns/\(kind)")
            #expect(differs == ["uts", "net"].contains(kind), "\(kind)")
        }
        let namespaces = try #require(try supervisor.inspect("partial")["namespaces"] as? [String: String])
        #expect(Set(namespaces.keys) == ["uts", "net"])
    }

    @Test func hostnameIsSetInsideAndDefaultsToTheName() throws {
        let supervisor = try TestSupervisor()
        #expect(try supervisor.nsgroup(["create", "named", "--hostname", "box.example"]).status == 0)
        #expect(try supervisor.nsgroup(["create", "plain"]).status == 0)
        let hostHostname = try run("/bin/hostname", []).stdout
        for (group, expected) in [("named", "box.example"), ("plain", "plain")] {
            let holder = try supervisor.holderPID(group)
            let inside = try run("/usr/bin/nsenter", ["-t", "\(holder)", "-u", "hostname"])
            #expect(inside.stdout == expected + "\n")
        }
        #expect(try run("/bin/hostname", []).stdout == hostHostname)
    }

    @Test func tmpfsIsMountedInsideOnlyAndProcIsTheGroups() throws {
        let supervisor = try TestSupervisor()
        let mountPoint = supervisor.directory + "/scratch"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
        let created = try supervisor.nsgroup(["create", "scratch", "--tmpfs", mountPoint])
        #expect(created.status == 0, "\(created.stderr)")
        let holder = try supervisor.holderPID("scratch")

        func mounts(_ pid: String) throws -> [(point: String, type: String, options: String)] {
            try String(contentsOfFile: "/proc/\(pid)/mountinfo", encoding: .utf8).split(separator: "\n").map { line in
                let fields = line.split(separator: " ").map(String.init)
                let dash = fields.firstIndex(of: "-")!
                return (fields[4], fields[dash + 1], fields[5])
            }
        }
        let inside = try mounts("\(holder)").filter { $0.point == mountPoint }
        #expect(inside.count == 1)
        #expect(inside.first?.type == "tmpfs")
        #expect(inside.first?.options.contains("nosuid") == true)
        #expect(inside.first?.options.contains("nodev") == true)
        #expect(try mounts("self").contains { $0.point == mountPoint } == false, "nothing mounted inside reaches the host")
        // A fresh /proc for the group's pid namespace: its /proc/1 is the holder.
        let procInside = try mounts("\(holder)").filter { $0.point == "/proc" }
        #expect(procInside.last?.type == "proc")
        let inner = try run("/usr/bin/nsenter", ["-t", "\(holder)", "-m", "-p", "cat", "/proc/1/cmdline"])
        #expect(inner.stdout.hasPrefix("nsgroup-holder\0scratch"))
    }

    @Test func destroyEndsTheHolderAndItsNamespaces() throws {
        let supervisor = try TestSupervisor()
        #expect(try supervisor.nsgroup(["create", "doomed"]).status == 0)
        let holder = try supervisor.holderPID("doomed")
        let pidfd = try Pidfd.open(pid: holder)
        let inodes = try Self.allKinds.map { ($0, try namespaceInode("/proc/\(holder)/ns/\($0)")) }

        // Clock ticks since boot now: what starts later was never in the group.
        let beforeDestroy = try ticksSinceBoot()
        // The searches below find the holder while it lives, so their coming
        // back empty after destroy means something.
        #expect(holderProcesses(named: "doomed") == [holder])
        for (kind, inode) in inodes {
            #expect(processes(inNamespace: kind, inode: inode, startedBy: beforeDestroy).contains(holder), "\(kind):[\(inode)]")
        }
        let destroyed = try supervisor.nsgroup(["destroy", "doomed"])
        #expect(destroyed.status == 0, "\(destroyed.stderr)")
        // destroy answers once the holder is reaped: it is gone already.
        let holderAlive = pidfd.isAlive
        #expect(!holderAlive)
        #expect(holderProcesses(named: "doomed").isEmpty)
        for (kind, inode) in inodes {
            #expect(processes(inNamespace: kind, inode: inode, startedBy: beforeDestroy).isEmpty, "\(kind):[\(inode)] still in use")
        }
        #expect(try supervisor.groupNames().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: supervisor.stateDirectory + "/groups/doomed.json"))
        let again = try supervisor.nsgroup(["inspect", "doomed"])
        #expect(again.status != 0)
        #expect(again.stderr == "nsgroup: no group named \"doomed\"\n")
    }

    @Test func listShowsATableAndJSON() throws {
        let supervisor = try TestSupervisor()
        #expect(try supervisor.nsgroup(["create", "b-second", "--ns", "net"]).status == 0)
        #expect(try supervisor.nsgroup(["create", "a-first"]).status == 0)
        let table = try supervisor.nsgroup(["list"])
        let lines = table.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0].split(separator: " ", omittingEmptySubsequences: true) == ["NAME", "OWNER", "NAMESPACES", "PID", "STATE", "MEM", "PIDS", "AGE"])
        #expect(lines[1].hasPrefix("a-first "))
        #expect(lines[1].contains(" root "))
        #expect(lines[1].contains("mnt,uts,ipc,pid,net,cgroup"))
        #expect(lines[2].hasPrefix("b-second "))
        let json = try supervisor.nsgroup(["list", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let groups = try #require(object["groups"] as? [[String: Any]])
        #expect(groups.compactMap { $0["name"] as? String } == ["a-first", "b-second"])
        #expect(json.stdout.split(separator: "\n").count == 1, "--json prints the result as one line")
    }

    @Test func statefileRecordsTheGroupAtomically() throws {
        let supervisor = try TestSupervisor()
        #expect(try supervisor.nsgroup(["create", "recorded"]).status == 0)
        let holder = try supervisor.holderPID("recorded")
        let groupsDir = supervisor.stateDirectory + "/groups"
        var st = stat()
        #expect(stat(groupsDir, &st) == 0)
        #expect(st.st_mode & 0o7777 == 0o700)
        #expect(st.st_uid == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: groupsDir) == ["recorded.json"])
        let data = try #require(FileManager.default.contents(atPath: groupsDir + "/recorded.json"))
        let record = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(record["holderPID"] as? Int == Int(holder))
        #expect(record["holderStartTime"] as? Int == Int(try ProcFS.startTime(pid: holder)))
        #expect((record["namespaces"] as? [String])?.count == 6)
    }

    @Test func failedCreateLeavesNothingBehind() throws {
        let supervisor = try TestSupervisor()
        let result = try supervisor.nsgroup(["create", "broken", "--tmpfs", "/nonexistent/nsgroup-test"])
        #expect(result.status == 125)
        #expect(result.stderr == "nsgroup: cannot create group \"broken\": mount(tmpfs, /nonexistent/nsgroup-test): No such file or directory\n")
        #expect(holderProcesses(named: "broken").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: supervisor.stateDirectory + "/groups").isEmpty)
        #expect(try supervisor.groupNames().isEmpty)
        // The name is free again.
        #expect(try supervisor.nsgroup(["create", "broken"]).status == 0)
    }

    /// A state file that cannot be written (the state directory's file system is full) is
    /// the supervisor's failure, not the group's: internal, and nothing is left behind.
    @Test func anUnwritableStateFileFailsCreateAsInternal() throws {
        let supervisor = try TestSupervisor(start: false)
        try FileManager.default.createDirectory(atPath: supervisor.stateDirectory, withIntermediateDirectories: true)
        #expect(try run("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "nsg-full", supervisor.stateDirectory]).status == 0)
        defer { _ = try? run("/bin/umount", ["-l", supervisor.stateDirectory]) }
        try supervisor.start()
        defer { supervisor.stop(destroyGroups: true) }
        // Fill what is left of the 64 KiB.
        _ = try run("/bin/dd", ["if=/dev/zero", "of=\(supervisor.stateDirectory)/filler", "bs=4k", "count=64"])
        let result = try supervisor.nsgroup(["create", "unsaved"])
        #expect(result.status == 125)
        #expect(result.stderr == "nsgroup: cannot create group \"unsaved\": writing its state file failed: No space left on device\n")
        #expect(holderProcesses(named: "unsaved").isEmpty)
        #expect(try supervisor.groupNames().isEmpty)
    }

    @Test func createRefusesBadRequestsWithClearMessages() throws {
        let supervisor = try TestSupervisor()
        let cases: [([String], String)] = [
            (["create", "Bad!"], "invalid group name \"Bad!\""),
            (["create", "x", "--ns", "mnt,bogus"], "unknown namespace kind \"bogus\""),
            (["create", "x", "--ns", "net", "--hostname", "h"], "create: --hostname needs a uts namespace"),
            (["create", "x", "--ns", "net", "--tmpfs", "/tmp"], "create: --tmpfs needs a mnt namespace"),
            (["create", "x", "--tmpfs", "relative"], "must be an absolute, normalised path"),
        ]
        for (arguments, message) in cases {
            let result = try supervisor.nsgroup(arguments)
            #expect(result.status == 125, "\(arguments)")
            #expect(result.stderr.hasPrefix("nsgroup: "), "\(arguments)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
        #expect(try supervisor.nsgroup(["create", "dup"]).status == 0)
        let duplicate = try supervisor.nsgroup(["create", "dup"])
        #expect(duplicate.stderr == "nsgroup: a group named \"dup\" already exists\n")
    }

    @Test func versionShowsClientServerAndProtocol() throws {
        let supervisor = try TestSupervisor()
        let result = try supervisor.nsgroup(["version"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("nsgroup 0.1.0 (protocol 1)"))
        #expect(result.stdout.contains("nsgroupd 0.1.0 (protocol 1)"))
    }
}
