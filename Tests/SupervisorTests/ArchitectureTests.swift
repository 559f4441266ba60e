import Foundation
import Testing

/// docs/ARCHITECTURE.md says which module may import which, in a block fenced as
/// `imports`; the sources must keep to it, and every Swift module must be in it.
@Suite struct ArchitectureTests {
    static let root: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    /// Module → what it may import, from the document.
    static func allowed() throws -> [String: Set<String>] {
        let text = try String(contentsOf: root.appendingPathComponent("docs/ARCHITECTURE.md"), encoding: .utf8)
        let start = try #require(text.range(of: "```imports\n"), "docs/ARCHITECTURE.md has no ```imports block")
        let end = try #require(text.range(of: "\n```", range: start.upperBound..<text.endIndex))
        var table: [String: Set<String>] = [:]
        for line in text[start.upperBound..<end.lowerBound].split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            try #require(parts.count == 2, "not MODULE: IMPORTS: \(line)")
            let imports = parts[1].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            table[String(parts[0])] = Set(imports).union(["Glibc"])
        }
        return table
    }

    /// Module → what its Swift files import.
    static func imports() throws -> [String: Set<String>] {
        let sources = root.appendingPathComponent("Sources")
        var found: [String: Set<String>] = [:]
        for module in try FileManager.default.contentsOfDirectory(atPath: sources.path) {
            guard let walker = FileManager.default.enumerator(atPath: sources.appendingPathComponent(module).path) else { continue }
            var modules = Set<String>()
            var hasSwift = false
            for case let file as String in walker where file.hasSuffix(".swift") {
                hasSwift = true
                let text = try String(contentsOf: sources.appendingPathComponent(module).appendingPathComponent(file), encoding: .utf8)
                for line in text.split(separator: "\n") {
                    let words = line.split(separator: " ")
                    if let index = words.firstIndex(of: "import"), words[..<index].allSatisfy({ $0.hasPrefix("@") || $0 == "public" || $0 == "internal" }),
                       index + 1 < words.count {
                        modules.insert(String(words[index + 1]))
                    }
                }
            }
            if hasSwift { found[module] = modules }
        }
        return found
    }

    @Test func everyModuleImportsOnlyWhatTheDocumentAllows() throws {
        let allowed = try Self.allowed()
        let imports = try Self.imports()
        #expect(!imports.isEmpty)
        for (module, used) in imports.sorted(by: { $0.key < $1.key }) {
            let permitted = try #require(allowed[module], "\(module) is not in docs/ARCHITECTURE.md's imports block")
            #expect(used.subtracting(permitted).isEmpty, "\(module) imports \(used.subtracting(permitted).sorted()), which docs/ARCHITECTURE.md does not allow")
        }
        #expect(Set(allowed.keys).subtracting(imports.keys).isEmpty, "the document names modules that have no Swift sources")
    }

    /// The check itself can fail: a table without Namespaces' CSpawn is broken by the sources.
    @Test func aMissingPermissionIsFound() throws {
        var allowed = try Self.allowed()
        allowed["Namespaces"]?.remove("CSpawn")
        let used = try #require(try Self.imports()["Namespaces"])
        #expect(!used.subtracting(allowed["Namespaces"]!).isEmpty)
    }
}
