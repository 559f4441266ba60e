import Client
import Foundation
import Glibc
import POSIX
import RPC
import Testing

/// Malformed requests get the protocol's errors; none of them disturbs the
/// connection (unless the protocol says it closes), other clients or groups.
@Suite struct BadInputTests {
    /// Sends raw bytes and returns the next reply line as JSON.
    func exchange(_ client: RPCClient, _ text: String) throws -> JSONValue {
        try client.sendLine(Array(text.utf8))
        let line = try client.readLine()
        return try JSONParser.parse(line.bytes)
    }

    func errorReason(_ reply: JSONValue) -> String? { reply["error"]?["data"]?["reason"]?.stringValue }

    @Test func malformedLinesGetErrorsAndTheConnectionStaysUsable() throws {
        let supervisor = try TestSupervisor()
        #expect(try supervisor.nsgroup(["create", "bystander"]).status == 0)
        let client = try RPCClient(socketPath: supervisor.socketPath)
        let cases: [(String, String, Int)] = [
            ("{not json\n", "parse_error", -32700),
            ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"list\",\"id\":2}\n", "parse_error", -32700),
            (String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000) + "\n", "parse_error", -32700),
            ("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"list\"}]\n", "invalid_request", -32600),
            ("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"list\"}\n", "invalid_request", -32600),
            ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"frobnicate\"}\n", "method_not_found", -32601),
            ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"inspect\",\"params\":{\"name\":7}}\n", "invalid_params", -32602),
            ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"inspect\",\"params\":{\"name\":\"x\",\"extra\":1}}\n", "invalid_params", -32602),
            ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"create\",\"params\":{\"name\":\"../etc\"}}\n", "invalid_name", -32602),
        ]
        for (line, reason, code) in cases {
            let reply = try exchange(client, line)
            #expect(errorReason(reply) == reason, "\(line.prefix(60))")
            #expect(reply["error"]?["code"]?.int64Value == Int64(code), "\(line.prefix(60))")
            #expect((reply["error"]?["message"]?.stringValue ?? "").isEmpty == false)
        }
        // Invalid UTF-8 and a NUL byte.
        var bytes = Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"li".utf8) + [0xFF, 0xFE] + Array("st\"}\n".utf8)
        try client.sendLine(bytes)
        #expect(errorReason(try JSONParser.parse(try client.readLine().bytes)) == "parse_error")
        bytes = Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"list\"}".utf8) + [0] + [0x0A]
        try client.sendLine(bytes)
        #expect(errorReason(try JSONParser.parse(try client.readLine().bytes)) == "parse_error")
        // Still usable, and the group untouched.
        let list = try client.call("list")
        #expect(list.result["groups"]?.arrayValue?.count == 1)
    }

    @Test func requestsSplitIntoBytesAndJoinedInOneWriteAreAnsweredInOrder() throws {
        let supervisor = try TestSupervisor()
        let client = try RPCClient(socketPath: supervisor.socketPath)
        for byte in Array("{\"jsonrpc\":\"2.0\",\"id\":\"split\",\"method\":\"version\"}\n".utf8) {
            try client.sendLine([byte])
        }
        #expect(try JSONParser.parse(try client.readLine().bytes)["id"] == .string("split"))
        var joined = ""
        for i in 1...50 { joined += "{\"jsonrpc\":\"2.0\",\"id\":\(i),\"method\":\"list\"}\n" }
        try client.sendLine(Array(joined.utf8))
        for i in 1...50 {
            let reply = try JSONParser.parse(try client.readLine().bytes)
            #expect(reply["id"]?.int64Value == Int64(i))
        }
    }

    @Test func overlongLineIsRefusedAndClosesOnlyThatConnection() throws {
        let supervisor = try TestSupervisor()
        let other = try RPCClient(socketPath: supervisor.socketPath)
        let client = try RPCClient(socketPath: supervisor.socketPath)
        // 1 MiB of a string with no newline yet, then more: refused before the newline comes.
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 64 * 1024)
        try client.sendLine(Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\",\"params\":{\"x\":\"".utf8))
        var sent = 0
        do {
            while sent < 2 << 20 {
                try client.sendLine(chunk)
                sent += chunk.count
            }
        } catch {
            // The server may close before all of it is written.
        }
        let reply = try JSONParser.parse(try client.readLine().bytes)
        #expect(errorReason(reply) == "line_too_long")
        #expect(reply["error"]?["code"]?.int64Value == -32600)
        #expect(reply["id"] == .null)
        #expect(throws: ClientError.self) { _ = try client.readLine() }
        // The other client is unaffected.
        #expect(try other.call("version").result["protocol"]?.int64Value == 1)
    }

    @Test func descriptorsOnAMethodThatTakesNoneAreClosedAndRefused() throws {
        let supervisor = try TestSupervisor()
        let client = try RPCClient(socketPath: supervisor.socketPath)
        _ = try client.call("version")
        let baseline = try settledDescriptorCount(supervisor.pid)
        var pipeFDs: [Int32] = [0, 0]
        #expect(pipe(&pipeFDs) == 0)
        defer { close(pipeFDs[0]); close(pipeFDs[1]) }
        let two = serverError { () throws(ClientError) in try client.call("list", nil, descriptors: [pipeFDs[0], pipeFDs[1]]) }
        #expect(two?.reason == .invalidParams)
        #expect(two?.message == "list takes no file descriptors")
        #expect(try ProcFS.openDescriptorCount(pid: supervisor.pid) == baseline)
    }

    /// Sends `bytes` in one sendmsg with every one of `descriptors` in a single
    /// SCM_RIGHTS message. Built here rather than with UnixSocket.send, which
    /// (like the CLI) refuses to send more than UnixSocket.maxDescriptors.
    func sendWithDescriptors(_ socket: Int32, _ bytes: [UInt8], _ descriptors: [Int32]) throws {
        let header = MemoryLayout<cmsghdr>.stride
        let payload = descriptors.count * MemoryLayout<Int32>.size
        let space = header + (payload + MemoryLayout<Int>.size - 1) & ~(MemoryLayout<Int>.size - 1)  // CMSG_SPACE
        let control = UnsafeMutableRawBufferPointer.allocate(byteCount: space, alignment: MemoryLayout<cmsghdr>.alignment)
        defer { control.deallocate() }
        control.initializeMemory(as: UInt8.self, repeating: 0)
        let message = control.baseAddress!.bindMemory(to: cmsghdr.self, capacity: 1)
        message.pointee.cmsg_len = header + payload  // CMSG_LEN
        message.pointee.cmsg_level = SOL_SOCKET
        message.pointee.cmsg_type = Int32(SCM_RIGHTS)
        descriptors.withUnsafeBytes { (control.baseAddress! + header).copyMemory(from: $0.baseAddress!, byteCount: payload) }
        var data = bytes
        let sent = data.withUnsafeMutableBytes { raw in
            var vector = iovec(iov_base: raw.baseAddress, iov_len: raw.count)
            return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                var header = msghdr()
                header.msg_iov = vectorPointer
                header.msg_iovlen = 1
                header.msg_control = control.baseAddress
                header.msg_controllen = space
                return sendmsg(socket, &header, Int32(MSG_NOSIGNAL))
            }
        }
        guard sent == bytes.count else { throw HarnessError("sendmsg sent \(sent) of \(bytes.count) bytes: \(Errno.current)") }
    }

    /// More descriptors than the server's control buffer holds: the kernel cuts
    /// the control data short (MSG_CTRUNC) and closes what did not fit; the
    /// server closes the ones that did and refuses the request. Eight, the most
    /// a message may carry, are received whole and refused for another reason.
    @Test func moreDescriptorsThanTheServerReceivesAreRefusedAndClosed() throws {
        let supervisor = try TestSupervisor()
        let client = try RPCClient(socketPath: supervisor.socketPath)
        _ = try client.call("version")
        let baseline = try settledDescriptorCount(supervisor.pid)
        var pipeFDs: [Int32] = [0, 0]
        #expect(pipe(&pipeFDs) == 0)
        defer { close(pipeFDs[0]); close(pipeFDs[1]) }
        func request(_ id: Int) -> [UInt8] { Array("{\"jsonrpc\":\"2.0\",\"id\":\(id),\"method\":\"version\"}\n".utf8) }

        let most = UnixSocket.maxDescriptors
        try sendWithDescriptors(client.descriptor, request(1), [Int32](repeating: pipeFDs[0], count: most))
        let whole = try JSONParser.parse(try client.readLine().bytes)
        #expect(errorReason(whole) == "invalid_params")
        #expect(whole["error"]?["message"]?.stringValue == "version takes no file descriptors")
        #expect(try settledDescriptorCount(supervisor.pid) == baseline)

        for count in [most + 1, 4 * most] {
            try sendWithDescriptors(client.descriptor, request(count), [Int32](repeating: pipeFDs[0], count: count))
            let reply = try JSONParser.parse(try client.readLine().bytes)
            #expect(reply["id"]?.int64Value == Int64(count))
            #expect(errorReason(reply) == "invalid_params", "\(count) descriptors")
            #expect(reply["error"]?["code"]?.int64Value == -32602)
            #expect(reply["error"]?["message"]?.stringValue
                    == "version: too many file descriptors, or truncated control data (at most \(most))", "\(count) descriptors")
            #expect(try settledDescriptorCount(supervisor.pid) == baseline, "\(count) descriptors: some stayed open in the supervisor")
        }
        // The connection is still served.
        #expect(try client.call("version").result["protocol"]?.int64Value == 1)
    }

    /// Descriptors sent ahead of a line that never ends would pin supervisor fds without
    /// bound: past 64 held, the connection gets limit_exceeded and is closed, and every one
    /// of them is closed with it.
    @Test func descriptorsPiledUpAheadOfALineCloseTheConnection() throws {
        let supervisor = try TestSupervisor()
        let other = try RPCClient(socketPath: supervisor.socketPath)
        _ = try other.call("version")
        let client = try RPCClient(socketPath: supervisor.socketPath)
        _ = try client.call("version")
        let baseline = try settledDescriptorCount(supervisor.pid)
        var pipeFDs: [Int32] = [0, 0]
        #expect(pipe(&pipeFDs) == 0)
        defer { close(pipeFDs[0]); close(pipeFDs[1]) }
        let eight = [Int32](repeating: pipeFDs[0], count: 8)
        // Nine messages of eight: 72 descriptors, and still no newline.
        for chunk in #"{"jsonrpc":"2.0","id":1,"method":"version""#.utf8.prefix(9) {
            do {
                _ = try [chunk].withUnsafeBytes { (bytes) throws(Errno) in
                    try UnixSocket.send(client.descriptor, bytes, descriptors: eight)
                }
            } catch {
                break  // the server may close first
            }
        }
        let reply = try JSONParser.parse(try client.readLine().bytes)
        #expect(errorReason(reply) == "limit_exceeded")
        #expect(reply["id"] == .null)
        #expect(throws: ClientError.self) { _ = try client.readLine() }
        #expect(eventually(timeoutSeconds: 10) { (try? ProcFS.openDescriptorCount(pid: supervisor.pid)) == baseline - 1 })
        #expect(try other.call("version").result["protocol"]?.int64Value == 1)
    }

    @Test func deadClientsLeaveNothingBehind() throws {
        let supervisor = try TestSupervisor()
        // One client that stays: once it has an answer, its connection is
        // in the baseline, and no other connection is open.
        let steady = try RPCClient(socketPath: supervisor.socketPath)
        _ = try steady.call("version")
        let baseline = try settledDescriptorCount(supervisor.pid)
        for _ in 0..<20 {
            let client = try RPCClient(socketPath: supervisor.socketPath)
            try client.sendLine(Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"li".utf8))
        }
        #expect(eventually(timeoutSeconds: 30) { (try? ProcFS.openDescriptorCount(pid: supervisor.pid)) == baseline })
        #expect(try steady.call("version").result["protocol"]?.int64Value == 1)
    }
}
