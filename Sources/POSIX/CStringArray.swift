#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` with a NULL-terminated C array of copies of `strings`: an argv or envp for
/// execve(2) and the spawn calls.
public func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
