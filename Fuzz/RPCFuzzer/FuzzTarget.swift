// libFuzzer entry point for the supervisor's request path.
//
// Built by `make fuzz-build` with swiftc, all with -sanitize=fuzzer,address: Sources/RPC as
// the module RPC, then this file with the driver and its random number generator as one module
// (so the driver is in scope without an import). The work, and the invariants, are in
// Sources/TestSupport/ProtocolFuzzDriver.swift, which Tests/RPCTests/FuzzRegressionTests.swift
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
