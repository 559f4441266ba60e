/// A request the server understood: its method with its params decoded.
/// Handlers receive this, never the raw params.
public enum Call: Sendable {
    case version
    case describe
    case create(CreateParams)
    case list
    case inspect(NameParams)
    case destroy(NameParams)
    case enter(EnterParams)
    case signal(SignalParams)
    case share(ShareParams)
    case unshare(ShareParams)
    case attach(AttachParams)
    case subscribe(SubscribeParams)
    case unsubscribe(UnsubscribeParams)
    case freeze(NameParams)
    case thaw(NameParams)
    case processes(NameParams)
    case write(WriteParams)
    case resize(ResizeParams)

    public var method: MethodName {
        switch self {
        case .version: .version
        case .describe: .describe
        case .create: .create
        case .list: .list
        case .inspect: .inspect
        case .destroy: .destroy
        case .enter: .enter
        case .signal: .signal
        case .share: .share
        case .unshare: .unshare
        case .attach: .attach
        case .subscribe: .subscribe
        case .unsubscribe: .unsubscribe
        case .freeze: .freeze
        case .thaw: .thaw
        case .processes: .processes
        case .write: .write
        case .resize: .resize
        }
    }

    /// Decodes the params of `method` with its strict decoder (unknown keys are errors).
    public init(_ method: MethodName, params: JSONValue?) throws(RPCError) {
        switch method {
        case .version, .describe, .list:
            try ParamsReader(params, method: method.rawValue).finish()
            self = switch method {
            case .version: .version
            case .describe: .describe
            default: .list
            }
        case .subscribe: self = .subscribe(try SubscribeParams(params: params))
        case .unsubscribe: self = .unsubscribe(try UnsubscribeParams(params: params))
        case .create: self = .create(try CreateParams(params: params))
        case .inspect: self = .inspect(try NameParams(params: params, method: method.rawValue))
        case .destroy: self = .destroy(try NameParams(params: params, method: method.rawValue))
        case .enter: self = .enter(try EnterParams(params: params))
        case .signal: self = .signal(try SignalParams(params: params))
        case .share: self = .share(try ShareParams(params: params, method: method.rawValue))
        case .unshare: self = .unshare(try ShareParams(params: params, method: method.rawValue))
        case .attach: self = .attach(try AttachParams(params: params))
        case .freeze: self = .freeze(try NameParams(params: params, method: method.rawValue))
        case .thaw: self = .thaw(try NameParams(params: params, method: method.rawValue))
        case .processes: self = .processes(try NameParams(params: params, method: method.rawValue))
        case .write: self = .write(try WriteParams(params: params))
        case .resize: self = .resize(try ResizeParams(params: params))
        }
    }
}

/// What the server does with one received line. `Routed.route` is the whole
/// path from a line's bytes to a handler that involves no state: the
/// blank-line rule, the envelope, the method, the descriptor rules and the
/// params. nsgroupd's connections call it for every line, and the fuzzer
/// (ProtocolFuzzDriver) drives the same function.
public enum Routed: Sendable {
    /// Only spaces, tabs and carriage returns (a person typing into socat): no reply, no error.
    case blank
    /// Not a request: answer `failure.error` with `failure.id`, unless it is a notification.
    case undecodable(Request.DecodingFailure)
    /// A request refused before any handler: unknown method, descriptors it may not
    /// carry, or params its decoder refuses. The descriptors that came with it are the
    /// receiver's to close.
    case refused(Request, RPCError)
    /// A request for a handler.
    case call(Request, Call)

    /// Routes one line (without its newline) that arrived with `descriptors`
    /// file descriptors; `truncated` if the kernel cut its control data or it
    /// carried more than `maxDescriptors`.
    public static func route(_ line: [UInt8], descriptors: Int, truncated: Bool, maxDescriptors: Int) -> Routed {
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return .blank }
        let request: Request
        do {
            request = try Request.decode(line: line)
        } catch {
            return .undecodable(error)
        }
        do throws(RPCError) {
            return .call(request, try call(request, descriptors: descriptors, truncated: truncated, maxDescriptors: maxDescriptors))
        } catch {
            return .refused(request, error)
        }
    }

    private static func call(_ request: Request, descriptors: Int, truncated: Bool, maxDescriptors: Int) throws(RPCError) -> Call {
        guard let method = MethodName(rawValue: request.method) else {
            throw RPCError(.methodNotFound, "unknown method \(JSONValue.string(request.method).serialized()); methods are \(MethodName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if truncated {
            throw .invalidParams("\(method.rawValue): too many file descriptors, or truncated control data (at most \(maxDescriptors))")
        }
        if descriptors > 0 && !method.acceptsDescriptors {
            throw .invalidParams("\(method.rawValue) takes no file descriptors")
        }
        let call = try Call(method, params: request.params)
        if case .enter(let params) = call {
            if params.stdio == .stream {
                if descriptors > 0 {
                    throw .invalidParams("enter: with \"stdio\": \"stream\" the request carries no file descriptors")
                }
            } else if params.tty, descriptors > 0 {
                throw .invalidParams("enter: with \"tty\": true the request carries no file descriptors")
            }
            if !params.tty, params.stdio == .descriptors, descriptors != 3 {
                throw .invalidParams("enter: with \"tty\": false the request must carry exactly 3 file descriptors (stdin, stdout, stderr), not \(descriptors)")
            }
        }
        return call
    }
}
