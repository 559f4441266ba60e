import Cgroups
import Glibc
import Logging
import POSIX
import RPC
@testable import Supervisor
import Synchronization
import Systemd
import Testing

/// A clock the test moves by hand (TTLs).
private final class Clock: @unchecked Sendable {
    var seconds = 1000.0
}

/// Counts the questions the worker was asked.
private final class Asked: Sendable {
    let questions = Mutex<[NameQuery]>([])
    func record(_ query: NameQuery) { questions.withLock { $0.append(query) } }
    var count: Int { questions.withLock { $0.count } }
}

/// Runs the loop until `done()` or `seconds` passed; returns the seconds it took.
@discardableResult
private func spin(_ loop: EventLoop, seconds: Double = 10, until done: () -> Bool) throws -> Double {
    let start = monotonicSeconds()
    while !done(), monotonicSeconds() - start < seconds {
        _ = try loop.runOnce(timeoutMicroseconds: 5_000)
    }
    return monotonicSeconds() - start
}

/// Looks `query` up and spins the loop until the answer is there.
private func answer(_ names: NameService, _ loop: EventLoop, _ query: NameQuery) throws -> NameAnswer? {
    var got: NameAnswer?
    names.lookUp(query) { got = $0 }
    try spin(loop) { got != nil }
    return got
}

@Suite("NameService: NSS lookups off the loop, cached with a bound and a TTL")
struct NameServiceTests {
    @Test func answersComeFromTheDatabaseOnTheWorkerAndAreCached() throws {
        let loop = try EventLoop()
        let asked = Asked()
        let names = try NameService(loop: loop, lookup: { asked.record($0); return NameAnswer.fromDatabase($0) })
        var completedInside = false
        names.lookUp(.user(uid: 0)) { _ in completedInside = true }
        #expect(!completedInside, "a completion never runs inside lookUp")
        let root = try answer(names, loop, .user(uid: 0))
        #expect(root?.userEntry?.name == UserDatabase.user(uid: 0)?.name)
        #expect(try answer(names, loop, .groupNamed("root")) == .group(gid: 0, name: "root"))
        #expect(try answer(names, loop, .userNamed("nsg-no-such-user")) == .absent)
        #expect(names.cached(.user(uid: 0)) == root)
        #expect(names.cached(.userNamed("nsg-no-such-user")) == .absent)
        let before = asked.count
        _ = try answer(names, loop, .user(uid: 0))
        #expect(asked.count == before, "a cached answer is not asked again")
    }

    @Test func positiveAndNegativeAnswersExpireAfterTheirTTLs() throws {
        let loop = try EventLoop()
        let clock = Clock()
        var limits = NameService.Limits()
        limits.positiveTTL = 60
        limits.negativeTTL = 5
        let names = try NameService(loop: loop, limits: limits, now: { clock.seconds })
        _ = try answer(names, loop, .user(uid: 0))
        _ = try answer(names, loop, .userNamed("nsg-no-such-user"))
        clock.seconds += 6
        #expect(names.cached(.userNamed("nsg-no-such-user")) == nil, "absent answers are kept for the shorter TTL")
        #expect(names.cached(.user(uid: 0)) != nil)
        clock.seconds += 60
        #expect(names.cached(.user(uid: 0)) == nil)
    }

    @Test func theCacheKeepsAtMostItsCapacityOldestOutFirst() throws {
        let loop = try EventLoop()
        var limits = NameService.Limits()
        limits.capacity = 3
        let names = try NameService(loop: loop, limits: limits, lookup: { .group(gid: 7, name: "\($0)") })
        for n in 0..<5 { _ = try answer(names, loop, .groupNamed("g\(n)")) }
        #expect(names.cachedCount == 3)
        #expect(names.cached(.groupNamed("g0")) == nil && names.cached(.groupNamed("g1")) == nil)
        #expect(names.cached(.groupNamed("g4")) != nil)
        // Several questions at once: one answer each, asked once.
        var answers: [NameQuery: NameAnswer]?
        names.lookUp([.groupNamed("x"), .groupNamed("x"), .groupNamed("g4")]) { answers = $0 }
        try spin(loop) { answers != nil }
        #expect(answers?.count == 2)
    }

    /// One name asked again each time its answer expires (a user who keeps
    /// naming someone who does not exist, or simply a busy account) must not
    /// grow the supervisor's bookkeeping without end while the cache stays small.
    @Test func reaskingExpiredNamesKeepsTheBookkeepingBounded() throws {
        let loop = try EventLoop()
        let clock = Clock()
        var limits = NameService.Limits()
        limits.capacity = 8
        limits.negativeTTL = 5
        let names = try NameService(loop: loop, limits: limits, lookup: { _ in .absent }, now: { clock.seconds })
        for _ in 0..<3000 {
            _ = try answer(names, loop, .userNamed("nsg-no-such-user"))
            clock.seconds += 6
        }
        #expect(names.cachedCount == 1)
        #expect(names.insertionOrderCount <= 2 * limits.capacity + 1024,
                "\(names.insertionOrderCount) slots kept for \(names.cachedCount) cached answer")
    }

    @Test func aLookupPastTheTimeoutIsUnknownAndLaterOnesDoNotQueueBehindIt() throws {
        let loop = try EventLoop()
        var limits = NameService.Limits()
        limits.timeout = 0.3
        let names = try NameService(loop: loop, limits: limits, lookup: { query in
            if query == .userNamed("slow") { usleep(1_500_000) }
            return NameAnswer.fromDatabase(query)
        })
        var slow: NameAnswer?
        names.lookUp(.userNamed("slow")) { slow = $0 }
        let waited = try spin(loop) { slow != nil }
        #expect(slow == .unknown)
        #expect(waited >= 0.25 && waited < 1.2, "answered at the timeout, not when the lookup returned (\(waited) s)")
        #expect(names.cached(.userNamed("slow")) == nil, "unknown is never cached")
        // The worker is still stuck: a new question is answered at once, not queued behind it.
        var next: NameAnswer?
        names.lookUp(.user(uid: 0)) { next = $0 }
        let quick = try spin(loop) { next != nil }
        #expect(next == .unknown)
        #expect(quick < 0.2, "\(quick) s")
        // Once the worker is back, questions are answered again.
        try spin(loop, seconds: 3) { names.outstandingCount == 0 }
        #expect(try answer(names, loop, .user(uid: 0))?.userEntry != nil)
    }

    @Test func atMostMaxOutstandingQuestionsWaitForTheWorker() throws {
        let loop = try EventLoop()
        var limits = NameService.Limits()
        limits.maxOutstanding = 2
        limits.timeout = 10
        let names = try NameService(loop: loop, limits: limits, lookup: { query in
            if query == .userNamed("slow") { usleep(700_000) }
            return .absent
        })
        var first: NameAnswer?
        var second: NameAnswer?
        var third: NameAnswer?
        names.lookUp(.userNamed("slow")) { first = $0 }
        names.lookUp(.userNamed("b")) { second = $0 }
        names.lookUp(.userNamed("c")) { third = $0 }
        #expect(names.outstandingCount == 2)
        try spin(loop) { third != nil }
        #expect(third == .unknown, "over the bound: answered at once")
        #expect(first == nil && second == nil)
        try spin(loop) { first != nil && second != nil }
        #expect(first == .absent && second == .absent)
    }

    @Test func jobsRunOnTheWorkerAndTimeOut() throws {
        let loop = try EventLoop()
        var limits = NameService.Limits()
        limits.timeout = 0.3
        let names = try NameService(loop: loop, limits: limits)
        let loopThread = pthread_self()
        var ran: Bool??
        names.run({ pthread_equal(pthread_self(), loopThread) == 0 }) { ran = .some($0) }
        try spin(loop) { ran != nil }
        #expect(ran == .some(true), "the job ran on another thread")
        var late: Int??
        names.run({ usleep(1_000_000); return 1 }) { late = .some($0) }
        try spin(loop) { late != nil }
        #expect(late == .some(nil), "a job past the timeout completes with nil")
    }
}

// MARK: - A whole supervisor whose name service is slow

/// A Supervisor on a real loop and socket in this process (holder: /bin/true,
/// never started), whose NameService answers through `lookup`.
private final class SlowNamesSupervisor {
    let scratch: ScratchDirectory
    let loop: EventLoop
    let supervisor: Supervisor
    let cgroupDirectory: String
    var socketPath: String { scratch.path + "/socket" }

    init(lookup: @escaping NameService.Lookup, limits: NameService.Limits = NameService.Limits()) throws {
        scratch = try ScratchDirectory()
        cgroupDirectory = "nsg-unit-" + String(scratch.path.split(separator: "/").last ?? "x")
        loop = try EventLoop()
        let configuration = SupervisorConfiguration(
            socketPath: scratch.path + "/socket", stateDirectory: scratch.path + "/state",
            holderPath: "/bin/true", serverName: "test")
        var unrequired = configuration
        unrequired.configPath = scratch.path + "/nsgroupd.conf"  // missing, and not required: the defaults
        // A cgroup tree of its own, and the test process stays where it is.
        unrequired.cgroupDirectory = cgroupDirectory
        unrequired.joinSupervisorLeaf = false
        supervisor = try Supervisor(configuration: unrequired, loop: loop,
                                    logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                                    nameLookup: lookup, nameLimits: limits)
        try supervisor.start()
    }

    deinit {
        supervisor.shutdown()
        if let layout = try? CgroupLayout.detect() {
            try? CgroupTree(layout: layout, subdirectory: cgroupDirectory).base.remove()
        }
    }


    /// A client connection: sends lines, collects reply lines.
    final class Client {
        let fd: FileDescriptor
        var received: [UInt8] = []
        init(_ path: String) throws {
            fd = try UnixSocket.connect(path: path)
            _ = fcntl(fd.rawValue, F_SETFL, fcntl(fd.rawValue, F_GETFL) | O_NONBLOCK)
        }
        func send(_ line: String) throws {
            let bytes = Array((line + "\n").utf8)
            let sent = try bytes.withUnsafeBytes { (raw) throws(Errno) in try UnixSocket.send(fd.rawValue, raw) }
            #expect(sent == bytes.count)
        }
        /// Reply lines so far.
        var lines: [String] {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd.rawValue, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                received += buffer[0..<n]
            }
            return received.split(separator: UInt8(ascii: "\n")).map { String(decoding: $0, as: UTF8.self) }
        }
    }
}

@Suite("NameService: the loop keeps serving while a lookup hangs")
struct SlowNameServiceTests {
    @Test func aRequestWaitingForANameDoesNotDelayAnotherConnection() throws {
        let harness = try SlowNamesSupervisor(lookup: { query in
            if query == .userNamed("nsg-slow") { usleep(3_000_000) }
            return NameAnswer.fromDatabase(query)
        })
        let waiting = try SlowNamesSupervisor.Client(harness.socketPath)
        try waiting.send(#"{"jsonrpc":"2.0","id":1,"method":"create","params":{"name":"slow","members":["nsg-slow"]}}"#)
        // Let the supervisor take the create and start its lookup.
        try spin(harness.loop, seconds: 0.3) { false }
        let other = try SlowNamesSupervisor.Client(harness.socketPath)
        try other.send(#"{"jsonrpc":"2.0","id":2,"method":"list"}"#)
        let listed = try spin(harness.loop) { !other.lines.isEmpty }
        #expect(listed < 1, "list waited \(listed) s behind a hanging name lookup")
        #expect(other.lines.first?.contains(#""id":2"#) == true)
        #expect(waiting.lines.isEmpty, "the create is still waiting for its member's name")
        // The lookup returns (absent) before the 5 s timeout: the usual answer.
        try spin(harness.loop) { !waiting.lines.isEmpty }
        let reply = try #require(waiting.lines.first)
        #expect(reply.contains(#"create: no user named \"nsg-slow\""#), "\(reply)")
        #expect(harness.supervisor.groupCount == 0)
    }

    @Test func aCallerWhoseEntryTimesOutGetsTheFallbacksAndIsServed() throws {
        var limits = NameService.Limits()
        limits.timeout = 0.5
        let harness = try SlowNamesSupervisor(lookup: { query in
            if query == .user(uid: getuid()) { usleep(2_000_000) }
            return NameAnswer.fromDatabase(query)
        }, limits: limits)
        let client = try SlowNamesSupervisor.Client(harness.socketPath)
        try client.send(#"{"jsonrpc":"2.0","id":1,"method":"version"}"#)
        let waited = try spin(harness.loop) { !client.lines.isEmpty }
        #expect(waited >= 0.4 && waited < 1.5, "answered once the identity lookup timed out (\(waited) s)")
        #expect(client.lines.first?.contains(#""result""#) == true)
    }

    @Test func namesInTheCacheAreAnsweredWithoutDeferring() throws {
        let asked = Asked()
        let harness = try SlowNamesSupervisor(lookup: { asked.record($0); return NameAnswer.fromDatabase($0) })
        let client = try SlowNamesSupervisor.Client(harness.socketPath)
        for id in 1...2 {
            try client.send(#"{"jsonrpc":"2.0","id":\#(id),"method":"share","params":{"name":"nothing-here","members":["root","@root"]}}"#)
            try spin(harness.loop) { client.lines.count == id }
            #expect(client.lines.last?.contains("not_found") == true, "\(client.lines)")
        }
        // The caller's entry, root and @root: each asked once, the second share used the cache.
        #expect(asked.count == 3)
    }
}
