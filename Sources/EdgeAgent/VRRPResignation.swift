import EdgeCrypto
import EdgeModel
import EdgeRender
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The VRRPv3 advertisement with priority 0 that a master sends when it stops (RFC 5798 sections
/// 5.2.4 and 6.4.3), sent by the agent on behalf of a keepalived that died while master (kill -9, a
/// crash) and so could not send it. A backup that receives it takes over after its Skew_Time (0.6 s
/// for priority 100 at a 1 s interval) instead of three advertisement intervals (3.6 s); the other
/// side of taking the dead master's VIPs off the LAN port (`VirtualAddresses.release`).
///
/// Sent only when this router was master: from a backup it would make the other backups start
/// their skew timers (the master answers a priority-0 advertisement with one of its own at once,
/// so nothing would move, but nothing is gained either).
public enum VRRPResignation {
    /// The instance the applied generation's keepalived.conf describes.
    struct Instance: Equatable {
        var interface: String
        var vrid: Int
        var intervalCentiseconds: Int
        var addresses: [IPv6Address]
    }

    static func instance(paths: AgentPaths) -> Instance? {
        guard let (_, model) = Agent.appliedModel(paths: paths) else { return nil }
        let site = model.site
        return Instance(interface: InterfaceNames.lan(of: model.router), vrid: site.vrrpID,
                        intervalCentiseconds: model.plan.defaults.vrrpAdvertIntervalCentiseconds,
                        addresses: [site.linkLocalVIP, site.vip])
    }

    /// The advertisement (RFC 5798 section 5.1): version 3, type 1, VRID, priority 0, the address
    /// count, 4 reserved bits and the 12-bit interval in centiseconds, the checksum (left zero: the
    /// kernel computes it over the IPv6 pseudo-header, `IPV6_CHECKSUM`), then the addresses.
    static func packet(_ instance: Instance) -> [UInt8] {
        let interval = UInt16(clamping: instance.intervalCentiseconds) & 0x0fff
        var bytes: [UInt8] = [0x31, UInt8(clamping: instance.vrid), 0, UInt8(clamping: instance.addresses.count),
                              UInt8(interval >> 8), UInt8(interval & 0xff), 0, 0]
        for address in instance.addresses { bytes += address.bytes }
        return bytes
    }

    /// Sends one priority-0 advertisement for the applied instance from the LAN port's own
    /// link-local address to ff02::12, hop limit 255 (receivers drop anything else). True when sent.
    @discardableResult
    public static func send(paths: AgentPaths) -> Bool {
        guard let instance = instance(paths: paths) else { return false }
        let index = if_nametoindex(instance.interface)
        guard index != 0 else { return false }
        let fd = socket(AF_INET6, Int32(SOCK_RAW.rawValue), 112)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var hops: Int32 = 255
        var loop: UInt32 = 0
        var checksumOffset: Int32 = 6
        // No IPV6_MULTICAST_IF: the destination's scope id (below) picks the LAN port for ff02::12,
        // and qemu-user, under which the aarch64 agent's tests run, refuses that option (ENOPROTOOPT).
        guard setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_HOPS, &hops, socklen_t(MemoryLayout<Int32>.size)) == 0,
              setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_LOOP, &loop, socklen_t(MemoryLayout<UInt32>.size)) == 0,
              setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_CHECKSUM, &checksumOffset, socklen_t(MemoryLayout<Int32>.size)) == 0
        else { return false }
        // The router's own link-local address, as keepalived sends from: never the link-local VIP.
        if let own = ownLinkLocal(interface: instance.interface, except: instance.addresses) {
            var source = sockaddr_in6()
            source.sin6_family = sa_family_t(AF_INET6)
            source.sin6_addr = own
            source.sin6_scope_id = UInt32(index)
            let bound = withUnsafePointer(to: &source) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
            guard bound == 0 else { return false }
        }
        var destination = sockaddr_in6()
        destination.sin6_family = sa_family_t(AF_INET6)
        guard inet_pton(AF_INET6, "ff02::12", &destination.sin6_addr) == 1 else { return false }
        destination.sin6_scope_id = UInt32(index)
        let bytes = packet(instance)
        let sent = withUnsafePointer(to: &destination) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
            }
        }
        return sent == bytes.count
    }

    /// A link-local address of `interface` that is not one of `except`, from /proc/net/if_inet6
    /// (`address index prefix scope flags name`, the address as 32 hex digits; scope 20 is link).
    static func ownLinkLocal(interface: String, except: [IPv6Address], table: String = "/proc/net/if_inet6") -> in6_addr? {
        guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { return nil }
        let excluded = Set(except.map { $0.bytes })
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count == 6, fields[5] == interface, fields[3] == "20", fields[0].count == 32 else { continue }
            var bytes = [UInt8]()
            var index = fields[0].startIndex
            while index < fields[0].endIndex {
                let next = fields[0].index(index, offsetBy: 2)
                guard let byte = UInt8(fields[0][index..<next], radix: 16) else { break }
                bytes.append(byte)
                index = next
            }
            guard bytes.count == 16, !excluded.contains(bytes) else { continue }
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
            return address
        }
        return nil
    }
}
