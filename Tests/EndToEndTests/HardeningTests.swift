#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// nsgroupd.service's hardening, checked against what it must leave working:
/// the supervisor started with the unit's capability bounding set keeps every
/// kind of group and both root's and a user's sessions, and the exposure
/// figure the README gives is the one systemd-analyze computes.
@Suite struct HardeningTests {
    static let unitPath = Products.repositoryRoot + "/packaging/systemd/nsgroupd.service"

    /// The capabilities the unit's `CapabilityBoundingSet=~…` drops, as
    /// setpriv names them (`sys_module`).
    static func droppedCapabilities() throws -> [String] {
        let unit = try String(contentsOfFile: unitPath, encoding: .utf8)
        let lines = unit.split(separator: "\n").filter { $0.hasPrefix("CapabilityBoundingSet=") }
        guard lines.count == 1, let line = lines.first, line.hasPrefix("CapabilityBoundingSet=~") else {
            throw HarnessError("nsgroupd.service has no single CapabilityBoundingSet=~ line: \(lines)")
        }
        return line.dropFirst("CapabilityBoundingSet=~".count).split(separator: " ").map { name in
            String(name.dropFirst("CAP_".count)).lowercased()
        }
    }

    /// The kernel's numbers of the capabilities the unit drops.
    static let capabilityNumbers: [String: Int] = [
        "sys_module": 16, "sys_rawio": 17, "sys_pacct": 20, "mac_override": 32, "mac_admin": 33, "syslog": 34,
        "wake_alarm": 35, "block_suspend": 36, "audit_read": 37, "perfmon": 38, "bpf": 39, "checkpoint_restore": 40,
    ]

    /// The `CapBnd:` mask of a `/proc/PID/status` text.
    static func boundingSet(_ status: String) throws -> UInt64 {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapBnd:") }),
              let mask = UInt64(line.dropFirst("CapBnd:".count).trimmingCharacters(in: .whitespaces), radix: 16)
        else { throw HarnessError("no CapBnd in \(status)") }
        return mask
    }

    /// A supervisor running under setpriv without `capabilities` in its bounding set.
    static func supervisor(without capabilities: [String]) throws -> TestSupervisor {
        try TestSupervisor(wrapper: ["/usr/bin/setpriv", "--bounding-set=" + capabilities.map { "-" + $0 }.joined(separator: ","), "--"])
    }

    @Test func theSupervisorKeepsEveryKindWithoutWhatTheUnitDrops() throws {
        let dropped = try Self.droppedCapabilities()
        #expect(dropped.count == Self.capabilityNumbers.count, "\(dropped)")
        let supervisor = try Self.supervisor(without: dropped)
        // The drop took effect: nsgroupd lacks each of them and still has CAP_SYS_ADMIN (21).
        let pid = try #require(supervisor.process?.processIdentifier)
        let ownSet = try Self.boundingSet(String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8))
        for name in dropped {
            let bit = try #require(Self.capabilityNumbers[name], "no number for \(name)")
            #expect(ownSet & (1 << UInt64(bit)) == 0, "nsgroupd still has \(name)")
        }
        #expect(ownSet & (1 << 21) != 0)

        // Root: a group of every kind but user, with clock offsets; its session
        // names the host, mounts, sees lo up and has the same bounding set.
        let created = try supervisor.nsgroup(["create", "hard", "--ns", "mnt,uts,ipc,pid,net,cgroup,time",
                                              "--monotonic-offset", "3600", "--boottime-offset", "-60"])
        #expect(created.status == 0, "\(created.stderr)")
        let script = """
            hostname hardened && hostname && mount -t tmpfs scratch /mnt && grep -c ' /mnt ' /proc/self/mountinfo && \
            ip -o link show lo | grep -c 'state UNKNOWN\\|UP' && grep CapBnd /proc/self/status
            """
        let root = try supervisor.nsgroup(["enter", "hard", "--", "sh", "-c", script])
        let lines = root.stdout.split(separator: "\n").map(String.init)
        #expect(root.status == 0 && lines.prefix(3) == ["hardened", "1", "1"], "\(root.stdout) \(root.stderr)")
        if let last = lines.last { #expect(try Self.boundingSet(last) == ownSet) }

        // A user: a group with a user namespace, root inside, /proc of its own pid namespace.
        let alice = try TestUser.alice()
        let userGroup = try supervisor.nsgroup(["create", "hardu", "--ns", "user,mnt,pid,uts"], as: alice)
        #expect(userGroup.status == 0, "\(userGroup.stderr)")
        let inside = try supervisor.nsgroup(["enter", "hardu", "--", "sh", "-c", "id -u; mount -t proc proc /proc && echo mounted"], as: alice)
        #expect(inside.status == 0 && inside.stdout == "0\nmounted\n", "\(inside.stdout) \(inside.stderr)")
        let plain = try supervisor.nsgroup(["create", "hardp"], as: alice)
        #expect(plain.status == 0, "\(plain.stderr)")
        let session = try supervisor.nsgroup(["enter", "hardp", "--", "id", "-un"], as: alice)
        #expect(session.status == 0 && session.stdout == "nsg-alice\n", "\(session.stdout) \(session.stderr)")
    }

    /// The check above can fail: without a capability nsgroupd does need,
    /// creating a group is refused.
    @Test func withoutCapSysAdminNothingIsCreated() throws {
        let supervisor = try Self.supervisor(without: ["sys_admin"])
        let created = try supervisor.nsgroup(["create", "weak"])
        #expect(created.status == 125, "\(created.stdout) \(created.stderr)")
    }

    /// The README's figure is what `systemd-analyze security --offline=yes`
    /// computes for the unit, and it is below the 9.4 of the unit before the
    /// limits. (machined's 6.2, the goal, is out of reach while
    /// sessions inherit the unit's sandbox: the README says why.)
    @Test func theExposureFigureIsTheREADMEs() throws {
        let analyzed = try run("/usr/bin/systemd-analyze", ["security", "--offline=yes", Self.unitPath])
        let summary = try #require(analyzed.stdout.split(separator: "\n").last(where: { $0.contains("Overall exposure level") }),
                                   "\(analyzed.stdout) \(analyzed.stderr)")
        let figure = try #require(summary.split(separator: ":").last?.split(separator: " ").first.map(String.init))
        let readme = try String(contentsOfFile: Products.repositoryRoot + "/README.md", encoding: .utf8)
        #expect(readme.contains("rates nsgroupd.service **\(figure)**"), "systemd-analyze says \(figure); the README says otherwise")
        let value = try #require(Double(figure))
        #expect(value < 9.4)
        let unit = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
        #expect(unit.contains("rates this unit\n# \(figure) "), "the unit's own comment gives another figure than \(figure)")
    }
}
