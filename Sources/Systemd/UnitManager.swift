import CSystemd
import Glibc

/// A unit property as StartTransientUnit and SetUnitProperties take it: one "(sv)" of an "a(sv)".
public enum UnitProperty: Sendable, Equatable {
    case string(String, String)
    case bool(String, Bool)
    case uint64(String, UInt64)
    /// An "au", e.g. PIDs.
    case uint32s(String, [UInt32])

    public var name: String {
        switch self {
        case .string(let name, _), .bool(let name, _), .uint64(let name, _), .uint32s(let name, _): return name
        }
    }
}

/// Why systemd did not do what was asked: the D-Bus error (name and text), a job that ended
/// other than "done", or the connection failing.
public struct UnitError: Error, Sendable, CustomStringConvertible {
    /// The D-Bus error name ("org.freedesktop.systemd1.UnitExists"), or nil when the call
    /// itself failed or the job ended badly.
    public let name: String?
    public let message: String

    public init(name: String? = nil, _ message: String) {
        self.name = name
        self.message = message
    }

    public var description: String { message }
}

/// systemd's manager over D-Bus (sd-bus), for the transient units of groups: StartTransientUnit
/// of a scope, waiting for its job, and SetUnitProperties of a slice.
///
/// Every call is asynchronous, on the event loop the bus is attached to: nothing here waits
/// for systemd. The connection is the one systemctl uses as root, systemd's private socket
/// (/run/systemd/private, no dbus-daemon needed), or else the system bus; one that closed
/// (systemd re-executed) is opened again by the next call. Not Sendable: the loop's thread only.
public final class UnitManager {
    private let loop: EventLoop
    private var bus: OpaquePointer?
    /// What the connection goes to, for messages: "/run/systemd/private" or "the system bus".
    public private(set) var address = ""
    /// Starts waiting for their job's end, by job object path, with when they give up
    /// (monotonic seconds).
    private var jobWaiters: [String: (deadline: Int64, completion: (UnitError?) -> Void)] = [:]
    /// Gives up on jobs that did not end in `jobTimeout` seconds; there while some are waited for.
    private var jobTimer: EventSource?
    /// How long a start waits for its job.
    public static let jobTimeout: Int64 = 30
    /// JobRemoved results that came before the reply naming their job (kept for a few jobs).
    private var earlyResults: [String: String] = [:]

    static let privateSocket = "/run/systemd/private"

    /// Whether systemd is the init system (sd_booted(3): /run/systemd/system exists).
    public static var isBooted: Bool { sd_booted() > 0 }

    /// Connects and attaches to `loop`; throws when neither connection can be made.
    public init(loop: EventLoop) throws(SystemdError) {
        self.loop = loop
        try connect()
    }

    deinit {
        if let bus { sd_bus_close_unref(bus) }
    }

    private func connect() throws(SystemdError) {
        if let old = bus {
            // A connection that closed by itself still owes its calls their replies: processing
            // it now gives each a synthetic error (sd-bus's "connection terminated"), so that
            // no create or enter waits for an answer that will never come. That is local work,
            // nothing is read from systemd.
            while sd_bus_process(old, nil) > 0 {}
            sd_bus_close_unref(old)
            bus = nil
            let waiters = jobWaiters
            jobWaiters = [:]
            earlyResults = [:]
            jobTimer = nil
            for waiter in waiters.values { waiter.completion(UnitError("the connection to systemd closed before the job ended")) }
        }
        var opened: OpaquePointer?
        if sd_bus_new(&opened) >= 0, let candidate = opened {
            if sd_bus_set_address(candidate, "unix:path=" + Self.privateSocket) >= 0, sd_bus_start(candidate) >= 0 {
                bus = candidate
                address = Self.privateSocket
            } else {
                sd_bus_close_unref(candidate)
            }
        }
        if bus == nil {
            var system: OpaquePointer?
            try SystemdError.check(sd_bus_open_system(&system), "sd_bus_open_system")
            bus = system
            address = "the system bus"
        }
        guard let bus else { throw SystemdError(operation: "sd_bus_open_system", errno: ENOTCONN) }
        do throws(SystemdError) {
            try SystemdError.check(sd_bus_attach_event(bus, loop.event, 0), "sd_bus_attach_event")
            // Every job's end: the waiter of a scope's start learns it here.
            let box = Unmanaged.passUnretained(self).toOpaque()
            try SystemdError.check(sd_bus_match_signal_async(
                bus, nil, "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                "JobRemoved", { message, userdata, _ in
                    guard let message, let userdata else { return 0 }
                    Unmanaged<UnitManager>.fromOpaque(userdata).takeUnretainedValue().jobRemoved(message)
                    return 0
                }, nil, box), "sd_bus_match_signal_async")
        } catch {
            sd_bus_close_unref(bus)
            self.bus = nil
            throw error
        }
    }

    /// The bus, opened again when it closed.
    private func openBus() throws(UnitError) -> OpaquePointer {
        if let bus, sd_bus_is_open(bus) > 0 { return bus }
        do throws(SystemdError) {
            try connect()
        } catch {
            throw UnitError("cannot connect to systemd: \(error)")
        }
        guard let bus else { throw UnitError("cannot connect to systemd") }
        return bus
    }

    // MARK: Calls

    /// StartTransientUnit(name, "fail", properties, []), then waits for the job: `completion`
    /// gets nil once the unit is started (a scope's PIDs are in its cgroup), else why not.
    public func startTransientUnit(_ name: String, _ properties: [UnitProperty], completion: @escaping (UnitError?) -> Void) {
        call("StartTransientUnit", { (message: OpaquePointer) throws(UnitError) in
            try Self.append(message, "s", name)
            try Self.append(message, "s", "fail")
            try Self.appendProperties(message, properties)
            try Self.check(sd_bus_message_open_container(message, CChar(UInt8(ascii: "a")), "(sa(sv))"), "open")
            try Self.check(sd_bus_message_close_container(message), "close")
        }, reply: { [weak self] reply in
            guard let self else { return }
            if let error = Self.error(of: reply) { return completion(error) }
            var path: UnsafePointer<CChar>?
            guard sd_bus_message_read_basic(reply, CChar(UInt8(ascii: "o")), &path) >= 0, let path else {
                return completion(UnitError("StartTransientUnit of \(name): the reply names no job"))
            }
            let job = String(cString: path)
            if let result = self.earlyResults.removeValue(forKey: job) {
                return completion(Self.jobError(name, result))
            }
            self.wait(for: job, completion)
        }, completion: completion)
    }

    /// SetUnitProperties(name, runtime = true, properties): the values hold until the next boot.
    public func setUnitProperties(_ name: String, _ properties: [UnitProperty], completion: @escaping (UnitError?) -> Void) {
        call("SetUnitProperties", { (message: OpaquePointer) throws(UnitError) in
            try Self.append(message, "s", name)
            var runtime: Int32 = 1
            try Self.check(sd_bus_message_append_basic(message, CChar(UInt8(ascii: "b")), &runtime), "append")
            try Self.appendProperties(message, properties)
        }, reply: { reply in completion(Self.error(of: reply)) }, completion: completion)
    }

    /// A method call on org.freedesktop.systemd1.Manager, its arguments added by `build`;
    /// `reply` gets the answer (error or not), `completion` an error that came before.
    private func call(_ method: String, _ build: (OpaquePointer) throws(UnitError) -> Void,
                      reply: @escaping (OpaquePointer) -> Void, completion: (UnitError?) -> Void) {
        do throws(UnitError) {
            let bus = try openBus()
            var message: OpaquePointer?
            try Self.check(sd_bus_message_new_method_call(bus, &message, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                                          "org.freedesktop.systemd1.Manager", method), "new \(method)")
            guard let message else { throw UnitError("\(method): no message") }
            defer { sd_bus_message_unref(message) }
            try build(message)
            let box = Unmanaged.passRetained(ReplyBox(reply)).toOpaque()
            var slot: OpaquePointer?
            let r = sd_bus_call_async(bus, &slot, message, { message, userdata, _ in
                guard let message, let userdata else { return 0 }
                let box = Unmanaged<ReplyBox>.fromOpaque(userdata).takeUnretainedValue()
                withExtendedLifetime(box) { box.handler(message) }
                return 0
            }, box, 0)
            guard r >= 0, let slot else {
                Unmanaged<ReplyBox>.fromOpaque(box).release()
                throw UnitError("\(method): \(SystemdError(operation: "sd_bus_call_async", errno: r))")
            }
            // The bus owns the slot; the box goes with it, after the reply (or the connection's end).
            sd_bus_slot_set_destroy_callback(slot) { userdata in
                if let userdata { Unmanaged<ReplyBox>.fromOpaque(userdata).release() }
            }
            sd_bus_slot_set_floating(slot, 1)
            sd_bus_slot_unref(slot)
        } catch {
            completion(error)
        }
    }

    private final class ReplyBox {
        let handler: (OpaquePointer) -> Void
        init(_ handler: @escaping (OpaquePointer) -> Void) { self.handler = handler }
    }

    private static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec)
    }

    private func wait(for job: String, _ completion: @escaping (UnitError?) -> Void) {
        jobWaiters[job] = (Self.now() + Self.jobTimeout, completion)
        guard jobTimer == nil else { return }
        jobTimer = try? loop.addRepeatingTimer(everyMicroseconds: 1_000_000) { [weak self] in
            guard let self else { return }
            let now = Self.now()
            for (path, waiter) in self.jobWaiters where waiter.deadline <= now {
                self.jobWaiters[path] = nil
                waiter.completion(UnitError("systemd did not finish the job \(path) in \(Self.jobTimeout) s"))
            }
            if self.jobWaiters.isEmpty { self.jobTimer = nil }
        }
    }

    /// JobRemoved(u id, o job, s unit, s result).
    private func jobRemoved(_ message: OpaquePointer) {
        var id: UInt32 = 0
        var job: UnsafePointer<CChar>?
        var unit: UnsafePointer<CChar>?
        var result: UnsafePointer<CChar>?
        guard sd_bus_message_read_basic(message, CChar(UInt8(ascii: "u")), &id) >= 0,
              sd_bus_message_read_basic(message, CChar(UInt8(ascii: "o")), &job) >= 0,
              sd_bus_message_read_basic(message, CChar(UInt8(ascii: "s")), &unit) >= 0,
              sd_bus_message_read_basic(message, CChar(UInt8(ascii: "s")), &result) >= 0,
              let job, let unit, let result else { return }
        let path = String(cString: job)
        let outcome = String(cString: result)
        guard let waiter = jobWaiters.removeValue(forKey: path) else {
            // Another client's job, or ours before its reply: keep only our units' few.
            if String(cString: unit).hasPrefix("nsgroup-") {
                if earlyResults.count >= 64 { earlyResults.removeAll() }
                earlyResults[path] = outcome
            }
            return
        }
        if jobWaiters.isEmpty { jobTimer = nil }
        waiter.completion(Self.jobError(String(cString: unit), outcome))
    }

    private static func jobError(_ unit: String, _ result: String) -> UnitError? {
        result == "done" ? nil : UnitError(name: nil, "the job starting \(unit) ended \"\(result)\" (journalctl -u \(unit) says why)")
    }

    // MARK: Messages

    private static func check(_ result: Int32, _ what: String) throws(UnitError) {
        if result < 0 { throw UnitError("building a message to systemd (\(what)): \(SystemdError.errorText(-result))") }
    }

    private static func append(_ message: OpaquePointer, _ type: String, _ value: String) throws(UnitError) {
        try check(value.withCString { sd_bus_message_append_basic(message, type.utf8CString[0], $0) }, "append \(type)")
    }

    /// "a(sv)".
    private static func appendProperties(_ message: OpaquePointer, _ properties: [UnitProperty]) throws(UnitError) {
        let a = CChar(UInt8(ascii: "a")), r = CChar(UInt8(ascii: "r")), v = CChar(UInt8(ascii: "v"))
        try check(sd_bus_message_open_container(message, a, "(sv)"), "open a(sv)")
        for property in properties {
            try check(sd_bus_message_open_container(message, r, "sv"), "open (sv)")
            try append(message, "s", property.name)
            switch property {
            case .string(_, let value):
                try check(sd_bus_message_open_container(message, v, "s"), "open v")
                try append(message, "s", value)
            case .bool(_, let value):
                try check(sd_bus_message_open_container(message, v, "b"), "open v")
                var flag: Int32 = value ? 1 : 0
                try check(sd_bus_message_append_basic(message, CChar(UInt8(ascii: "b")), &flag), "append b")
            case .uint64(_, let value):
                try check(sd_bus_message_open_container(message, v, "t"), "open v")
                var number = value
                try check(sd_bus_message_append_basic(message, CChar(UInt8(ascii: "t")), &number), "append t")
            case .uint32s(_, let values):
                try check(sd_bus_message_open_container(message, v, "au"), "open v")
                try check(sd_bus_message_open_container(message, a, "u"), "open au")
                for value in values {
                    var number = value
                    try check(sd_bus_message_append_basic(message, CChar(UInt8(ascii: "u")), &number), "append u")
                }
                try check(sd_bus_message_close_container(message), "close au")
            }
            try check(sd_bus_message_close_container(message), "close v")
            try check(sd_bus_message_close_container(message), "close (sv)")
        }
        try check(sd_bus_message_close_container(message), "close a(sv)")
    }

    /// The error a reply carries, or nil for a method return.
    private static func error(of reply: OpaquePointer) -> UnitError? {
        guard sd_bus_message_is_method_error(reply, nil) > 0 else { return nil }
        guard let error = sd_bus_message_get_error(reply) else { return UnitError("systemd answered with an error") }
        let name = error.pointee.name.map { String(cString: $0) }
        let text = error.pointee.message.map { String(cString: $0) } ?? name ?? "an error"
        return UnitError(name: name, text)
    }
}
