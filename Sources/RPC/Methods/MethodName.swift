/// The methods of protocol version 1.
public enum MethodName: String, CaseIterable, Sendable {
    case version
    case create
    case list
    case inspect
    case destroy
}

/// The protocol version this code speaks.
public let protocolVersion = 1

/// The release of nsgroup these binaries belong to.
public let nsgroupVersion = "0.1.0"
