#if canImport(Glibc)
import Glibc
#endif
import CBench
import POSIX

/// A connection driven by the C client loop (`cbench_roundtrips`): one
/// request outstanding, replies checked only for their first bytes, so that
/// the client costs the same whichever server answers.
final class RawConnection: Sendable {
    let descriptor: Int32

    init(path: String) throws {
        do {
            descriptor = try UnixSocket.connect(path: path).release()
        } catch {
            throw BenchError("cannot connect to \(path): \(error)")
        }
    }

    deinit { close(descriptor) }

    /// `count` round trips of `request` (stopping early at `deadline`, if
    /// not 0). Returns how many completed; throws if the server broke the
    /// exchange (closed, or answered with something else than `prefix`).
    func roundTrips(_ request: [UInt8], expecting prefix: [UInt8], count: Int, deadline: UInt64 = 0,
                    latencies: UnsafeMutablePointer<UInt64>? = nil) throws -> Int {
        var error: Int32 = 0
        let done = request.withUnsafeBytes { req in
            prefix.withUnsafeBytes { pre in
                cbench_roundtrips(descriptor, req.baseAddress, req.count, pre.baseAddress, pre.count, count, deadline, latencies, &error)
            }
        }
        if error != 0 {
            throw BenchError(error == EPROTO ? "the server answered with something else than a result"
                                : "round trip failed: \(Errno(rawValue: error))")
        }
        return done
    }

    /// Round-trip times of `count` requests, in nanoseconds.
    func latencies(_ request: [UInt8], expecting prefix: [UInt8], count: Int) throws -> [UInt64] {
        var times = [UInt64](repeating: 0, count: count)
        let done = try times.withUnsafeMutableBufferPointer { buffer in
            try roundTrips(request, expecting: prefix, count: count, latencies: buffer.baseAddress)
        }
        return Array(times.prefix(done))
    }
}

/// Request lines the benchmarks send as raw bytes, and the start every
/// successful reply to them has (the id is always 1).
enum RawRequest {
    static let list = Array(#"{"jsonrpc":"2.0","method":"list","id":1}"#.utf8) + [0x0A]
    static let version = Array(#"{"jsonrpc":"2.0","method":"version","id":1}"#.utf8) + [0x0A]
    static let resultPrefix = Array(#"{"jsonrpc":"2.0","id":1,"result":"#.utf8)

    /// The supervisor's reply line to `request`, '\n' included.
    static func reply(to request: [UInt8], socketPath: String) throws -> [UInt8] {
        let fd: Int32
        do {
            fd = try UnixSocket.connect(path: socketPath).release()
        } catch {
            throw BenchError("cannot connect to \(socketPath): \(error)")
        }
        defer { close(fd) }
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 { if errno == EINTR { continue }; throw BenchError("send: \(Errno.current)") }
            sent += n
        }
        var line: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while line.last != 0x0A {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 { if errno == EINTR { continue }; throw BenchError("recv: \(Errno.current)") }
            if n == 0 { throw BenchError("the supervisor closed the connection") }
            line += chunk[0..<n]
        }
        return line
    }
}

/// The pid of journald (systemd-journald), if it runs: the supervisor sends
/// it a record for every request, so its CPU time is part of the cost.
func journaldPID() -> pid_t? {
    ProcessProbe.allProcesses().first { pid in
        ((try? ProcFS.readText("/proc/\(pid)/comm")) ?? "").hasPrefix("systemd-journal")
    }
}

/// CPU time of `pid` (0 when it is unknown or gone).
func cpuTime(_ pid: pid_t?) -> UInt64 {
    pid.flatMap { try? ProcessProbe.cpuNanoseconds($0) } ?? 0
}

func formatMicroseconds(_ nanoseconds: Double) -> String {
    formatFixed(nanoseconds / 1000, 1) + " µs"
}
