import Foundation
import Glibc

/// A real terminal for interactive tests: a private tmux server (its own
/// socket, so tests never meet) running one command in one window.
final class Tmux {
    let server: String

    init(command: String, width: Int = 100, height: Int = 30) throws {
        server = "nsg-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        // The tmux server outlives this call. Foundation's Process hands each
        // child a descriptor it watches for the child's exit; a daemon that
        // inherits it makes waitUntilExit hang. Start tmux through Python's
        // subprocess, which closes every descriptor but 0-2.
        let launcher = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True))"
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

    /// Waits until the screen contains `text`; the screen is returned either way.
    @discardableResult
    func waitFor(_ text: String, timeoutSeconds: Double = 10) throws -> String {
        var last = ""
        _ = try eventually(timeoutSeconds: timeoutSeconds) {
            last = try screen()
            return last.contains(text)
        }
        return last
    }
}
