import Glibc
import Testing
import Systemd

/// Signal sources.
///
/// sd-event wants the signal blocked, and in a daemon it must be blocked in every thread (block it on
/// the main thread before starting others). The test harness runs tests on a pool of threads that we do
/// not control, so a process-directed `kill(getpid(), …)` could land on a thread that has the signal
/// unblocked and kill the test process. Instead the test blocks SIGUSR1 in its own thread only (a
/// synchronous test runs start to finish on one thread) and sends it to that thread alone with
/// `pthread_kill`. A thread-directed signal stays pending for that thread, and the signalfd that
/// sd-event reads from the same thread picks it up. No other thread can ever receive it.
@Suite("Signal sources")
struct SignalSourceTests {
    @Test func signalSourceReceivesAThreadDirectedSignal() throws {
        var block = sigset_t()
        var previous = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGUSR1)
        #expect(pthread_sigmask(SIG_BLOCK, &block, &previous) == 0)
        defer {
            // Consume anything still pending for this thread before unblocking, so that restoring
            // the mask can never deliver SIGUSR1 with its default (fatal) action.
            var none = timespec(tv_sec: 0, tv_nsec: 0)
            while sigtimedwait(&block, nil, &none) == SIGUSR1 {}
            pthread_sigmask(SIG_SETMASK, &previous, nil)
        }

        let loop = try EventLoop()
        var received: [SignalInfo] = []
        let source = try loop.addSignal(SIGUSR1) { info in
            received.append(info)
            loop.exit(code: 0)
        }
        #expect(pthread_kill(pthread_self(), SIGUSR1) == 0)
        #expect(try TestSupport.runGuarded(loop) == 0)
        source.cancel()

        #expect(received.count == 1)
        #expect(received.first?.signal == SIGUSR1)
        #expect(received.first?.senderPID == getpid())
        #expect(received.first?.senderUID == getuid())
    }

    @Test func addingASignalThatIsNotBlockedFails() throws {
        // sd-event refuses a signal not blocked in the calling thread with EBUSY. Unblock
        // SIGWINCH in this thread only (its default action is to be ignored), rather than
        // trust the harness's mask, and put the mask back afterwards.
        var winch = sigset_t()
        var previous = sigset_t()
        sigemptyset(&winch)
        sigaddset(&winch, SIGWINCH)
        #expect(pthread_sigmask(SIG_UNBLOCK, &winch, &previous) == 0)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let loop = try EventLoop()
        let error = #expect(throws: SystemdError.self) {
            _ = try loop.addSignal(SIGWINCH) { _ in }
        }
        #expect(error?.operation == "sd_event_add_signal")
        #expect(error?.errno == EBUSY)
    }
}
