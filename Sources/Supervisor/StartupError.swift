/// Why the supervisor could not start: one line for a person.
public struct StartupError: Error, Sendable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
