import EdgeCrypto
import EdgeModel
import EdgeRender
import EdgeSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The VRRP virtual addresses of the applied generation, and taking them off the LAN port when
/// keepalived is gone. keepalived adds them (`nodad`) and removes them itself on every clean stop;
/// a keepalived killed with -9 leaves them to the kernel, so the crashed router would keep answering
/// for the link-local VIP and the site's `::1`, and radvd would keep advertising from the VIP, while
/// the peer takes both over: two next hops for the servers (issue 17.3, docs/agent.md "When
/// keepalived dies"). Without the link-local VIP radvd is silent (`AdvRASrcAddress`), so removing
/// the VIPs also stops the crashed router's RAs.
public enum VirtualAddresses {
    /// The LAN port and the VIPs (`fe80::1/64`, `<site /64>::1/64`) keepalived.conf lists for this
    /// router, from the applied profile; nil when nothing is applied.
    public static func of(paths: AgentPaths) -> (interface: String, addresses: [String])? {
        guard let (_, model) = Agent.appliedModel(paths: paths) else { return nil }
        let site = model.site
        return (InterfaceNames.lan(of: model.router), ["\(site.linkLocalVIP)/64", "\(site.vip)/\(site.prefix.length)"])
    }

    /// Removes every VIP still on the LAN port with `ip` (`ip -6 addr del`); returns those it removed.
    /// An address that is not there is no error: keepalived may have removed it already.
    @discardableResult
    public static func release(paths: AgentPaths, ip: String = "ip") -> [String] {
        guard let (interface, addresses) = of(paths: paths) else { return [] }
        return addresses.filter { address in
            (try? SystemCommand.run(ip, ["-6", "addr", "del", address, "dev", interface]))?.succeeded ?? false
        }
    }

    /// keepalived has ended (killed, crashed, stopped): its VIPs off the LAN port and, when this
    /// router was master, the priority-0 advertisement it could not send, so the backup takes over
    /// after its skew time (`VRRPResignation`). Call before recording `fault`. Returns the VIPs removed.
    @discardableResult
    public static func handOver(paths: AgentPaths, ip: String = "ip") -> [String] {
        let wasMaster = VRRPNotify.current(paths: paths) == .master
        let removed = release(paths: paths, ip: ip)
        if wasMaster { VRRPResignation.send(paths: paths) }
        return removed
    }
}
