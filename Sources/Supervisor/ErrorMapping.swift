#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import Namespaces
import POSIX
import RPC

/// How a step the kernel refused becomes a protocol error: `operation_failed`,
/// with the step as written by `SpawnError.Step.description` in `data.step` and
/// the symbolic errno in `data.errno` (PROTOCOL.md §11). The one place that
/// builds those details.
extension RPCError {
    /// `operation_failed` with the message "`what`: step: strerror", e.g.
    /// `cannot create group "web": mount(tmpfs, /srv): No such file or directory`.
    static func operationFailed(_ what: String, _ error: SpawnError) -> RPCError {
        operationFailed("\(what): \(error)", step: error.step, errno: error.errno)
    }

    /// `operation_failed` with a message of the caller's own and the step and errno as data.
    static func operationFailed(_ message: String, step: SpawnError.Step, errno: Errno) -> RPCError {
        RPCError(.operationFailed, message, details: ["step": .string(step.description), "errno": .string(errno.name)])
    }

    /// `operation_failed` for a cgroup that could not be made, written or read: the step is
    /// the operation on its file ("mkdir(/sys/fs/cgroup/…)", "write(…/cgroup.freeze)"), the
    /// errno the kernel's (EINVAL when no system call failed, such as a controller the host lacks).
    /// `operation_failed` for a scope systemd would not start (GroupUnits): no system call of
    /// ours failed, so the step is the D-Bus call and the errno EIO.
    static func unitNotStarted(_ what: String, unit: String, _ error: any Error) -> RPCError {
        RPCError(.operationFailed, "\(what): systemd did not start \(unit): \(error)",
                 details: ["step": .string("StartTransientUnit(\(unit))"), "errno": .string(Errno(rawValue: EIO).name)])
    }

    static func operationFailed(_ what: String, _ error: CgroupError) -> RPCError {
        RPCError(.operationFailed, "\(what): \(error)",
                 details: ["step": .string("\(error.operation.split(separator: " ").first ?? "")(\(error.path))"),
                           "errno": .string((error.errno ?? Errno(rawValue: EINVAL)).name)])
    }
}
