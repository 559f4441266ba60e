#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Real threads for the benchmark's clients: on a 2-core machine a pool of
/// Swift tasks would run at most two clients at a time, so concurrency is
/// made with one pthread per client, each blocking on its own connection.
enum ClientThreads {
    private final class Start: @unchecked Sendable {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Runs `body(i)` for every i in 0..<count, each on a thread of its own,
    /// and returns the results in order once every thread has ended. A
    /// thread that cannot be created runs its body on the caller's thread
    /// afterwards, so every index is run exactly once.
    static func run<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> T) -> [T] {
        let results = Mutex<[T?]>(Array(repeating: nil, count: count))
        var threads: [pthread_t] = []
        var leftOver: [Int] = []
        for index in 0..<count {
            let start = Start {
                let value = body(index)
                results.withLock { $0[index] = value }
            }
            let context = Unmanaged.passRetained(start).toOpaque()
            var thread = pthread_t()
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            pthread_attr_setstacksize(&attributes, 1 << 20)
            let created = pthread_create(&thread, &attributes, { raw in
                Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue().body()
                return nil
            }, context)
            pthread_attr_destroy(&attributes)
            if created == 0 {
                threads.append(thread)
            } else {
                Unmanaged<Start>.fromOpaque(context).release()
                leftOver.append(index)
            }
        }
        for thread in threads { pthread_join(thread, nil) }
        for index in leftOver {
            let value = body(index)
            results.withLock { $0[index] = value }
        }
        return results.withLock { $0.map { $0! } }
    }
}

/// Lets several clients fire the same request at (nearly) the same moment:
/// each arrives at a named gate and waits until `expected` have arrived, or
/// until the wait times out (a client that stopped early must not hang the
/// others).
final class Gates: Sendable {
    private let arrivals = Mutex<[String: Int]>([:])

    /// Returns whether everybody arrived in time.
    @discardableResult
    func arrive(_ name: String, expected: Int, timeoutNanoseconds: UInt64) -> Bool {
        arrivals.withLock { $0[name, default: 0] += 1 }
        let deadline = monotonicNanoseconds() + timeoutNanoseconds
        while arrivals.withLock({ $0[name, default: 0] }) < expected {
            if monotonicNanoseconds() >= deadline { return false }
            usleep(200)
        }
        return true
    }
}

/// Sleeps until CLOCK_MONOTONIC reaches `nanoseconds`.
func sleep(untilMonotonic nanoseconds: UInt64) {
    var target = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &target, nil) == EINTR {}
}
