// libFuzzer entry point for the supervisor's request path.
//
// Built by `make fuzz-build` with swiftc from Sources/RPC plus this file, all with
// -sanitize=fuzzer,address (one module, so no `import RPC`). The work, and the invariants,
// are in Sources/RPC/ProtocolFuzzDriver.swift, which Tests/RPCTests/FuzzRegressionTests.swift
// also runs on every input kept in Fuzz/RPCFuzzer/regressions/.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let summary = ProtocolFuzzDriver.run(UnsafeRawBufferPointer(start: data, count: size))
    if !summary.violations.isEmpty {
        // A trap, so that libFuzzer saves the input as a crash artifact.
        fatalError("ProtocolFuzzDriver: invariant violated:\n  " + summary.violations.joined(separator: "\n  "))
    }
    return 0
}
