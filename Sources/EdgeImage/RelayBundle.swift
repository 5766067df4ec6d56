import EdgeCrypto
import EdgeErrors
import EdgeModel
import EdgeRender
import Foundation

/// `relay.tar.zst`: what a relay VPS unpacks to become the relay (docs/relay.md):
/// `tar --zstd -xpf relay.tar.zst -C /`. A plan with several relays has one bundle per relay,
/// `relay-NAME.tar.zst`, each with that relay's own files and key.
public enum RelayBundle {
    /// The bundle's file name: `relay.tar.zst` for a plan's one relay, `relay-NAME.tar.zst` when the
    /// plan has several.
    public static func fileName(of relay: Relay, in plan: Plan) -> String {
        plan.relays.count == 1 ? "relay.tar.zst" : "relay-\(relay.name).tar.zst"
    }

    /// Writes `path` (under a temporary name, renamed when complete): the rendered files of `relay`
    /// (the plan's first when not given), its WireGuard key (0600), the operator public key and the
    /// `binary` as /usr/local/bin/edgekit-relay, owned by root, times `BaseRecipe.imageFileTime()`.
    public static func write(plan: Plan, relay: Relay? = nil, keys: PlanKeys, binary: String, to path: String) throws {
        let relay = relay ?? plan.relay
        guard let relayProgram = FileManager.default.contents(atPath: binary) else {
            throw ImageError("image.missing-input", "relay binary \(binary) is missing (build it with ./build.sh, or pass --relay-binary)")
        }
        var entries = RelayFiles.files(plan: plan, relay: relay, clientPublicKeys: keys.clientPublicKeys(of: plan)).map {
            LayerEntry(path: String($0.path.dropFirst()), kind: .file(Data($0.contents.utf8)), mode: $0.mode)
        }
        entries.append(LayerEntry(path: String(ConfigPaths.relayWireGuardKey.dropFirst()),
                                  kind: .file(Data((keys.relayWireGuardKey(name: relay.name).privateKeyBase64 + "\n").utf8)), mode: 0o600))
        entries.append(LayerEntry(path: String(ConfigPaths.operatorPublicKey.dropFirst()),
                                  kind: .file(Data(keys.operatorKey.publicKey.fileText(comment: "edgekit operator key of plan \(plan.name)").utf8)), mode: 0o644))
        entries.append(LayerEntry(path: "usr/local/bin/edgekit-relay", kind: .file(relayProgram), mode: 0o755))
        entries.sort { $0.path < $1.path }
        let temporary = path + ".partial-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: 0o600]),
            let handle = FileHandle(forWritingAtPath: temporary)
        else { throw ImageError("cannot write \(path)") }
        do {
            let writer = try TarZstdLayerWriter(output: handle, isLast: true, mtime: try BaseRecipe.imageFileTime())
            // Parent folders first, so extraction creates them with sane modes.
            var folders = Set<String>()
            for entry in entries {
                var parent = (entry.path as NSString).deletingLastPathComponent
                var chain: [String] = []
                while !parent.isEmpty && !folders.contains(parent) {
                    chain.append(parent)
                    parent = (parent as NSString).deletingLastPathComponent
                }
                for folder in chain.reversed() {
                    folders.insert(folder)
                    try writer.add(LayerEntry(path: folder, kind: .directory, mode: 0o755))
                }
                try writer.add(entry)
            }
            try writer.finish()
            try handle.close()
            guard rename(temporary, path) == 0 else { throw ImageError("cannot write \(path): \(String(cString: strerror(errno)))") }
        } catch {
            try? handle.close()
            unlink(temporary)
            throw error
        }
    }
}
