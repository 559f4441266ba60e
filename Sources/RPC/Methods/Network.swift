/// How a group with a net namespace reaches the world (`create`'s `network`):
/// `none` is loopback only; `pasta` adds an interface that pasta(1), running
/// as the group's owner, connects to the host's network.
public enum GroupNetwork: String, Sendable, CaseIterable {
    case loopback = "none"
    case pasta
}

/// A port of the host (on 127.0.0.1) forwarded into the group by pasta: `create`'s
/// `publish` entries, `{host, port, protocol}`.
public struct PublishedPort: Sendable, Equatable, Hashable, CustomStringConvertible {
    public enum Proto: String, Sendable, CaseIterable {
        case tcp
        case udp
    }

    public var host: UInt16
    public var port: UInt16
    public var proto: Proto

    public static let range: ClosedRange<Int64> = 1...65535

    public init(host: UInt16, port: UInt16, proto: Proto = .tcp) {
        self.host = host
        self.port = port
        self.proto = proto
    }

    /// Reads one entry of `publish`; `proto` defaults to tcp.
    public init(reader: inout ParamsReader) throws(RPCError) {
        guard let host = try reader.integer("host", in: Self.range) else {
            throw .invalidParams("\(reader.name): \"host\" is required")
        }
        guard let port = try reader.integer("port", in: Self.range) else {
            throw .invalidParams("\(reader.name): \"port\" is required")
        }
        let name = try reader.string("protocol") ?? Proto.tcp.rawValue
        guard let proto = Proto(rawValue: name) else {
            throw .invalidParams("\(reader.name): \"protocol\" must be \"tcp\" or \"udp\", not \"\(name)\"")
        }
        try reader.finish()
        self.init(host: UInt16(host), port: UInt16(port), proto: proto)
    }

    /// "8080:80/tcp", as `--publish` takes it.
    public var description: String { "\(host):\(port)/\(proto.rawValue)" }

    /// Parses `--publish`'s "HOSTPORT:PORT[/tcp|/udp]"; nil when it is not that.
    public init?(parsing text: String) {
        var rest = Substring(text)
        var proto = Proto.tcp
        if let slash = rest.lastIndex(of: "/") {
            guard let given = Proto(rawValue: String(rest[rest.index(after: slash)...])) else { return nil }
            proto = given
            rest = rest[..<slash]
        }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let host = UInt16(parts[0]), let port = UInt16(parts[1]), host > 0, port > 0 else { return nil }
        self.init(host: host, port: port, proto: proto)
    }

    public var json: JSONValue {
        .object(["host": .number(JSONNumber(Int(host))), "port": .number(JSONNumber(Int(port))), "protocol": .string(proto.rawValue)])
    }
}
