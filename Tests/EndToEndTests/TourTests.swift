#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// The README's tour, replayed: every `console` block marked
/// `<!-- tour: as=USER … -->` is typed into a real terminal (tmux) as that
/// user, against a real supervisor, and the terminal must then show what the
/// block shows, line for line, in shape: numbers (pids, sizes, times, inode
/// numbers) and column widths may differ, words may not. README's alice and
/// bob are the test users nsg-alice and nsg-bob.
///
/// A marker's words: `as=alice|bob|root` (whose shell), `id=NAME` (a name for
/// the block), `starts-before=NAME` (a second terminal: its first command is
/// typed before block NAME runs, and it is stopped with its `^C` line once
/// every other block has run).
@Suite(.serialized) struct TourTests {
    struct Block {
        var user: String
        var id: String?
        var startsBefore: String?
        var lines: [String]
        var line: Int
    }

    /// README's alice and bob, as the test users.
    static func mapNames(_ text: String) -> String {
        text.replacing(#/(^|[^A-Za-z0-9_-])(alice|bob)(?=[^A-Za-z0-9_]|$)/#) { match in
            match.output.1 + "nsg-" + match.output.2
        }
    }

    static func blocks() throws -> [Block] {
        let readme = try String(contentsOfFile: Products.repositoryRoot + "/README.md", encoding: .utf8)
        let lines = readme.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var blocks: [Block] = []
        var index = 0
        while index < lines.count {
            defer { index += 1 }
            guard lines[index].hasPrefix("<!-- tour:"), lines[index].hasSuffix("-->") else { continue }
            let words = lines[index].dropFirst("<!-- tour:".count).dropLast("-->".count).split(separator: " ")
            var settings: [String: String] = [:]
            for word in words {
                let parts = word.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { throw HarnessError("README line \(index + 1): \"\(word)\" is not KEY=VALUE") }
                settings[String(parts[0])] = String(parts[1])
            }
            guard let user = settings["as"], ["alice", "bob", "root"].contains(user) else {
                throw HarnessError("README line \(index + 1): a tour block needs as=alice, bob or root")
            }
            guard index + 1 < lines.count, lines[index + 1] == "```console" else {
                throw HarnessError("README line \(index + 1): a tour marker must be followed by ```console")
            }
            var body: [String] = []
            var end = index + 2
            while end < lines.count, lines[end] != "```" {
                body.append(mapNames(lines[end]))
                end += 1
            }
            blocks.append(Block(user: user, id: settings["id"], startsBefore: settings["starts-before"], lines: body, line: index + 1))
        }
        return blocks
    }

    /// What the comparison keeps of a line: its words, with every number 0
    /// and a size (292K, 1.5M) just 0, and single blanks.
    static func shape(_ line: String) -> String {
        line.replacing(#/[0-9]+/#, with: "0")
            .replacing(#/0(\.0)?[KMGT]\b/#, with: "0")
            .replacing(#/\s+/#, with: " ")
            .trimmingCharacters(in: .whitespaces)
    }

    /// An inner shell's prompt, as bash prints it from Debian's skeleton
    /// .bashrc: `nsg-alice@web:~$ `.
    static var innerPrompt: Regex<Substring> { #/^[a-z][a-z0-9-]*@[a-z0-9.-]+:[^ ]*[$#] /# }

    /// The prompt a line of a block starts with, if it is typed.
    static func prompt(of line: String, outer: String) -> String? {
        if line.hasPrefix(outer) { return outer }
        if let match = line.prefixMatch(of: innerPrompt) { return String(match.output) }
        return nil
    }

    /// A terminal with the user's shell: a clean environment, the CLI on
    /// PATH, the test supervisor's socket, and README's prompt.
    static func terminal(for block: Block, supervisor: TestSupervisor, outerPrompt: String) throws -> Tmux {
        let bin = Products.directory
        var environment = ["PATH=\(bin):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                           "NSGROUP_SOCKET=\(supervisor.socketPath)", "TERM=tmux-256color", "LANG=C.UTF-8", "PS1=\(outerPrompt)"]
        var command: [String]
        if block.user == "root" {
            environment += ["HOME=/root", "USER=root", "LOGNAME=root"]
            command = []
        } else {
            let user = try TestUser.named("nsg-" + block.user)
            environment += ["HOME=/home/\(user.name)", "USER=\(user.name)", "LOGNAME=\(user.name)"]
            command = ["/usr/bin/setpriv", "--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--"]
        }
        command += ["/usr/bin/env", "-i"] + environment + ["/bin/bash", "--norc", "--noprofile"]
        return try Tmux(command: command.map(shellQuoted).joined(separator: " "), width: 500, height: 60)
    }

    /// Types each line of the block that starts with a prompt, waiting after
    /// each until the next prompt shows.
    static func type(_ block: Block, into tmux: Tmux, outerPrompt: String, from start: Int = 0, stopAfterFirst: Bool = false) throws {
        let inputs = block.lines.indices.filter { prompt(of: block.lines[$0], outer: outerPrompt) != nil }
        for (position, index) in inputs.enumerated() where position >= start {
            let line = block.lines[index]
            let typed = String(line.dropFirst(prompt(of: line, outer: outerPrompt)!.count))
            try tmux.sendKeys(typed)
            if stopAfterFirst { return }
            let next = position + 1 < inputs.count ? prompt(of: block.lines[inputs[position + 1]], outer: outerPrompt)! : outerPrompt
            try waitForPrompt(next, in: tmux, after: "README line \(block.line + index + 2): \(line)")
            // A command put in the background gets a moment to start before the next looks for it.
            if typed.hasSuffix("&") { usleep(1_000_000) }
        }
    }

    /// Waits until the terminal's last non-empty line is `prompt` alone.
    static func waitForPrompt(_ prompt: String, in tmux: Tmux, after what: String) throws {
        let want = prompt.trimmingCharacters(in: .whitespaces)
        var last: [String] = []
        let shown = try eventually(timeoutSeconds: 20) {
            last = try tmux.history()
            return last.last(where: { !$0.isEmpty }) == want
        }
        try #require(shown, "no prompt \"\(want)\" after \(what); the terminal showed:\n\(last.filter { !$0.isEmpty }.suffix(30).joined(separator: "\n"))")
    }

    /// The terminal's lines up to its final prompt, against the block's.
    static func compare(_ block: Block, _ tmux: Tmux, outerPrompt: String, supervisor: TestSupervisor) throws {
        var shown = try tmux.history().map { $0.replacingOccurrences(of: supervisor.cgroupDirectory, with: "nsgroupd") }
        while let last = shown.last, last.isEmpty || last == outerPrompt.trimmingCharacters(in: .whitespaces) { shown.removeLast() }
        let expected = block.lines.map(shape)
        let actual = shown.map(shape)
        var differences: [String] = []
        for index in 0..<max(expected.count, actual.count) {
            let want = index < expected.count ? expected[index] : "(nothing)"
            let got = index < actual.count ? actual[index] : "(nothing)"
            if want != got { differences.append("README line \(block.line + index + 2):\n  README:   \(want)\n  terminal: \(got)") }
        }
        #expect(differences.isEmpty, """
            the tour block at README line \(block.line) prints something else:
            \(differences.prefix(8).joined(separator: "\n"))
            the terminal showed:
            \(shown.joined(separator: "\n"))
            """)
    }

    @Test func theTourPrintsWhatTheREADMEShows() throws {
        let blocks = try Self.blocks()
        #expect(blocks.count >= 5, "the README's tour has \(blocks.count) marked blocks")
        let supervisor = try TestSupervisor()
        // The tour's `mkdir -p /tmp/alice` makes it, as alice.
        try? FileManager.default.removeItem(atPath: "/tmp/nsg-alice")
        defer { try? FileManager.default.removeItem(atPath: "/tmp/nsg-alice") }
        // Second terminals, started before the block they watch and stopped at the end.
        var watchers: [(Block, Tmux, String)] = []
        for block in blocks where block.startsBefore == nil {
            let outer = try #require(block.lines.first.flatMap { line in line.firstRange(of: #/^[^ ]*[$#] /#).map { String(line[$0]) } },
                                     "the block at README line \(block.line) does not start with a prompt")
            for watcher in blocks where watcher.startsBefore != nil && watcher.startsBefore == block.id {
                let watcherPrompt = String(watcher.lines.first!.prefix { $0 != " " }) + " "
                let tmux = try Self.terminal(for: watcher, supervisor: supervisor, outerPrompt: watcherPrompt)
                try Self.waitForPrompt(watcherPrompt, in: tmux, after: "starting the terminal")
                try Self.type(watcher, into: tmux, outerPrompt: watcherPrompt, stopAfterFirst: true)
                usleep(500_000)  // subscribed before the block's first event
                watchers.append((watcher, tmux, watcherPrompt))
            }
            let tmux = try Self.terminal(for: block, supervisor: supervisor, outerPrompt: outer)
            try Self.waitForPrompt(outer, in: tmux, after: "starting the terminal")
            try Self.type(block, into: tmux, outerPrompt: outer)
            try Self.compare(block, tmux, outerPrompt: outer, supervisor: supervisor)
        }
        #expect(watchers.count == blocks.filter { $0.startsBefore != nil }.count, "a starts-before= names no block")
        for (watcher, tmux, prompt) in watchers {
            #expect(watcher.lines.last == "^C", "the watcher block at README line \(watcher.line) does not end with ^C")
            usleep(500_000)
            try tmux.sendKey("C-c")
            try Self.waitForPrompt(prompt, in: tmux, after: "^C")
            try Self.compare(watcher, tmux, outerPrompt: prompt, supervisor: supervisor)
        }
    }
}

/// `word` in single quotes for sh.
private func shellQuoted(_ word: String) -> String {
    "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
}
