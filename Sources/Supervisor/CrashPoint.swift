#if canImport(Glibc)
import Glibc
#endif

/// Named moments inside create and destroy where a test may have the
/// supervisor killed (SIGKILL, nothing cleaned up), to prove that the next
/// start leaves either a complete group or nothing. Only debug builds look
/// at NSGROUPD_TEST_CRASH_AT; in release builds `reach` compiles to nothing.
enum CrashPoint: String, CaseIterable {
    /// The holder exists (waiting for its go-ahead); no state file yet.
    case createCloned = "create-cloned"
    /// The state file is written; the holder has not been told to go.
    case createRecorded = "create-recorded"
    /// The holder is set up; the reply has not been sent.
    case createStarted = "create-started"
    /// destroy has sent SIGKILL to the holder; it is not reaped yet.
    case destroyKilled = "destroy-killed"
    /// The holder is reaped; its state file is still there.
    case destroyReaped = "destroy-reaped"

    static let environmentVariable = "NSGROUPD_TEST_CRASH_AT"

    static func reach(_ point: CrashPoint) {
        #if DEBUG
        if let value = getenv(environmentVariable), String(cString: value) == point.rawValue {
            kill(getpid(), SIGKILL)
        }
        #endif
    }
}
