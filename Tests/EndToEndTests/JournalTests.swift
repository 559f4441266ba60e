import Client
import Foundation
import Glibc
import RPC
import Supervisor
import Testing

/// The audit trail: every decision and lifecycle event is a structured
/// journald record, read back here with the real journalctl.
@Suite struct JournalTests {
    /// MESSAGE_ID by the name of the AuditEvent case ("groupCreated"); the ids themselves are
    /// checked against packaging/catalog/nsgroup.catalog by SupervisorTests' PackagingTests.
    static let messageIDs = Dictionary(uniqueKeysWithValues: AuditEvent.allCases.map { ("\($0)", $0.messageID) })

    /// journald must run for these tests: `make check` starts one. Fails, never skips.
    static func requireJournald() throws {
        let probe = try run("/bin/sh", ["-c", "echo nsgroup-test-probe | systemd-cat -t nsgroup-test"])
        if probe.status != 0 {
            throw HarnessError("journald is not running (systemd-cat cannot log): run `make check`, which starts it")
        }
    }

    /// Records of this supervisor matching every FIELD=value, waiting (bounded)
    /// until at least `count` are there; fewer by then fails the test.
    func records(_ supervisor: TestSupervisor, _ matches: [String], count: Int = 1,
                 sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: String]] {
        var found: [[String: String]] = []
        try waitUntil("\(count) journal records matching \(matches) (found \(found.count))", timeoutSeconds: 10,
                      sourceLocation: sourceLocation) {
            let result = try run("/usr/bin/journalctl", ["-o", "json", "--no-pager", "--all",
                                                         "NSGROUP_SOCKET=\(supervisor.socketPath)"] + matches)
            found = result.stdout.split(separator: "\n").compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
            }.map { $0.compactMapValues { $0 as? String } }
            return found.count >= count
        }
        return found
    }

    func one(_ supervisor: TestSupervisor, _ event: String, _ matches: [String] = [],
             sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: String] {
        let found = try records(supervisor, ["MESSAGE_ID=\(Self.messageIDs[event]!)"] + matches, sourceLocation: sourceLocation)
        guard let record = found.last else {
            throw HarnessError("no \(event) record matching \(matches)")
        }
        #expect(record["SYSLOG_IDENTIFIER"] == "nsgroupd", sourceLocation: sourceLocation)
        #expect(record["MESSAGE"]?.isEmpty == false, sourceLocation: sourceLocation)
        #expect(record["PRIORITY"] != nil, sourceLocation: sourceLocation)
        return record
    }

    @Test func everyDecisionAndLifecycleEventIsOnTheRecord() throws {
        try Self.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        _ = try one(supervisor, "supervisorStarted")

        #expect(try supervisor.nsgroup(["create", "audited"], as: alice).status == 0)
        let holder = try supervisor.holderPID("audited")
        let created = try one(supervisor, "groupCreated", ["NSGROUP_NAME=audited"])
        #expect(created["NSGROUP_OWNER_UID"] == "\(alice.uid)")
        #expect(created["NSGROUP_CALLER_UID"] == "\(alice.uid)")
        #expect(created["NSGROUP_CALLER_GID"] == "\(alice.gid)")
        #expect(created["NSGROUP_CALLER_PID"].flatMap(Int.init) != nil)
        #expect(created["NSGROUP_HOLDER_PID"] == "\(holder)")
        #expect(created["NSGROUP_OPERATION"] == "create")
        #expect(created["NSGROUP_RESULT"] == "ok")
        #expect(created["PRIORITY"] == "6")
        let accepted = try one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=create", "NSGROUP_NAME=audited"])
        #expect(accepted["NSGROUP_RESULT"] == "ok")
        #expect(accepted["NSGROUP_CALLER_UID"] == "\(alice.uid)")

        // Accepted reads are summed up per connection, written when it closes.
        #expect(try supervisor.nsgroup(["list"], as: alice).status == 0)
        let listed = try one(supervisor, "readsSummarized", ["NSGROUP_READS=list=1", "NSGROUP_CALLER_UID=\(alice.uid)"])
        #expect(listed["PRIORITY"] == "6")
        #expect(listed["NSGROUP_OPERATION"] == "read")
        #expect(listed["NSGROUP_NAMES"] == nil)
        #expect(try supervisor.nsgroup(["inspect", "audited"], as: alice).status == 0)
        let inspected = try one(supervisor, "readsSummarized", ["NSGROUP_READS=inspect=1", "NSGROUP_NAMES=audited"])
        #expect(inspected["NSGROUP_CALLER_UID"] == "\(alice.uid)")
        #expect(try records(supervisor, ["MESSAGE_ID=\(Self.messageIDs["requestAccepted"]!)", "NSGROUP_OPERATION=list"], count: 0).isEmpty)

        // A refusal names the reason, the caller and the group asked about (a stranger is
        // told the group does not exist; the record still names it).
        #expect(try supervisor.nsgroup(["inspect", "audited"], as: bob).status == 125)
        let refused = try one(supervisor, "requestRefused", ["NSGROUP_OPERATION=inspect", "NSGROUP_CALLER_UID=\(bob.uid)"])
        #expect(refused["NSGROUP_RESULT"] == "not_found")
        #expect(refused["NSGROUP_NAME"] == "audited")
        #expect(refused["PRIORITY"] == "5")
        #expect(refused["MESSAGE"] == "Refused inspect from uid \(bob.uid) (\(bob.name)): no group named \"audited\"")

        // A session: started with its argv, ended with its status.
        #expect(try supervisor.nsgroup(["enter", "audited", "--", "sh", "-c", "exit 3"], as: alice).status == 3)
        let started = try one(supervisor, "sessionStarted", ["NSGROUP_NAME=audited"])
        #expect(started["NSGROUP_ARGV"] == "sh -c exit 3")
        #expect(started["NSGROUP_CALLER_UID"] == "\(alice.uid)")
        #expect(started["NSGROUP_OWNER_UID"] == "\(alice.uid)")
        #expect(started["NSGROUP_HOLDER_PID"] == "\(holder)")
        let sessionPID = try #require(started["NSGROUP_SESSION_PID"])
        let ended = try one(supervisor, "sessionEnded", ["NSGROUP_SESSION_PID=\(sessionPID)"])
        #expect(ended["NSGROUP_EXIT_CODE"] == "3")
        #expect(ended["NSGROUP_ARGV"] == "sh -c exit 3")

        #expect(try supervisor.nsgroup(["share", "audited", "nsg-dave"], as: alice).status == 0)
        _ = try one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=share", "NSGROUP_NAME=audited"])

        #expect(try supervisor.nsgroup(["destroy", "audited"], as: alice).status == 0)
        let destroyed = try one(supervisor, "groupDestroyed", ["NSGROUP_NAME=audited"])
        #expect(destroyed["NSGROUP_HOLDER_PID"] == "\(holder)")
        #expect(destroyed["NSGROUP_OWNER_UID"] == "\(alice.uid)")
        #expect(destroyed["NSGROUP_RESULT"] == "ok")

        supervisor.stop()
        _ = try one(supervisor, "supervisorStopped")
    }

    /// A client looping on reads gets one record for all of them, not one each: a flood of
    /// reads cannot push other records past journald's rate limit.
    @Test func manyReadsOnOneConnectionMakeOneRecord() throws {
        try Self.requireJournald()
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        for name in ["read-a", "read-b"] {
            #expect(try supervisor.nsgroup(["create", name], as: alice).status == 0)
        }
        let reads = "inspect=3 list=200 version=1"
        do {
            let client = try RPCClient(socketPath: supervisor.socketPath)
            for _ in 0..<200 { _ = try client.call("list") }
            for name in ["read-b", "read-a", "read-b"] { _ = try client.call("inspect", .object(["name": .string(name)])) }
            _ = try client.call("version")
            // A refused read is still recorded on its own, at once.
            #expect(throws: ClientError.self) { _ = try client.call("inspect", .object(["name": .string("read-none")])) }
            _ = try one(supervisor, "requestRefused", ["NSGROUP_NAME=read-none", "NSGROUP_RESULT=not_found"])
            #expect(try records(supervisor, ["MESSAGE_ID=\(Self.messageIDs["readsSummarized"]!)", "NSGROUP_READS=\(reads)"],
                                count: 0).isEmpty, "nothing is written while the connection is open")
            withExtendedLifetime(client) {}
        }  // the client is gone: its connection closes
        let summary = try one(supervisor, "readsSummarized", ["NSGROUP_READS=\(reads)"])
        #expect(summary["NSGROUP_NAMES"] == "read-a read-b")
        #expect(summary["NSGROUP_CALLER_UID"] == "0")
        #expect(summary["MESSAGE"]?.contains("204 reads") == true, "\(summary)")
        #expect(try records(supervisor, ["MESSAGE_ID=\(Self.messageIDs["readsSummarized"]!)", "NSGROUP_READS=\(reads)"]).count == 1)
        for name in ["read-a", "read-b"] { #expect(try supervisor.nsgroup(["destroy", name]).status == 0) }
    }

    /// A connection that stays open gets its reads recorded every read-summary-interval.
    @Test func anOpenConnectionsReadsAreRecordedOnInterval() throws {
        try Self.requireJournald()
        let supervisor = try TestSupervisor(config: "[audit]\nread-summary-interval = 1\n")
        let client = try RPCClient(socketPath: supervisor.socketPath)
        for _ in 0..<7 { _ = try client.call("list") }
        let first = try one(supervisor, "readsSummarized", ["NSGROUP_READS=list=7"])
        #expect(first["NSGROUP_CALLER_UID"] == "0")
        // The next reads start a new count.
        for _ in 0..<2 { _ = try client.call("version") }
        _ = try one(supervisor, "readsSummarized", ["NSGROUP_READS=version=2"])
        #expect(try client.call("version").result["protocol"]?.int64Value == 1, "the connection stays open")
    }

    /// With `[audit] reads = each`, every accepted read is a record of its own.
    @Test func readsCanBeRecordedOneByOne() throws {
        try Self.requireJournald()
        let supervisor = try TestSupervisor(config: "[audit]\nreads = each\n")
        let alice = try TestUser.alice()
        #expect(try supervisor.nsgroup(["create", "each-read"], as: alice).status == 0)
        for _ in 0..<3 { #expect(try supervisor.nsgroup(["inspect", "each-read"], as: alice).status == 0) }
        let inspected = try records(supervisor, ["MESSAGE_ID=\(Self.messageIDs["requestAccepted"]!)",
                                                 "NSGROUP_OPERATION=inspect", "NSGROUP_NAME=each-read"], count: 3)
        #expect(inspected.count == 3)
        #expect(inspected.allSatisfy { $0["NSGROUP_CALLER_UID"] == "\(alice.uid)" && $0["NSGROUP_RESULT"] == "ok" })
        #expect(try records(supervisor, ["MESSAGE_ID=\(Self.messageIDs["readsSummarized"]!)"], count: 0).isEmpty)
        #expect(try supervisor.nsgroup(["destroy", "each-read"], as: alice).status == 0)
    }

    @Test func limitRefusalsAndHolderDeathsAreOnTheRecord() throws {
        try Self.requireJournald()
        let supervisor = try TestSupervisor(config: "[limits]\ngroups = 1\n")
        #expect(try supervisor.nsgroup(["create", "only-one"]).status == 0)
        #expect(try supervisor.nsgroup(["create", "one-too-many"]).status == 125)
        let refused = try one(supervisor, "requestRefused", ["NSGROUP_NAME=one-too-many"])
        #expect(refused["NSGROUP_RESULT"] == "limit_exceeded")
        #expect(refused["NSGROUP_OPERATION"] == "create")

        let holder = try supervisor.holderPID("only-one")
        kill(holder, SIGKILL)
        let died = try one(supervisor, "holderDied", ["NSGROUP_NAME=only-one"])
        #expect(died["NSGROUP_HOLDER_PID"] == "\(holder)")
        #expect(died["PRIORITY"] == "4")
        #expect(died["MESSAGE"]?.contains("killed by signal 9") == true)
        #expect(try supervisor.groupNames().isEmpty)
    }

    @Test func policyReloadsAreOnTheRecord() throws {
        try Self.requireJournald()
        let supervisor = try TestSupervisor()
        try "[access]\ncreate = nsg-alice\n".write(toFile: supervisor.configPath, atomically: true, encoding: .utf8)
        kill(supervisor.pid, SIGHUP)
        let reloaded = try one(supervisor, "policyReloaded", ["NSGROUP_RESULT=ok"])
        #expect(reloaded["NSGROUP_CONFIG"] == supervisor.configPath)
        try "[access]\nbogus = 1\n".write(toFile: supervisor.configPath, atomically: true, encoding: .utf8)
        kill(supervisor.pid, SIGHUP)
        let refused = try one(supervisor, "policyReloaded", ["NSGROUP_RESULT=refused"])
        #expect(refused["NSGROUP_REASON"]?.contains("\(supervisor.configPath):2: unknown key \"bogus\"") == true)
        #expect(refused["PRIORITY"] == "3")
    }

    @Test(arguments: [TestSupervisor.Journal.absent, .refusing])
    func withoutJournaldTheSupervisorServesAndLogsToStderr(_ journal: TestSupervisor.Journal) throws {
        let supervisor = try TestSupervisor(journal: journal)
        #expect(try supervisor.nsgroup(["create", "unlogged"]).status == 0)
        #expect(try supervisor.nsgroup(["list"]).stdout.contains("unlogged"))
        #expect(try supervisor.nsgroup(["destroy", "unlogged"]).status == 0)
        let log = supervisor.log_
        let warnings = log.components(separatedBy: "journald is not reachable").count - 1
        #expect(warnings == 1, "the degraded-auditing warning comes once: \(log)")
        #expect(log.contains("auditing is degraded"))
        #expect(log.contains("Created group unlogged"))
        #expect(log.contains("MESSAGE_ID=\(AuditEvent.groupCreated.messageID)"))
        #expect(log.contains("Destroyed group unlogged"))
        // Nothing of it reached the journal.
        let inJournal = try run("/usr/bin/journalctl", ["-o", "json", "--no-pager", "NSGROUP_SOCKET=\(supervisor.socketPath)"])
        #expect(inJournal.stdout.isEmpty)
    }

    @Test func theCatalogIsAcceptedByJournalctl() throws {
        // Kept until the end: letting go of it removes its directory, which holds the tree.
        let scratch = try TestSupervisor(start: false)
        defer { withExtendedLifetime(scratch) {} }
        let root = scratch.directory + "/catalog-root"
        let catalogDirectory = root + "/usr/lib/systemd/catalog"
        try FileManager.default.createDirectory(atPath: catalogDirectory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Products.repositoryRoot + "/packaging/catalog/nsgroup.catalog",
                                         toPath: catalogDirectory + "/nsgroup.catalog")
        let update = try run("/usr/bin/journalctl", ["--root", root, "--update-catalog"])
        #expect(update.status == 0, "\(update.stderr)")
        let listed = try run("/usr/bin/journalctl", ["--root", root, "--list-catalog"])
        for (event, id) in Self.messageIDs {
            #expect(listed.stdout.contains(id), "\(event) (\(id)) is not in the catalog")
        }
    }
}
