#if canImport(Glibc)
import Glibc
#endif
import POSIX

/// The way to another host's supervisor: `ssh [-p PORT] -- [USER@]HOST nsgroup bridge`, run
/// with the user's own ssh (keys, agent, known hosts, configuration). Its stdin and stdout are
/// one end of a socket pair; the client uses the other end as it would the supervisor's
/// socket, so the protocol crosses unchanged, without descriptors (`enter` streams). On the
/// host, `nsgroup bridge` relays it to the supervisor, which sees the user ssh logged in as.
///
/// ssh's own stderr (its complaints, and what the remote command says before it relays) is
/// kept, up to 64 KiB, for the error that names the host when the connection ends.
final class SSHTunnel {
    /// The client's end.
    let socket: FileDescriptor
    let host: RemoteHost
    private let pid: pid_t
    private let errors: FileDescriptor
    private var said: [UInt8] = []
    private var status: Int32?

    /// `NSGROUP_SSH_COMMAND`: the ssh program and options before the host's, as words
    /// separated by blanks (no quoting): `ssh -F ~/.ssh/work_config`. Default `ssh`.
    static var sshCommand: [String] {
        guard let value = getenv("NSGROUP_SSH_COMMAND").map({ String(cString: $0) }) else { return ["ssh"] }
        let words = value.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        return words.isEmpty ? ["ssh"] : words
    }

    /// `NSGROUP_REMOTE_COMMAND`: what ssh runs on the host, one string for its shell.
    /// Default `nsgroup bridge`.
    static var remoteCommand: String {
        guard let value = getenv("NSGROUP_REMOTE_COMMAND"), value.pointee != 0 else { return "nsgroup bridge" }
        return String(cString: value)
    }

    /// `batch`: no prompt (BatchMode): several at once (a fleet) must not take turns at the
    /// terminal, where an answer meant for one host could reach another.
    init(host: RemoteHost, batch: Bool = false) throws(ClientError) {
        self.host = host
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw .remote(host: host.description, "cannot start ssh: socketpair: \(Errno.current)")
        }
        var pipeEnds: [Int32] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else {
            let error = Errno.current
            close(pair[0]); close(pair[1])
            throw .remote(host: host.description, "cannot start ssh: pipe: \(error)")
        }
        for fd in pipeEnds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // ssh writes its stderr blocking: only our end is non-blocking.
        _ = fcntl(pipeEnds[0], F_SETFL, O_NONBLOCK)
        // -T: no terminal on the host; the protocol is bytes, not a shell. Nothing of the
        // user's forwarding settings is needed, and a host must not reach back through them:
        // no agent (-a), no X11 (-x), no port forwarding, no local command.
        let arguments = Self.sshCommand + ["-T", "-a", "-x", "-o", "ClearAllForwardings=yes", "-o", "PermitLocalCommand=no"]
            + (batch ? ["-o", "BatchMode=yes"] : []) + host.sshArguments + [Self.remoteCommand]
        // What a terminal sends the foreground group (Ctrl-C, Ctrl-\, Ctrl-Z) is for nsgroup to
        // pass on to the session; ssh keeps an inherited SIG_IGN of them.
        let started = spawnProgram(arguments, stdin: pair[1], stdout: pair[1], stderr: pipeEnds[1],
                                   ignored: [SIGINT, SIGQUIT, SIGTSTP])
        close(pair[1])
        close(pipeEnds[1])
        socket = FileDescriptor(adopting: pair[0])
        errors = FileDescriptor(adopting: pipeEnds[0])
        switch started {
        case .success(let child): pid = child
        case .failure(let error):
            throw .remote(host: host.description, "cannot start \(arguments[0]): \(error)")
        }
    }

    deinit {
        // Our end closes with `socket`: ssh sees end of file and ends the session. One that
        // lingers (a host that does not answer) is not waited for longer than a second.
        shutdown(socket.rawValue, Int32(SHUT_RDWR))
        guard status == nil else { return }
        // Its pidfd is readable when it has exited: no polling interval to sit out.
        if let pidfd = try? Pidfd.open(pid: pid) {
            var ready = pollfd(fd: pidfd.rawValue, events: Int16(POLLIN), revents: 0)
            while poll(&ready, 1, 1000) < 0 && errno == EINTR {}
        }
        if reap(blocking: false) == nil {
            kill(pid, SIGTERM)
            _ = reap(blocking: true)
        }
    }

    /// Why the connection ended, once it has: ssh's exit status and the last thing it (or the
    /// remote command) said, as an error naming the host. Waits for ssh to exit, which it
    /// does once the connection is gone.
    func failure() -> ClientError {
        let status = reap(blocking: true)
        collect()
        // ssh ends its lines with "\r\n" (one Character to Swift): split the bytes.
        let lines = said.split(whereSeparator: { $0 == 10 || $0 == 13 })
            .map { String(decoding: $0, as: UTF8.self).trimmed }.filter { !$0.isEmpty }
        // The remote nsgroup's own words start as ours do.
        let last = lines.last.map { $0.hasPrefix("nsgroup: ") ? String($0.dropFirst(9)) : String($0) }
        let exit = status.map { $0 == 255 ? "ssh failed" : "ssh exited with status \($0)" } ?? "ssh ended"
        return .remote(host: host.description, last.map { "\($0) (\(exit))" } ?? exit)
    }

    /// Reads what ssh wrote to its stderr so far, keeping the last 64 KiB.
    private func collect() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(errors.rawValue, &buffer, buffer.count)
            guard count > 0 else { return }
            said.append(contentsOf: buffer[..<count])
            if said.count > 65536 { said.removeFirst(said.count - 65536) }
        }
    }

    /// ssh's exit status, waiting for it or not; nil while it runs.
    private func reap(blocking: Bool) -> Int32? {
        if let status { return status }
        var raw: Int32 = 0
        while true {
            let result = waitpid(pid, &raw, blocking ? 0 : WNOHANG)
            if result == pid {
                let code = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                status = code
                return code
            }
            if result < 0 && errno == EINTR { continue }
            return nil
        }
    }
}
