/// Splits a byte stream into newline-terminated lines and keeps each batch of
/// received file descriptors with the line it arrived in.
///
/// On a Unix stream socket one recvmsg may return the bytes of several
/// sendmsg calls, but it stops at the end of the first message that carried
/// descriptors (Linux never merges a later message into a read that already
/// took descriptors). So descriptors always belong to the message that holds
/// the *last* byte of the read that returned them, and the framer gives them
/// to the line containing that byte. A client therefore sends a request that
/// carries descriptors as one sendmsg holding exactly that line.
///
/// The framer only holds descriptor numbers; whoever feeds it owns them and
/// must close what `takeAllDescriptors()` returns when it gives up.
public struct LineFramer {
    /// One complete line (without its "\n") and the descriptors sent with it.
    public struct Line {
        public var bytes: [UInt8]
        public var descriptors: [Int32]
        /// Control data was cut short (MSG_CTRUNC) somewhere in this line.
        public var descriptorsTruncated: Bool
    }

    public enum Frame {
        case line(Line)
        /// The line in progress is longer than the limit: the stream cannot be trusted further.
        case tooLong
    }

    public let maxLineLength: Int
    private var buffer: [UInt8] = []
    private var start = 0          // first unconsumed byte
    private var scanned = 0        // bytes from start already known to hold no newline
    private var attachments: [(offset: Int, descriptors: [Int32], truncated: Bool)] = []  // offsets into buffer
    private var firstAttachment = 0  // attachments before this one are consumed
    private var overflowed = false

    public init(maxLineLength: Int) {
        self.maxLineLength = maxLineLength
    }

    /// Descriptors received and not yet handed out with a line.
    public private(set) var heldDescriptorCount = 0

    /// Bytes waiting for their newline.
    public var pendingByteCount: Int { buffer.count - start }

    /// Whether `next()` would return a frame without more input.
    public var hasCompleteFrame: Bool {
        overflowed || buffer[(start + scanned)...].contains(0x0A) || buffer.count - start > maxLineLength
    }

    /// Adds the bytes of one receive and the descriptors that came with them
    /// (they go with the line that holds the last of these bytes; with no
    /// bytes, with the line that holds the next byte).
    public mutating func append(_ bytes: UnsafeRawBufferPointer, descriptors: [Int32] = [], truncated: Bool = false) {
        if !descriptors.isEmpty || truncated {
            attachments.append((buffer.count + max(bytes.count - 1, 0), descriptors, truncated))
            heldDescriptorCount += descriptors.count
        }
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: [UInt8], descriptors: [Int32] = [], truncated: Bool = false) {
        bytes.withUnsafeBytes { append($0, descriptors: descriptors, truncated: truncated) }
    }

    /// The next complete line, `.tooLong` once the limit is passed, or nil
    /// when more bytes are needed.
    public mutating func next() -> Frame? {
        if overflowed { return .tooLong }
        let searchFrom = start + scanned
        let newline = buffer[searchFrom...].firstIndex(of: 0x0A)
        guard let end = newline else {
            scanned = buffer.count - start
            if scanned > maxLineLength {
                overflowed = true
                return .tooLong
            }
            return nil
        }
        if end - start > maxLineLength {
            overflowed = true
            return .tooLong
        }
        var descriptors: [Int32] = []
        var truncated = false
        // A client may send every byte of a line with its own sendmsg and descriptors, so a
        // line can own hundreds of thousands of attachments: consume them by moving an
        // index, never by removing from the front one at a time (that was quadratic).
        while firstAttachment < attachments.count, attachments[firstAttachment].offset <= end {
            descriptors += attachments[firstAttachment].descriptors
            truncated = truncated || attachments[firstAttachment].truncated
            firstAttachment += 1
        }
        heldDescriptorCount -= descriptors.count
        if firstAttachment == attachments.count {
            attachments.removeAll(keepingCapacity: attachments.count <= 64)
            firstAttachment = 0
        }
        let line = Line(bytes: Array(buffer[start..<end]), descriptors: descriptors, descriptorsTruncated: truncated)
        start = end + 1
        scanned = 0
        compactIfWorthwhile()
        return .line(line)
    }

    private mutating func compactIfWorthwhile() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 16)
        } else if start > 4096, start * 2 > buffer.count {
            buffer.removeFirst(start)
        } else {
            return
        }
        attachments = attachments[firstAttachment...].map { ($0.offset - start, $0.descriptors, $0.truncated) }
        firstAttachment = 0
        start = 0
    }

    /// Every descriptor still held, for the owner to close; the framer forgets them.
    public mutating func takeAllDescriptors() -> [Int32] {
        defer {
            attachments.removeAll()
            firstAttachment = 0
            heldDescriptorCount = 0
        }
        return attachments[firstAttachment...].flatMap(\.descriptors)
    }
}
