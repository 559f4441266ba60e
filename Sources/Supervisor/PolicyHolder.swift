/// The policy in force. Supervisor.reloadPolicy replaces it as a whole (SIGHUP);
/// everyone who decides by it holds this and reads `current` at each decision,
/// never a copy taken earlier.
final class PolicyHolder {
    private(set) var current: Policy

    init(_ policy: Policy) {
        current = policy
    }

    func replace(with policy: Policy) {
        current = policy
    }
}
