import RPC

/// The fields a request's record gets from its parameters: everything the decision was about,
/// each in a field of its own, whether the request was accepted or refused (README, "Audit").
/// Values are the raw values the caller sent (journald keeps any bytes); only MESSAGE is
/// escaped. Environment values are never written, only their names.
///
/// Every field is bounded, whatever the request: these fields are made from the parameters
/// before a handler has checked them, so a refused request may carry a megabyte hostname or
/// thousands of tmpfs specs or members. A value is cut at maxValueBytes, a repeated field
/// keeps at most maxListValues values and maxListBytes in all; what was cut says so
/// (NAME_TRUNCATED=1, and for a list NAME_COUNT, how many values were asked). journald
/// drops a whole entry of more than 1024 fields, so without the bound padding a request
/// would hide its record.
enum RequestFields {
    /// How many bytes of an argv (its arguments joined by spaces), or of any one value, a
    /// record keeps; the rest is cut and NAME_TRUNCATED says so (NSGROUP_ARGV_TRUNCATED). A
    /// request line may be far longer; the journal is not the place for all of it.
    static let maxArgvBytes = 4096
    static let maxValueBytes = maxArgvBytes
    /// How many values of a repeated field a record keeps: as many members as a group may
    /// have (more than its tmpfs or bind mounts), so an accepted request is never cut.
    static let maxListValues = Member.maxPerGroup
    /// How many bytes the values of one repeated field keep in all.
    static let maxListBytes = 16 << 10

    static func describe(_ call: Call, into details: RequestDetails) {
        switch call {
        case .create(let params):
            value(AuditField.namespacesRequested, params.namespaces.map { $0.joined(separator: " ") } ?? "default", into: details)
            if let hostname = params.hostname { value(AuditField.hostname, hostname, into: details) }
            list(AuditField.tmpfs, params.tmpfs, into: details)
            list(AuditField.bind, params.binds, into: details)
            list(AuditField.memberRequested, params.members, into: details)
            if let offset = params.monotonicOffset { details.fields[AuditField.monotonicOffset] = String(offset) }
            if let offset = params.boottimeOffset { details.fields[AuditField.boottimeOffset] = String(offset) }
            if let netns = params.netnsName { value(AuditField.netnsName, netns, into: details) }
            if let network = params.network { details.fields[AuditField.network] = network.rawValue }
            list(AuditField.publish, params.publish.map(\.description), into: details)
            details.fields[AuditField.limitsRequested] = params.limits.auditText
            if let lifetime = params.lifetime { details.fields[AuditField.lifetime] = String(lifetime) }
            if let idle = params.idle { details.fields[AuditField.idle] = String(idle) }
            if params.privateTmp { details.fields[AuditField.privateTmp] = "1" }
            if params.privateHome { details.fields[AuditField.privateHome] = "1" }
            if let home = params.home { value(AuditField.home, home, into: details) }
            if params.root != .host { details.fields[AuditField.root] = params.root.rawValue }
            if let persist = params.persist { value(AuditField.persist, persist, into: details) }
        case .enter(let params):
            if let argv = params.argv { argvFields(argv, into: details) }
            if let cwd = params.cwd { value(AuditField.cwd, cwd, into: details) }
            // EnterParams has checked the count (at most 128) and the size.
            list(AuditField.envNames, params.env.map(\.0), maxValues: EnterParams.maxEnvironment, into: details)
            details.fields[AuditField.tty] = params.tty ? "pty" : "stdio"
            details.fields[AuditField.stdio] = params.stdio.rawValue
            if params.trustOwner { details.fields[AuditField.trustOwner] = "1" }
        case .signal(let params):
            details.fields[AuditField.session] = String(params.session)
            details.fields[AuditField.signal] = String(params.signal)
            details.summary = "signal \(params.signal) to session \(params.session)"
        case .attach(let params):
            details.fields[AuditField.session] = String(params.session)
            details.summary = "session \(params.session)"
        case .share(let params), .unshare(let params):
            list(AuditField.memberRequested, params.members, into: details)
        case .subscribe(let params):
            list(AuditField.eventType, params.types.map { $0.map(\.rawValue).sorted() } ?? [], into: details)
            list(AuditField.eventGroup, params.groups.map { $0.sorted() } ?? [], into: details)
            if let since = params.since { details.fields[AuditField.since] = String(since) }
        case .unsubscribe(let params):
            details.fields[AuditField.subscription] = String(params.subscription)
        case .write(let params):
            details.fields[AuditField.session] = String(params.session)
        case .resize(let params):
            details.fields[AuditField.session] = String(params.session)
        case .version, .describe, .list, .inspect, .destroy, .freeze, .thaw, .processes:
            break
        }
    }

    /// NSGROUP_ARGV (the arguments joined by spaces, cut at maxArgvBytes) and NSGROUP_ARGC;
    /// NSGROUP_ARGV_TRUNCATED=1 when it was cut.
    static func argvFields(_ argv: [String], into details: RequestDetails) {
        details.fields[AuditField.argc] = String(argv.count)
        details.fields.merge(argvFields(argv)) { $1 }
    }

    /// NSGROUP_ARGV, cut at maxArgvBytes, and NSGROUP_ARGV_TRUNCATED=1 when it was cut (or
    /// `truncated`: the argv is already a cut one, as a state file keeps it): what session
    /// records say of a session's argv, as its request record does.
    static func argvFields(_ argv: [String], truncated: Bool = false) -> [String: String] {
        let (kept, cut) = cut(argv.joined(separator: " "), maxBytes: maxArgvBytes)
        var fields = [AuditField.argv: kept]
        if cut || truncated { fields[AuditField.argvTruncated] = "1" }
        return fields
    }

    /// At most `maxBytes` bytes of `text`, cut on a Unicode scalar boundary; whether it was cut.
    static func cut(_ text: String, maxBytes: Int) -> (String, Bool) {
        guard text.utf8.count > maxBytes else { return (text, false) }
        var kept = String.UnicodeScalarView()
        var bytes = 0
        for scalar in text.unicodeScalars {
            bytes += UTF8.width(scalar)
            if bytes > maxBytes { break }
            kept.append(scalar)
        }
        return (String(kept), true)
    }

    /// One field, cut at maxValueBytes; NAME_TRUNCATED=1 when it was cut.
    static func value(_ field: String, _ text: String, into details: RequestDetails) {
        let (kept, cut) = cut(text, maxBytes: maxValueBytes)
        details.fields[field] = kept
        if cut { details.fields[field + "_TRUNCATED"] = "1" }
    }

    /// A repeated field: the first `maxValues` values, each cut at maxValueBytes, while they
    /// fit in maxListBytes; when anything was cut or left out, NAME_TRUNCATED=1 and
    /// NAME_COUNT, the number of values asked.
    static func list(_ field: String, _ values: [String], maxValues: Int = maxListValues, into details: RequestDetails) {
        var kept: [String] = []
        var bytes = 0
        var cutAny = false
        for value in values {
            let (text, cut) = cut(value, maxBytes: maxValueBytes)
            guard kept.count < maxValues, bytes + text.utf8.count <= maxListBytes else {
                cutAny = true
                break
            }
            bytes += text.utf8.count
            cutAny = cutAny || cut
            kept.append(text)
        }
        details.lists[field] = kept
        if cutAny {
            details.fields[field + "_TRUNCATED"] = "1"
            details.fields[field + "_COUNT"] = String(values.count)
        }
    }

    /// NSGROUP_MEMBER_{ADDED,REMOVED}_{UID,USER,GID,GROUP}: one value per member, users and
    /// groups apart, to match on (`journalctl NSGROUP_MEMBER_ADDED_UID=1004`); and
    /// NSGROUP_MEMBER_{ADDED,REMOVED}, one `name:id` value per member (`nsg-dave:1004`,
    /// `@devs:1002`), which pairs each name with its id: journald keeps a repeated field's
    /// values as a set, not in the order sent, so two lists cannot pair them by position.
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
        details.lists["NSGROUP_MEMBER_\(change)"] = members.map { member in
            switch member {
            case .user(let uid, let name): "\(name):\(uid)"
            case .group(let gid, let name): "@\(name):\(gid)"
            }
        }
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
