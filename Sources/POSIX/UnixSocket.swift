#if canImport(Glibc)
import Glibc
#endif
import CPOSIX

/// AF_UNIX stream sockets: listening, connecting, and passing descriptors.
public enum UnixSocket {
    /// The most descriptors one message may carry (NS_MAX_FDS).
    public static let maxDescriptors = Int(NS_MAX_FDS)

    /// Calls `body` with the `sockaddr_un` of `path` and its length, for bind(2), connect(2)
    /// and sendto(2); ENAMETOOLONG when `path` is empty, has a NUL or does not fit sun_path.
    /// With `abstract`, a path that starts with "@" names a socket in the abstract namespace
    /// (as `NOTIFY_SOCKET` may).
    public static func withAddress<R>(_ path: String, abstract: Bool = false,
                                      _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) throws(Errno) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        let isAbstract = abstract && bytes.first == UInt8(ascii: "@") && bytes.count > 1
        if isAbstract { bytes[0] = 0 }
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.dropFirst(isAbstract ? 1 : 0).contains(0) else {
            throw Errno(rawValue: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        // An abstract name is exactly its bytes; a path counts its terminating NUL.
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (isAbstract ? 0 : 1))
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    /// A non-blocking listening socket bound at `path` (which must not exist).
    public static func listen(path: String, backlog: Int32 = 128) throws(Errno) -> FileDescriptor {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        if fd < 0 { throw Errno.current }
        let socket = FileDescriptor(adopting: fd)
        let bound = try withAddress(path) { bind(fd, $0, $1) }
        if bound < 0 { throw Errno.current }
        if Glibc.listen(fd, backlog) < 0 { throw Errno.current }
        return socket
    }

    /// A blocking connection to the socket at `path`.
    public static func connect(path: String) throws(Errno) -> FileDescriptor {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw Errno.current }
        let socket = FileDescriptor(adopting: fd)
        let result = try withAddress(path) { address, length in
            while true {
                let r = Glibc.connect(fd, address, length)
                if r == 0 || errno != EINTR { return r }
            }
        }
        if result < 0 { throw Errno.current }
        return socket
    }

    /// Accepts one connection as a non-blocking socket, or nil when none is waiting.
    public static func accept(_ listener: Int32) throws(Errno) -> FileDescriptor? {
        while true {
            let fd = ns_accept_nonblocking(listener)
            if fd >= 0 { return FileDescriptor(adopting: fd) }
            switch errno {
            case EINTR: continue
            case EAGAIN, ECONNABORTED: return nil
            default: throw Errno.current
            }
        }
    }

    /// Sends `bytes` with `descriptors` attached to the first byte. Returns
    /// how many bytes went out (the descriptors go with the first one).
    public static func send(_ socket: Int32, _ bytes: UnsafeRawBufferPointer, descriptors: [Int32] = []) throws(Errno) -> Int {
        let n = descriptors.withUnsafeBufferPointer { fds in
            ns_send_with_fds(socket, bytes.baseAddress, bytes.count, fds.baseAddress, fds.count)
        }
        if n < 0 { throw Errno.current }
        return n
    }

    /// What one receive brought: bytes, and any descriptors sent with them.
    public struct Received {
        public var count: Int
        public var descriptors: [Int32]
        /// The kernel dropped some control data (MSG_CTRUNC) or more descriptors came than allowed.
        public var truncated: Bool
    }

    /// Receives into `buffer`; count 0 means the peer closed its end.
    public static func receive(_ socket: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Received {
        var fds = [Int32](repeating: -1, count: maxDescriptors)
        var count = 0
        var truncated: Int32 = 0
        let n = fds.withUnsafeMutableBufferPointer { fdBuffer in
            ns_recv_with_fds(socket, buffer.baseAddress, buffer.count, fdBuffer.baseAddress, &count, &truncated)
        }
        if n < 0 { throw Errno.current }
        return Received(count: n, descriptors: Array(fds[0..<count]), truncated: truncated != 0)
    }
}
