import Foundation
import Glibc
import Testing

/// A real terminal for interactive tests: a private tmux server (its own
/// socket, so tests never meet) running one command in one window.
final class Tmux {
    let server: String

    init(command: String, width: Int = 100, height: Int = 30) throws {
        server = "nsg-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        // The tmux server outlives this call. Foundation's Process hands each
        // child a descriptor it watches for the child's exit; a daemon that
        // inherits it makes waitUntilExit hang. Start tmux through Python's
        // subprocess, which closes every descriptor but 0-2. Signals are unblocked first:
        // a Process child inherits the test runner's blocked signals, and a shell in the
        // window that never sees SIGHUP keeps the server alive after kill-server.
        let launcher = "import signal, subprocess, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); sys.exit(subprocess.call(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True))"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", launcher, "/usr/bin/tmux", "-L", server, "-f", "/dev/null", "new-session", "-d", "-s", "t",
                             "-x", "\(width)", "-y", "\(height)", command]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw HarnessError("tmux did not start") }
    }

    deinit {
        _ = try? run("/usr/bin/tmux", ["-L", server, "kill-server"])
    }

    func sendKeys(_ keys: String, enter: Bool = true) throws {
        try run("/usr/bin/tmux", ["-L", server, "send-keys", "-t", "t", "-l", keys])
        if enter { try run("/usr/bin/tmux", ["-L", server, "send-keys", "-t", "t", "Enter"]) }
    }

    func resize(width: Int, height: Int) throws {
        try run("/usr/bin/tmux", ["-L", server, "resize-window", "-t", "t", "-x", "\(width)", "-y", "\(height)"])
    }

    /// The visible screen.
    func screen() throws -> String {
        try run("/usr/bin/tmux", ["-L", server, "capture-pane", "-t", "t", "-p"]).stdout
    }

    /// Waits until the screen contains `text` and returns the screen. A
    /// timeout fails the test at the caller's line, showing the last
    /// screen, and throws.
    @discardableResult
    func waitFor(_ text: String, timeoutSeconds: Double = 10,
                 sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try waitForScreen("\"\(text)\"", timeoutSeconds: timeoutSeconds, sourceLocation: sourceLocation) { $0.contains(text) }
    }

    /// Waits until some line of the screen is exactly `line` (trailing
    /// blanks aside): output, not the command line that asked for it.
    /// `retry` runs about every half second while it has not shown up, for
    /// output that depends on something outside the terminal settling first.
    @discardableResult
    func waitFor(line: String, timeoutSeconds: Double = 10, retry: (() throws -> Void)? = nil,
                 sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        var lastRetry = Date()
        return try waitForScreen("a line \"\(line)\"", timeoutSeconds: timeoutSeconds, sourceLocation: sourceLocation) { screen in
            if Self.lines(screen).contains(line) { return true }
            if let retry, Date().timeIntervalSince(lastRetry) >= 0.5 {
                try retry()
                lastRetry = Date()
            }
            return false
        }
    }

    /// The screen's lines without trailing blanks.
    static func lines(_ screen: String) -> [String] {
        screen.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            String(line.reversed().drop { $0 == " " }.reversed())
        }
    }

    private func waitForScreen(_ what: String, timeoutSeconds: Double, sourceLocation: SourceLocation,
                               _ matches: (String) throws -> Bool) throws -> String {
        var last = ""
        let seen = try eventually(timeoutSeconds: timeoutSeconds) {
            last = try screen()
            return try matches(last)
        }
        try #require(seen, "\(what) did not appear on the terminal within \(timeoutSeconds) s; the screen was:\n\(last)",
                     sourceLocation: sourceLocation)
        return last
    }
}

extension Tmux {
    /// Everything the window has shown, scrollback included, without
    /// trailing blanks on each line.
    func history() throws -> [String] {
        let captured = try run("/usr/bin/tmux", ["-L", server, "capture-pane", "-t", "t", "-p", "-J", "-S", "-", "-E", "-"]).stdout
        return Self.lines(captured)
    }

    /// Sends a key by tmux's name for it (`C-c`).
    func sendKey(_ name: String) throws {
        try run("/usr/bin/tmux", ["-L", server, "send-keys", "-t", "t", name])
    }
}
