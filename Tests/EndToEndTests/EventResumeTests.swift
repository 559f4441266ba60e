import Client
import Foundation
import Glibc
import RPC
import Testing

/// Issue 18, events 1.1: sequence numbers, filters, resuming with `since` from the
/// server's ring, a `gap` where the ring no longer holds what was missed (or the server
/// restarted), and `unsubscribe`; against a real supervisor.
@Suite(.serialized) struct EventResumeTests {
    /// The events already sent to `client`: a request is answered after every event queued
    /// before it, so one `list` brings them all in.
    static func drain(_ client: RPCClient) throws -> [JSONValue] {
        _ = try client.call("list")
        var events: [JSONValue] = []
        while client.hasBufferedInput, let (method, params) = try client.nextNotification() {
            if method == NotificationName.event.rawValue { events.append(params) }
        }
        return events
    }

    static func summary(_ events: [JSONValue]) -> [String] {
        events.map { "\($0["type"]?.stringValue ?? "?") \($0["group"]?.stringValue ?? $0["reason"]?.stringValue ?? "?")" }
    }

    static func seqs(_ events: [JSONValue]) -> [Int64] { events.compactMap { $0["seq"]?.int64Value } }

    @Test func filteredEventsAreNumberedAndAReconnectGetsExactlyWhatItMissed() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        var first: RPCClient? = try RPCClient(socketPath: supervisor.socketPath)
        let subscribed = try first!.call("subscribe", SubscribeParams(types: [.groupCreated, .groupDestroyed], groups: ["ea", "eb"]).json).result
        let subscription = try #require(subscribed["subscription"]?.int64Value)
        let instance = try #require(subscribed["instance"]?.stringValue)
        #expect(subscription >= 1 && subscribed["seq"]?.int64Value != nil)
        for name in ["ea", "eb", "ec"] {
            #expect(try supervisor.nsgroup(["create", name, "--ns", "uts"], as: alice).status == 0)
        }
        #expect(try supervisor.nsgroup(["enter", "ea", "--", "true"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["destroy", "ea"], as: alice).status == 0)
        let seen = try Self.drain(first!)
        // Only the types and groups asked for: no session events, nothing of ec.
        #expect(Self.summary(seen) == ["group-created ea", "group-created eb", "group-destroyed ea"], "\(seen)")
        let numbers = Self.seqs(seen)
        #expect(numbers.count == 3 && numbers == numbers.sorted() && Set(numbers).count == 3, "\(numbers)")
        let last = try #require(numbers.last)

        // Gone for a while: meanwhile eb ends, ed comes and goes.
        first = nil
        #expect(try supervisor.nsgroup(["destroy", "eb"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["create", "ed", "--ns", "uts"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["destroy", "ed"], as: alice).status == 0)

        // Back, with the same filter and since: exactly eb's end, once, before the reply.
        let second = try RPCClient(socketPath: supervisor.socketPath)
        var resume = SubscribeParams(types: [.groupCreated, .groupDestroyed], groups: ["ea", "eb"], since: UInt64(last), instance: instance)
        _ = try second.call("subscribe", resume.json)
        let missed = try Self.drain(second)
        #expect(Self.summary(missed) == ["group-destroyed eb"], "\(missed)")
        #expect(Self.seqs(missed).allSatisfy { $0 > last })

        // Without a filter, from the same point: everything since, in order, ec's and ed's too.
        let third = try RPCClient(socketPath: supervisor.socketPath)
        resume = SubscribeParams(since: UInt64(last), instance: instance)
        _ = try third.call("subscribe", resume.json)
        let all = try Self.drain(third)
        #expect(Self.summary(all) == ["group-destroyed eb", "group-created ed", "group-destroyed ed"], "\(all)")
        let allNumbers = Self.seqs(all)
        #expect(allNumbers == allNumbers.sorted() && allNumbers.first.map { $0 > last } == true)

        // A since after the last event is refused.
        let ahead = serverError { () throws(ClientError) in
            try third.call("subscribe", SubscribeParams(since: 1 << 40, instance: instance).json)
        }
        #expect(ahead?.reason == .invalidParams)
        #expect(ahead?.message.hasPrefix("subscribe: \"since\" 1099511627776 is after the last event of this run") == true, "\(String(describing: ahead))")
    }

    /// What a caller may not see is not replayed either: bob, resuming, gets none of
    /// alice's events.
    @Test func aResumeShowsOnlyWhatTheCallerMaySee() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()
        let started = try RPCClient(socketPath: supervisor.socketPath).call("subscribe").result
        let since = try #require(started["seq"]?.int64Value), instance = try #require(started["instance"]?.stringValue)
        #expect(try supervisor.nsgroup(["create", "hers", "--ns", "uts"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["create", "his", "--ns", "uts"], as: bob).status == 0)
        let script = """
            import socket, json, sys
            s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
            s.sendall((json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"since": int(sys.argv[2]), "instance": sys.argv[3]}}) + "\\n").encode())
            s.sendall(b'{"jsonrpc":"2.0","id":2,"method":"version"}\\n')
            buffer = b""
            while buffer.count(b"\\n") < 2 or b'"id":2' not in buffer:
                chunk = s.recv(65536)
                if not chunk: break
                buffer += chunk
            for line in buffer.decode().splitlines():
                m = json.loads(line)
                if m.get("method") == "event": print(m["params"]["type"], m["params"].get("group"))
            """
        let result = try run("/usr/bin/python3", ["-c", script, supervisor.socketPath, String(since), instance], as: bob)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "group-created his\n", "\(result.stdout)")
    }

    /// More events than the ring holds: a resume from before them starts with a `gap`
    /// saying up to where events are missing, then the newest events, as many as half of
    /// connections.subscriber-buffer takes (256 KiB by default), in order, up to the latest.
    @Test func aResumeOlderThanTheRingStartsWithAGap() throws {
        let supervisor = try TestSupervisor()
        let client = try RPCClient(socketPath: supervisor.socketPath)
        let started = try client.call("subscribe").result
        let since = try #require(started["seq"]?.int64Value), instance = try #require(started["instance"]?.stringValue)
        _ = try client.call("unsubscribe", UnsubscribeParams(subscription: UInt64(try #require(started["subscription"]?.int64Value))).json)
        // create + destroy is two events; 520 of them are more than the ring's 1024.
        for i in 0..<520 {
            _ = try client.call("create", CreateParams(name: "ring\(i)", namespaces: ["uts"]).json)
            _ = try client.call("destroy", NameParams(name: "ring\(i)").json)
        }
        let late = try RPCClient(socketPath: supervisor.socketPath)
        let now = try late.call("subscribe", SubscribeParams(since: UInt64(since), instance: instance).json).result
        let events = try Self.drain(late)
        let gap = try #require(events.first)
        #expect(gap["type"]?.stringValue == "gap" && gap["reason"]?.stringValue == "overflow", "\(gap)")
        let until = try #require(gap["until"]?.int64Value)
        let rest = Array(events.dropFirst())
        let numbers = Self.seqs(rest)
        #expect(numbers.first == until + 1)
        #expect(numbers.last == now["seq"]?.int64Value)
        #expect(numbers == Array(numbers.indices).map { numbers[0] + Int64($0) }, "the replay skips events")
        let bytes = rest.reduce(0) { $0 + $1.serialized().utf8.count }
        #expect(bytes <= 128 << 10 && rest.count > 100, "\(rest.count) events, \(bytes) bytes")
        // A smaller ask fits whole: the events after the gap's end, exactly.
        let again = try RPCClient(socketPath: supervisor.socketPath)
        _ = try again.call("subscribe", SubscribeParams(since: UInt64(until), instance: instance).json)
        #expect(Self.seqs(try Self.drain(again)) == numbers)
    }

    /// A supervisor that stops leaves its ring to the next: a resume across the restart gets
    /// exactly what it missed, nothing lost, nothing twice. One that was killed leaves
    /// nothing: the next run numbers its events afresh, and a resume that names the old run
    /// gets a `gap` (reason restart), then the new run's events.
    @Test(arguments: [false, true])
    func aResumeAcrossARestart(crash: Bool) throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let watcher = try RPCClient(socketPath: supervisor.socketPath)
        let old = try watcher.call("subscribe").result
        let instance = try #require(old["instance"]?.stringValue)
        #expect(try supervisor.nsgroup(["create", "before", "--ns", "uts"], as: alice).status == 0)
        let seen = try Self.drain(watcher)
        let since = try #require(Self.seqs(seen).last)
        // Missed: made after the watcher's last event, before the restart.
        #expect(try supervisor.nsgroup(["destroy", "before"], as: alice).status == 0)
        supervisor.stop(signal: crash ? SIGKILL : SIGTERM)
        try supervisor.start()
        #expect(try supervisor.nsgroup(["create", "after", "--ns", "uts"], as: alice).status == 0)
        let client = try RPCClient(socketPath: supervisor.socketPath)
        let now = try client.call("subscribe", SubscribeParams(since: UInt64(since), instance: instance).json).result
        let events = try Self.drain(client)
        if crash {
            #expect(now["instance"]?.stringValue != instance)
            #expect(Self.summary(events) == ["gap restart", "group-created after"], "\(events)")
        } else {
            #expect(now["instance"]?.stringValue == instance)
            #expect(Self.summary(events) == ["group-destroyed before", "group-created after"], "\(events)")
            #expect(Self.seqs(events) == [since + 1, since + 2], "\(events)")
        }
    }

    /// A session with the largest argv enter takes (128 KiB) is an event of a few KiB: its argv
    /// cut to 16 arguments of 256 bytes, marked argvTruncated. A watcher with the smallest
    /// subscriber buffer the configuration allows stays connected and gets it whole.
    @Test func aHugeArgvDisconnectsNoWatcher() throws {
        let supervisor = try TestSupervisor(config: "[connections]\nsubscriber-buffer = 16384\n")
        let alice = try TestUser.alice()
        let watcher = try RPCClient(socketPath: supervisor.socketPath)
        _ = try watcher.call("subscribe", SubscribeParams(types: [.sessionStarted]).json)
        #expect(try supervisor.nsgroup(["create", "big", "--ns", "uts"], as: alice).status == 0)
        let argv = ["/bin/true"] + Array(repeating: String(repeating: "a", count: 1000), count: 120)
        let entered = try supervisor.nsgroup(["enter", "big", "--"] + argv, as: alice)
        #expect(entered.status == 0, "\(entered.stderr)")
        let events = try Self.drain(watcher)
        let event = try #require(events.first, "the watcher got no event (dropped?)")
        #expect(event["argvTruncated"]?.boolValue == true)
        #expect(event["argv"]?.arrayValue?.count == 16)
        #expect(event.serialized().utf8.count < 8 << 10, "\(event.serialized().utf8.count) bytes")
    }

    /// unsubscribe ends the events on the connection, which goes on answering; another
    /// connection's subscription, or a made-up one, is refused.
    @Test func unsubscribeStopsTheEvents() throws {
        let supervisor = try TestSupervisor()
        let client = try RPCClient(socketPath: supervisor.socketPath)
        let other = try RPCClient(socketPath: supervisor.socketPath)
        let id = try #require(try client.call("subscribe").result["subscription"]?.int64Value)
        let otherID = try #require(try other.call("subscribe").result["subscription"]?.int64Value)
        #expect(otherID != id)
        let wrong = serverError { () throws(ClientError) in try client.call("unsubscribe", UnsubscribeParams(subscription: UInt64(otherID)).json) }
        #expect(wrong?.reason == .invalidParams && wrong?.message == "unsubscribe: this connection has no subscription \(otherID)", "\(String(describing: wrong))")
        _ = try client.call("create", CreateParams(name: "before", namespaces: ["uts"]).json)
        #expect(Self.summary(try Self.drain(client)) == ["group-created before"])
        #expect(try client.call("unsubscribe", UnsubscribeParams(subscription: UInt64(id)).json).result == .object([:]))
        _ = try client.call("create", CreateParams(name: "after", namespaces: ["uts"]).json)
        #expect(try Self.drain(client).isEmpty)
        #expect(Self.summary(try Self.drain(other)) == ["group-created before", "group-created after"])
    }
}
