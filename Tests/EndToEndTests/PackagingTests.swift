import Foundation
import Glibc
import POSIX
import Testing

/// The packaging: `make deb`, the systemd units and the files beside them,
/// the man pages and completions, `make install` and `make uninstall`.
///
/// The package is made from the release build in the same scratch
/// directory as these tests (`make check` builds it first). The tests
/// cannot build it themselves, because `swift test` holds SwiftPM's lock on
/// that directory while they run. So they run the Makefile with NO_BUILD=1.
@Suite(PackageUnderTest.Scope())
struct PackagingTests {
    // MARK: The package

    @Test func packageHoldsEveryFileWithItsMode() throws {
        let package = try PackageUnderTest.built()
        let executables = ["usr/sbin/nsgroupd", "usr/bin/nsgroup", "usr/libexec/nsgroup/nsgroup-holder"]
        let files = [
            "lib/systemd/system/nsgroupd.service", "lib/systemd/system/nsgroupd.socket", "lib/systemd/system/nsgroup.slice",
            "usr/lib/tmpfiles.d/nsgroup.conf", "usr/lib/sysusers.d/nsgroup.conf",
            "usr/lib/systemd/catalog/nsgroup.catalog", "etc/nsgroup/nsgroupd.conf",
            "usr/share/man/man1/nsgroup.1.gz", "usr/share/man/man8/nsgroupd.8.gz",
            "usr/share/man/man8/nsgroup-holder.8.gz",
            "usr/share/bash-completion/completions/nsgroup", "usr/share/zsh/vendor-completions/_nsgroup",
            "usr/share/fish/vendor_completions.d/nsgroup.fish",
            "usr/share/doc/nsgroup/copyright", "usr/share/doc/nsgroup/changelog.gz",
        ]
        for path in executables {
            let st = try fileStatus(package.root + "/" + path)
            #expect(st.st_mode & S_IFMT == S_IFREG && st.st_mode & 0o7777 == 0o755, "\(path): mode \(String(st.st_mode, radix: 8))")
            #expect(st.st_uid == 0 && st.st_gid == 0, "\(path) is not root's")
        }
        // The root-only daemon is not on users' PATH.
        #expect(!FileManager.default.fileExists(atPath: package.root + "/usr/bin/nsgroupd"), "nsgroupd is in /usr/bin")
        for path in files {
            let st = try fileStatus(package.root + "/" + path)
            #expect(st.st_mode & S_IFMT == S_IFREG && st.st_mode & 0o7777 == 0o644, "\(path): mode \(String(st.st_mode, radix: 8))")
            #expect(st.st_uid == 0 && st.st_gid == 0, "\(path) is not root's")
        }
        // nsgroupd refuses a configuration that is not root's or that others may write.
        let shipped = FileManager.default.contents(atPath: package.root + "/etc/nsgroup/nsgroupd.conf")
        let source = FileManager.default.contents(atPath: Products.repositoryRoot + "/packaging/config/nsgroupd.conf")
        #expect(shipped != nil && shipped == source, "the configuration is not packaging/config/nsgroupd.conf")
        // The release build, not the debug one: the CLI is fully static.
        let cli = try run("/usr/bin/ldd", [package.root + "/usr/bin/nsgroup"])
        #expect(cli.stdout.contains("not a dynamic executable") || cli.stderr.contains("not a dynamic executable"),
                "usr/bin/nsgroup is not static: \(cli.stdout)")
    }

    @Test func controlFieldsScriptsAndConffiles() throws {
        let package = try PackageUnderTest.built()
        let info = try run("/usr/bin/dpkg-deb", ["-I", package.deb])
        #expect(info.status == 0, "\(info.stderr)")
        let fields = controlFields(info.stdout)
        let arch = try run("/usr/bin/dpkg", ["--print-architecture"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(fields["Package"] == "nsgroup")
        #expect(fields["Version"] == package.version)
        #expect(fields["Architecture"] == arch)
        #expect((fields["Maintainer"] ?? "").contains("@"))
        #expect(!(fields["Description"] ?? "").isEmpty)
        #expect(Int(fields["Installed-Size"] ?? "") ?? 0 > 0)
        // nsgroupd links libsystemd and libstdc++ dynamically; dpkg-shlibdeps must have found them.
        let depends = fields["Depends"] ?? ""
        for library in ["libc6", "libstdc++6", "libsystemd0", "libgcc-s1"] {
            #expect(depends.contains(library), "Depends: \(depends) lacks \(library)")
        }
        #expect((package.deb as NSString).lastPathComponent == "nsgroup_\(package.version)_\(arch).deb")

        let control = package.directory + "/control"
        let extracted = try run("/usr/bin/dpkg-deb", ["-e", package.deb, control])
        #expect(extracted.status == 0, "\(extracted.stderr)")
        let conffiles = try String(contentsOfFile: control + "/conffiles", encoding: .utf8)
        #expect(conffiles == "/etc/nsgroup/nsgroupd.conf\n")
        for script in ["postinst", "prerm", "postrm"] {
            let st = try fileStatus(control + "/" + script)
            #expect(st.st_mode & 0o777 == 0o755, "\(script) is not executable")
            let syntax = try run("/bin/sh", ["-n", control + "/" + script])
            #expect(syntax.status == 0, "\(script): \(syntax.stderr)")
        }
        let postinst = try String(contentsOfFile: control + "/postinst", encoding: .utf8)
        for step in ["systemd-sysusers", "systemd-tmpfiles", "--update-catalog", "deb-systemd-helper", "deb-systemd-invoke", "/run/systemd/system"] {
            #expect(postinst.contains(step), "postinst does not run \(step)")
        }
        // Without systemd it tells the administrator how to start the supervisor.
        #expect(postinst.contains("/usr/sbin/nsgroupd &") && postinst.contains("/run/nsgroup/nsgroupd.sock"))
        // Every shipped file has its checksum.
        let sums = try String(contentsOfFile: control + "/md5sums", encoding: .utf8)
        let listed = Set(sums.split(separator: "\n").map { String($0.dropFirst(34)) })
        #expect(listed == Set(try regularFiles(under: package.root)))
    }

    @Test func lintianReportsNoErrorsOrWarnings() throws {
        let package = try PackageUnderTest.built()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/lintian") else {
            Issue.record("lintian is not installed: run `make check`, which installs it")
            return
        }
        let result = try run("/usr/bin/lintian", ["--tag-display-limit", "0", package.deb])
        let errors = result.stdout.split(separator: "\n").filter { $0.hasPrefix("E: ") || $0.hasPrefix("W: ") }
        #expect(errors.isEmpty, "lintian:\n\(errors.joined(separator: "\n"))")
        // lintian exits 2 when it could not check the package at all.
        #expect(result.status != 2, "lintian failed: \(result.stderr)")

        // The C parts are built with _FORTIFY_SOURCE and every program with
        // -z relro -z now (Package.swift): lintian's hardening tags (info
        // level, shown with --pedantic --display-info) stay away.
        let hardening = ["hardening-no-bindnow", "hardening-no-fortify-functions", "hardening-no-relro"]
        let pedantic = try run("/usr/bin/lintian", ["--pedantic", "--display-info", "--tag-display-limit", "0",
                                                    "--tags", hardening.joined(separator: ","), package.deb])
        #expect(pedantic.status != 2, "lintian failed: \(pedantic.stderr)")
        let tags = pedantic.stdout.split(separator: "\n").filter { line in hardening.contains { line.contains($0) } }
        #expect(tags.isEmpty, "lintian:\n\(tags.joined(separator: "\n"))")
    }

    @Test func packagedProgramsAreStripped() throws {
        let package = try PackageUnderTest.built()
        for path in ["usr/sbin/nsgroupd", "usr/bin/nsgroup", "usr/libexec/nsgroup/nsgroup-holder"] {
            #expect(try hasNoDebugInfo(package.root + "/" + path), "\(path) still has debug info")
        }
    }

    /// The debug info the stripped programs lack is in nsgroup-dbgsym, under
    /// /usr/lib/debug/.build-id/ by each program's build id, as Debian's
    /// automatic -dbgsym packages keep it; lintian finds nothing to warn about.
    @Test func debugInfoIsInTheDbgsymPackage() throws {
        let package = try PackageUnderTest.built()
        let fields = controlFields(try run("/usr/bin/dpkg-deb", ["-I", package.dbgsym]).stdout)
        #expect(fields["Package"] == "nsgroup-dbgsym" && fields["Section"] == "debug")
        #expect(fields["Depends"] == "nsgroup (= \(package.version))")
        let root = package.directory + "/dbgsym-root"
        let unpacked = try run("/usr/bin/dpkg-deb", ["-x", package.dbgsym, root])
        #expect(unpacked.status == 0, "\(unpacked.stderr)")
        var ids: [String] = []
        for path in ["usr/sbin/nsgroupd", "usr/bin/nsgroup", "usr/libexec/nsgroup/nsgroup-holder"] {
            let notes = try run("/usr/bin/readelf", ["-n", package.root + "/" + path]).stdout
            let id = try #require(notes.split(separator: "\n").first(where: { $0.contains("Build ID:") })?
                .split(separator: " ").last.map(String.init), "\(path) has no build id")
            ids.append(id)
            let debug = root + "/usr/lib/debug/.build-id/\(id.prefix(2))/\(id.dropFirst(2)).debug"
            let sections = try run("/usr/bin/readelf", ["-S", "-W", debug])
            #expect(sections.status == 0 && sections.stdout.contains(".debug_info") && sections.stdout.contains(".symtab"),
                    "\(path): no debug info at \(debug): \(sections.stderr)")
        }
        #expect(Set((fields["Build-Ids"] ?? "").split(separator: " ").map(String.init)) == Set(ids))
        let lintian = try run("/usr/bin/lintian", ["--tag-display-limit", "0", package.dbgsym])
        let problems = lintian.stdout.split(separator: "\n").filter { $0.hasPrefix("E: ") || $0.hasPrefix("W: ") }
        #expect(problems.isEmpty && lintian.status != 2, "lintian:\n\(lintian.stdout)\(lintian.stderr)")
    }

    /// The packages install with dpkg as any Debian daemon does (the admin
    /// group, /run/nsgroup, the socket enabled, the administrator told how to
    /// start the supervisor without systemd), the installed supervisor runs,
    /// and a purge leaves no file of nsgroup's behind. Done over overlays of
    /// /usr, /etc and /var in a mount namespace of its own, so the host's
    /// files and dpkg database never change.
    @Test func dpkgInstallsAndPurgeLeavesNothing() throws {
        let package = try PackageUnderTest.built()
        let sandbox = package.directory + "/dpkg-sandbox"
        let script = #"""
            set -e
            sandbox=$0; deb=$1; dbgsym=$2
            for top in usr etc var; do
                mkdir -p "$sandbox/$top.upper" "$sandbox/$top.work"
                mount -t overlay overlay -o "lowerdir=/$top,upperdir=$sandbox/$top.upper,workdir=$sandbox/$top.work" "/$top"
            done
            mount -t tmpfs tmpfs /run
            dpkg -i "$deb" "$dbgsym" >"$sandbox/install.log" 2>&1 || { cat "$sandbox/install.log"; exit 1; }
            grep -q 'Start the supervisor as root with: /usr/sbin/nsgroupd &' "$sandbox/install.log" && echo told
            test -d /run/nsgroup/groups && echo runtime-directory
            test -L /etc/systemd/system/sockets.target.wants/nsgroupd.socket && echo socket-enabled
            getent group nsgroup-admin >/dev/null && echo admin-group
            /usr/sbin/nsgroupd --version | head -n 1
            echo "debug-files $(dpkg -L nsgroup-dbgsym | grep -c '[.]debug$')"
            dpkg --purge nsgroup-dbgsym nsgroup >"$sandbox/purge.log" 2>&1 || { cat "$sandbox/purge.log"; exit 1; }
            echo purged
            # What the install and purge left in the overlays: dpkg's own
            # database and log, nothing named after nsgroup.
            cd "$sandbox" && find usr.upper etc.upper var.upper -path '*nsgroup*' ! -type c
            """#
        let result = try run("/usr/bin/unshare", ["--mount", "--propagation", "private", "--", "/bin/sh", "-c", script,
                                                   sandbox, package.deb, package.dbgsym])
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(lines == ["told", "runtime-directory", "socket-enabled", "admin-group", package.version, "debug-files 3", "purged"],
                "\(result.stdout)\(result.stderr)")
    }

    // MARK: The programs as installed

    @Test func packagedProgramsRunFromTheirInstalledPlaces() throws {
        let package = try PackageUnderTest.built()
        let help = try run(package.root + "/usr/bin/nsgroup", ["--help"])
        #expect(help.status == 0 && help.stdout.contains("USAGE: nsgroup"), "\(help.stderr)")
        // Its version, then what it finds of the cgroup hierarchies (this host: hybrid).
        let version = try run(package.root + "/usr/sbin/nsgroupd", ["--version"])
        let lines = version.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == package.version)
        #expect(lines.dropFirst().first?.hasPrefix("cgroups: cgroup2 at /sys/fs/cgroup/unified") == true, "\(version.stdout)")

        // The packaged supervisor, on a private socket, finds its holder in
        // ../libexec/nsgroup/ and keeps a group with it (stripped programs included).
        let scratch = try makeScratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let socket = scratch + "/nsgroupd.sock"
        _ = FileManager.default.createFile(atPath: scratch + "/nsgroupd.conf", contents: Data())
        let supervisor = Process()
        supervisor.executableURL = URL(fileURLWithPath: package.root + "/usr/sbin/nsgroupd")
        let cgroupName = "nsg-pkg-\(getpid())"
        defer { CgroupCleanup.remove(cgroupName) }
        supervisor.arguments = ["--socket", socket, "--state-dir", scratch + "/state", "--config", scratch + "/nsgroupd.conf",
                                "--cgroup-dir", cgroupName, "--no-units"]
        supervisor.standardOutput = FileHandle.nullDevice
        supervisor.standardError = FileHandle.nullDevice
        try supervisor.run()
        defer {
            kill(supervisor.processIdentifier, SIGTERM)
            supervisor.waitUntilExit()
        }
        let nsgroup = package.root + "/usr/bin/nsgroup"
        #expect(eventually { (try? UnixSocket.connect(path: socket)) != nil }, "the packaged nsgroupd did not start")
        let created = try run(nsgroup, ["--socket", socket, "create", "pkg-smoke"])
        #expect(created.status == 0, "\(created.stderr)")
        defer { _ = try? run(nsgroup, ["--socket", socket, "destroy", "pkg-smoke"]) }
        let inspected = try run(nsgroup, ["--socket", socket, "inspect", "pkg-smoke", "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(inspected.stdout.utf8)) as? [String: Any]
        let holder = object?["holder"] as? Int ?? 0
        #expect(holder > 0, "\(inspected.stdout) \(inspected.stderr)")
        if holder > 0 {
            let exe = (try? String(contentsOfFile: "/proc/\(holder)/cmdline", encoding: .utf8)) ?? ""
            #expect(exe.hasPrefix("nsgroup-holder\0pkg-smoke"))
            let image = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(holder)/exe")
            #expect(image == package.root + "/usr/libexec/nsgroup/nsgroup-holder")
        }
        let entered = try run(nsgroup, ["--socket", socket, "enter", "pkg-smoke", "--", "hostname"])
        #expect(entered.status == 0 && entered.stdout == "pkg-smoke\n", "\(entered.stdout) \(entered.stderr)")
    }

    // MARK: systemd

    @Test func unitsPassSystemdAnalyzeVerify() throws {
        let package = try PackageUnderTest.built()
        let unitDirectory = package.root + "/lib/systemd/system"
        let service = try String(contentsOfFile: unitDirectory + "/nsgroupd.service", encoding: .utf8)
        #expect(service.contains("\nExecStart=/usr/sbin/nsgroupd\n"))

        // As installed: the package's units and programs over the host's, and its man pages for Documentation=.
        let verified = try verifyUnits(units: unitDirectory, programs: package.root + "/usr/sbin", manPath: package.root + "/usr/share/man")
        #expect(verified.status == 0 && verified.stderr.isEmpty, "systemd-analyze verify:\n\(verified.stderr)")

        // The check is real: it catches a bad value (which systemd only warns about), a missing program and a missing man page.
        let broken = package.directory + "/broken-units"
        try FileManager.default.createDirectory(atPath: broken, withIntermediateDirectories: true)
        try service.replacingOccurrences(of: "KillMode=process", with: "KillMode=proces")
            .write(toFile: broken + "/nsgroupd.service", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: unitDirectory + "/nsgroupd.socket", toPath: broken + "/nsgroupd.socket")
        let badValue = try verifyUnits(units: broken, programs: package.root + "/usr/sbin", manPath: package.root + "/usr/share/man")
        #expect(!(badValue.status == 0 && badValue.stderr.isEmpty), "a bad KillMode= went unnoticed")
        let empty = package.directory + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let noProgram = try verifyUnits(units: unitDirectory, programs: empty, manPath: package.root + "/usr/share/man")
        #expect(noProgram.status != 0, "a missing /usr/sbin/nsgroupd went unnoticed")
        let noManual = try verifyUnits(units: unitDirectory, programs: package.root + "/usr/sbin", manPath: empty)
        #expect(noManual.status != 0, "missing man pages went unnoticed")
    }

    @Test func unitsKeepGroupsAliveAndUseTheSocket() throws {
        let package = try PackageUnderTest.built()
        let service = try unitSettings(package.root + "/lib/systemd/system/nsgroupd.service")
        // A stop or restart must not kill holders and sessions.
        #expect(service["KillMode"] == ["process"])
        #expect(service["Type"] == ["notify"])
        #expect(service["NotifyAccess"] == ["main"])
        #expect(service["ExecReload"] == ["/bin/kill -HUP $MAINPID"])
        #expect(service["Restart"] == ["on-failure"])
        #expect(service["WatchdogSec"] == ["30s"])
        #expect(service["OOMPolicy"] == ["continue"])
        // nsgroupd makes the cgroups of groups below the unit's (issue 14).
        #expect(service["Delegate"] == ["yes"])
        #expect(service["Requires"] == ["nsgroupd.socket"] && service["After"] == ["nsgroupd.socket"])
        // Only machine-wide capabilities and system calls are taken (HardeningTests runs a supervisor with them).
        #expect(service["CapabilityBoundingSet"]?.count == 1 && service["CapabilityBoundingSet"]?.first?.hasPrefix("~CAP_SYS_MODULE ") == true)
        #expect(service["SystemCallFilter"] == ["~@module @raw-io @swap @obsolete kexec_load kexec_file_load"])
        #expect(service["SystemCallErrorNumber"] == ["EPERM"])
        // Anything inherited by sessions that would break namespace work is absent (see the unit's comments).
        for setting in ["RestrictNamespaces", "ProtectHostname", "SystemCallArchitectures", "RestrictAddressFamilies",
                        "ProtectKernelTunables", "MemoryDenyWriteExecute", "PrivateDevices", "RuntimeDirectory",
                        "User", "DynamicUser"] {
            #expect(service[setting] == nil, "\(setting)= is set in nsgroupd.service")
        }
        let socket = try unitSettings(package.root + "/lib/systemd/system/nsgroupd.socket")
        #expect(socket["ListenStream"] == ["/run/nsgroup/nsgroupd.sock"])
        #expect(socket["SocketMode"] == ["0666"])
        #expect(socket["DirectoryMode"] == ["0755"])
        #expect(socket["WantedBy"] == ["sockets.target"])
    }

    @Test func tmpfilesSysusersAndCatalogWorkInTheInstalledTree() throws {
        let package = try PackageUnderTest.built()
        // A copy of the unpacked package: the tools write into the root they are given.
        let root = package.directory + "/tree"
        let copied = try run("/bin/cp", ["-a", package.root, root])
        #expect(copied.status == 0, "\(copied.stderr)")

        let tmpfiles = try run("/usr/bin/systemd-tmpfiles", ["--root=" + root, "--create", "nsgroup.conf"])
        #expect(tmpfiles.status == 0 && tmpfiles.stderr.isEmpty, "\(tmpfiles.stderr)")
        for (path, mode) in [("/run/nsgroup", 0o755), ("/run/nsgroup/groups", 0o700)] {
            let st = try fileStatus(root + path)
            #expect(st.st_mode & S_IFMT == S_IFDIR && Int(st.st_mode & 0o7777) == mode && st.st_uid == 0,
                    "\(path): mode \(String(st.st_mode & 0o7777, radix: 8))")
        }

        let sysusers = try run("/usr/bin/systemd-sysusers", ["--root=" + root, "nsgroup.conf"])
        #expect(sysusers.status == 0, "\(sysusers.stderr)")
        let groupFile = (try? String(contentsOfFile: root + "/etc/group", encoding: .utf8)) ?? ""
        let admin = groupFile.split(separator: "\n").first { $0.hasPrefix("nsgroup-admin:") }
        let gid = admin.flatMap { Int($0.split(separator: ":", omittingEmptySubsequences: false)[2]) }
        #expect(gid != nil && gid! < 1000, "no system group nsgroup-admin in \(groupFile)")

        let updated = try run("/usr/bin/journalctl", ["--root=" + root, "--update-catalog"])
        #expect(updated.status == 0, "\(updated.stderr)")
        let listed = try run("/usr/bin/journalctl", ["--root=" + root, "--list-catalog"]).stdout
        let catalog = try String(contentsOfFile: root + "/usr/lib/systemd/catalog/nsgroup.catalog", encoding: .utf8)
        let ids = catalog.split(separator: "\n").filter { $0.hasPrefix("-- ") }.map { String($0.dropFirst(3)) }
        #expect(!ids.isEmpty)
        for id in ids {
            #expect(listed.contains(id), "journalctl does not know MESSAGE_ID \(id) from the catalog")
        }
    }

    // MARK: Man pages and completions

    @Test func manPagesDocumentExactlyTheRealOptions() throws {
        // The debug products are built from the current sources by `swift test` itself.
        for (page, program) in [("nsgroup.1", Products.nsgroup), ("nsgroupd.8", Products.nsgroupd)] {
            let text = try String(contentsOfFile: Products.repositoryRoot + "/packaging/man/" + page, encoding: .utf8)
            let dump = try run(program, ["--experimental-dump-help"])
            let root = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
            let command = try #require(root["command"] as? [String: Any])
            var options: [String: String?] = [:]  // spelling: value name
            var defaults: [String] = []
            var subcommands: [String] = []
            collect(command, options: &options, defaults: &defaults, subcommands: &subcommands)
            // swift-argument-parser's own option, which the dump leaves out: documented if it works.
            if page == "nsgroup.1" {
                let script = try run(program, ["--generate-completion-script", "bash"])
                #expect(script.status == 0 && script.stdout.contains("complete "), "\(script.stderr)")
                options["--generate-completion-script"] = "shell"
            }

            let documented = Set(matches(of: #"Fl (-[A-Za-z0-9][A-Za-z0-9-]*|[A-Za-z0-9])(?![A-Za-z0-9-])"#, in: text))
                .map { "-" + $0 }
            #expect(Set(documented) == Set(options.keys),
                    "\(page): documents \(Set(documented).subtracting(options.keys).sorted()) that \((program as NSString).lastPathComponent) lacks, lacks \(Set(options.keys).subtracting(documented).sorted())")
            for (spelling, valueName) in options {
                guard let valueName else { continue }
                let flag = spelling.hasPrefix("--") ? "-" + spelling.dropFirst(2) : String(spelling.dropFirst())
                let uses = matches(of: "Fl " + NSRegularExpression.escapedPattern(for: flag) + #" Ar ([^\n]*)"#, in: text)
                    .map { $0.replacingOccurrences(of: "Ar ", with: "").replacingOccurrences(of: " ", with: "") }
                #expect(uses.contains { $0.hasPrefix(valueName) }, "\(page): \(spelling) is not shown with its value \(valueName)")
            }
            for value in defaults {
                #expect(text.contains(value), "\(page) does not give the default \(value)")
            }
            for name in subcommands {
                #expect(text.contains(".It Cm \(name)"), "\(page) does not describe the subcommand \(name)")
            }
            if !subcommands.isEmpty {
                let named = Set(matches(of: #"Cm ([a-z]+)"#, in: text))
                #expect(named.isSubset(of: Set(subcommands)), "\(page) names subcommands that do not exist: \(named.subtracting(subcommands).sorted())")
            }
        }

        // The holder has no --help: its page is checked against what holder.c parses.
        let holderSource = try String(contentsOfFile: Products.repositoryRoot + "/Sources/nsgroup-holder/holder.c", encoding: .utf8)
        let parsed = Set(matches(of: #"strcmp\(a, "--([a-z-]+)"\)"#, in: holderSource))
        let holderPage = try String(contentsOfFile: Products.repositoryRoot + "/packaging/man/nsgroup-holder.8", encoding: .utf8)
        let documented = Set(matches(of: #"Fl -([a-z][a-z-]*)"#, in: holderPage))
        #expect(!parsed.isEmpty && parsed == documented,
                "nsgroup-holder.8 documents \(documented.subtracting(parsed).sorted()), lacks \(parsed.subtracting(documented).sorted())")
    }

    @Test func installedManPagesAreCompleteAndClean() throws {
        let package = try PackageUnderTest.built()
        for page in ["man1/nsgroup.1.gz", "man8/nsgroupd.8.gz", "man8/nsgroup-holder.8.gz"] {
            let path = package.root + "/usr/share/man/" + page
            let source = try run("/bin/zcat", [path]).stdout
            let unsubstituted = matches(of: #"(@[A-Z_]+@)"#, in: source)
            #expect(unsubstituted.isEmpty, "\(page) still has \(unsubstituted)")
            #expect(source.contains("nsgroup \(package.version)"), "\(page) does not name the version")
            // What lintian runs: groff warnings are failures.
            let rendered = try run("/usr/bin/man", ["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", path],
                                   environment: ["PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "MANWIDTH": "80"])
            #expect(rendered.status == 0 && rendered.stderr.isEmpty, "\(page): \(rendered.stderr)")
        }
        let nsgroupd = try run("/bin/zcat", [package.root + "/usr/share/man/man8/nsgroupd.8.gz"]).stdout
        #expect(nsgroupd.contains("/usr/libexec/nsgroup/nsgroup-holder"))
    }

    @Test func completionsAreGeneratedForEveryShell() throws {
        let package = try PackageUnderTest.built()
        let completions = [
            "usr/share/bash-completion/completions/nsgroup",
            "usr/share/zsh/vendor-completions/_nsgroup",
            "usr/share/fish/vendor_completions.d/nsgroup.fish",
        ]
        for path in completions {
            let text = (try? String(contentsOfFile: package.root + "/" + path, encoding: .utf8)) ?? ""
            for subcommand in ["create", "list", "inspect", "enter", "share", "unshare", "destroy", "version"] {
                #expect(text.contains(subcommand), "\(path) does not complete \(subcommand)")
            }
        }
        let bash = package.root + "/" + completions[0]
        #expect(try run("/bin/bash", ["-n", bash]).status == 0)
        #expect(try String(contentsOfFile: bash, encoding: .utf8).hasPrefix("#!") == false, "a sourced completion has a #! line")
        #expect(try String(contentsOfFile: package.root + "/" + completions[1], encoding: .utf8).hasPrefix("#compdef nsgroup"))
    }

    // MARK: make install and make uninstall

    @Test func installThenUninstallLeavesOnlyDirectories() throws {
        let destination = try makeScratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: destination) }
        let settings = ["DESTDIR=" + destination, "PREFIX=/usr"]

        let installed = try make(["install"] + settings)
        #expect(installed.status == 0, "\(installed.stdout)\(installed.stderr)")
        for path in ["/usr/sbin/nsgroupd", "/usr/bin/nsgroup", "/usr/libexec/nsgroup/nsgroup-holder",
                     "/lib/systemd/system/nsgroupd.service", "/usr/share/man/man8/nsgroupd.8", "/etc/nsgroup/nsgroupd.conf"] {
            #expect(FileManager.default.fileExists(atPath: destination + path), "make install did not install \(path)")
        }
        for path in ["/usr/sbin/nsgroupd", "/usr/bin/nsgroup", "/usr/libexec/nsgroup/nsgroup-holder"] {
            #expect(try hasNoDebugInfo(destination + path), "make install did not strip \(path)")
        }
        let removed = try make(["uninstall"] + settings)
        #expect(removed.status == 0, "\(removed.stdout)\(removed.stderr)")
        let left = try regularFiles(under: destination, includingLinks: true)
        #expect(left.isEmpty, "make uninstall left \(left)")

        // An administrator's configuration survives both.
        let config = destination + "/etc/nsgroup/nsgroupd.conf"
        try FileManager.default.createDirectory(atPath: destination + "/etc/nsgroup", withIntermediateDirectories: true)
        try "[limits]\ngroups = 1\n".write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try make(["install"] + settings).status == 0)
        #expect(try String(contentsOfFile: config, encoding: .utf8) == "[limits]\ngroups = 1\n", "make install overwrote the configuration")
        #expect(try make(["uninstall"] + settings).status == 0)
        #expect(try regularFiles(under: destination, includingLinks: true) == ["etc/nsgroup/nsgroupd.conf"])
    }

    @Test func installUnderAnotherPrefixPointsEverythingThere() throws {
        let destination = try makeScratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: destination) }
        let installed = try make(["install", "DESTDIR=" + destination, "PREFIX=/opt/nsg"])
        #expect(installed.status == 0, "\(installed.stdout)\(installed.stderr)")
        let service = try String(contentsOfFile: destination + "/opt/nsg/lib/systemd/system/nsgroupd.service", encoding: .utf8)
        #expect(service.contains("\nExecStart=/opt/nsg/sbin/nsgroupd\n"))
        let page = try String(contentsOfFile: destination + "/opt/nsg/share/man/man8/nsgroupd.8", encoding: .utf8)
        #expect(page.contains("/opt/nsg/libexec/nsgroup/nsgroup-holder"))
        #expect(page.contains("/opt/nsg/sbin/nsgroupd"))
        #expect(FileManager.default.isExecutableFile(atPath: destination + "/opt/nsg/sbin/nsgroupd"))
        #expect(FileManager.default.isExecutableFile(atPath: destination + "/opt/nsg/libexec/nsgroup/nsgroup-holder"))
        // nsgroupd reads /etc/nsgroup/nsgroupd.conf whatever the prefix.
        #expect(FileManager.default.fileExists(atPath: destination + "/etc/nsgroup/nsgroupd.conf"))
        #expect(FileManager.default.fileExists(atPath: destination + "/opt/nsg/share/zsh/site-functions/_nsgroup"))
    }
}

// MARK: - Helpers

/// The .deb, built once for the suite by `make deb` into a scratch
/// directory, and unpacked with `dpkg-deb -x`.
struct PackageUnderTest: Sendable {
    /// Scratch directory, removed after the suite.
    let directory: String
    let deb: String
    /// nsgroup-dbgsym's .deb, built beside it.
    let dbgsym: String
    /// The unpacked package.
    let root: String
    /// What the release programs say they are.
    let version: String

    @TaskLocal static var current: Result<PackageUnderTest, HarnessError>?

    static func built() throws -> PackageUnderTest {
        guard let current else { throw HarnessError("the package was not built (the suite's scope did not run)") }
        return try current.get()
    }

    /// Builds the package before the suite's tests and removes it after them.
    struct Scope: SuiteTrait, TestScoping {
        func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
            let outcome = Result { () throws(HarnessError) -> PackageUnderTest in try PackageUnderTest.build() }
            defer { if case .success(let package) = outcome { try? FileManager.default.removeItem(atPath: package.directory) } }
            try await PackageUnderTest.$current.withValue(outcome) { try await function() }
        }
    }

    private static func build() throws(HarnessError) -> PackageUnderTest {
        do {
            let release = try releaseProducts()
            let version = try run(release + "/nsgroup", ["--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let directory = try makeScratchDirectory()
            let made = try make(["deb", "DEB_OUTDIR=" + directory, "DEB_STAGE=" + directory + "/stage"])
            guard made.status == 0 else { throw HarnessError("make deb failed:\n\(made.stdout)\(made.stderr)") }
            let deb = made.stdout.split(separator: "\n").last.map(String.init) ?? ""
            guard deb.hasSuffix(".deb"), FileManager.default.fileExists(atPath: deb) else {
                throw HarnessError("make deb did not say where the package is:\n\(made.stdout)")
            }
            guard let dbgsym = made.stdout.split(separator: "\n").map(String.init).first(where: { $0.hasSuffix(".deb") && $0.contains("/nsgroup-dbgsym_") }),
                  FileManager.default.fileExists(atPath: dbgsym)
            else { throw HarnessError("make deb did not say where nsgroup-dbgsym is:\n\(made.stdout)") }
            let root = directory + "/root"
            let unpacked = try run("/usr/bin/dpkg-deb", ["-x", deb, root])
            guard unpacked.status == 0 else { throw HarnessError("dpkg-deb -x: \(unpacked.stderr)") }
            return PackageUnderTest(directory: directory, deb: deb, dbgsym: dbgsym, root: root, version: version)
        } catch let error as HarnessError {
            throw error
        } catch {
            throw HarnessError("building the package: \(error)")
        }
    }
}

/// SwiftPM's scratch directory these tests were built in (…/.build-x/<triple>/debug/ → …/.build-x).
var scratchPath: String {
    ((Products.directory as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
}

/// The release products beside the debug ones, current with the sources.
func releaseProducts() throws -> String {
    let release = scratchPath + "/release"
    for program in ["nsgroupd", "nsgroup", "nsgroup-holder"] where !FileManager.default.isExecutableFile(atPath: release + "/" + program) {
        throw HarnessError("no release build in \(release): run `make check` (it builds one first), or `make release BUILD_DIR=\(scratchPath)`")
    }
    // A stale release build would package another CLI than the one under test.
    let releaseHelp = try run(release + "/nsgroup", ["--experimental-dump-help"]).stdout
    let debugHelp = try run(Products.nsgroup, ["--experimental-dump-help"]).stdout
    guard releaseHelp == debugHelp else {
        throw HarnessError("the release build in \(release) is older than the sources: run `make release BUILD_DIR=\(scratchPath)`")
    }
    return release
}

/// The project's Makefile, on the release build in this scratch directory,
/// never building (NO_BUILD=1). The outer make's variables are not passed on.
private func make(_ arguments: [String]) throws -> CommandResult {
    var environment = ProcessInfo.processInfo.environment
    for name in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "GNUMAKEFLAGS"] { environment[name] = nil }
    return try run("/usr/bin/make", ["--no-print-directory", "-C", Products.repositoryRoot, "NO_BUILD=1", "BUILD_DIR=" + scratchPath] + arguments,
                   environment: environment)
}

/// `systemd-analyze verify` on nsgroupd.service and nsgroupd.socket as the
/// system would see them installed: `units` over /lib/systemd/system and
/// `programs` over /usr/sbin (overlays in a private mount namespace, so the
/// host sees nothing), `manPath` for the units' Documentation= pages.
private func verifyUnits(units: String, programs: String, manPath: String) throws -> CommandResult {
    var environment = ProcessInfo.processInfo.environment
    environment["MANPATH"] = manPath
    let script = """
        mount -t overlay overlay -o lowerdir="$0":/usr/sbin /usr/sbin &&
        mount -t overlay overlay -o lowerdir="$1":/lib/systemd/system /lib/systemd/system &&
        exec systemd-analyze verify nsgroupd.service nsgroupd.socket nsgroup.slice
        """
    return try run("/usr/bin/unshare", ["--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, programs, units],
                   environment: environment)
}

/// Whether an ELF file has no .debug_* section and no symbol table left (`readelf -S`).
private func hasNoDebugInfo(_ path: String) throws -> Bool {
    let sections = try run("/usr/bin/readelf", ["-S", "-W", path])
    guard sections.status == 0, sections.stdout.contains(".text") else { throw HarnessError("readelf -S \(path): \(sections.stderr)") }
    return !sections.stdout.contains(".debug_") && !sections.stdout.contains(".symtab")
}

/// A unit file's settings: key → values, in order (comments and sections dropped).
private func unitSettings(_ path: String) throws -> [String: [String]] {
    var settings: [String: [String]] = [:]
    for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        guard !trimmed.hasPrefix("#"), !trimmed.hasPrefix("["), let equals = trimmed.firstIndex(of: "=") else { continue }
        settings[String(trimmed[..<equals]), default: []].append(String(trimmed[trimmed.index(after: equals)...]))
    }
    return settings
}

/// `dpkg-deb -I` control fields (continuation lines joined).
private func controlFields(_ info: String) -> [String: String] {
    var fields: [String: String] = [:]
    var last: String?
    for line in info.split(separator: "\n") {
        guard line.hasPrefix(" ") else { continue }
        let content = line.dropFirst()
        if content.hasPrefix(" "), let key = last {
            fields[key, default: ""] += "\n" + content.dropFirst()
        } else if let colon = content.firstIndex(of: ":"), !content[..<colon].contains(" ") {
            let key = String(content[..<colon])
            fields[key] = content[content.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            last = key
        }
    }
    return fields
}

/// Options of a command and its subcommands from `--experimental-dump-help`:
/// every spelling (`--socket`, `-t`) with its value name, default values, subcommand names.
private func collect(_ command: [String: Any], options: inout [String: String?], defaults: inout [String],
                     subcommands: inout [String]) {
    for argument in command["arguments"] as? [[String: Any]] ?? [] where argument["shouldDisplay"] as? Bool ?? true {
        let kind = argument["kind"] as? String
        guard kind == "option" || kind == "flag" else { continue }
        for name in argument["names"] as? [[String: Any]] ?? [] {
            guard let spelling = name["name"] as? String else { continue }
            let dashes = name["kind"] as? String == "long" ? "--" : "-"
            options[dashes + spelling] = kind == "option" ? argument["valueName"] as? String : nil
        }
        if let value = argument["defaultValue"] as? String, !value.isEmpty, kind == "option" { defaults.append(value) }
    }
    for sub in command["subcommands"] as? [[String: Any]] ?? [] {
        guard let name = sub["commandName"] as? String, name != "help" else { continue }
        subcommands.append(name)
        collect(sub, options: &options, defaults: &defaults, subcommands: &subcommands)
    }
}

/// The first capture group of every match.
private func matches(of pattern: String, in text: String) -> [String] {
    guard let regex = try? NSRegularExpression(pattern: pattern) else { return [] }
    let range = NSRange(text.startIndex..., in: text)
    return regex.matches(in: text, range: range).compactMap { match in
        Range(match.range(at: 1), in: text).map { String(text[$0]) }
    }
}

private func fileStatus(_ path: String) throws -> stat {
    var st = stat()
    guard lstat(path, &st) == 0 else { throw HarnessError("\(path): \(String(cString: strerror(errno)))") }
    return st
}

/// Paths (relative to `root`) of everything under it that is not a directory.
private func regularFiles(under root: String, includingLinks: Bool = false) throws -> [String] {
    guard let enumerator = FileManager.default.enumerator(atPath: root) else { throw HarnessError("cannot list \(root)") }
    var files: [String] = []
    while let path = enumerator.nextObject() as? String {
        let st = try fileStatus(root + "/" + path)
        if st.st_mode & S_IFMT == S_IFREG || (includingLinks && st.st_mode & S_IFMT != S_IFDIR) { files.append(path) }
    }
    return files.sorted()
}

private func makeScratchDirectory() throws -> String {
    var template = Array("/tmp/nsg-pkg-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw HarnessError("mkdtemp: \(String(cString: strerror(errno)))") }
    return String(cString: made)
}
