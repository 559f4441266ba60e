import Testing
import Client
@testable import nsgroup

/// `--host`'s value: what ssh is given, and what is refused before ssh sees it.
@Suite struct RemoteHostTests {
    @Test(arguments: [
        ("web1", nil, "web1", nil, ["--", "web1"]),
        ("alice@web1", "alice", "web1", nil, ["--", "alice@web1"]),
        ("alice@web1.example.org:2222", "alice", "web1.example.org", 2222, ["-p", "2222", "--", "alice@web1.example.org"]),
        ("[::1]:2200", nil, "::1", 2200, ["-p", "2200", "--", "::1"]),
        ("bob@[fe80::1]", "bob", "fe80::1", nil, ["--", "bob@fe80::1"]),
        // A bare IPv6 address has no port: its last group is not one.
        ("fe80::1", nil, "fe80::1", nil, ["--", "fe80::1"]),
    ] as [(String, String?, String, Int?, [String])])
    func parses(_ text: String, user: String?, host: String, port: Int?, ssh: [String]) throws {
        let parsed = try #require(RemoteHost(parsing: text))
        #expect(parsed.user == user && parsed.host == host && parsed.port == port)
        #expect(parsed.sshArguments == ssh)
        // (How errors name it: a bare IPv6 address in brackets.)
        #expect(parsed.description == (text == "fe80::1" ? "[fe80::1]" : text))
    }

    /// Nothing ssh would read as an option, nothing a shell or ssh's % expansions (a
    /// ProxyCommand with %h) would act on, no empty part, no port out of range.
    @Test(arguments: ["", "@web1", "alice@", "-oProxyCommand=touch/tmp/x", "alice@-oProxyCommand=x", "-l@web1",
                      "web1:0", "web1:65536", "web1:http", "web 1", "web1;id", "web1`id`", "$(id)@web1", "web%h",
                      "al'ice@web1", "web1\n", "[::1", "[::1]x", "we\u{1b}b1"])
    func refuses(_ text: String) {
        #expect(RemoteHost(parsing: text) == nil)
    }

    @Test func escapesWhatCouldDriveATerminal() {
        #expect(Output.visible("plain text\nsecond line\twith tab") == "plain text\nsecond line\twith tab")
        #expect(Output.visible("title\u{1b}]0;x\u{07}") == "title\\x1b]0;x\\x07")
        #expect(Output.visible("csi\u{9b}2J") == "csi\\u{9b}2J")
        #expect(Output.visible("del\u{7f}") == "del\\x7f")
        // A cell or a message of another host's is one line.
        #expect(Output.visible("name\nforged row\t", oneLine: true) == "name\\x0aforged row\\x09")
        #expect(Output.visible("é ✓ 漢") == "é ✓ 漢")
    }
}
