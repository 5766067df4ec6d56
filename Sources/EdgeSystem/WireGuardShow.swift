/// What `wg show IF endpoints|latest-handshakes|persistent-keepalive` prints: one `KEY<TAB>VALUE`
/// line per peer (wg(8), "show"). Read by the relay's WireGuard control and the agent's tunnel.
public enum WireGuardShow {
    /// Public key → value, one per line; lines without a tab are skipped.
    public static func pairs(_ text: String) -> [String: String] {
        var pairs: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            if fields.count >= 2 { pairs[String(fields[0])] = String(fields[1]) }
        }
        return pairs
    }
}
