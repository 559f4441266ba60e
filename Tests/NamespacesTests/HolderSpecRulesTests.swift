import Testing
@testable import Namespaces

@Suite("HolderSpec rules: hostnames, mount paths, tmpfs and bind specs")
struct HolderSpecRulesTests {
    @Test func hostnames() {
        for good in ["web", "a", "web-1.example_x", String(repeating: "h", count: 64)] { #expect(HolderSpec.isValidHostname(good), "\(good)") }
        for bad in ["", "-web", "we b", "wé", String(repeating: "h", count: 65), "a/b"] { #expect(!HolderSpec.isValidHostname(bad), "\(bad)") }
    }

    @Test func mountPaths() {
        for good in ["/tmp", "/a/b", "/a..b", "/.hidden"] { #expect(HolderSpec.isValidMountPath(good), "\(good)") }
        for bad in ["", "/", "tmp", "/tmp/", "//tmp", "/a/../b", "/a/./b", "/a:b", "/a\0b"] { #expect(!HolderSpec.isValidMountPath(bad), "\(bad)") }
    }

    @Test func tmpfsSpecs() throws {
        #expect(try TmpfsMount(spec: "/tmp") == TmpfsMount(path: "/tmp", options: "mode=0700"))
        #expect(try TmpfsMount(spec: "/tmp:size=64m,mode=1777") == TmpfsMount(path: "/tmp", options: "mode=1777,size=64m"))
        #expect(try TmpfsMount(spec: "/tmp:size=10%").size == "10%")
        #expect(throws: TmpfsMount.SpecError.path("tmp")) { try TmpfsMount(spec: "tmp:size=1m") }
        #expect(throws: TmpfsMount.SpecError.notKeyValue("size")) { try TmpfsMount(spec: "/tmp:size") }
        #expect(throws: TmpfsMount.SpecError.size("01m")) { try TmpfsMount(spec: "/tmp:size=01m") }
        #expect(throws: TmpfsMount.SpecError.mode("0999")) { try TmpfsMount(spec: "/tmp:mode=0999") }
        #expect(throws: TmpfsMount.SpecError.unknownOption("uid")) { try TmpfsMount(spec: "/tmp:uid=0") }
        // The path is checked before the options.
        #expect(throws: TmpfsMount.SpecError.path("/a/..")) { try TmpfsMount(spec: "/a/..:uid=0") }
    }

    @Test func tmpfsSizes() {
        for good in ["1", "64m", "1g", "512k", "10%", "999999999999"] { #expect(TmpfsMount.isValidSize(good), "\(good)") }
        for bad in ["", "0", "0m", "1t", "1M", "m", "1.5g", "9999999999999", "-1"] { #expect(!TmpfsMount.isValidSize(bad), "\(bad)") }
    }

    @Test func bindSpecs() throws {
        #expect(try BindMount(spec: "/srv:/data") == BindMount(source: "/srv", target: "/data", readOnly: false))
        #expect(try BindMount(spec: "/srv:/data:ro") == BindMount(source: "/srv", target: "/data", readOnly: true))
        #expect(try BindMount(spec: "/srv:/data:rw") == BindMount(source: "/srv", target: "/data", readOnly: false))
        #expect(throws: BindMount.SpecError.form) { try BindMount(spec: "/srv") }
        #expect(throws: BindMount.SpecError.form) { try BindMount(spec: "/srv:/data:rx") }
        #expect(throws: BindMount.SpecError.source("srv")) { try BindMount(spec: "srv:data") }
        #expect(throws: BindMount.SpecError.target("/data/")) { try BindMount(spec: "/srv:/data/") }
    }

    /// A private /tmp goes to the holder as --shared-tmpfs, in its place among the tmpfs
    /// mounts; a home bind as --own-bind, which alone makes the holder resolve as the caller.
    @Test func privateMountArguments() {
        var spec = HolderSpec(name: "g", namespaces: [.mnt], tmpfs: [TmpfsMount(path: "/tmp", options: "mode=1777"),
                                                                    TmpfsMount(path: "/srv/x")],
                              binds: [BindMount(source: "/srv/h", target: "/home/a", readOnly: false, owner: 1001)])
        spec.sharedTmpfs = ["/tmp"]
        spec.resolveAs = ResolveCredentials(uid: 1001, gid: 1002, groups: [], requireOwner: true)
        let args = spec.arguments.joined(separator: " ")
        #expect(args.contains("--own-bind /srv/h /home/a 1001 --resolve-as 1001 1002 - --require-owner "
            + "--shared-tmpfs /tmp mode=1777 --tmpfs /srv/x mode=0700"), "\(args)")
        spec.tmpfs = []
        #expect(spec.arguments.joined(separator: " ").contains("--own-bind /srv/h /home/a 1001 --resolve-as 1001 1002 -"))
    }
}
