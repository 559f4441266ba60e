import Foundation
import Glibc
import POSIX
import Synchronization
import Testing

/// Red-team checks of asynchronous spawning (enter and create launches).
@Suite struct AsyncSpawnAttackTests {
    /// Children of `parent` that are zombies (exited, never reaped).
    static func zombies(of parent: pid_t) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { pid_t($0) }.filter { pid in
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
            let lines = status.split(separator: "\n")
            let ppid = lines.first { $0.hasPrefix("PPid:") }?.dropFirst(5).trimmingCharacters(in: .whitespaces)
            let state = lines.first { $0.hasPrefix("State:") }?.dropFirst(6).trimmingCharacters(in: .whitespaces)
            return ppid == String(parent) && state?.hasPrefix("Z") == true
        }
    }

    /// Two creates under way at once may name the same /run/netns file (the
    /// check at request time cannot see a create still setting up): the second
    /// fails when it publishes, and the holder it abandons must be reaped, not
    /// left a zombie of the supervisor.
    @Test func aCreateThatLosesTheNetnsNameLeavesNoZombie() throws {
        let supervisor = try TestSupervisor()
        for round in 0..<3 {
            let netns = "nsg-t\(getpid())-race\(round)"
            defer { _ = try? run("/usr/bin/ip", ["netns", "delete", netns]) }
            let results = Mutex<[CommandResult]>([])
            NoWaitingTests.atOnce(4) { n in
                if let result = try? supervisor.nsgroup(["create", "netns-\(round)-\(n)", "--ns", "net", "--netns-name", netns]) {
                    results.withLock { $0.append(result) }
                }
            }
            let all = results.withLock { $0 }
            #expect(all.filter { $0.status == 0 }.count == 1, "\(all.map(\.stderr))")
        }
        // Whatever the losers' holders were, nothing stays unreaped.
        #expect(eventually(timeoutSeconds: 3) { Self.zombies(of: supervisor.pid).isEmpty },
                "zombie children of nsgroupd: \(Self.zombies(of: supervisor.pid))")
    }

    /// A session stalled before it execs (its program under a lease of its own
    /// user's) already runs as that user: it must hold its stdio and its status
    /// channel, nothing of the supervisor's (connections, other groups'
    /// namespaces, other launches' terminals).
    @Test func aStalledSessionHoldsNoneOfTheSupervisorsDescriptors() throws {
        let supervisor = try TestSupervisor(config: "[limits]\nspawn-timeout = 10\n")
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "fds"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["create", "other"]).status == 0)
        let program = try NoWaitingTests.LeasedProgram(in: supervisor.directory)
        let enter = try supervisor.startEnter("fds", [program.path], as: alice)
        defer { enter.terminate(); program.release() }
        var session: pid_t = 0
        try waitUntil("the session waits on the lease", timeoutSeconds: 5) {
            session = NoWaitingTests.children(of: supervisor.pid, uid: alice.uid).first ?? 0
            return session != 0
        }
        let supervisorFDs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(supervisor.pid)/fd"))?.count ?? 0
        let held = (try FileManager.default.contentsOfDirectory(atPath: "/proc/\(session)/fd"))
            .compactMap { Int32($0) }.sorted()
        let targets = held.map { (try? ProcFS.readLink("/proc/\(session)/fd/\($0)")) ?? "?" }
        #expect(held.count <= 4, "the stalled session holds \(held.count) descriptors (nsgroupd has \(supervisorFDs)): \(zip(held, targets).map { "\($0)->\($1)" })")
    }
}
