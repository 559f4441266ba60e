import Foundation
import Glibc
import POSIX
import Testing

/// The nsgroupd process itself: start-up, its socket, stopping.
@Suite struct SupervisorProcessTests {
    @Test func staleSocketIsReplaced() throws {
        let supervisor = try TestSupervisor(start: false)
        // A socket file nobody listens on, as a crashed supervisor leaves it.
        let stale = try UnixSocket.listen(path: supervisor.socketPath)
        _ = consume stale
        #expect(FileManager.default.fileExists(atPath: supervisor.socketPath))
        try supervisor.start()
        #expect(try supervisor.nsgroup(["version"]).status == 0)
    }

    @Test func secondSupervisorOnTheSameSocketRefusesToStart() throws {
        let supervisor = try TestSupervisor()
        let second = try run(Products.nsgroupd, supervisor.arguments)
        #expect(second.status == 1)
        #expect(second.stderr == "nsgroupd: another nsgroupd is already listening on \(supervisor.socketPath)\n")
        #expect(try supervisor.nsgroup(["version"]).status == 0, "the first one is unaffected")
    }

    @Test func startupFailuresPrintOneLine() throws {
        let supervisor = try TestSupervisor(start: false)
        _ = FileManager.default.createFile(atPath: supervisor.stateDirectory, contents: Data("x".utf8))
        let result = try run(Products.nsgroupd, supervisor.arguments)
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("nsgroupd: cannot use state directory \(supervisor.stateDirectory)"))
        #expect(result.stderr.split(separator: "\n").count == 1)

        let notSocket = supervisor.directory + "/plain-file"
        _ = FileManager.default.createFile(atPath: notSocket, contents: Data())
        let second = try run(Products.nsgroupd, ["--socket", notSocket, "--state-dir", supervisor.directory + "/s2",
                                                 "--cgroup-dir", supervisor.cgroupDirectory, "--no-units"])
        #expect(second.status == 1)
        #expect(second.stderr == "nsgroupd: \(notSocket) exists and is not a socket; remove it or choose another --socket\n")
    }

    @Test func clientNamesTheSocketWhenNoSupervisorRuns() throws {
        let supervisor = try TestSupervisor(start: false)
        let result = try supervisor.nsgroup(["list"])
        #expect(result.status == 125)
        #expect(result.stderr == "nsgroup: cannot reach nsgroupd at \(supervisor.socketPath): No such file or directory (is nsgroupd running?)\n")
        let fromEnvironment = try run(Products.nsgroup, ["list"], environment: ["NSGROUP_SOCKET": supervisor.socketPath])
        #expect(fromEnvironment.stderr.contains(supervisor.socketPath))
    }

    @Test func stoppingTheSupervisorLeavesGroupsRunning() throws {
        let supervisor = try TestSupervisor()
        #expect(try supervisor.nsgroup(["create", "survivor"]).status == 0)
        let holder = try Pidfd.open(pid: try supervisor.holderPID("survivor"))
        supervisor.stop(signal: SIGTERM)
        let holderAlive = holder.isAlive
        #expect(holderAlive)
        #expect(!FileManager.default.fileExists(atPath: supervisor.socketPath), "the socket is removed on a clean stop")
        #expect(FileManager.default.fileExists(atPath: supervisor.stateDirectory + "/groups/survivor.json"))
        try holder.signal(SIGKILL)  // clean up: no supervisor is left to destroy it
        _ = try holder.reap(block: true)
    }

    @Test func helpIsAvailableOnEveryCommand() throws {
        for arguments in [["--help"], ["create", "--help"], ["list", "--help"], ["inspect", "--help"],
                          ["destroy", "--help"], ["version", "--help"]] {
            let result = try run(Products.nsgroup, arguments)
            #expect(result.status == 0, "\(arguments)")
            #expect(result.stdout.contains("USAGE:"), "\(arguments)")
        }
        #expect(try run(Products.nsgroupd, ["--help"]).stdout.contains("--state-dir"))
    }
}

/// The benchmark command works end to end (its figures are not judged here:
/// speed is measured by `make bench`, not by tests).
@Suite struct BenchmarkSmokeTests {
    @Test func enterBenchmarkRunsAndReportsARatio() throws {
        _ = try TestUser.alice()
        let result = try run(Products.path("nsgroup-bench"), ["enter", "--runs", "3", "--warmup", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("ratio of medians (nsgroup / nsenter): "))
        #expect(result.stdout.contains("entering as nsg-alice"))
        // It cleans up after itself: no bench group is left running.
        #expect(holderProcessesNamed(prefix: "bench-enter-").isEmpty)
    }
}

/// Holders of groups whose names start with `prefix`.
func holderProcessesNamed(prefix: String) -> [pid_t] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap { pid_t($0) }.filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return args.count >= 2 && args[0].hasSuffix("nsgroup-holder") && args[1].hasPrefix(prefix)
    }
}
