/// What a holder may be asked to set up, checked in one place: the names and
/// paths a `HolderSpec` carries. The supervisor checks a create request with
/// these before it builds the spec, and words the refusal for the protocol;
/// the holder (C) takes its arguments as given.
extension HolderSpec {
    /// The most tmpfs mounts, and the most bind mounts, one group may have.
    public static let maxTmpfsMounts = 32
    public static let maxBindMounts = 32

    /// 1 to 64 bytes (sethostname's limit) of A-Z, a-z, 0-9, '-', '.', '_', not starting with '-'.
    public static func isValidHostname(_ hostname: String) -> Bool {
        let bytes = Array(hostname.utf8)
        let allowed = bytes.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "_")
        }
        return (1...64).contains(bytes.count) && allowed && bytes.first != UInt8(ascii: "-")
    }

    /// A mount source or target: an absolute, normalised path other than / (no
    /// empty, . or .. components, so no //), shorter than PATH_MAX, without NUL
    /// or ':' (which separates the parts of a tmpfs or bind spec).
    public static func isValidMountPath(_ path: String) -> Bool {
        let components = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        return path.hasPrefix("/") && path != "/" && path.utf8.count < 4096 && !path.utf8.contains(0) && !path.contains(":")
            && components.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
    }
}

extension TmpfsMount {
    /// What is wrong with a tmpfs spec: the first problem, reading left to right.
    public enum SpecError: Error, Equatable {
        /// The path is not a valid mount path (HolderSpec.isValidMountPath).
        case path(String)
        /// An option that is not key=value.
        case notKeyValue(String)
        /// A size that is not a number with an optional k, m, g or %.
        case size(String)
        /// A mode that is not 3 or 4 octal digits.
        case mode(String)
        /// An option other than size and mode.
        case unknownOption(String)
    }

    /// Reads "PATH" or "PATH:size=64m,mode=0755" (the form create takes). The
    /// options become "mode=MODE[,size=SIZE]", mode 0700 unless given; nosuid
    /// and nodev always apply.
    public init(spec: String) throws(SpecError) {
        let colon = spec.firstIndex(of: ":")
        let path = String(spec[..<(colon ?? spec.endIndex)])
        guard HolderSpec.isValidMountPath(path) else { throw .path(path) }
        var size: String?
        var mode = "0700"
        if let colon {
            for option in spec[spec.index(after: colon)...].split(separator: ",", omittingEmptySubsequences: false) {
                let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw .notKeyValue(String(option)) }
                switch parts[0] {
                case "size":
                    guard Self.isValidSize(parts[1]) else { throw .size(parts[1]) }
                    size = parts[1]
                case "mode":
                    guard (3...4).contains(parts[1].count), parts[1].allSatisfy({ ("0"..."7").contains($0) }) else {
                        throw .mode(parts[1])
                    }
                    mode = parts[1]
                default:
                    throw .unknownOption(parts[0])
                }
            }
        }
        self.init(path: path, options: "mode=\(mode)" + (size.map { ",size=\($0)" } ?? ""))
    }

    /// A tmpfs size as a request may write it: 1 to 12 digits, not starting
    /// with 0, with an optional k, m, g or % (of physical memory).
    public static func isValidSize(_ text: String) -> Bool {
        var digits = Substring(text)
        if let last = digits.last, "kmg%".contains(last) { digits = digits.dropLast() }
        return (1...12).contains(digits.count) && digits.allSatisfy(\.isASCII) && digits.allSatisfy(\.isNumber) && digits.first != "0"
    }

    /// The size the options name, as written ("64m", "10%"); nil when they name none.
    public var size: Substring? {
        options.split(separator: ",").first { $0.hasPrefix("size=") }?.dropFirst(5)
    }
}

extension BindMount {
    /// What is wrong with a bind spec: the first problem, reading left to right.
    public enum SpecError: Error, Equatable {
        /// Not SOURCE:TARGET, SOURCE:TARGET:ro or SOURCE:TARGET:rw.
        case form
        /// The source, or the target, is not a valid mount path (HolderSpec.isValidMountPath).
        case source(String)
        case target(String)
    }

    /// Reads "SOURCE:TARGET", "SOURCE:TARGET:ro" or "SOURCE:TARGET:rw" (the form create takes).
    public init(spec: String) throws(SpecError) {
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 || (parts.count == 3 && (parts[2] == "ro" || parts[2] == "rw")) else { throw .form }
        guard HolderSpec.isValidMountPath(parts[0]) else { throw .source(parts[0]) }
        guard HolderSpec.isValidMountPath(parts[1]) else { throw .target(parts[1]) }
        self.init(source: parts[0], target: parts[1], readOnly: parts.count == 3 && parts[2] == "ro")
    }
}
