#if canImport(Glibc)
import Glibc
#endif
import CPOSIX
import POSIX
import Synchronization
import Systemd

/// One question for the user and group databases (NSS).
enum NameQuery: Hashable, Sendable {
    /// The passwd entry of a uid.
    case user(uid: uid_t)
    /// The passwd entry of a user name.
    case userNamed(String)
    /// The name of a gid.
    case group(gid: gid_t)
    /// The gid of a group name.
    case groupNamed(String)
}

/// What the databases said.
enum NameAnswer: Sendable, Equatable {
    case user(UserEntry)
    case group(gid: gid_t, name: String)
    /// The database has no such entry (or could not say: getpwnam_r and the
    /// others do not tell the two apart reliably, and the code never did).
    case absent
    /// No answer in time, or the question was not even asked because the
    /// worker is stuck or has too much outstanding: nothing is known either
    /// way. Never cached.
    case unknown

    /// The answer straight from the databases, on the calling thread: the
    /// worker's lookup, and what start-up and tests use (`NameAnswers.database`).
    @Sendable static func fromDatabase(_ query: NameQuery) -> NameAnswer {
        switch query {
        case .user(let uid): return UserDatabase.user(uid: uid).map { .user($0) } ?? .absent
        case .userNamed(let name): return UserDatabase.user(named: name).map { .user($0) } ?? .absent
        case .group(let gid): return UserDatabase.groupName(gid: gid).map { .group(gid: gid, name: $0) } ?? .absent
        case .groupNamed(let name): return UserDatabase.groupID(named: name).map { .group(gid: $0, name: name) } ?? .absent
        }
    }

    var userEntry: UserEntry? {
        if case .user(let entry) = self { return entry }
        return nil
    }
}

/// Where a parser or handler takes names from: the answers the NameService
/// looked up before the handler ran, or (start-up, the worker, tests) the
/// databases themselves.
struct NameAnswers {
    private let table: [NameQuery: NameAnswer]?

    /// Asks the databases directly, on the calling thread. Never on the loop once it runs.
    static let database = NameAnswers(table: nil)

    init(_ table: [NameQuery: NameAnswer]) {
        self.table = table
    }

    private init(table: [NameQuery: NameAnswer]?) {
        self.table = table
    }

    /// The answer to `query`; a question that was not looked up is `.unknown`.
    func answer(_ query: NameQuery) -> NameAnswer {
        guard let table else { return NameAnswer.fromDatabase(query) }
        return table[query] ?? .unknown
    }
}

/// Who the peer of a connection is in the user database, looked up once when
/// the connection is accepted (Listener) and used by every request on it
/// (enter's HOME, USER, LOGNAME and SHELL, create's owner name and `~`).
struct CallerIdentity: Sendable, Equatable {
    let uid: uid_t
    /// The passwd entry; nil when the database has none or did not answer in time.
    let entry: UserEntry?

    /// The user name, or the uid in digits.
    var name: String { entry?.name ?? String(uid) }
    /// The home directory, or / .
    var home: String { entry?.home ?? "/" }
    /// The login shell, or /bin/sh when there is none.
    var shell: String { entry.map { $0.shell.isEmpty ? "/bin/sh" : $0.shell } ?? "/bin/sh" }
}

/// Lookups in the user and group databases (NSS) off the loop thread.
///
/// getpwuid_r and the others may wait on the network (LDAP, sssd, NIS), so
/// nothing on the loop calls them once it runs. Instead:
///
/// - **One worker thread** (a detached pthread with every signal blocked)
///   takes questions from a FIFO queue under a `Mutex` and answers them one
///   by one, then posts each answer back through a pipe the loop watches
///   as an io source. Completions run on the loop, never on the worker, and
///   never before `lookUp` has returned.
/// - **A cache** of answers, at most `capacity` entries (oldest evicted first),
///   a positive answer kept for `positiveTTL` seconds, an absent one for
///   `negativeTTL`. `.unknown` is never cached. Identical questions in flight
///   are asked once.
/// - **A timeout**: a waiter that has not had all its answers after `timeout`
///   seconds completes with `.unknown` for the rest. The worker may still be
///   stuck in the lookup; its answer, when it comes, goes into the cache.
/// - **A bound on what piles up behind a stuck worker**: at most
///   `maxOutstanding` questions (and jobs) are with the worker at once, and
///   none is handed over while the oldest one has been there longer than
///   `timeout` (the worker is stuck, everything behind it would time out
///   anyway). A question that finds either is answered `.unknown` at once,
///   without waiting. So a hung LDAP server costs each caller at most
///   `timeout`, costs the loop nothing, and holds at most `maxOutstanding`
///   queued entries.
///
/// Besides single questions the worker runs whole jobs that do lookups of
/// their own (`run`: parsing the policy file on SIGHUP, reading /etc/subuid),
/// under the same timeout and bound.
final class NameService {
    typealias Lookup = @Sendable (NameQuery) -> NameAnswer

    struct Limits {
        /// Most answers kept.
        var capacity = 4096
        /// Seconds a found entry is believed.
        var positiveTTL = 60.0
        /// Seconds an absent entry is believed.
        var negativeTTL = 5.0
        /// Seconds a caller waits for an answer before taking `.unknown`.
        var timeout = 5.0
        /// Most questions and jobs handed to the worker and not yet answered.
        var maxOutstanding = 64
    }

    let limits: Limits
    private let channel: Channel
    private let now: () -> Double
    private var source: EventSource?
    private var timer: EventSource?

    private struct Cached {
        let answer: NameAnswer
        let expires: Double
        let serial: UInt64
    }
    private var cache: [NameQuery: Cached] = [:]
    /// Cache keys in the order they were stored, with the serial they were stored under.
    private var insertionOrder: [(NameQuery, UInt64)] = []
    private var insertionHead = 0
    private var serial: UInt64 = 0

    /// Questions and jobs with the worker: when each was handed over.
    private var outstanding: [Channel.Item: Double] = [:]
    private var nextJob: UInt64 = 1

    private final class Waiter {
        let deadline: Double
        var missing: Set<NameQuery>
        var answers: [NameQuery: NameAnswer]
        let completion: ([NameQuery: NameAnswer]) -> Void
        init(deadline: Double, missing: Set<NameQuery>, answers: [NameQuery: NameAnswer],
             completion: @escaping ([NameQuery: NameAnswer]) -> Void) {
            self.deadline = deadline
            self.missing = missing
            self.answers = answers
            self.completion = completion
        }
    }
    private var waiters: [ObjectIdentifier: Waiter] = [:]
    private var waitersByQuery: [NameQuery: [Waiter]] = [:]
    /// Waiters whose answers were all there when they asked: completed from the loop next.
    private var ready: [Waiter] = []

    private struct Job {
        let deadline: Double
        let completion: ((any Sendable)?) -> Void
    }
    private var jobs: [UInt64: Job] = [:]

    /// Starts the worker. `lookup` answers on the worker thread (production:
    /// the databases; tests inject slow ones); `now` is the clock of the TTLs
    /// and timeouts (monotonic seconds).
    init(loop: EventLoop, limits: Limits = Limits(), lookup: @escaping Lookup = NameAnswer.fromDatabase,
         now: @escaping () -> Double = monotonicSeconds) throws(SupervisorError) {
        self.limits = limits
        self.now = now
        var wake: [Int32] = [-1, -1]
        var done: [Int32] = [-1, -1]
        guard ns_pipe_cloexec(&wake) == 0, ns_pipe_cloexec(&done) == 0 else {
            let error = Errno.current
            for fd in wake + done where fd >= 0 { Glibc.close(fd) }
            throw SupervisorError(.startup, "cannot make the name service's pipes: \(error)")
        }
        // Only the worker's end of `wake` blocks: writers never wait (a full
        // pipe means the reader is due to wake anyway), nor does the loop's read.
        for fd in [wake[1], done[0], done[1]] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        channel = Channel(wake: (wake[0], wake[1]), done: (done[0], done[1]), lookup: lookup)
        do {
            source = try loop.addIO(fd: done[0], events: .readable) { [weak self] _ in self?.takeAnswers() }
            let tick = UInt64(max(0.01, min(1.0, limits.timeout / 5)) * 1_000_000)
            timer = try loop.addRepeatingTimer(everyMicroseconds: tick) { [weak self] in self?.expire() }
            timer?.isEnabled = false
        } catch {
            throw SupervisorError(.startup, "cannot watch the name service: \(error)")
        }
        do throws(Errno) { try channel.startWorker() } catch {
            throw SupervisorError(.startup, "cannot start the name service thread: \(error)")
        }
    }

    deinit {
        source?.cancel()
        timer?.cancel()
        channel.stop()  // the worker lets go of the channel, which closes the eventfds, when it returns
    }

    // MARK: The cache

    /// A fresh cached answer, or nil.
    func cached(_ query: NameQuery) -> NameAnswer? {
        guard let entry = cache[query] else { return nil }
        guard entry.expires > now() else {
            cache[query] = nil
            return nil
        }
        return entry.answer
    }

    /// The user name of `uid` if the cache has it, for a journal MESSAGE; else nil, and a
    /// lookup is started so that a later record has it. Never waits on NSS.
    func cachedUserName(_ uid: uid_t) -> String? {
        let query = NameQuery.user(uid: uid)
        if let answer = cached(query) { return answer.userEntry?.name }
        lookUp(query) { _ in }
        return nil
    }

    /// All answers from the cache, or nil when one of them is not there.
    func cached(_ queries: some Sequence<NameQuery>) -> [NameQuery: NameAnswer]? {
        var answers: [NameQuery: NameAnswer] = [:]
        for query in queries {
            guard let answer = cached(query) else { return nil }
            answers[query] = answer
        }
        return answers
    }

    /// How many answers are cached (expired ones included until they are next touched).
    var cachedCount: Int { cache.count }

    /// Slots of the insertion order still kept (tests: it stays bounded).
    var insertionOrderCount: Int { insertionOrder.count - insertionHead }

    /// Questions and jobs with the worker.
    var outstandingCount: Int { outstanding.count }

    private func store(_ query: NameQuery, _ answer: NameAnswer) {
        let ttl: Double
        switch answer {
        case .unknown: return
        case .absent: ttl = limits.negativeTTL
        case .user, .group: ttl = limits.positiveTTL
        }
        serial += 1
        cache[query] = Cached(answer: answer, expires: now() + ttl, serial: serial)
        insertionOrder.append((query, serial))
        // Oldest first: a key stored again has a newer serial, so its old slot is skipped.
        while cache.count > limits.capacity, insertionHead < insertionOrder.count {
            let (key, stored) = insertionOrder[insertionHead]
            insertionHead += 1
            if cache[key]?.serial == stored { cache[key] = nil }
        }
        if insertionHead > 1024, insertionHead * 2 > insertionOrder.count {
            insertionOrder.removeFirst(insertionHead)
            insertionHead = 0
        }
        // A key stored again (its answer expired and was asked anew) leaves a stale slot
        // behind; with the cache under its capacity nothing above ever drops those. Keep
        // only the live slots once the stale ones outnumber what the cache may hold
        // (amortised: at most `capacity` slots survive each pass).
        if insertionOrder.count - insertionHead > 2 * limits.capacity + 1024 {
            insertionOrder = insertionOrder[insertionHead...].filter { cache[$0.0]?.serial == $0.1 }
            insertionHead = 0
        }
    }

    // MARK: Asking

    /// Looks up every question, from the cache or on the worker, and calls
    /// `completion` on the loop with an answer to each (`.unknown` for those
    /// that timed out or could not be asked). Always later, never from inside this call.
    func lookUp(_ queries: some Sequence<NameQuery>, completion: @escaping ([NameQuery: NameAnswer]) -> Void) {
        let time = now()
        var answers: [NameQuery: NameAnswer] = [:]
        var missing: Set<NameQuery> = []
        for query in queries where answers[query] == nil && !missing.contains(query) {
            if let answer = cached(query) {
                answers[query] = answer
            } else if outstanding[.query(query)] != nil || hand(.query(query), at: time) {
                missing.insert(query)
            } else {
                answers[query] = .unknown
            }
        }
        let waiter = Waiter(deadline: time + limits.timeout, missing: missing, answers: answers, completion: completion)
        if missing.isEmpty {
            ready.append(waiter)
            channel.notifyLoop()
            return
        }
        waiters[ObjectIdentifier(waiter)] = waiter
        for query in missing { waitersByQuery[query, default: []].append(waiter) }
        timer?.isEnabled = true
    }

    /// One question; see lookUp(_:completion:).
    func lookUp(_ query: NameQuery, completion: @escaping (NameAnswer) -> Void) {
        lookUp([query]) { completion($0[query] ?? .unknown) }
    }

    /// Runs `work` on the worker (after what is queued there) and calls
    /// `completion` on the loop with its result, or with nil when it did not
    /// finish within the timeout or could not be queued (the worker is stuck
    /// or has too much outstanding). Always later, never from inside this call.
    func run<T: Sendable>(_ work: @escaping @Sendable () -> T, completion: @escaping (T?) -> Void) {
        let time = now()
        let id = nextJob
        nextJob += 1
        let item = Channel.Item.job(id)
        jobs[id] = Job(deadline: time + limits.timeout) { completion($0 as? T) }
        if hand(item, at: time, work: { work() }) {
            timer?.isEnabled = true
        } else {
            // Answered from the loop's next turn, as everything else.
            channel.postRefusedJob(id)
        }
    }

    /// Hands a question or job to the worker, unless it is stuck or full.
    private func hand(_ item: Channel.Item, at time: Double, work: (@Sendable () -> any Sendable)? = nil) -> Bool {
        guard outstanding.count < limits.maxOutstanding else { return false }
        if let oldest = outstanding.values.min(), time - oldest > limits.timeout { return false }
        outstanding[item] = time
        channel.submit(item, work: work)
        return true
    }

    // MARK: Answers, on the loop

    private func takeAnswers() {
        channel.drainNotifications()
        for result in channel.takeResults() {
            switch result {
            case .answer(let query, let answer):
                outstanding[.query(query)] = nil
                store(query, answer)
                for waiter in waitersByQuery.removeValue(forKey: query) ?? [] {
                    waiter.answers[query] = answer
                    waiter.missing.remove(query)
                    if waiter.missing.isEmpty { finish(waiter) }
                }
            case .job(let id, let value):
                outstanding[.job(id)] = nil
                jobs.removeValue(forKey: id)?.completion(value)
            }
        }
        let due = ready
        ready = []
        for waiter in due { waiter.completion(waiter.answers) }
        if waiters.isEmpty && jobs.isEmpty { timer?.isEnabled = false }
    }

    private func finish(_ waiter: Waiter) {
        guard waiters.removeValue(forKey: ObjectIdentifier(waiter)) != nil else { return }
        waiter.completion(waiter.answers)
    }

    /// Completes the waiters and jobs past their deadline.
    private func expire() {
        let time = now()
        for waiter in Array(waiters.values) where waiter.deadline <= time {
            for query in waiter.missing {
                waiter.answers[query] = .unknown
                waitersByQuery[query]?.removeAll { $0 === waiter }
                if waitersByQuery[query]?.isEmpty == true { waitersByQuery[query] = nil }
            }
            waiter.missing = []
            finish(waiter)
        }
        for (id, job) in jobs where job.deadline <= time {
            jobs[id] = nil
            job.completion(nil)
        }
        if waiters.isEmpty && jobs.isEmpty { timer?.isEnabled = false }
    }
}

/// What the loop and the worker share: the queue, the answers, two pipes.
private final class Channel: Sendable {
    enum Item: Hashable, Sendable {
        case query(NameQuery)
        case job(UInt64)
    }

    enum Result: Sendable {
        case answer(NameQuery, NameAnswer)
        /// A job's value; nil when it was never run.
        case job(UInt64, (any Sendable)?)
    }

    private struct Work: Sendable {
        let item: Item
        let job: (@Sendable () -> any Sendable)?
    }

    private struct State: Sendable {
        var queue: [Work] = []
        var results: [Result] = []
        var stopped = false
    }

    private let state = Mutex(State())
    /// Written by the loop when work is queued; the worker blocks reading it.
    private let wake: (read: Int32, write: Int32)
    /// Written by the worker when results are there; the loop watches it.
    private let done: (read: Int32, write: Int32)
    private let lookup: NameService.Lookup

    init(wake: (Int32, Int32), done: (Int32, Int32), lookup: @escaping NameService.Lookup) {
        self.wake = wake
        self.done = done
        self.lookup = lookup
    }

    deinit {
        for fd in [wake.read, wake.write, done.read, done.write] { Glibc.close(fd) }
    }

    private static func poke(_ fd: Int32) {
        var byte: UInt8 = 1
        _ = write(fd, &byte, 1)  // EAGAIN: the pipe is full, so its reader wakes anyway
    }

    private static func drain(_ fd: Int32) {
        var bytes = [UInt8](repeating: 0, count: 256)
        while bytes.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) == 256 {}
    }

    /// Starts the detached worker with every signal blocked (the loop takes
    /// signals through signalfd; the worker must never be chosen for one).
    func startWorker() throws(Errno) {
        var all = sigset_t()
        sigfillset(&all)
        var previous = sigset_t()
        pthread_sigmask(SIG_SETMASK, &all, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { raw in
            let channel = Unmanaged<Channel>.fromOpaque(raw!).takeRetainedValue()
            channel.work()
            return nil
        }, context)
        guard status == 0 else {
            Unmanaged<Channel>.fromOpaque(context).release()
            throw Errno(rawValue: status)
        }
        pthread_detach(thread)
    }

    func submit(_ item: Item, work: (@Sendable () -> any Sendable)?) {
        state.withLock { $0.queue.append(Work(item: item, job: work)) }
        Self.poke(wake.write)
    }

    func stop() {
        state.withLock { $0.stopped = true }
        Self.poke(wake.write)
    }

    /// A job refused before it reached the worker: answered through the same path.
    func postRefusedJob(_ id: UInt64) {
        state.withLock { $0.results.append(.job(id, nil)) }
        notifyLoop()
    }

    func notifyLoop() {
        Self.poke(done.write)
    }

    func drainNotifications() {
        Self.drain(done.read)
    }

    func takeResults() -> [Result] {
        state.withLock { state in
            defer { state.results = [] }
            return state.results
        }
    }

    /// The worker: waits to be woken, answers everything queued, in order.
    private func work() {
        while true {
            let next: Work?? = state.withLock { state in
                if state.stopped { return .none }
                if state.queue.isEmpty { return .some(nil) }
                return .some(state.queue.removeFirst())
            }
            guard let work = next else { return }
            guard let work else {
                // Blocks until poked (or EINTR): then look again. Pokes that
                // piled up only cost an empty turn each.
                var bytes = [UInt8](repeating: 0, count: 256)
                _ = bytes.withUnsafeMutableBytes { read(wake.read, $0.baseAddress, $0.count) }
                continue
            }
            let result: Result
            switch work.item {
            case .query(let query): result = .answer(query, lookup(query))
            case .job(let id): result = .job(id, work.job?())
            }
            let stopped = state.withLock { state in
                state.results.append(result)
                return state.stopped
            }
            if stopped { return }
            notifyLoop()
        }
    }
}
