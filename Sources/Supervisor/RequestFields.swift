import RPC

/// The fields a request's record gets from its parameters: everything the decision was about,
/// each in a field of its own, whether the request was accepted or refused (README, "Audit").
/// Values are the raw values the caller sent (journald keeps any bytes); only MESSAGE is
/// escaped. Environment values are never written, only their names.
enum RequestFields {
    /// How many bytes of an argv (its arguments joined by spaces) a record keeps; the rest is
    /// cut and NSGROUP_ARGV_TRUNCATED says so. A request line may be far longer; the journal
    /// is not the place for all of it.
    static let maxArgvBytes = 4096

    static func describe(_ call: Call, into details: RequestDetails) {
        switch call {
        case .create(let params):
            details.fields[AuditField.namespacesRequested] = params.namespaces.map { $0.joined(separator: " ") } ?? "default"
            if let hostname = params.hostname { details.fields[AuditField.hostname] = hostname }
            details.lists[AuditField.tmpfs] = params.tmpfs
            details.lists[AuditField.bind] = params.binds
            details.lists[AuditField.memberRequested] = params.members
            if let offset = params.monotonicOffset { details.fields[AuditField.monotonicOffset] = String(offset) }
            if let offset = params.boottimeOffset { details.fields[AuditField.boottimeOffset] = String(offset) }
            if let netns = params.netnsName { details.fields[AuditField.netnsName] = netns }
            details.fields[AuditField.limitsRequested] = params.limits.auditText
            if let lifetime = params.lifetime { details.fields[AuditField.lifetime] = String(lifetime) }
            if let idle = params.idle { details.fields[AuditField.idle] = String(idle) }
        case .enter(let params):
            if let argv = params.argv { argvFields(argv, into: details) }
            if let cwd = params.cwd { details.fields[AuditField.cwd] = cwd }
            details.lists[AuditField.envNames] = params.env.map(\.0)
            details.fields[AuditField.tty] = params.tty ? "pty" : "stdio"
            if params.trustOwner { details.fields[AuditField.trustOwner] = "1" }
        case .signal(let params):
            details.fields[AuditField.session] = String(params.session)
            details.fields[AuditField.signal] = String(params.signal)
            details.summary = "signal \(params.signal) to session \(params.session)"
        case .attach(let params):
            details.fields[AuditField.session] = String(params.session)
            details.summary = "session \(params.session)"
        case .share(let params), .unshare(let params):
            details.lists[AuditField.memberRequested] = params.members
        case .version, .list, .inspect, .destroy, .subscribe, .freeze, .thaw, .processes:
            break
        }
    }

    /// NSGROUP_ARGV (the arguments joined by spaces, cut at maxArgvBytes on a character
    /// boundary) and NSGROUP_ARGC; NSGROUP_ARGV_TRUNCATED=1 when it was cut.
    static func argvFields(_ argv: [String], into details: RequestDetails) {
        let joined = argv.joined(separator: " ")
        details.fields[AuditField.argc] = String(argv.count)
        if joined.utf8.count <= maxArgvBytes {
            details.fields[AuditField.argv] = joined
            return
        }
        var kept = ""
        var bytes = 0
        for character in joined {
            bytes += character.utf8.count
            if bytes > maxArgvBytes { break }
            kept.append(character)
        }
        details.fields[AuditField.argv] = kept
        details.fields[AuditField.argvTruncated] = "1"
    }

    /// NSGROUP_MEMBER_{ADDED,REMOVED}_{UID,USER,GID,GROUP}: one value per member, users and
    /// groups apart, each list in the order of the change, so a uid and its name are at the
    /// same place in their two lists.
    static func memberFields(_ members: [Member], added: Bool, into details: RequestDetails) {
        let change = added ? "ADDED" : "REMOVED"
        var uids: [String] = [], users: [String] = [], gids: [String] = [], groups: [String] = []
        for member in members {
            switch member {
            case .user(let uid, let name): uids.append(String(uid)); users.append(name)
            case .group(let gid, let name): gids.append(String(gid)); groups.append(name)
            }
        }
        details.lists["NSGROUP_MEMBER_\(change)_UID"] = uids
        details.lists["NSGROUP_MEMBER_\(change)_USER"] = users
        details.lists["NSGROUP_MEMBER_\(change)_GID"] = gids
        details.lists["NSGROUP_MEMBER_\(change)_GROUP"] = groups
        let people = members.map { member -> String in
            switch member {
            case .user(let uid, let name): "\(name) (uid \(uid))"
            case .group(let gid, let name): "@\(name) (gid \(gid))"
            }
        }.joined(separator: ", ")
        let said: AuditText = members.isEmpty ? "\(added ? "added" : "removed") nobody" : "\(added ? "added" : "removed") \(people)"
        details.summary = details.summary.map { $0 + "; " + said } ?? said
    }

    /// NSGROUP_MEMBERS: everyone a group is shared with once the request is done ("nsg-bob",
    /// "@devs"), one value each; "none" when nobody.
    static func membersAfter(_ members: [Member], into details: RequestDetails) {
        details.lists[AuditField.members] = members.isEmpty ? ["none"] : members.map(\.description)
    }
}
