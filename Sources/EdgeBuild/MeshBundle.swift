import EdgeCrypto
import EdgeModel
import EdgeRender
import Foundation

/// `edgekit mesh render` and `edgekit mesh bundle`: the servers' mesh files (docs/mesh.md), keys
/// derived from the master secret, laid out under a folder as installed on each server.
public enum MeshBundle {
    /// Server `name`'s files with its private key and every other server's public key.
    public static func files(plan: Plan, keys: PlanKeys, server: Server, format: MeshFormat) -> [RenderedFile] {
        let publicKeys = Dictionary(uniqueKeysWithValues: plan.servers.map {
            ($0.name, keys.serverWireGuardKey($0).publicKeyBase64)
        })
        return MeshFiles.files(plan: plan, server: server, privateKey: keys.serverWireGuardKey(server).privateKeyBase64,
                               publicKeys: publicKeys, format: format)
    }

    /// The server named on the command line, or a one-line refusal listing the plan's servers.
    public static func server(named name: String, in plan: Plan) throws(BuildError) -> Server {
        try requireServers(plan)
        guard let server = plan.server(named: name) else {
            throw BuildError("--server \(name): no such server in plan \(plan.name) (servers: \(plan.servers.map(\.name).joined(separator: ", ")))",
                             code: "build.no-such-server", input: name)
        }
        return server
    }

    /// A plan with a mesh and at least one server, or a refusal saying what to add.
    public static func requireServers(_ plan: Plan) throws(BuildError) {
        guard plan.mesh != nil, !plan.servers.isEmpty else {
            throw BuildError("plan \(plan.name) has no servers: add \"mesh:\" and \"servers:\" to plan.yaml (docs/plan.md, \"The servers' mesh\")",
                             code: "build.no-servers", input: plan.name)
        }
    }

    /// `mesh render`: one server's files under `folder` (OUT/etc/systemd/network/…); the paths written.
    public static func render(plan: Plan, keys: PlanKeys, server name: String, format: MeshFormat, to folder: String) throws -> [String] {
        let server = try server(named: name, in: plan)
        return try RenderedTree.write(files(plan: plan, keys: keys, server: server, format: format), under: folder)
    }

    /// `mesh bundle`: every server's files, each under `folder/<server>/`; the paths written.
    public static func bundle(plan: Plan, keys: PlanKeys, format: MeshFormat, to folder: String) throws -> [String] {
        try requireServers(plan)
        // Every file is rendered before the first is written: a failure leaves nothing half made.
        let all = plan.servers.map { ($0.name, files(plan: plan, keys: keys, server: $0, format: format)) }
        return try all.flatMap { name, files in
            try RenderedTree.write(files, under: (folder as NSString).appendingPathComponent(name))
        }
    }
}
