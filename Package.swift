// swift-tools-version:6.0
import PackageDescription

// Swift 6 language mode (the tools version) gives complete concurrency checking.
let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

// Hardening of the C parts (Debian's defaults, which lintian checks): the C
// targets' release builds (already optimized, which fortify needs) get
// _FORTIFY_SOURCE=2, so glibc's checked variants (__read_chk, __memcpy_chk, ...)
// replace the plain calls where sizes are known ...
let hardenedC: [CSetting] = [.define("_FORTIFY_SOURCE", to: "2", .when(configuration: .release))]
// ... and every program is linked with full RELRO and immediate binding
// (-z relro -z now): the GOT is resolved at start-up and then read-only.
let hardenedLink = ["-Xlinker", "-z", "-Xlinker", "relro", "-Xlinker", "-z", "-Xlinker", "now"]

let package = Package(
    name: "nsgroup",
    products: [
        .executable(name: "nsgroupd", targets: ["nsgroupd"]),
        .executable(name: "nsgroup", targets: ["nsgroup"]),
        .executable(name: "nsgroup-holder", targets: ["nsgroup-holder"]),
        .executable(name: "nsgroup-bench", targets: ["nsgroup-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // libsystemd headers, found through pkg-config (apt: libsystemd-dev).
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        // The C side of the POSIX layer: raw system calls (pidfd, close_range, signalfd, …),
        // SCM_RIGHTS and peer credentials, pty opening.
        .target(name: "CPOSIX", cSettings: hardenedC),
        // Everything between fork and exec (it calls CPOSIX's close_range there).
        .target(name: "CSpawn", dependencies: ["CPOSIX"], cSettings: hardenedC),
        // The holder: a tiny static C program, PID 1 of a group's pid namespace.
        // It is linked statically with no Swift runtime so that it stays well under
        // 1 MiB of RSS (see Sources/nsgroup-holder/runtime_stubs.c).
        .executableTarget(
            name: "nsgroup-holder",
            dependencies: ["CSpawn"],
            cSettings: hardenedC,
            linkerSettings: [.unsafeFlags(["-static-executable", "-Xlinker", "--gc-sections"] + hardenedLink)]
        ),
        .target(name: "RPC", swiftSettings: strict),
        // Descriptors, errno, Unix sockets, directories, /proc, pidfds, ptys, NSS: the POSIX
        // layer every other module of ours stands on. Knows nothing of namespaces or JSON.
        .target(name: "POSIX", dependencies: ["CPOSIX"], swiftSettings: strict),
        .target(name: "Namespaces", dependencies: ["POSIX", "CPOSIX", "CSpawn"], swiftSettings: strict),
        // Each group's cgroup: the layout of this host's hierarchies (cgroup2, and v1 ones in a
        // hybrid), nsgroupd's subtree, limits, usage, kill-all and freeze.
        .target(name: "Cgroups", dependencies: ["POSIX", "CPOSIX"], swiftSettings: strict),
        .target(
            name: "Systemd",
            dependencies: ["CSystemd", "POSIX", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "Supervisor",
            dependencies: ["RPC", "Namespaces", "Cgroups", "POSIX", "CPOSIX", "Systemd", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(name: "Client", dependencies: ["RPC", "POSIX"], swiftSettings: strict),
        .executableTarget(
            name: "nsgroupd",
            dependencies: [
                "Supervisor", "Systemd", "RPC", "Cgroups",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict,
            linkerSettings: [.unsafeFlags(hardenedLink)]
        ),
        // The CLI is a short-lived process on the path of every `enter`: in
        // release builds it is linked fully static, which halves its start-up
        // (no dynamic loading of libstdc++ and friends; see README,
        // Performance). The link then notes that FoundationEssentials, pulled
        // in by swift-argument-parser, refers to getpwnam_r and friends, which
        // need glibc's NSS modules at run time; the CLI never calls them.
        // The static link is decided here alone, so a plain `swift build -c
        // release` gets it too, without the Makefile's --static-swift-stdlib.
        // Without that option the modules are compiled against the shared
        // toolchain's Foundation, whose autolink entries do not name the
        // static archives FoundationEssentials itself needs: the three -l
        // below name them (with --static-swift-stdlib they come twice, which
        // is harmless for archives).
        .executableTarget(
            name: "nsgroup",
            dependencies: ["Client", "RPC", "POSIX", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict,
            linkerSettings: [
                .unsafeFlags(
                    ["-static-executable", "-l_FoundationCollections", "-l_FoundationCShims", "-lswiftSynchronization"],
                    .when(configuration: .release)
                ),
                .unsafeFlags(hardenedLink),
            ]
        ),
        // The benchmark's C side: the line server that `nsgroup-bench throughput`
        // measures nsgroupd against, the client loop that drives both, and the
        // fork-exec-wait runner behind ProgramRunner.
        .target(name: "CBench", dependencies: ["CPOSIX"], cSettings: hardenedC),
        // Benchmarks against anchors (nsenter, unshare, a C echo server), run by `make bench`.
        .executableTarget(
            name: "nsgroup-bench",
            dependencies: ["CBench", "Client", "RPC", "POSIX", "Namespaces", "Cgroups", "Supervisor", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict,
            linkerSettings: [.unsafeFlags(hardenedLink)]
        ),
        // What the tests share, and the protocol fuzz driver (also built into the libFuzzer
        // target by `make fuzz-build`). For test targets and the fuzzer only, never a product.
        .target(name: "TestSupport", dependencies: ["RPC"], swiftSettings: strict),
        .testTarget(name: "RPCTests", dependencies: ["RPC", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "NamespacesTests", dependencies: ["Namespaces", "POSIX", "CPOSIX"], swiftSettings: strict),
        .testTarget(name: "CgroupsTests", dependencies: ["Cgroups", "POSIX", "CPOSIX"], swiftSettings: strict),
        .testTarget(name: "SystemdTests", dependencies: ["Systemd", "POSIX"], swiftSettings: strict),
        .testTarget(name: "SupervisorTests", dependencies: ["Supervisor", "Cgroups", "POSIX"], swiftSettings: strict),
        // The CLI's own logic that needs no supervisor: the limit flags' parsers and how
        // sizes, durations and tables are shown (@testable import of the executable).
        .testTarget(name: "nsgroupTests", dependencies: ["nsgroup", "Client", "RPC", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                    swiftSettings: strict),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["Client", "RPC", "Namespaces", "Cgroups", "POSIX", "Supervisor", "nsgroupd", "nsgroup", "nsgroup-holder", "nsgroup-bench"],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
    ]
)
