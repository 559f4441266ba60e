import Logging

/// A swift-log handler that writes each record to journald with `sd_journal_sendv`, as structured fields.
///
/// Fields: `MESSAGE`, `PRIORITY` (trace/debug 7, info 6, notice 5, warning 4, error 3, critical 2),
/// `SYSLOG_IDENTIFIER`, `CODE_FILE`, `CODE_LINE`, `CODE_FUNC`, `SWIFT_LOG_LABEL` (the logger's label),
/// `ERROR` when the call passed an error, and every metadata entry: the handler's metadata, then the
/// metadata provider's, then the call's, later ones winning. Metadata keys should be journal field
/// names already (`NSGROUP_NAME`, `MESSAGE_ID`); others are converted (uppercased, other characters to
/// `_`, `X_` in front if not starting with a letter, cut to 64 bytes), and a key that would clash with
/// one of the fields above gets `X_` in front. Values: strings as they are, string-convertibles by
/// their description; an array repeats its field once per element, a dictionary makes one field
/// `NAME_KEY` per key (see `JournalField.fields`). Values may contain newlines.
///
/// Where the record goes when journald is unreachable is the `JournalSink`'s business.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    /// The logger's label, written as `SWIFT_LOG_LABEL`.
    public let label: String
    /// `SYSLOG_IDENTIFIER` of every record.
    public let identifier: String
    public let sink: JournalSink

    /// The fields this handler writes itself; metadata with these keys is renamed `X_<key>`.
    static let ownFields: Set<String> = [
        "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
        "SWIFT_LOG_LABEL", "ERROR",
    ]

    public init(
        label: String,
        identifier: String = "nsgroupd",
        sink: JournalSink,
        metadataProvider: Logger.MetadataProvider? = nil
    ) {
        self.label = label
        self.identifier = identifier
        self.sink = sink
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        sink.send(fields(for: event))
    }

    /// The journal fields of one event, in the order they are sent.
    func fields(for event: LogEvent) -> [(name: String, value: String)] {
        var merged = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty {
            merged.merge(provided) { _, new in new }
        }
        if let perCall = event.metadata, !perCall.isEmpty {
            merged.merge(perCall) { _, new in new }
        }

        var fields: [(name: String, value: String)] = [
            ("MESSAGE", event.message.description),
            ("PRIORITY", String(JournalField.priority(of: event.level))),
            ("SYSLOG_IDENTIFIER", identifier),
            ("CODE_FILE", event.file),
            ("CODE_LINE", String(event.line)),
            ("CODE_FUNC", event.function),
            ("SWIFT_LOG_LABEL", label),
        ]
        if let error = event.error {
            fields.append(("ERROR", String(describing: error)))
        }
        fields.reserveCapacity(fields.count + merged.count)
        // Sorted so that records are reproducible and two keys converting to the same name keep an order.
        for key in merged.keys.sorted() {
            var name = JournalField.sanitizedName(key)
            if Self.ownFields.contains(name) {
                name = JournalField.sanitizedName("X_" + name)
            }
            fields += JournalField.fields(name, merged[key]!)
        }
        return fields
    }
}
