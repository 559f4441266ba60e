import Client
import Foundation
import Glibc
import POSIX
import RPC
import Testing

/// The schemas are the contract: for edge inputs of every method's params
/// (lengths at and past their bounds, duplicates, wrong types, integers out of
/// range, empty arrays, unknown members), a JSON Schema 2020-12 validator
/// (python3-jsonschema) and a real supervisor must agree: the schema refuses
/// a params object exactly when the server answers -32602 (invalid_params, or
/// invalid_name for a bad group name).
///
/// Only what a schema can express is asked: rules that need the user database,
/// the host's files or several entries at once beyond identical ones (a bind
/// target also a tmpfs path, argv's total size) are in the schemas'
/// descriptions and in the end-to-end tests of those rules.
@Suite struct SchemaConformanceTests {
    static let schemaDirectory = Products.repositoryRoot + "/protocol/schema"

    /// Debian's python3 (where python3-jsonschema installs), not whatever python3 is first on PATH.
    static let python = "/usr/bin/python3"

    /// Reads [[file, instance], …] on stdin and prints [valid, …]: each instance
    /// checked against `file`'s $defs/params, every schema file in the registry.
    static let validator = #"""
    import json, os, sys
    import jsonschema
    directory = sys.argv[1]
    store = {}
    for name in os.listdir(directory):
        if name.endswith(".json"):
            with open(os.path.join(directory, name)) as f:
                schema = json.load(f)
            store[schema["$id"]] = schema
    verdicts = []
    for file, instance in json.load(sys.stdin):
        root = store["https://nsgroup.invalid/protocol/schema/" + file]
        resolver = jsonschema.RefResolver.from_schema(root, store=store)
        params = jsonschema.Draft202012Validator({"$id": root["$id"], "$ref": "#/$defs/params"}, resolver=resolver)
        verdicts.append(params.is_valid(instance))
    print(json.dumps(verdicts))
    """#

    struct Case {
        let method: String
        /// The params, or nil to leave them out.
        let params: JSONValue?
        /// For enter with "tty": false: three descriptors (/dev/null) go with the request,
        /// unless its stdio is streamed (which takes none).
        var descriptors: Int { params?["tty"] == .bool(false) && params?["stdio"] != .string("stream") ? 3 : 0 }
    }

    static func x(_ count: Int) -> String { String(repeating: "x", count: count) }
    /// An absolute path of exactly `bytes` bytes that exists nowhere.
    static func path(_ bytes: Int) -> String { "/nonexistent-sc/" + x(bytes - 16) }
    static func strings(_ items: [String]) -> JSONValue { .array(items.map { .string($0) }) }
    static func json(_ text: String) -> JSONValue { try! JSONParser.parse(text) }

    static var cases: [Case] {
        var all: [Case] = []
        func add(_ method: String, _ params: JSONValue?) { all.append(Case(method: method, params: params)) }
        func create(_ members: JSONObject) {
            var o = members
            o["name"] = o["name"] ?? .string("sc-\(all.count)")
            add("create", .object(o))
        }

        // create, each with a name of its own ("sc-N") unless it is about the name
        create([:])
        create(["verbose": true])
        create(["name": .string(x(64))])
        create(["name": "Upper"])
        create(["name": 7])
        add("create", nil)
        add("create", .array([]))
        add("create", .null)
        create(["namespaces": []])
        create(["namespaces": ["mnt", "mnt"]])
        create(["namespaces": ["mnt", "bogus"]])
        create(["namespaces": ["mnt", "pid"]])
        create(["namespaces": "mnt"])
        create(["hostname": .string(x(64))])
        create(["hostname": .string(x(65))])
        create(["hostname": "-a"])
        create(["hostname": "a", "namespaces": ["mnt"]])
        create(["tmpfs": []])
        create(["tmpfs": strings([path(4095)])])
        create(["tmpfs": strings([path(4095) + ":mode=0755,size=12m"])])
        create(["tmpfs": strings([path(4096)])])
        create(["tmpfs": strings([path(4096) + ":mode=0755"])])
        create(["tmpfs": strings(["/nonexistent-sc/a", "/nonexistent-sc/a"])])
        create(["tmpfs": strings((0..<32).map { "/nonexistent-sc/\($0)" })])
        create(["tmpfs": strings((0..<33).map { "/nonexistent-sc/\($0)" })])
        create(["tmpfs": strings(["/nonexistent-sc/a:size=0"])])
        create(["tmpfs": strings(["/nonexistent-sc/a:size=1234567890123"])])
        create(["tmpfs": strings(["/nonexistent-sc/a:mode=0779"])])
        create(["tmpfs": strings(["/nonexistent-sc/a:uid=0"])])
        create(["tmpfs": strings(["/nonexistent-sc/a:"])])
        create(["tmpfs": strings(["/nonexistent-sc/../a"])])
        create(["tmpfs": strings(["/nonexistent-sc/a/"])])
        create(["tmpfs": strings(["/"])])
        create(["tmpfs": strings(["relative"])])
        create(["tmpfs": [5]])
        create(["tmpfs": strings(["/nonexistent-sc/a"]), "namespaces": ["pid"]])
        create(["binds": strings(["/nonexistent-sc/a:/nonexistent-sc/b"])])
        create(["binds": strings(["/nonexistent-sc/a:/nonexistent-sc/b:ro"])])
        create(["binds": strings(["/nonexistent-sc/a:/nonexistent-sc/b", "/nonexistent-sc/a:/nonexistent-sc/b"])])
        create(["binds": strings(["\(path(4095)):\(path(4095)):rw"])])
        create(["binds": strings(["\(path(4096)):/nonexistent-sc/b"])])
        create(["binds": strings(["/nonexistent-sc/a:\(path(4096))"])])
        create(["binds": strings((0..<33).map { "/nonexistent-sc/a:/nonexistent-sc/\($0)" })])
        create(["binds": strings(["/nonexistent-sc/a"])])
        create(["binds": strings(["/nonexistent-sc/a:/nonexistent-sc/b:rx"])])
        create(["binds": strings(["/nonexistent-sc/a:relative"])])
        create(["members": strings(Array(repeating: "root", count: 64))])
        create(["members": strings(Array(repeating: "root", count: 65))])
        create(["members": strings(["0", "@0", "@root"])])
        create(["members": strings([""])])
        create(["members": strings(["@"])])
        create(["members": strings([x(257)])])
        create(["members": strings(["@" + x(257)])])
        create(["members": [1]])
        create(["monotonicOffset": 316_224_000, "boottimeOffset": -1, "namespaces": ["time"]])
        create(["monotonicOffset": 316_224_001, "namespaces": ["time"]])
        create(["boottimeOffset": -316_224_001, "namespaces": ["time"]])
        create(["monotonicOffset": json("1.5"), "namespaces": ["time"]])
        create(["monotonicOffset": 1])
        create(["netnsName": .string(x(64))])
        create(["netnsName": "-a"])
        create(["netnsName": "a", "namespaces": ["mnt"]])
        create(["network": "bogus"])
        create(["network": "none"])
        create(["publish": [["host": 8080, "port": 80]]])
        create(["network": "pasta", "namespaces": ["net"]])
        create(["network": "pasta", "namespaces": ["user", "net"], "publish": [["host": 47_999, "port": 80], ["host": 47_999, "port": 80]]])
        create(["limits": ["cpuWeight": 10_000, "cpus": json("0.01")]])
        create(["limits": ["cpuWeight": 10_001]])
        create(["limits": ["cpus": json("0.001")]])
        create(["limits": ["memory": 1_048_575]])
        create(["limits": ["memory": 1_125_899_906_842_625]])
        create(["limits": ["pids": 0]])
        create(["limits": ["bogus": 1]])
        create(["limits": []])
        create(["lifetime": 316_224_000, "idle": json("3.16224e8")])
        create(["lifetime": 0])
        create(["idle": 316_224_001])
        create(["lifetime": "1"])
        create(["privateTmp": "yes"])
        create(["privateTmp": false, "privateHome": nil])
        create(["home": .string(path(4095))])
        create(["home": .string(path(4096))])
        create(["home": "/nonexistent-sc/./a"])
        create(["persist": "/nonexistent-sc/a"])
        create(["root": "bogus"])
        create(["root": "overlay", "members": ["root"]])

        // enter, in the group "sc" the test creates
        func enter(_ members: JSONObject) {
            var o = members
            o["name"] = o["name"] ?? "sc"
            add("enter", .object(o))
        }
        enter(["tty": true, "argv": ["true"]])
        enter(["tty": false, "argv": ["true"]])
        enter(["argv": ["true"]])
        enter(["tty": "true", "argv": ["true"]])
        enter(["tty": true, "argv": []])
        enter(["tty": true, "argv": [""]])
        enter(["tty": true, "argv": ["true", ""]])
        enter(["tty": true, "argv": strings(Array(repeating: "true", count: 1024))])
        enter(["tty": true, "argv": strings(Array(repeating: "true", count: 1025))])
        enter(["tty": true, "argv": strings([x(131_071)])])
        enter(["tty": true, "argv": strings([x(131_072)])])
        enter(["tty": true, "argv": "true"])
        enter(["tty": true, "argv": ["true"], "cwd": .string(path(4095))])
        enter(["tty": true, "argv": ["true"], "cwd": .string(path(4096))])
        enter(["tty": true, "argv": ["true"], "cwd": "relative"])
        enter(["tty": true, "argv": ["true"], "env": .object(JSONObject((0..<128).map { ("V\($0)", JSONValue.string("1")) }))])
        enter(["tty": true, "argv": ["true"], "env": .object(JSONObject((0..<129).map { ("V\($0)", JSONValue.string("1")) }))])
        enter(["tty": true, "argv": ["true"], "env": ["A": .string(x(32_765))]])
        enter(["tty": true, "argv": ["true"], "env": ["A": .string(x(32_766))]])
        enter(["tty": true, "argv": ["true"], "env": [x(32_766): ""]])
        enter(["tty": true, "argv": ["true"], "env": [x(32_767): ""]])
        enter(["tty": true, "argv": ["true"], "env": ["": "x"]])
        enter(["tty": true, "argv": ["true"], "env": ["A=B": "x"]])
        enter(["tty": true, "argv": ["true"], "env": ["A": 1]])
        enter(["tty": true, "argv": ["true"], "rows": 65_535, "columns": 0])
        enter(["tty": true, "argv": ["true"], "rows": 65_536])
        enter(["tty": true, "argv": ["true"], "columns": -1])
        enter(["tty": false, "argv": ["true"], "rows": 24])
        enter(["tty": false, "argv": ["true"], "rows": nil])
        enter(["tty": true, "argv": ["true"], "trustOwner": "x"])
        enter(["tty": true, "argv": ["true"], "bogus": 1])
        enter(["tty": true, "name": "Upper"])
        enter(["tty": false, "argv": ["true"], "stdio": "stream"])
        enter(["tty": true, "argv": ["true"], "stdio": "stream", "rows": 24, "columns": 80])
        enter(["tty": false, "argv": ["true"], "stdio": "descriptors"])
        enter(["tty": true, "argv": ["true"], "stdio": nil])
        enter(["tty": false, "argv": ["true"], "stdio": "stream", "rows": 24])
        enter(["tty": true, "argv": ["true"], "stdio": "pipes"])
        enter(["tty": true, "argv": ["true"], "stdio": "Stream"])
        enter(["tty": true, "argv": ["true"], "stdio": true])

        // signal and attach, on sessions that do not exist
        add("signal", ["name": "sc", "session": 1000, "signal": 64])
        add("signal", ["name": "sc", "session": 9_223_372_036_854_775_807, "signal": 1])
        add("signal", ["name": "sc", "session": json("9223372036854775808"), "signal": 1])
        add("signal", ["name": "sc", "session": 0, "signal": 1])
        add("signal", ["name": "sc", "session": 1000, "signal": 65])
        add("signal", ["name": "sc", "session": 1000, "signal": 0])
        add("signal", ["name": "sc", "session": 1000, "signal": json("1.5")])
        add("signal", ["name": "sc", "session": 1000])
        add("signal", ["name": "sc", "session": "1", "signal": 1])
        add("attach", ["name": "sc", "session": 1000])
        add("attach", ["name": "sc", "session": 0])
        add("attach", ["name": "sc", "session": 1000, "bogus": 1])
        add("attach", ["name": "sc"])

        // write and resize, to a session this connection does not stream: well-formed
        // params get not_found, which is not a refusal of the params
        func write(_ members: JSONObject) {
            var o = members
            o["session"] = o["session"] ?? 1000
            add("write", .object(o))
        }
        write(["data": "aGVsbG8K"])
        write(["data": ""])
        write(["eof": true])
        write(["data": nil, "eof": true])
        write(["data": "AA==", "eof": false])
        write(["data": "AAA=", "eof": nil])
        write(["data": "AAE="])
        write(["data": "+/+/"])
        write(["data": .string(String(repeating: "A", count: 43_692))])
        write(["data": .string(String(repeating: "A", count: 43_696))])
        write(["data": .string(String(repeating: "A", count: 43_690) + "A=")])
        write([:])
        write(["eof": false])
        write(["data": nil])
        write(["data": nil, "eof": nil])
        write(["data": "AB=="])
        write(["data": "AAB="])
        write(["data": "QQ"])
        write(["data": "QQ==\n"])
        write(["data": "QQ==\r"])
        write(["data": "Q Q="])
        write(["data": "-_8="])
        write(["data": "A==="])
        write(["data": "===="])
        write(["data": "AA==AA=="])
        write(["data": "AAAA===="])
        write(["data": "\u{e9}AAA"])
        write(["data": 5])
        write(["data": ["AA=="]])
        write(["eof": "yes"])
        write(["eof": 1])
        write(["data": "AA==", "bogus": 1])
        write(["session": 0, "eof": true])
        write(["session": 9_223_372_036_854_775_807, "eof": true])
        write(["session": json("9223372036854775808"), "eof": true])
        write(["session": "1", "eof": true])
        write(["session": nil, "eof": true])
        add("write", ["data": "AA=="])
        add("write", nil)
        add("resize", ["session": 1000, "rows": 65_535, "columns": 0])
        add("resize", ["session": 1000, "rows": 0, "columns": 65_535])
        add("resize", ["session": 9_223_372_036_854_775_807, "rows": 24, "columns": 80])
        add("resize", ["session": 1000, "rows": 65_536, "columns": 80])
        add("resize", ["session": 1000, "rows": 24, "columns": -1])
        add("resize", ["session": 1000, "rows": 24, "columns": json("80.5")])
        add("resize", ["session": 1000, "rows": 24])
        add("resize", ["session": 1000, "rows": nil, "columns": 80])
        add("resize", ["session": 1000, "rows": "24", "columns": 80])
        add("resize", ["session": 0, "rows": 24, "columns": 80])
        add("resize", ["rows": 24, "columns": 80])
        add("resize", ["session": 1000, "rows": 24, "columns": 80, "bogus": 1])
        add("resize", nil)

        // share and unshare, naming only root (the group's member list stays within bounds)
        for method in ["share", "unshare"] {
            add(method, ["name": "sc", "members": ["root"]])
            add(method, ["name": "sc", "members": strings(Array(repeating: "0", count: 64))])
            add(method, ["name": "sc", "members": strings(Array(repeating: "0", count: 65))])
            add(method, ["name": "sc", "members": []])
            add(method, ["name": "sc"])
            add(method, ["name": "sc", "members": strings(["@"])])
            add(method, ["name": "sc", "members": strings([x(257)])])
            add(method, ["name": "sc", "members": [0]])
            add(method, ["name": "sc", "members": "root"])
        }

        // methods that name a group (one that does not exist, so destroy and freeze change nothing)
        for method in ["inspect", "destroy", "freeze", "thaw", "processes"] {
            add(method, ["name": "sc-none"])
            add(method, nil)
            add(method, [:])
            add(method, ["name": 5])
            add(method, ["name": .string(x(64))])
            add(method, ["name": "sc-none", "bogus": 1])
        }

        // methods that take no params
        for method in ["version", "describe", "list"] {
            add(method, nil)
            add(method, [:])
            add(method, ["bogus": 1])
            add(method, .null)
            add(method, ["a"])
        }

        // subscribe and unsubscribe, last: the connection's subscription is the server's first (1)
        add("subscribe", nil)
        add("subscribe", [:])
        add("subscribe", ["types": ["group-created", "session-ended"], "groups": ["sc"], "since": 0])
        add("subscribe", ["types": []])
        add("subscribe", ["types": ["group-made"]])
        add("subscribe", ["types": ["group-created", "group-created"]])
        add("subscribe", ["types": "group-created"])
        add("subscribe", ["groups": strings((0..<64).map { "g\($0)" })])
        add("subscribe", ["groups": strings((0..<65).map { "g\($0)" })])
        add("subscribe", ["groups": ["Bad"]])
        add("subscribe", ["groups": ["sc", "sc"]])
        add("subscribe", ["since": -1])
        add("subscribe", ["since": json("1.5")])
        add("subscribe", ["instance": "x"])
        add("subscribe", ["bogus": 1])
        add("unsubscribe", nil)
        add("unsubscribe", ["subscription": 0])
        add("unsubscribe", ["subscription": "1"])
        add("unsubscribe", ["subscription": 1, "bogus": 1])
        add("unsubscribe", ["subscription": 1])
        return all
    }

    /// The schema's verdict on each case: true when it accepts the params.
    static func schemaVerdicts(_ cases: [Case]) throws -> [Bool] {
        let input: JSONValue = .array(cases.map { c in
            .array([.string(c.method + ".json"), c.params ?? .object([:])])
        })
        let result = try run(python, ["-c", validator, schemaDirectory], stdin: Data(input.serialized().utf8))
        guard result.status == 0 else {
            throw HarnessError("\(python) with jsonschema failed (apt-get install python3-jsonschema): \(result.stderr)")
        }
        guard let verdicts = try JSONParser.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).arrayValue?
            .compactMap(\.boolValue), verdicts.count == cases.count
        else { throw HarnessError("the validator printed \(result.stdout.prefix(200))") }
        return verdicts
    }

    /// Whether the server answers the request with -32602 (any other error, or a result, is not a refusal of the params).
    static func refuses(_ client: RPCClient, _ method: String, _ params: JSONValue?, descriptors: [Int32]) throws -> Bool {
        do {
            _ = try client.call(method, params, descriptors: descriptors)
            return false
        } catch {
            guard case .server(let refusal) = error else { throw error }
            return refusal.code == -32602
        }
    }

    @Test func everySchemaAgreesWithTheServer() throws {
        let cases = Self.cases
        let verdicts = try Self.schemaVerdicts(cases)
        for method in MethodName.allCases {
            #expect(cases.contains { $0.method == method.rawValue }, "no case for \(method.rawValue)")
        }

        let supervisor = try TestSupervisor()
        let client = try RPCClient(socketPath: supervisor.socketPath)
        _ = try client.call("create", ["name": "sc"])
        var disagreements: [String] = []
        var accepted = 0
        for (c, schemaAccepts) in zip(cases, verdicts) {
            let params = c.params
            let descriptors = (0..<c.descriptors).map { _ in open("/dev/null", O_RDWR | O_CLOEXEC) }
            defer { for fd in descriptors { close(fd) } }
            let serverRefuses = try Self.refuses(client, c.method, params, descriptors: descriptors)
            if !serverRefuses { accepted += 1 }
            if schemaAccepts == serverRefuses {
                let shown = String((params ?? .null).serialized().prefix(160))
                disagreements.append("\(c.method) \(shown): schema \(schemaAccepts ? "accepts" : "refuses"), server \(serverRefuses ? "refuses" : "accepts")")
            }
            if c.method == "create", !serverRefuses, let name = params?["name"]?.stringValue, name != "sc" {
                _ = try? client.call("destroy", ["name": .string(name)])
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.count) of \(cases.count) cases:\n\(disagreements.joined(separator: "\n"))")
        // Both verdicts occur, so neither side passes by accepting or refusing everything.
        #expect(accepted > 30 && accepted < cases.count - 30, "\(accepted) of \(cases.count) accepted")
        _ = try client.call("destroy", ["name": "sc"])
        #expect(try supervisor.groupNames().isEmpty)
    }
}
