import Namespaces

/// Who may do what. Identity is the caller's SO_PEERCRED, never a request field.
///
/// Any local user may create a group, which then belongs to them. Only its
/// owner and root may inspect, enter or destroy it; `list` shows a caller the
/// groups they may inspect.
struct AccessPolicy {
    func isPrivileged(_ caller: PeerCredentials) -> Bool {
        caller.uid == 0
    }

    func mayManage(_ caller: PeerCredentials, _ group: Group) -> Bool {
        isPrivileged(caller) || caller.uid == group.owner
    }
}
