import EdgeImage
import Foundation

extension ImageBuilder {
    /// The builder `edgekit image build` and `edgekit build` run: the cache folder (default
    /// $EDGEKIT_CACHE, else ./cache), the overlay tree, the static agent to install and the
    /// `edgekit` that packs the base inside mmdebstrap's user namespace; relative paths are taken
    /// from the current folder. `agent` is the x86-64 agent, `arm64Agent` the aarch64 one (arm64
    /// boards). The recipe's file times follow $SOURCE_DATE_EPOCH.
    public init(cache: String?, overlays: String, agent: String, arm64Agent: String? = nil, packer: String, progress: BuildProgress) throws {
        let cacheDirectory = cache ?? ProcessInfo.processInfo.environment["EDGEKIT_CACHE"] ?? "cache"
        self.init(cacheDirectory: Self.absolute(cacheDirectory), recipe: BaseRecipe(sourceDateEpoch: try BaseRecipe.imageFileTime()),
                  overlayDirectory: Self.absolute(overlays), agentBinary: Self.absolute(agent),
                  agentBinaries: arm64Agent.map { ["arm64": Self.absolute($0)] } ?? [:],
                  packerExecutable: packer, progress: progress)
    }

    private static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}
