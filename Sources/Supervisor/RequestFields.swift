import RPC

/// The fields a request's record gets from its parameters: everything the decision was about,
/// each in a field of its own (README, "Audit").
enum RequestFields {
    static func describe(_ call: Call, into details: RequestDetails) {
    }
}
