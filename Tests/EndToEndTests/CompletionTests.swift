#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Namespaces
import Testing

/// Shell completion beyond subcommands and flags: group names from the
/// supervisor (only those the user may see), namespace kinds for `create --ns`
/// and users or @groups for share. The bash script nsgroup generates is run in
/// a real bash, the way bash runs it on a TAB.
@Suite struct CompletionTests {
    /// Sources the generated bash script, fills COMP_WORDS, COMP_CWORD,
    /// COMP_LINE and COMP_POINT for the words in $2..., calls the function
    /// `complete -p nsgroup` names as bash would, and prints COMPREPLY, one a line.
    private static let bashDriver = #"""
        eval "$1"; shift
        spec=$(complete -p nsgroup) || exit 90
        fn=${spec#*-F }; fn=${fn%% *}
        COMP_WORDS=("$@")
        COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
        COMP_LINE="$*"
        COMP_POINT=${#COMP_LINE}
        COMPREPLY=()
        "$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\n' "${COMPREPLY[@]}"
        """#

    private func script(_ shell: String) throws -> String {
        let generated = try run(Products.nsgroup, ["--generate-completion-script", shell])
        guard generated.status == 0, !generated.stdout.isEmpty else { throw HarnessError("no \(shell) script: \(generated.stderr)") }
        return generated.stdout
    }

    /// What bash offers for `words` (the last one is the word being completed,
    /// "" after a space), sorted.
    private func bashCompletes(_ words: [String], as user: TestUser, socket: String) throws -> [String] {
        let environment = ["PATH": "/usr/bin:/bin", "NSGROUP_SOCKET": socket]
        let result = try run("/bin/bash", ["--norc", "--noprofile", "-c", Self.bashDriver, "bash", try script("bash"),
                                           Products.nsgroup] + words, as: user, environment: environment)
        guard result.status == 0 else { throw HarnessError("bash failed (\(result.status)): \(result.stderr)") }
        #expect(result.stderr.isEmpty, "\(result.stderr)")
        return result.stdout.split(separator: "\n").map(String.init).filter { !$0.isEmpty }.sorted()
    }

    private func create(_ supervisor: TestSupervisor, _ name: String, as user: TestUser, _ extra: [String] = []) throws {
        let created = try supervisor.nsgroup(["create", name] + extra, as: user)
        guard created.status == 0 else { throw HarnessError("create \(name): \(created.stderr)") }
    }

    @Test func groupNamesAreThoseTheUserMaySee() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice(), bob = try TestUser.bob(), dave = try TestUser.dave()
        try create(supervisor, "lab", as: alice)
        try create(supervisor, "lab-shared", as: alice, ["--member", "nsg-dave"])
        try create(supervisor, "bobs", as: bob)

        #expect(try bashCompletes(["enter", ""], as: alice, socket: supervisor.socketPath) == ["lab", "lab-shared"])
        #expect(try bashCompletes(["enter", "lab-"], as: alice, socket: supervisor.socketPath) == ["lab-shared"])
        #expect(try bashCompletes(["destroy", ""], as: bob, socket: supervisor.socketPath) == ["bobs"])
        // dave is a member of one of alice's groups, and sees only that one.
        #expect(try bashCompletes(["inspect", ""], as: dave, socket: supervisor.socketPath) == ["lab-shared"])
        // Every subcommand that takes a group name completes it.
        for command in ["inspect", "ps", "share", "unshare", "freeze", "thaw", "destroy"] {
            #expect(try bashCompletes([command, "lab-s"], as: alice, socket: supervisor.socketPath) == ["lab-shared"], "\(command)")
        }
        // --socket on the command line wins over $NSGROUP_SOCKET.
        #expect(try bashCompletes(["--socket", supervisor.socketPath, "enter", ""], as: bob, socket: "/nonexistent")
                == ["bobs"])
    }

    @Test func noSupervisorMeansNoWordsAndNoNoise() throws {
        let alice = try TestUser.alice()
        #expect(try bashCompletes(["enter", ""], as: alice, socket: "/nonexistent/nsgroupd.sock") == [])
        // The protocol itself: no output, success, nothing on stderr.
        let direct = try run(Products.nsgroup, ["---completion", "enter", "--", "positional@0", "1", "0", "nsgroup", "enter", ""],
                             as: alice, environment: ["NSGROUP_SOCKET": "/nonexistent/nsgroupd.sock"])
        #expect(direct.status == 0 && direct.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty && direct.stderr.isEmpty,
                "\(direct)")
    }

    /// A supervisor that accepts the connection but never answers: the
    /// completion gives up after its timeout instead of hanging the shell.
    @Test func aSilentSupervisorTimesOut() throws {
        let directory = try TestSupervisor(start: false)
        let path = directory.directory + "/silent.sock"
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0 && listen(listener, 8) == 0)
        let start = Date()
        let result = try run(Products.nsgroup, ["---completion", "enter", "--", "positional@0", "1", "0", "nsgroup", "enter", ""],
                             environment: ["NSGROUP_SOCKET": path])
        let elapsed = Date().timeIntervalSince(start)
        #expect(result.status == 0 && result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty && result.stderr.isEmpty,
                "\(result)")
        #expect(elapsed >= 0.4 && elapsed < 3, "took \(elapsed) s")
    }

    @Test func namespaceKindsCompleteTheItemAfterTheLastComma() throws {
        let alice = try TestUser.alice()
        let socket = "/nonexistent/nsgroupd.sock"
        #expect(try bashCompletes(["create", "--ns", "mnt,u"], as: alice, socket: socket) == ["mnt,user", "mnt,uts"])
        #expect(try bashCompletes(["create", "g", "--ns", "pi"], as: alice, socket: socket) == ["pid"])
        // Kinds already in the list are not offered again.
        #expect(try bashCompletes(["create", "--ns", "mnt,pid,"], as: alice, socket: socket)
                == NamespaceKind.allCases.map(\.rawValue).filter { $0 != "mnt" && $0 != "pid" }.map { "mnt,pid," + $0 }.sorted())
        // Every kind the supervisor knows, no more.
        #expect(try bashCompletes(["create", "--ns", ""], as: alice, socket: socket)
                == NamespaceKind.allCases.map(\.rawValue).sorted())
    }

    @Test func shareCompletesUsersAndGroups() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        try create(supervisor, "lab", as: alice)
        let users = ["nsg-alice", "nsg-bob", "nsg-carol", "nsg-dave", "nsg-erin", "nsg-frank"]
        #expect(try bashCompletes(["share", "lab", "nsg-"], as: alice, socket: supervisor.socketPath) == users)
        #expect(try bashCompletes(["unshare", "lab", "nsg-d"], as: alice, socket: supervisor.socketPath) == ["nsg-dave"])
        #expect(try bashCompletes(["share", "lab", "@nsg-fri"], as: alice, socket: supervisor.socketPath) == ["@nsg-friends"])
        // bash itself splits `@nsg-fri` into `@` and `nsg-fri` (@ is in COMP_WORDBREAKS).
        #expect(try bashCompletes(["share", "lab", "@", "nsg-fri"], as: alice, socket: supervisor.socketPath) == ["nsg-friends"])
        #expect(try bashCompletes(["create", "x", "--member", "nsg-e"], as: alice, socket: supervisor.socketPath) == ["nsg-erin"])
        // System accounts are not offered.
        #expect(try bashCompletes(["share", "lab", "roo"], as: alice, socket: supervisor.socketPath) == [])
    }

    /// The release CLI is linked statically, where glibc's getpwent and
    /// getgrent crash (their NSS modules are loaded at run time): the members
    /// come from the files, which this checks on the binary users get.
    @Test func theStaticReleaseCLICompletesMembersAndGroups() throws {
        let release = try releaseProducts() + "/nsgroup"
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        try create(supervisor, "lab", as: alice)
        let environment = ["NSGROUP_SOCKET": supervisor.socketPath]
        func complete(_ subcommand: String, _ argument: String, _ words: [String]) throws -> [String] {
            let index = words.count - 1
            let result = try run(release, ["---completion", subcommand, "--", argument, String(index + 1), String(words[index].count),
                                           "nsgroup"] + words, as: alice, environment: environment)
            #expect(result.status == 0 && result.stderr.isEmpty, "\(subcommand) \(words): \(result)")
            return result.stdout.split(separator: "\n").map(String.init).filter { !$0.isEmpty }.sorted()
        }
        #expect(try complete("share", "positional@1", ["share", "lab", "nsg-da"]) == ["nsg-dave"])
        #expect(try complete("share", "positional@1", ["share", "lab", "@nsg-fri"]) == ["@nsg-friends"])
        #expect(try complete("enter", "positional@0", ["enter", ""]) == ["lab"])
    }

    /// fish and zsh, interactive in a real terminal, with the generated
    /// scripts: TAB completes a group name, a user and namespace kinds.
    @Test(arguments: ["fish", "zsh"]) func completesInATerminal(shell: String) throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        try create(supervisor, "lab-one", as: alice)
        // nsgroup on PATH under its own name, and the script, where alice can read them.
        let bin = supervisor.directory + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: false)
        chmod(bin, 0o755)
        try FileManager.default.createSymbolicLink(atPath: bin + "/nsgroup", withDestinationPath: Products.nsgroup)
        try script(shell).write(toFile: bin + "/nsgroup.\(shell)", atomically: true, encoding: .utf8)
        chmod(bin + "/nsgroup.\(shell)", 0o644)
        let start = shell == "fish" ? "/usr/bin/fish --no-config" : "/usr/bin/zsh -f"
        let terminal = try Tmux(command: "/usr/bin/setpriv --reuid=\(alice.uid) --regid=\(alice.gid) --init-groups -- "
                                + "/usr/bin/env -i HOME=/home/nsg-alice TERM=xterm PATH=\(bin):/usr/bin:/bin "
                                + "NSGROUP_SOCKET=\(supervisor.socketPath) \(start)", width: 160)
        let load = shell == "fish" ? "" : "autoload -U compinit; compinit -u -D; "
        try terminal.sendKeys("\(load)source \(bin)/nsgroup.\(shell); echo sourced")
        try terminal.waitFor(line: "sourced")
        try terminal.sendKeys("nsgroup enter lab-o\t", enter: false)
        try terminal.waitFor("nsgroup enter lab-one")
        try terminal.sendKeys("\u{15}nsgroup share lab-one nsg-da\t", enter: false)
        try terminal.waitFor("nsgroup share lab-one nsg-dave")
        try terminal.sendKeys("\u{15}nsgroup create x --ns mnt,u\t", enter: false)
        let screen = try terminal.waitFor("mnt,user")
        #expect(screen.contains("mnt,uts"), "\(screen)")
    }

    /// zsh and fish run the same `---completion` protocol as bash; zsh's
    /// variant ends with a pseudo-candidate " " that its script removes.
    /// (fish 3.6 cannot run the script's dynamic completions for
    /// `complete -C` outside a terminal, hence the terminal above.)
    @Test func zshAndFishScriptsUseTheSameCompletions() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        try create(supervisor, "lab", as: alice)
        for shell in ["zsh", "fish"] {
            let text = try script(shell)
            #expect(text.contains("---completion enter -- positional@0"), "\(shell)")
            #expect(text.contains("---completion create -- --ns"), "\(shell)")
            let words = try run(Products.nsgroup, ["---completion", "enter", "--", "positional@0", "1", "0", "nsgroup", "enter", ""],
                                as: alice, environment: ["NSGROUP_SOCKET": supervisor.socketPath, "SAP_SHELL": shell])
            #expect(words.status == 0, "\(words)")
            let lines = words.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            #expect(lines.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty } == ["lab"], "\(shell): \(lines)")
        }
        // zsh loads the script without complaint.
        let zsh = try run("/usr/bin/zsh", ["-f", "-c", "autoload -U compinit && compinit -u && eval \"$1\" && print ok", "zsh", try script("zsh")])
        #expect(zsh.status == 0 && zsh.stdout.contains("ok"), "\(zsh)")
        // So does fish.
        let fish = try run("/usr/bin/fish", ["--no-config", "-c", "source -; and echo ok"], stdin: Data(try script("fish").utf8))
        #expect(fish.status == 0 && fish.stdout.contains("ok"), "\(fish)")
    }
}
