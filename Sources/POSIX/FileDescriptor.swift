#if canImport(Glibc)
import Glibc
#endif

/// An open file descriptor with exactly one owner: it is closed when its
/// owner lets go of it, unless ownership is handed on with `release()`.
public struct FileDescriptor: ~Copyable {
    public let rawValue: Int32

    /// Takes ownership of an already open descriptor.
    public init(adopting rawValue: Int32) {
        self.rawValue = rawValue
    }

    deinit {
        if rawValue >= 0 { _ = Glibc.close(rawValue) }
    }

    /// Gives up ownership without closing; the caller now owns the number.
    public consuming func release() -> Int32 {
        let value = rawValue
        discard self
        return value
    }

    /// Opens `path` (open(2)); O_CLOEXEC is always added.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(Errno) -> FileDescriptor {
        let fd = try retryOnInterrupt { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return FileDescriptor(adopting: fd)
    }

    /// A second descriptor for the same file (F_DUPFD_CLOEXEC), owned separately.
    public func duplicate() throws(Errno) -> FileDescriptor {
        let fd = fcntl(rawValue, F_DUPFD_CLOEXEC, 3)
        if fd < 0 { throw Errno.current }
        return FileDescriptor(adopting: fd)
    }

    /// Whether `fd` is one end of an anonymous pipe (pipe(2)), as opposed to a named FIFO,
    /// a terminal, a socket, a file or a device: a FIFO (fstat) that /proc/self/fd names
    /// `pipe:[INODE]` rather than by a path.
    public static func isAnonymousPipe(_ fd: Int32) -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFIFO,
              let target = try? ProcFS.readLink("/proc/self/fd/\(fd)") else { return false }
        return target == "pipe:[\(st.st_ino)]"
    }

    /// Makes reads and writes return EAGAIN instead of blocking.
    public func setNonBlocking(_ on: Bool = true) throws(Errno) {
        let flags = fcntl(rawValue, F_GETFL)
        if flags < 0 { throw Errno.current }
        let wanted = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK
        if wanted != flags, fcntl(rawValue, F_SETFL, wanted) < 0 { throw Errno.current }
    }

    /// Reads what is available into `buffer`, at most `buffer.count` bytes (read(2)).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retryOnInterrupt { Glibc.read(rawValue, buffer.baseAddress, buffer.count) }
    }

    /// Writes all of `bytes`, retrying short writes (write(2)); for blocking descriptors.
    public func writeAll(_ bytes: some Sequence<UInt8>) throws(Errno) {
        let data = Array(bytes)
        var offset = 0
        while offset < data.count {
            let written = data.withUnsafeBytes { raw in
                Glibc.write(rawValue, raw.baseAddress! + offset, raw.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw Errno.current
            }
            offset += written
        }
    }

    /// Reads until end of file, at most `limit` bytes.
    public func readAll(limit: Int = 1 << 20) throws(Errno) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while result.count < limit {
            let n = chunk.withUnsafeMutableBytes { raw in Glibc.read(rawValue, raw.baseAddress, raw.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Errno.current
            }
            if n == 0 { break }
            result.append(contentsOf: chunk[0..<min(n, limit - result.count)])
        }
        return result
    }
}

/// Descriptors that arrived together (beside one message): each is closed
/// when the list goes away unless it was taken out with `take(_:)`.
public final class ReceivedDescriptors {
    private var fds: [Int32]

    public init(_ fds: [Int32] = []) {
        self.fds = fds
    }

    deinit {
        closeAll()
    }

    public var count: Int { fds.filter { $0 >= 0 }.count }
    public var isEmpty: Bool { count == 0 }

    public func append(contentsOf more: [Int32]) {
        fds.append(contentsOf: more)
    }

    /// Takes ownership of the descriptor at `index`.
    public func take(_ index: Int) -> FileDescriptor? {
        guard fds.indices.contains(index), fds[index] >= 0 else { return nil }
        let fd = fds[index]
        fds[index] = -1
        return FileDescriptor(adopting: fd)
    }

    /// Moves every descriptor still owned here to a new list (for a request that goes on
    /// after its handler returned, whose caller closes what is left here).
    public func takeAll() -> ReceivedDescriptors {
        let moved = ReceivedDescriptors(fds.filter { $0 >= 0 })
        fds.removeAll()
        return moved
    }

    /// The raw numbers still owned here, for calls that only borrow them.
    public var rawValues: [Int32] { fds.filter { $0 >= 0 } }

    public func closeAll() {
        for fd in fds where fd >= 0 { _ = Glibc.close(fd) }
        fds.removeAll()
    }
}
