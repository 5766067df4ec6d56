@testable import EdgeAgent
import Foundation
import Testing

/// The agent's side of `update --from-relay` (docs/updates.md, "From the relay"): the relay's
/// answer is parsed strictly, and a relay that is gone or stops mid-bundle is one line and leaves
/// nothing behind. The lab test with the real relay is RelayUpdateLabTests (EdgeRelayTests).
@Suite struct RelayUpdateTests {
    @Test func answersAreParsedStrictly() {
        #expect(RelayUpdate.Answer(line: "bundle site-a-5.update 3150336 5\n") == .bundle(name: "site-a-5.update", bytes: 3150336, version: 5))
        #expect(RelayUpdate.Answer(line: "wait site site-a router 2 (backup) runs version 3\n") == .wait("site site-a router 2 (backup) runs version 3"))
        #expect(RelayUpdate.Answer(line: "none no bundle newer") == .none("no bundle newer"))
        for bad in ["bundle ../etc/passwd.update 1 5", "bundle /tmp/x.update 1 5", "bundle site-a-5.update 1", "bundle site-a-5.tar 1 5",
                    "bundle site-a-5.update -1 5", "bundle site-a-5.update 1 5 extra", "<html>", ""] {
            #expect(RelayUpdate.Answer(line: bad) == nil, "\(bad)")
        }
    }

    /// The relay's announced length is not trusted with the data partition.
    @Test func aBundleTheDataPartitionCannotHoldIsNotFetched() throws {
        #expect(throws: Never.self) { try RelayUpdate.checkRoom(for: "site-a-5.update", bytes: 125 << 20, free: 1 << 30) }
        #expect(throws: Never.self) { try RelayUpdate.checkRoom(for: "site-a-5.update", bytes: 125 << 20, free: nil) }
        #expect(throws: AgentError.updateFromRelay("site-a-5.update is 125 MiB and the data partition has 180 MiB free, 64 MiB of which stay for the agent's state; not fetched")) {
            try RelayUpdate.checkRoom(for: "site-a-5.update", bytes: 125 << 20, free: 180 << 20)
        }
        #expect(throws: AgentError.updateFromRelay("site-a-5.update is 125 MiB and the data partition has 100 MiB free, 64 MiB of which stay for the agent's state; not fetched")) {
            try RelayUpdate.checkRoom(for: "site-a-5.update", bytes: 125 << 20, free: 100 << 20)
        }
        // The whole fetch: refused before any profile is read or any connection made.
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("relay-room-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(throws: AgentError.updateFromRelay("the relay offers site-a-5.update of 1073741824 MiB, more than any bundle (8 GiB); not fetched")) {
            try RelayUpdate(paths: AgentPaths(root: root)).fetch("site-a-5.update", bytes: 1 << 50)
        }
        #expect((try? FileManager.default.contentsOfDirectory(atPath: root + "/var/lib/edgekit/updates")) == [], "nothing written")
    }

    /// A one-shot server on ::1 that answers every connection with `reply` and closes.
    static func serve(_ reply: [UInt8]) throws -> (port: UInt16, thread: Thread) {
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_addr = in6addr_loopback
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        try #require(bound == 0 && listen(fd, 4) == 0)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let thread = Thread {
            let client = accept(fd, nil, nil)
            var request = [UInt8](repeating: 0, count: 4096)
            _ = recv(client, &request, request.count, 0)
            _ = reply.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(client)
            close(fd)
        }
        thread.start()
        return (UInt16(bigEndian: address.sin6_port), thread)
    }

    @Test func aRelayThatStopsMidBundleOrIsGoneIsOneLine() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("relay-update-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let output = open(folder + "/bundle.part", O_WRONLY | O_CREAT, 0o600)
        defer { close(output) }

        // Announces 1000 bytes, sends 10 and closes.
        let short = try Self.serve(Array("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789".utf8))
        let fetch = HTTPFetch(host: "::1", port: short.port, timeout: 5)
        #expect(throws: AgentError.updateFromRelay("[::1]:\(short.port): the connection closed after 10 of 1000 bytes")) {
            try fetch.download("/bundles/site-a-5.update", expecting: 1000, into: output) { _ in }
        }
        // Announces another length than the relay named.
        let other = try Self.serve(Array("HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n".utf8))
        #expect(throws: AgentError.updateFromRelay("[::1]:\(other.port): GET /bundles/x-5.update announced 999, not the 1000 bytes the relay named")) {
            try HTTPFetch(host: "::1", port: other.port, timeout: 5).download("/bundles/x-5.update", expecting: 1000, into: output) { _ in }
        }
        // Not HTTP at all.
        let junk = try Self.serve(Array("SSH-2.0-OpenSSH\r\n\r\n".utf8))
        #expect(throws: AgentError.updateFromRelay("[::1]:\(junk.port): the answer is not HTTP: SSH-2.0-OpenSSH")) {
            try HTTPFetch(host: "::1", port: junk.port, timeout: 5).get("/update?version=1", limit: 4096)
        }
        // Gone: nothing listens on the port any more.
        #expect(throws: AgentError.updateFromRelay("[::1]:\(short.port): cannot connect: Connection refused")) {
            try HTTPFetch(host: "::1", port: short.port, timeout: 5).get("/update?version=1", limit: 4096)
        }
    }
}
