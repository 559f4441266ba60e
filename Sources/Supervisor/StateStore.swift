#if canImport(Glibc)
import Glibc
#endif
import Namespaces
import RPC

/// The state directory: one file per group, `<dir>/groups/<name>.json`, in a
/// root-owned 0700 directory. Files are written atomically (temporary file,
/// fsync, rename, fsync of the directory) and opened with O_NOFOLLOW, so a
/// reader sees a whole old record or a whole new one, never a mix.
final class StateStore {
    let directory: String
    private let groupsFD: FileDescriptor

    /// Creates (or checks) the directories. The groups directory must be
    /// owned by root, not a symlink, and is forced to mode 0700.
    init(directory: String) throws(StartupError) {
        self.directory = directory
        do {
            try Self.makeDirectory(directory, mode: 0o755)
            let groups = directory + "/groups"
            try Self.makeDirectory(groups, mode: 0o700)
            let fd = try FileDescriptor.open(groups, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
            var st = stat()
            if fstat(fd.rawValue, &st) < 0 { throw Errno.current }
            guard st.st_uid == 0 else {
                throw StartupError("state directory \(groups) is not owned by root")
            }
            if st.st_mode & 0o7777 != 0o700, fchmod(fd.rawValue, 0o700) < 0 { throw Errno.current }
            groupsFD = fd
        } catch let error as StartupError {
            throw error
        } catch let error as Errno {
            throw StartupError("cannot use state directory \(directory): \(error)")
        } catch {
            throw StartupError("cannot use state directory \(directory): \(error)")
        }
    }

    private static func makeDirectory(_ path: String, mode: mode_t) throws(Errno) {
        if mkdir(path, mode) == 0 || errno == EEXIST {
            var st = stat()
            if lstat(path, &st) < 0 { throw Errno.current }
            guard st.st_mode & S_IFMT == S_IFDIR else { throw Errno(rawValue: ENOTDIR) }
            return
        }
        if errno == ENOENT {
            let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
            if !parent.isEmpty, parent != path {
                try makeDirectory(parent, mode: 0o755)
                if mkdir(path, mode) == 0 || errno == EEXIST { return }
            }
        }
        throw Errno.current
    }

    private func fileName(_ name: String) -> String { name + ".json" }

    /// Writes a group's record atomically.
    func save(_ record: GroupRecord) throws(Errno) {
        var bytes: [UInt8] = []
        StateCodec.encode(record).serialize(into: &bytes)
        bytes.append(0x0A)
        let temporary = "." + fileName(record.name) + ".tmp"
        _ = unlinkat(groupsFD.rawValue, temporary, 0)
        let fd = openat(groupsFD.rawValue, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd < 0 { throw Errno.current }
        let file = FileDescriptor(adopting: fd)
        do throws(Errno) {
            try file.writeAll(bytes)
            if fsync(file.rawValue) < 0 { throw Errno.current }
            if renameat(groupsFD.rawValue, temporary, groupsFD.rawValue, fileName(record.name)) < 0 { throw Errno.current }
        } catch {
            _ = unlinkat(groupsFD.rawValue, temporary, 0)
            throw error
        }
        _ = fsync(groupsFD.rawValue)
    }

    /// Removes a group's record; a missing file is not an error.
    func remove(name: String) throws(Errno) {
        if unlinkat(groupsFD.rawValue, fileName(name), 0) < 0, errno != ENOENT { throw Errno.current }
        _ = fsync(groupsFD.rawValue)
    }

    /// Names of the records on disk (file names that are valid group names).
    func storedNames() -> [String] {
        guard let dir = fdopendir(dup(groupsFD.rawValue)) else { return [] }
        defer { closedir(dir) }
        rewinddir(dir)
        var names: [String] = []
        while let entry = readdir(dir) {
            let fileName = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard fileName.hasSuffix(".json") else { continue }
            let name = String(fileName.dropLast(5))
            if GroupName.isValid(name) { names.append(name) }
        }
        return names.sorted()
    }
}

/// The state file's format: one JSON object, version 1.
enum StateCodec {
    static let version = 1

    static func encode(_ r: GroupRecord) -> JSONValue {
        var o: JSONObject = [
            "version": .number(JSONNumber(version)),
            "name": .string(r.name),
            "owner": .number(JSONNumber(r.owner)),
            "ownerName": .string(r.ownerName),
            "namespaces": .array(r.namespaces.map { .string($0.description) }),
            "holderPID": .number(JSONNumber(r.holderPID)),
            "holderStartTime": .number(JSONNumber(r.holderStartTime)),
            "created": .number(JSONNumber(r.created)),
            "tmpfs": .array(r.tmpfs.map { .object(["path": .string($0.path), "options": .string($0.options)]) }),
        ]
        if let hostname = r.hostname { o["hostname"] = .string(hostname) }
        o["members"] = .array(r.members.map { member in
            switch member {
            case .user(let uid, let name): return .object(["user": .number(JSONNumber(uid)), "name": .string(name)])
            case .group(let gid, let name): return .object(["group": .number(JSONNumber(gid)), "name": .string(name)])
            }
        })
        return .object(o)
    }
}
