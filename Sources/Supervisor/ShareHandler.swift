import RPC

/// `share` and `unshare`: who besides the owner may see and enter a group.
final class ShareHandler {
    private let registry: GroupRegistry
    private let containment: Containment
    private let bus: EventBus

    init(registry: GroupRegistry, containment: Containment, bus: EventBus) {
        self.registry = registry
        self.containment = containment
        self.bus = bus
    }

    /// `share` / `unshare {name, members}`: the owner and admins change who
    /// else may enter. The record is saved before the answer; a member
    /// removed while in a session keeps that session (it already entered).
    func share(_ params: ShareParams, _ context: RequestContext, adding: Bool) throws(RPCError) -> Reply {
        let method = adding ? "share" : "unshare"
        let group = try registry.group(params.name, caller: context.caller, action: "change the sharing of", manage: true)
        let changes = try Member.resolve(params.members, method: method, names: context.names)
        if adding, group.record.root == .overlay { throw OverlayRootRules.noMembers(method) }
        if adding {
            let added = changes.filter { new in !group.record.members.contains { $0.sameAs(new) } }
            if group.record.members.count + added.count > Member.maxPerGroup {
                throw .invalidParams("\(method): a group is shared with at most \(Member.maxPerGroup) users and groups")
            }
        }
        var updated = group.record
        // What really changed, for the record: a member shared twice is added once.
        var changed: [Member] = []
        if adding {
            for member in changes where !updated.members.contains(where: { $0.sameAs(member) }) {
                updated.members.append(member)
                changed.append(member)
            }
        } else {
            changed = updated.members.filter { existing in changes.contains { $0.sameAs(existing) } }
            updated.members.removeAll { existing in changes.contains { $0.sameAs(existing) } }
        }
        if updated != group.record {
            do {
                try registry.save(updated)
            } catch {
                throw RPCError(.internalError, "cannot \(method) group \"\(params.name)\": writing its state file failed: \(error)")
            }
            let viewersBefore = bus.viewers(of: group)
            group.record = updated
            bus.membersEvent(group, added: adding ? changed : [], removed: adding ? [] : changed, viewersBefore: viewersBefore)
        }
        context.details.changedNothing = changed.isEmpty
        RequestFields.memberFields(changed, added: adding, into: context.details)
        RequestFields.membersAfter(group.record.members, into: context.details)
        return .result(containment.describe(group, detailed: true))
    }
}
