#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Cgroups
import Logging
import RPC
import Supervisor
import Systemd

@main
struct Nsgroupd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nsgroupd",
        abstract: "Keep named namespace groups alive for unprivileged users.",
        discussion: """
            Runs as root in the foreground, serving the nsgroup CLI over a Unix socket \
            (line-delimited JSON-RPC 2.0, see protocol/PROTOCOL.md). Every decision is \
            written to journald. SIGHUP reloads the configuration (a file that does not \
            parse is refused and the policy in force stays). SIGTERM and SIGINT stop the \
            supervisor; groups keep running.
            """,
        version: "\(nsgroupVersion)\ncgroups: \(cgroupSummary())")

    /// What nsgroupd finds of the cgroup hierarchies here (`--version`).
    static func cgroupSummary() -> String {
        do throws(CgroupError) {
            return try CgroupLayout.detect().summary
        } catch {
            return "\(error)"
        }
    }

    @Option(name: .long, help: ArgumentHelp("The socket to listen on.", valueName: "path"))
    var socket: String = SupervisorConfiguration.defaultSocketPath

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("Where group records are kept.", valueName: "dir"))
    var stateDirectory: String = SupervisorConfiguration.defaultStateDirectory

    @Option(name: .long, help: ArgumentHelp("The configuration file (default: /etc/nsgroup/nsgroupd.conf, if it exists).", valueName: "path"))
    var config: String?

    @Option(name: .customLong("cgroup-dir"), help: ArgumentHelp("The directory nsgroupd makes below its own cgroup for its tree (default: none under systemd with Delegate=yes, where the unit's cgroup is the tree; \"nsgroupd\" when nsgroupd runs in the root cgroup).", valueName: "name"))
    var cgroupDirectory: String?

    @Flag(name: .customLong("no-units"), help: "Keep every group below nsgroupd's own cgroup even where systemd is the init system (default: each group a scope of its own there).")
    var noUnits = false

    @Option(name: .long, help: ArgumentHelp("The nsgroup-holder program (default: next to nsgroupd, or ../libexec/nsgroup/).", valueName: "path"))
    var holder: String?

    func run() throws {
        ensureStandardDescriptors()
        // Signals are taken by the event loop: block them before anything else runs.
        var blocked = sigset_t()
        sigemptyset(&blocked)
        for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&blocked, signal) }
        pthread_sigmask(SIG_BLOCK, &blocked, nil)
        signal(SIGPIPE, SIG_IGN)

        guard geteuid() == 0 else { fail("must run as root (it creates namespaces and enters them for its callers)") }

        let sink = JournalSink(identifier: "nsgroupd")
        LoggingSystem.bootstrap { label in
            var handler = JournalLogHandler(label: label, identifier: "nsgroupd", sink: sink)
            handler.logLevel = .debug
            return handler
        }
        let logger = Logger(label: "nsgroupd")

        // One pidfd per group and per session: take the hard descriptor limit
        // for the supervisor. Sessions never see it: each gets its caller's
        // resource limits, NOFILE included (PeerProcess, SessionSpec).
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
        let configuration = SupervisorConfiguration(
            socketPath: socket, stateDirectory: stateDirectory,
            holderPath: holder ?? Self.defaultHolderPath(), serverName: "nsgroupd \(nsgroupVersion)",
            configPath: config)
        var configured = configuration
        configured.cgroupDirectory = cgroupDirectory
        configured.units = !noUnits
        do {
            let loop = try EventLoop()
            let supervisor = try Supervisor(configuration: configured, loop: loop, logger: logger)
            // Socket activation: systemd's listening socket, when it passed one.
            try supervisor.start(activatedSocket: ServiceManager.listenFileDescriptors().first)
            var signalSources: [EventSource] = []
            for signal in [SIGTERM, SIGINT] {
                signalSources.append(try loop.addSignal(signal) { info in
                    logger.info("Received signal \(info.signal), stopping; groups keep running")
                    ServiceManager.stopping()
                    loop.exit(code: 0)
                })
            }
            signalSources.append(try loop.addSignal(SIGHUP) { _ in supervisor.reloadPolicy() })
            _ = try loop.enableWatchdog()
            ServiceManager.ready(status: "Serving \(supervisor.groupCount) group(s) on \(socket)")
            announce("nsgroupd \(nsgroupVersion): listening on \(socket)")
            _ = try loop.run()
            supervisor.shutdown()
            signalSources.removeAll()
        } catch let error as SupervisorError {
            fail(error.description)
        } catch {
            fail("\(error)")
        }
    }

    /// One line to stderr (unbuffered, so it shows in logs at once).
    private func announce(_ message: String) {
        var text = message + "\n"
        text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    private func fail(_ message: String) -> Never {
        var text = "nsgroupd: \(message)\n"
        text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        Glibc.exit(1)
    }

    /// Makes sure 0, 1 and 2 are open, so no socket or state file can land on them.
    private func ensureStandardDescriptors() {
        for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) < 0 {
            let null = open("/dev/null", O_RDWR)
            if null >= 0 && null != fd {
                dup2(null, fd)
                close(null)
            }
        }
    }

    /// nsgroup-holder beside this executable (a build tree), else in
    /// ../libexec/nsgroup/ (an installed tree: /usr/sbin → /usr/libexec/nsgroup).
    static func defaultHolderPath() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return "/usr/libexec/nsgroup/nsgroup-holder" }
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let directory = String(exe[..<(exe.lastIndex(of: "/") ?? exe.startIndex)])
        let sibling = directory + "/nsgroup-holder"
        if access(sibling, X_OK) == 0 { return sibling }
        let parent = String(directory[..<(directory.lastIndex(of: "/") ?? directory.startIndex)])
        return parent + "/libexec/nsgroup/nsgroup-holder"
    }
}
