#if canImport(Glibc)
import Glibc
#endif

/// Listing and removing directories without Foundation.
public enum Directory {
    /// The names in a directory, without `.` and `..`, in the order readdir gives them.
    public static func entries(_ path: String) throws(Errno) -> [String] {
        guard let dir = opendir(path) else { throw Errno.current }
        defer { closedir(dir) }
        return names(in: dir)
    }

    /// The same for a directory already open as `descriptor`, read from its start; the
    /// descriptor stays open and is the caller's.
    public static func entries(descriptor: Int32) throws(Errno) -> [String] {
        let copy = dup(descriptor)
        if copy < 0 { throw Errno.current }
        guard let dir = fdopendir(copy) else {
            let error = Errno.current
            close(copy)
            throw error
        }
        defer { closedir(dir) }
        rewinddir(dir)
        return names(in: dir)
    }

    private static func names(in dir: OpaquePointer) -> [String] {
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// `rm -r`, never following a symlink; what cannot be removed is left.
    public static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            for name in (try? entries(path)) ?? [] { removeTree(path + "/" + name) }
            _ = rmdir(path)
        } else {
            _ = unlink(path)
        }
    }
}
