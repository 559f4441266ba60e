import Foundation
import Testing
@testable import Supervisor

/// What packaging/ ships agrees with the code.
@Suite struct PackagingTests {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    @Test func theDefaultConfigurationParsesToTheDefaults() throws {
        let path = Self.root + "/packaging/config/nsgroupd.conf"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let parsed = try PolicyFile.parse(text, path: path)
        #expect(parsed == Policy.defaults())
        // Uncommented, every documented value is the default too.
        let uncommented = text.split(separator: "\n").map { line in
            line.hasPrefix("#") && line.contains(" = ") && !line.hasPrefix("# ") ? String(line.dropFirst()) : String(line)
        }.joined(separator: "\n")
        #expect(uncommented != text, "the file should show each setting")
        #expect(try PolicyFile.parse(uncommented, path: path) == Policy.defaults())
    }

    @Test func theCatalogExplainsEveryMessageID() throws {
        let catalog = try String(contentsOfFile: Self.root + "/packaging/catalog/nsgroup.catalog", encoding: .utf8)
        let ids = Set(catalog.split(separator: "\n").filter { $0.hasPrefix("-- ") }.map { String($0.dropFirst(3)) })
        #expect(ids == Set(AuditEvent.allCases.map(\.messageID)))
        #expect(ids.count == AuditEvent.allCases.count, "message ids are distinct")
    }

    /// Every journal field the supervisor writes by a literal name is in the
    /// README's table of what a record says (a `_GID`-style abbreviation after
    /// its full first name counts).
    @Test func theREADMENamesEveryJournalField() throws {
        let readme = try String(contentsOfFile: Self.root + "/README.md", encoding: .utf8)
        var written: Set<String> = []
        for directory in ["Sources/Supervisor", "Sources/Systemd"] {
            let path = Self.root + "/" + directory
            for file in try FileManager.default.contentsOfDirectory(atPath: path) where file.hasSuffix(".swift") {
                let text = try String(contentsOfFile: path + "/" + file, encoding: .utf8)
                for match in text.matches(of: #/"(NSGROUP_[A-Z_]+)"/#) { written.insert(String(match.output.1)) }
            }
        }
        #expect(written.count > 20, "found only \(written)")
        let rows = readme.split(separator: "\n").filter { $0.hasPrefix("| `NSGROUP_") || $0.hasPrefix("| `NAME_") }
        let missing = written.filter { field in
            !rows.contains { row in
                row.contains("`\(field)`") || row.split(separator: ",").contains { part in
                    // `NSGROUP_CALLER_UID`, `_GID`: the abbreviation's stem is the first name's.
                    guard let suffix = part.firstMatch(of: #/`(_[A-Z_]+)`/#)?.output.1,
                          let first = row.firstMatch(of: #/`(NSGROUP_[A-Z_]+?)_[A-Z]+`/#)?.output.1 else { return false }
                    return field == first + suffix
                }
            }
        }
        #expect(missing.isEmpty, "fields the README's table does not name: \(missing.sorted())")
    }

    @Test func theDaemonIsInSbinEverywhere() throws {
        // The unit starts /usr/sbin/nsgroupd, and `make install` rewrites exactly
        // that line for its SBINDIR.
        let unit = try String(contentsOfFile: Self.root + "/packaging/systemd/nsgroupd.service", encoding: .utf8)
        #expect(unit.contains("\nExecStart=/usr/sbin/nsgroupd\n"))
        let makefile = try String(contentsOfFile: Self.root + "/Makefile", encoding: .utf8)
        #expect(makefile.contains("s|^ExecStart=/usr/sbin/nsgroupd|ExecStart=$(SBINDIR)/nsgroupd|"))
        let postinst = try String(contentsOfFile: Self.root + "/packaging/debian/postinst", encoding: .utf8)
        #expect(postinst.contains("/usr/sbin/nsgroupd &"))
        let readme = try String(contentsOfFile: Self.root + "/README.md", encoding: .utf8)
        #expect(readme.contains("/usr/sbin/nsgroupd"))
    }
}
