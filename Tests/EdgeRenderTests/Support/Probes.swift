import EdgeModel
import Foundation
import Testing

/// One flow the firewall tests send with real packets: ICMPv6 echo, or a UDP datagram to a port.
struct Flow: CustomStringConvertible {
    enum Kind { case ping, udp(UInt16) }

    var name: String
    var from: String
    var source: IPv6Address
    /// For UDP: the namespace that owns `destination` and listens.
    var to: String
    var destination: IPv6Address
    var kind: Kind
    var allowed: Bool

    var description: String {
        let what = switch kind {
        case .ping: "ping"
        case .udp(let port): "udp/\(port)"
        }
        return "\(name) (\(what) \(source) → \(destination))"
    }
}

extension Lab {
    /// Whether `flow` gets through: an echo reply comes back, or the listener receives the datagram.
    /// A flow that should pass gets a few tries (the first packet may wait for neighbor discovery).
    func passes(_ flow: Flow, tries: Int) throws -> Bool {
        for _ in 0..<tries {
            if try passesOnce(flow) { return true }
        }
        return false
    }

    private func passesOnce(_ flow: Flow) throws -> Bool {
        switch flow.kind {
        case .ping:
            let result = try exec(flow.from, ["ping", "-6", "-n", "-c", "1", "-W", "1",
                                              "-I", flow.source.description, flow.destination.description])
            return result.status == 0
        case .udp(let port):
            let python = try Lab.tool("python3")
            let log = "udp-\(Lab.nextNumber()).log"
            let receiver = try start(["ip", "netns", "exec", flow.to, python, "-c", Self.receiver,
                                      flow.destination.description, "\(port)", "1.5"], log: log)
            guard waitFor(.seconds(5), { self.log(log).contains("ready") }) != nil else {
                throw LabError("UDP listener did not start: \(self.log(log))")
            }
            let sent = try exec(flow.from, [python, "-c", Self.sender, flow.source.description,
                                            flow.destination.description, "\(port)"])
            guard sent.status == 0 else { throw LabError("UDP sender failed: \(sent)") }
            receiver.waitUntilExit()
            return self.log(log).contains("got probe")
        }
    }

    /// Binds, says "ready", waits for one datagram.
    static let receiver = """
        import socket, sys
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind((sys.argv[1], int(sys.argv[2])))
        print("ready", flush=True)
        s.settimeout(float(sys.argv[3]))
        try:
            data, peer = s.recvfrom(100)
            print("got", data.decode(), peer[0], flush=True)
        except socket.timeout:
            print("timeout", flush=True)
            sys.exit(1)
        """

    /// Sends "probe" a few times from a given source address.
    static let sender = """
        import socket, sys, time
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind((sys.argv[1], 0))
        for _ in range(4):
            try:
                s.sendto(b"probe", (sys.argv[2], int(sys.argv[3])))
            except OSError:
                pass
            time.sleep(0.1)
        """

    /// Checks every flow: first without any ruleset, where all must pass (the topology really routes
    /// them, so a drop later is the firewall's doing), then with `ruleset` loaded into `router`.
    func checkFirewall(router: String, ruleset: String, flows: [Flow]) throws {
        for flow in flows {
            #expect(try passes(flow, tries: 3), "without the firewall, \(flow) should pass: the lab is broken")
        }
        let path = try write("ruleset-\(Lab.nextNumber()).nft", ruleset)
        let load = try exec(router, ["nft", "-f", path])
        #expect(load.status == 0, "\(load)")
        let listing = try exec(router, ["nft", "list", "ruleset"])
        #expect(listing.stdout.contains("table inet edgekit"), "\(listing)")
        for flow in flows {
            let passed = try passes(flow, tries: flow.allowed ? 3 : 1)
            #expect(passed == flow.allowed, "\(flow) should be \(flow.allowed ? "allowed" : "dropped")")
        }
    }
}

extension IPv6Prefix {
    /// `host(n)` for tests, failing instead of returning nil.
    func at(_ number: UInt64) throws -> IPv6Address {
        try #require(host(number))
    }
}
