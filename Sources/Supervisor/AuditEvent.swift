/// The kinds of journal record the supervisor writes, each with a fixed
/// MESSAGE_ID (see packaging/catalog/nsgroup.catalog, which explains each one
/// to `journalctl -x`). These ids never change once released.
public enum AuditEvent: String, CaseIterable, Sendable {
    case requestAccepted = "request-accepted"
    case requestRefused = "request-refused"
    case groupCreated = "group-created"
    case groupDestroyed = "group-destroyed"
    case sessionStarted = "session-started"
    case sessionEnded = "session-ended"
    case holderDied = "holder-died"
    case policyReloaded = "policy-reloaded"
    case supervisorStarted = "supervisor-started"
    case supervisorStopped = "supervisor-stopped"
    case groupAdopted = "group-adopted"
    case groupDropped = "group-dropped"
    case readsSummarized = "reads-summarized"
    case groupOOM = "group-oom"
    case refusalsSummarized = "refusals-summarized"

    public var messageID: String {
        switch self {
        case .requestAccepted: return "a05e7f4b55ff4979887635c6c6d00a9a"
        case .requestRefused: return "fb4a6796baef4e3dbb39c97742b74373"
        case .groupCreated: return "320406c0c5ad4902bf362306b65d7428"
        case .groupDestroyed: return "46c3c3f82d874233ba02f5bce1bc6a7b"
        case .sessionStarted: return "99bbb50474e94151aff70fba484cb4e5"
        case .sessionEnded: return "cf17cd2593d142d69b083099670d24f9"
        case .holderDied: return "ef504bc1ff4a43cda8e0a6a2b5f0434d"
        case .policyReloaded: return "95efadaa300e43cea4299e0cb7d96396"
        case .supervisorStarted: return "3096b031050d47769ccaae0896b855c5"
        case .supervisorStopped: return "c96c7b056b8c4d3da88ec4ad30d73aa4"
        case .groupAdopted: return "180c0f5ec88b439ba5420351cd175657"
        case .groupDropped: return "fcadf41a4afb448882bebd0d4cd2399d"
        case .readsSummarized: return "12bd6b7dcf834517bfc4e7f3e5cd090b"
        case .groupOOM: return "08ae6054fb0248c2b04e6c78c26e0cb4"
        case .refusalsSummarized: return "85644b5a9a0d46749b6c88b3747e5af7"
        }
    }
}
