import Glibc
import Namespaces
import POSIX
import RPC
@testable import Supervisor
import Testing

/// A refused step becomes `operation_failed` with `data.step` and `data.errno`
/// exactly as PROTOCOL.md §11 shows them.
@Suite("Errors on the wire")
struct ErrorMappingTests {
    @Test func aSpawnErrorBecomesOperationFailed() {
        let error = RPCError.operationFailed("cannot create group \"scratch\"",
                                             SpawnError(step: .mountTmpfs(path: "/nonexistent"), errno: .noSuchFileOrDirectory))
        #expect(Response.error(id: .number(JSONNumber(3)), error).serialized()
            == #"{"jsonrpc":"2.0","id":3,"error":{"code":-32005,"message":"cannot create group \"scratch\": mount(tmpfs, /nonexistent): No such file or directory","data":{"reason":"operation_failed","step":"mount(tmpfs, /nonexistent)","errno":"ENOENT"}}}"#)
    }

    @Test func aMessageOfItsOwnKeepsStepAndErrnoAsData() {
        let error = RPCError.operationFailed("cannot signal session 2: Operation not permitted", step: .signal, errno: Errno(rawValue: EPERM))
        #expect(error.reason == .operationFailed)
        #expect(error.message == "cannot signal session 2: Operation not permitted")
        #expect(error.details == ["step": "pidfd_send_signal", "errno": "EPERM"])
    }
}
