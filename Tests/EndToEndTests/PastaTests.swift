import Cgroups
import Foundation
import Glibc
import POSIX
import Testing

/// `create --net pasta --publish`: a group's network that reaches out through
/// the real pasta(1), running as the group's owner. No traffic leaves the
/// machine: the servers are on 127.0.0.1 and inside the group.
@Suite struct PastaTests {
    /// A TCP port nothing listens on now (the kernel's choice).
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw HarnessError("bind: \(String(cString: strerror(errno)))") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// What a TCP connection to ADDRESS:PORT reads before the peer closes, or nil when it fails.
    static func fetch(_ address: String, _ port: UInt16) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var peer = sockaddr_in()
        peer.sin_family = sa_family_t(AF_INET)
        peer.sin_port = port.bigEndian
        peer.sin_addr.s_addr = inet_addr(address)
        let connected = withUnsafePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { return nil }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The host's default gateway (pasta gives the group the same one, and maps
    /// connections to it to the host's loopback), from /proc/net/route.
    static func defaultGateway() throws -> String {
        let table = try String(contentsOfFile: "/proc/net/route", encoding: .utf8)
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard fields.count > 2, fields[1] == "00000000", let raw = UInt32(fields[2], radix: 16) else { continue }
            return "\(raw & 0xff).\((raw >> 8) & 0xff).\((raw >> 16) & 0xff).\(raw >> 24)"
        }
        throw HarnessError("no default route on this host: pasta has no interface to take its addresses from")
    }

    /// A one-line TCP server run inside a group: it sends `marker` to every connection.
    static func server(port: UInt16, marker: String) -> [String] {
        ["python3", "-c", """
         import socket
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
         s.bind(("0.0.0.0", \(port))); s.listen()
         while True:
             c, _ = s.accept(); c.sendall(b"\(marker)"); c.close()
         """]
    }

    func pastaPID(_ supervisor: TestSupervisor, _ name: String) throws -> pid_t {
        pid_t(try #require(try supervisor.inspect(name)["pasta"] as? Int, "inspect shows no pasta pid"))
    }

    @Test func aServerInsideIsReachedThroughAPublishedPortOnLoopbackOnly() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let hostPort = try Self.freePort()
        let create = try supervisor.nsgroup(["create", "web", "--ns", "user,net,mnt,pid", "--net", "pasta",
                                             "--publish", "\(hostPort):80"], as: alice)
        try #require(create.status == 0, "create failed: \(create.stderr)")
        // The request record names the network and the port.
        try JournalTests.requireJournald()
        let record = try JournalTests().one(supervisor, "requestAccepted", ["NSGROUP_OPERATION=create", "NSGROUP_NAME=web"])
        #expect(record["NSGROUP_NETWORK"] == "pasta" && record["NSGROUP_PUBLISH"] == "\(hostPort):80/tcp", "\(record)")
        // What it made: the group's record names its pasta process and the port.
        let made = try JournalTests().one(supervisor, "groupCreated", ["NSGROUP_NAME=web"])
        #expect(made["NSGROUP_PASTA_PID"] == String(try pastaPID(supervisor, "web")) && made["NSGROUP_PUBLISH"] == "\(hostPort):80/tcp",
                "\(made)")
        #expect(made["MESSAGE"]?.hasSuffix("publishing \(hostPort):80/tcp") == true, "\(made["MESSAGE"] ?? "")")
        // Port 80 inside: the owner is root in the group's user namespace, which owns its net namespace.
        let server = try supervisor.startEnter("web", Self.server(port: 80, marker: "inside-web"), as: alice)
        defer { if server.isRunning { server.terminate(); server.waitUntilExit() } }
        try waitUntil("the server inside to answer on 127.0.0.1:\(hostPort)", timeoutSeconds: 10) {
            Self.fetch("127.0.0.1", hostPort) == "inside-web"
        }
        // Bound to the host's loopback only: not on its other addresses.
        let gatewaySide = try Self.defaultGateway().split(separator: ".").dropLast().joined(separator: ".")
        let hostAddress = try #require(
            try String(contentsOfFile: "/proc/net/fib_trie", encoding: .utf8).split(separator: "\n")
                .compactMap { line -> String? in
                    let word = line.split(separator: " ").last.map(String.init) ?? ""
                    return word.hasPrefix(gatewaySide + ".") && !word.hasSuffix(".0") && !word.hasSuffix(".255") ? word : nil
                }.first, "no address of the host next to its gateway")
        #expect(Self.fetch(hostAddress, hostPort) == nil, "the published port answers on \(hostAddress) too")

        let inspect = try supervisor.nsgroup(["inspect", "web"], as: alice)
        #expect(inspect.stdout.contains("Network:     pasta (pid \(try pastaPID(supervisor, "web")))"))
        #expect(inspect.stdout.contains("Publish:     127.0.0.1:\(hostPort) -> 80/tcp"))
        let json = try supervisor.inspect("web")
        let published = try #require(json["publish"] as? [[String: Any]])
        #expect(published.count == 1 && published[0]["host"] as? Int == Int(hostPort) && published[0]["port"] as? Int == 80
                && published[0]["protocol"] as? String == "tcp")
    }

    /// A host port that is taken (here by another group's pasta) is refused at create with a
    /// clear message, instead of a group whose pasta ended at once, leaving it no network.
    @Test func aPortInUseIsRefusedAtCreate() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let port = try Self.freePort()
        let first = try supervisor.nsgroup(["create", "first", "--ns", "user,net", "--net", "pasta", "--publish", "\(port):80"], as: alice)
        try #require(first.status == 0, "\(first.stderr)")
        try #require(eventually { (try? pastaPID(supervisor, "first")) != nil && Self.listening(port) }, "the first pasta never listened")
        let second = try supervisor.nsgroup(["create", "second", "--ns", "user,net", "--net", "pasta", "--publish", "\(port):80"], as: alice)
        #expect(second.status == 125)
        #expect(second.stderr == "nsgroup: create: host port \(port)/tcp is in use on 127.0.0.1, so pasta could not publish it\n", "\(second.stderr)")
        #expect(try supervisor.groupNames() == ["first"])
    }

    /// 127.0.0.1:`port`, handed to `body` as the sockaddr bind(2) and connect(2) take.
    static func withLoopback<T>(_ port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// Whether something listens on 127.0.0.1:`port` (a connect succeeds).
    static func listening(_ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        return withLoopback(port) { connect(fd, $0, $1) == 0 }
    }

    /// pasta's default would forward every port bound inside to the same port on all of the
    /// host's addresses, and every port bound on the host into the group's loopback: only what
    /// was published goes through.
    @Test func onlyThePublishedPortsAreForwarded() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let published = try Self.freePort()
        let unpublished = try Self.freePort()
        // A listener of the host's, there before pasta starts.
        let hostOnly = try Self.freePort()
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        let listening = Self.withLoopback(hostOnly) { bind(listener, $0, $1) == 0 } && listen(listener, 4) == 0
        try #require(listening, "cannot listen on 127.0.0.1:\(hostOnly)")
        let create = try supervisor.nsgroup(["create", "tight", "--ns", "user,net", "--net", "pasta",
                                             "--publish", "\(published):\(published)"], as: alice)
        try #require(create.status == 0, "create failed: \(create.stderr)")
        let asked = try supervisor.startEnter("tight", Self.server(port: published, marker: "asked"), as: alice)
        defer { if asked.isRunning { asked.terminate(); asked.waitUntilExit() } }
        let unasked = try supervisor.startEnter("tight", Self.server(port: unpublished, marker: "unasked"), as: alice)
        defer { if unasked.isRunning { unasked.terminate(); unasked.waitUntilExit() } }
        try waitUntil("the published server to answer", timeoutSeconds: 10) { Self.fetch("127.0.0.1", published) == "asked" }
        // pasta's automatic forwarding looks for new listeners once a second: give it three.
        sleep(3)
        #expect(Self.fetch("127.0.0.1", unpublished) == nil, "a port nobody published is reachable from the host")
        // And the host's listeners do not appear on the group's loopback.
        let inside = try supervisor.nsgroup(["enter", "tight", "--", "python3", "-c", """
            import socket
            try:
                socket.create_connection(("127.0.0.1", \(published)), timeout=2).close(); print("reached")
            except OSError:
                print("refused")
            """], as: alice)
        // The server inside listens there itself: that one must answer; the host's ports (pasta's own
        // listener on the host's 127.0.0.1:\(published) included) are not mapped in.
        #expect(inside.stdout == "reached\n", "\(inside.stderr)")
        let probe = try supervisor.nsgroup(["enter", "tight", "--", "python3", "-c", """
            import socket
            try:
                socket.create_connection(("127.0.0.1", \(hostOnly)), timeout=2).close(); print("reached")
            except OSError:
                print("refused")
            """], as: alice)
        #expect(probe.stdout == "refused\n", "the host's 127.0.0.1:\(hostOnly) is on the group's loopback: \(probe.stderr)")
    }

    @Test func pastaRunsAsTheOwnerWithoutCapabilitiesInTheGroupsCgroupAndEndsWithIt() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let create = try supervisor.nsgroup(["create", "owned", "--ns", "user,net", "--net", "pasta"], as: alice)
        try #require(create.status == 0, "create failed: \(create.stderr)")
        let pid = try pastaPID(supervisor, "owned")
        let startTime = try ProcFS.startTime(pid: pid)
        // The host's program (pasta re-executes itself as its variant for this CPU, passt.avx2 on most).
        let exe = try ProcFS.readLink("/proc/\(pid)/exe")
        #expect(exe.hasPrefix("/usr/bin/pasta") || exe.hasPrefix("/usr/bin/passt"), "pasta runs \(exe)")
        let uids = (try ProcFS.statusField(pid: pid, "Uid") ?? "").split(whereSeparator: \.isWhitespace)
        let gids = (try ProcFS.statusField(pid: pid, "Gid") ?? "").split(whereSeparator: \.isWhitespace)
        #expect(uids.count == 4 && uids.allSatisfy { $0 == "\(alice.uid)" }, "Uid: \(uids)")
        #expect(gids.count == 4 && gids.allSatisfy { $0 == "\(alice.gid)" }, "Gid: \(gids)")
        // Root of the group's user namespace, as the owner's own enter is: whatever capabilities it keeps
        // (pasta keeps CAP_NET_BIND_SERVICE and CAP_SYS_ADMIN) are that namespace's, none of the host's.
        let namespaces = try #require(try supervisor.inspect("owned")["namespaces"] as? [String: String])
        let own = try ProcFS.readLink("/proc/\(pid)/ns/user")
        #expect(own == namespaces["user"], "pasta is in \(own), not the group's \(namespaces["user"] ?? "?")")
        #expect(own != (try ProcFS.readLink("/proc/self/ns/user")))
        #expect(try ProcFS.statusField(pid: pid, "CapAmb") == "0000000000000000")
        #expect(try ProcFS.statusField(pid: pid, "CapInh") == "0000000000000000")
        #expect(try ProcFS.statusField(pid: pid, "NoNewPrivs") == "1")
        // In the host's net namespace: its listening sockets are the host's.
        #expect(try ProcFS.readLink("/proc/\(pid)/ns/net") == (try ProcFS.readLink("/proc/self/ns/net")))
        // In the group's cgroup: counted against its limits, killed with it.
        let cgroup = try #require(try supervisor.inspect("owned")["cgroup"] as? String)
        #expect(unifiedCgroup(ofProcess: pid) == cgroup + "/pasta")

        #expect(try supervisor.nsgroup(["destroy", "owned"], as: alice).status == 0)
        try waitUntil("pasta \(pid) to end with its group") { (try? ProcFS.startTime(pid: pid)) != startTime }
    }

    @Test func theInsideReachesAServerOnTheHostsLoopbackThroughTheGateway() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        // A server on the host's 127.0.0.1 only.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                guard bind(listener, $0, length) == 0, listen(listener, 4) == 0, getsockname(listener, $0, &length) == 0 else {
                    throw HarnessError("listen: \(String(cString: strerror(errno)))")
                }
            }
        }
        let port = UInt16(bigEndian: address.sin_port)
        let answering = Thread {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            _ = "from-the-host".withCString { write(connection, $0, 13) }
            close(connection)
        }
        answering.start()

        let create = try supervisor.nsgroup(["create", "out", "--ns", "user,net", "--net", "pasta"], as: alice)
        try #require(create.status == 0, "create failed: \(create.stderr)")
        let gateway = try Self.defaultGateway()
        let result = try supervisor.nsgroup(["enter", "out", "--", "python3", "-c", """
            import socket, time
            for attempt in range(50):
                try:
                    s = socket.create_connection(("\(gateway)", \(port)), timeout=2); break
                except OSError:
                    time.sleep(0.1)
            print(s.recv(100).decode())
            """], as: alice)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "from-the-host\n")
    }

    @Test func theSettingsAreCheckedBeforeAnythingStarts() throws {
        let supervisor = try TestSupervisor()
        let bob = try TestUser.bob()
        let port = try Self.freePort()
        func refused(_ arguments: [String], _ message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let result = try supervisor.nsgroup(["create", "refused"] + arguments, as: bob)
            #expect(result.status != 0, sourceLocation: sourceLocation)
            #expect(result.stderr.contains(message), "\(result.stderr)", sourceLocation: sourceLocation)
        }
        try refused(["--ns", "user,net", "--net", "pasta", "--publish", "80:80"], "--publish host port 80 is below 1024: only root may publish one")
        try refused(["--ns", "user,net", "--publish", "\(port):80"], "--publish needs --net pasta")
        try refused(["--ns", "user,net", "--net", "none", "--publish", "\(port):80"], "--publish needs --net pasta")
        try refused(["--ns", "net,uts", "--net", "pasta"], "--net pasta needs the net and user namespaces")
        try refused(["--ns", "user,uts", "--net", "none"], "--net needs a net namespace")
        try refused(["--ns", "user,net", "--net", "pasta", "--publish", "\(port):80", "--publish", "\(port):81"],
                    "--publish lists host port \(port)/tcp twice")
        try refused(["--ns", "user,net", "--net", "slirp"], "--net must be none or pasta")
        try refused(["--ns", "user,net", "--net", "pasta", "--publish", "70000:80"], "--publish takes HOSTPORT:PORT")
        #expect(try supervisor.groupNames().isEmpty)
        // The same port over UDP is another port.
        let both = try supervisor.nsgroup(["create", "both", "--ns", "user,net", "--net", "pasta",
                                           "--publish", "\(port):53/udp", "--publish", "\(port):80"], as: bob)
        #expect(both.status == 0, "\(both.stderr)")
    }

    @Test func pastaOutlivesARestartAndIsNotStartedTwice() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let hostPort = try Self.freePort()
        let create = try supervisor.nsgroup(["create", "kept", "--ns", "user,net", "--net", "pasta",
                                             "--publish", "\(hostPort):8000"], as: alice)
        try #require(create.status == 0, "create failed: \(create.stderr)")
        let pid = try pastaPID(supervisor, "kept")
        let startTime = try ProcFS.startTime(pid: pid)
        let cgroup = try #require(try supervisor.inspect("kept")["cgroup"] as? String)

        supervisor.stop(signal: SIGKILL)
        try supervisor.start()

        #expect(try pastaPID(supervisor, "kept") == pid)
        #expect(try ProcFS.startTime(pid: pid) == startTime)
        let procs = try String(contentsOfFile: CgroupCleanup.unifiedMount + cgroup + "/pasta/cgroup.procs", encoding: .utf8)
        #expect(procs.split(separator: "\n") == ["\(pid)"])
        // And it still forwards.
        let server = try supervisor.startEnter("kept", Self.server(port: 8000, marker: "still-here"), as: alice)
        defer { if server.isRunning { server.terminate(); server.waitUntilExit() } }
        try waitUntil("the server inside to answer after the restart", timeoutSeconds: 10) {
            Self.fetch("127.0.0.1", hostPort) == "still-here"
        }
    }
}
