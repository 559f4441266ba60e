@testable import nsgroup
import RPC
import Testing

@Suite("What inspect, ps and events print")
struct OutputTests {
    @Test func limitsSayNoneWhereThereIsNone() {
        #expect(Inspect.describe(GroupLimits()) == "memory none, pids none, cpu weight none, cpus none")
        #expect(Inspect.describe(GroupLimits(memory: 512 << 20, pids: 256, cpuWeight: 50, cpus: 1.5))
                == "memory 512M, pids 256, cpu weight 50, cpus 1.5")
    }

    @Test func usageShowsWhatIsCounted() {
        #expect(Inspect.describe(ResourceUsage(memory: 12_900_000, memoryPeak: 40_000_000, pids: 3, cpuUsec: 1_234_567))
                == "memory 12.3M (peak 38.1M), pids 3, cpu 1.23 s")
        #expect(Inspect.describe(ResourceUsage(pids: 1)) == "pids 1")
        #expect(Inspect.describe(ResourceUsage()) == "")
    }

    @Test func describeSaysWhatIsLeftInAFewLines() {
        let limits = DescribeLimits(maxLine: 1 << 20, groups: Allowance(max: 16, left: 15), serverGroups: Allowance(max: 4096, left: 4090),
                                    sessions: Allowance(max: 64, left: 64), connections: Allowance(max: 1024, left: 1023),
                                    tmpfsSize: 1 << 30, tmpfsPerUser: Allowance(max: 4 << 30, left: 3 << 30),
                                    perUser: GroupLimits(memory: 8 << 30, pids: 4096), perGroup: GroupLimits())
        let features = DescribeFeatures(userNamespaces: true, timeNamespaces: false, cgroups: "hybrid",
                                        controllers: [("memory", "v1"), ("pids", "v2"), ("cpu", "none")], pasta: true, overlayRoot: false)
        let result = DescribeResult(allowedKinds: ["mnt", "uts"], defaultKinds: ["mnt", "uts", "ipc"], limits: limits, features: features)
        #expect(Describe.text(result) == """
            protocol:    1.1
            may create:  mnt,uts (default mnt,uts,ipc)
            groups:      15 of 16 left (your own); 4090 of 4096 on the server
            sessions:    64 of 64 left (running)
            connections: 1023 of 1024 left
            tmpfs:       3.0G of 4.0G left, at most 1.0G a mount
            per user:    memory 8.0G, pids 4096
            per group:   no limit
            line:        at most 1048576 bytes a request
            features:    user namespaces yes, time namespaces no, pasta yes, overlay root no
            cgroups:     hybrid (memory v1, pids v2, cpu none)

            """)
    }

    @Test func psRows() {
        let rows = Ps.rows([
            ProcessInfo(pid: 4242, nspid: 1, uid: 1000, user: "alice", command: "nsgroup-holder"),
            ProcessInfo(pid: 4250, nspid: 7, uid: 100_001, session: 7, command: "[cc1]"),
        ])
        #expect(rows == [["PID", "NSPID", "USER", "SESSION", "COMMAND"],
                         ["4242", "1", "alice", "holder", "nsgroup-holder"],
                         ["4250", "7", "100001", "7", "[cc1]"]])
    }

    @Test func eventsSayWhyAndHowMany() {
        func line(_ kind: EventNotification.Kind, reason: String? = nil, oomKills: UInt64? = nil) -> String {
            Events.describe(EventNotification(kind: kind, group: "box", time: "T", owner: 3_999_999_999, reason: reason, oomKills: oomKills))
        }
        #expect(line(.groupDestroyed, reason: "request") == "T  group-destroyed box (owner 3999999999): on request")
        #expect(line(.groupDestroyed, reason: "lifetime") == "T  group-destroyed box (owner 3999999999): its lifetime ended")
        #expect(line(.groupDestroyed, reason: "idle") == "T  group-destroyed box (owner 3999999999): idle, no session for its idle time")
        #expect(line(.groupDestroyed, reason: "quota") == "T  group-destroyed box (owner 3999999999): quota")
        #expect(line(.groupDestroyed) == "T  group-destroyed box (owner 3999999999)")
        #expect(line(.groupFrozen) == "T  group-frozen    box (owner 3999999999)")
        #expect(line(.groupThawed) == "T  group-thawed    box (owner 3999999999)")
        #expect(line(.groupOOM, oomKills: 1) == "T  group-oom       box (owner 3999999999): out of memory, a process was killed (1 OOM kill so far)")
        #expect(line(.groupOOM, oomKills: 4) == "T  group-oom       box (owner 3999999999): out of memory, a process was killed (4 OOM kills so far)")
        #expect(line(.groupOOM) == "T  group-oom       box (owner 3999999999): out of memory, a process was killed")
        // A uid the host knows comes with its name.
        #expect(Events.describe(EventNotification(kind: .groupFrozen, group: "box", time: "T", owner: 0))
                == "T  group-frozen    box (owner root (0))")
    }
}
