import Glibc
import Testing
@testable import Systemd

@Suite("EventLoop")
struct EventLoopTests {
    @Test func ioSourceFiresWhenPipeBecomesReadable() throws {
        let loop = try EventLoop()
        let (readEnd, writeEnd) = TestSupport.makePipe()
        defer { close(readEnd); close(writeEnd) }
        var seen: IOEvents = []
        let source = try loop.addIO(fd: readEnd, events: .readable) { events in
            seen = events
            loop.exit(code: 0)
        }
        // Nothing to read yet: an iteration with a short timeout dispatches nothing.
        #expect(try loop.runOnce(timeoutMicroseconds: 5_000))
        #expect(seen == [])
        TestSupport.writeString(writeEnd, "x")
        #expect(try TestSupport.runGuarded(loop) == 0)
        #expect(seen.contains(.readable))
        source.cancel()
    }

    @Test func cancellingInsideItsOwnHandlerIsSafe() throws {
        let loop = try EventLoop()
        let (readEnd, writeEnd) = TestSupport.makePipe()
        defer { close(readEnd); close(writeEnd) }
        TestSupport.writeString(writeEnd, "x")  // never read: a level-triggered source would fire again
        var calls = 0
        var source: EventSource?
        source = try loop.addIO(fd: readEnd, events: .readable) { _ in
            calls += 1
            source?.cancel()
            source?.cancel()  // idempotent
        }
        try TestSupport.iterate(loop, forMicroseconds: 50_000)
        #expect(calls == 1)
        #expect(source?.isEnabled == false)
    }

    @Test func droppingTheLastReferenceInsideItsOwnHandlerIsSafe() throws {
        let loop = try EventLoop()
        let (readEnd, writeEnd) = TestSupport.makePipe()
        defer { close(readEnd); close(writeEnd) }
        TestSupport.writeString(writeEnd, "x")
        var calls = 0
        var holder: EventSource?
        let marker = Marker()
        weak let weakMarker = marker
        holder = try loop.addIO(fd: readEnd, events: .readable) { [marker] _ in
            calls += 1
            holder = nil  // frees the EventSource (and the box) while this handler runs
            marker.touch()  // the captured state must still be alive here
        }
        try TestSupport.iterate(loop, forMicroseconds: 50_000)
        #expect(calls == 1)
        #expect(holder == nil)
        _ = consume marker
        #expect(weakMarker == nil, "the handler's captures are released once it returned")
    }

    @Test func setIOEventsChangesInterest() throws {
        let loop = try EventLoop()
        let (a, b) = TestSupport.makeSocketPair()
        defer { close(a); close(b) }
        var seen: [IOEvents] = []
        let source = try loop.addIO(fd: a, events: .readable) { events in
            seen.append(events)
            loop.exit(code: 7)
        }
        // Nothing to read, so nothing fires.
        try TestSupport.iterate(loop, forMicroseconds: 20_000)
        #expect(seen.isEmpty)
        // An empty socket is writable right away.
        try source.setIOEvents(.writable)
        #expect(try TestSupport.runGuarded(loop) == 7)
        #expect(seen.count == 1)
        #expect(seen.first?.contains(.writable) == true)
        #expect(seen.first?.contains(.readable) == false)
    }

    @Test func repeatingTimerRepeatsUntilCancelled() throws {
        let loop = try EventLoop()
        var ticks = 0
        var timer: EventSource?
        timer = try loop.addRepeatingTimer(everyMicroseconds: 2_000) {
            ticks += 1
            if ticks == 3 { timer?.cancel() }
        }
        try TestSupport.iterate(loop, forMicroseconds: 500_000) { ticks >= 3 }
        #expect(ticks == 3)
        try TestSupport.iterate(loop, forMicroseconds: 20_000)
        #expect(ticks == 3, "no tick after cancel")
    }

    @Test func deferRunsOnceAndCanBeReenabled() throws {
        let loop = try EventLoop()
        var runs = 0
        let deferred = try loop.addDefer { runs += 1 }
        #expect(deferred.isEnabled)
        try TestSupport.iterate(loop, forMicroseconds: 30_000)
        #expect(runs == 1)
        #expect(deferred.isEnabled == false)
        deferred.isEnabled = true
        try TestSupport.iterate(loop, forMicroseconds: 30_000)
        #expect(runs == 2, "re-enabled as one-shot: exactly one more run")
    }

    @Test func exitMakesRunReturnTheCode() throws {
        let loop = try EventLoop()
        let source = try loop.addDefer { loop.exit(code: 42) }
        #expect(try loop.run() == 42)
        // A finished loop runs no more.
        #expect(try loop.runOnce(timeoutMicroseconds: 0) == false)
        source.cancel()
    }

    @Test func runOnceReportsFinish() throws {
        let loop = try EventLoop()
        var stage = 0
        let source = try loop.addDefer {
            stage = 1
            loop.exit(code: 3)
        }
        var iterations = 0
        while try loop.runOnce(timeoutMicroseconds: 10_000) {
            iterations += 1
            if iterations > 100 { break }
        }
        #expect(stage == 1)
        #expect(iterations < 100)
        _ = source
    }

    @Test func negativeExitCodeIsNotAnError() throws {
        let loop = try EventLoop()
        let source = try loop.addDefer { loop.exit(code: -5) }
        #expect(try loop.run() == -5)
        _ = source
    }

    @Test func droppingAnEventSourceReleasesItsHandler() throws {
        let loop = try EventLoop()
        weak var weakMarker: Marker?
        var source: EventSource?
        do {
            let marker = Marker()
            weakMarker = marker
            source = try loop.addRepeatingTimer(everyMicroseconds: 10_000_000) { marker.touch() }
        }
        #expect(weakMarker != nil, "the source keeps its handler alive")
        #expect(source?.isEnabled == true)
        source = nil
        #expect(weakMarker == nil, "dropping the source releases the handler")
    }

    @Test func cancelReleasesTheHandlerWhileTheObjectLives() throws {
        let loop = try EventLoop()
        weak var weakMarker: Marker?
        let source: EventSource
        do {
            let marker = Marker()
            weakMarker = marker
            source = try loop.addDefer { marker.touch() }
        }
        #expect(weakMarker != nil)
        source.cancel()
        #expect(weakMarker == nil)
        #expect(source.isEnabled == false)
    }

    @Test func aCancelledSourceRefusesChanges() throws {
        let loop = try EventLoop()
        let (readEnd, writeEnd) = TestSupport.makePipe()
        defer { close(readEnd); close(writeEnd) }
        let source = try loop.addIO(fd: readEnd, events: .readable) { _ in }
        source.cancel()
        source.cancel()  // idempotent
        let error = #expect(throws: SystemdError.self) { try source.setIOEvents(.writable) }
        #expect(error == SystemdError(operation: "sd_event_source_set_io_events", errno: ECANCELED))
        source.isEnabled = true  // does nothing
        #expect(source.isEnabled == false)
    }

    /// How a connection pauses reading: a disabled I/O source does not fire however ready its
    /// descriptor is, and fires again, level-triggered, once enabled.
    @Test func aDisabledIOSourceWaitsUntilEnabledAgain() throws {
        let loop = try EventLoop()
        let (readEnd, writeEnd) = TestSupport.makePipe()
        defer { close(readEnd); close(writeEnd) }
        var calls = 0
        let source = try loop.addIO(fd: readEnd, events: .readable) { _ in calls += 1 }
        source.isEnabled = false
        TestSupport.writeString(writeEnd, "x")
        try TestSupport.iterate(loop, forMicroseconds: 30_000)
        #expect(calls == 0)
        source.isEnabled = true
        #expect(source.isEnabled)
        try TestSupport.iterate(loop, forMicroseconds: 200_000) { calls >= 2 }
        #expect(calls >= 2, "still readable, so it fires on every iteration")
    }

    @Test func aRepeatingTimerNeedsAPeriod() throws {
        let loop = try EventLoop()
        let error = #expect(throws: SystemdError.self) { _ = try loop.addRepeatingTimer(everyMicroseconds: 0) {} }
        #expect(error?.errno == EINVAL)
    }

    @Test func sourcesKeepTheLoopAlive() throws {
        weak var weakLoop: EventLoop?
        var source: EventSource?
        do {
            let loop = try EventLoop()
            weakLoop = loop
            source = try loop.addDefer {}
        }
        #expect(weakLoop != nil)
        #expect(source?.isEnabled == true)
        source = nil
        #expect(weakLoop == nil, "the loop is freed with its last source")
    }

    @Test func errorsNameTheCallAndErrno() throws {
        let loop = try EventLoop()
        let error = #expect(throws: SystemdError.self) {
            _ = try loop.addIO(fd: 1_000_000, events: .readable) { _ in }
        }
        #expect(error?.operation == "sd_event_add_io")
        #expect(error?.errno == EBADF)
        #expect(error?.description == "sd_event_add_io: Bad file descriptor")
    }
}

/// An object whose lifetime the tests watch through weak references.
final class Marker {
    private(set) var touches = 0
    func touch() { touches += 1 }
}
