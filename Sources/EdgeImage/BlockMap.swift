import Foundation
import SystemCrypto

/// A bmap (bmaptool's block map, format 2.0) of a sparse image: the 4 KiB blocks that hold data,
/// each run with its SHA-256, so `bmaptool copy` writes only those and verifies them.
///
/// Written here rather than by `bmaptool create` because a site image is the cached system disk plus
/// one small partition: the runs of the system disk keep the checksums computed once at the system
/// level, and only runs that changed are hashed again.
public struct BlockMap: Sendable, Equatable, Codable {
    public static let blockSize = 4096

    public struct Run: Sendable, Equatable, Codable {
        public var first: Int
        public var last: Int
        public var sha256: String
    }

    public var imageSize: Int
    public var runs: [Run]

    /// The data runs of a sparse file (SEEK_DATA/SEEK_HOLE), in whole blocks.
    public static func dataRanges(of path: String) throws -> [ClosedRange<Int>] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ImageError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        fstat(fd, &info)
        let size = Int(info.st_size)
        var ranges: [ClosedRange<Int>] = []
        var position = 0
        while position < size {
            let data = lseek(fd, off_t(position), SparseCopy.seekData)
            if data < 0 { break }
            let hole = min(Int(lseek(fd, data, SparseCopy.seekHole)), size)
            let first = Int(data) / blockSize
            let last = (hole - 1) / blockSize
            if let previous = ranges.last, previous.upperBound + 1 >= first {
                ranges[ranges.count - 1] = previous.lowerBound...max(previous.upperBound, last)
            } else {
                ranges.append(first...last)
            }
            position = hole
        }
        return ranges
    }

    /// The map of `path`, reusing the checksum of every run that `known` already has.
    public static func make(for path: String, reusing known: BlockMap? = nil) throws -> BlockMap {
        try make(for: path, reusing: known, counted: nil)
    }

    /// The same, telling `counted` how many bytes it hashed (progress).
    static func make(for path: String, reusing known: BlockMap? = nil, counted: ByteCounter?) throws -> BlockMap {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ImageError("cannot read \(path)") }
        let size = Int(info.st_size)
        let cached = Dictionary((known?.runs ?? []).map { ("\($0.first)-\($0.last)", $0.sha256) }, uniquingKeysWith: { a, _ in a })
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ImageError("cannot read \(path)") }
        defer { try? handle.close() }
        var runs: [Run] = []
        for range in try dataRanges(of: path) {
            if let sum = cached["\(range.lowerBound)-\(range.upperBound)"] {
                runs.append(Run(first: range.lowerBound, last: range.upperBound, sha256: sum))
                continue
            }
            var hasher = SHA256()
            try handle.seek(toOffset: UInt64(range.lowerBound * blockSize))
            var remaining = min((range.upperBound + 1) * blockSize, size) - range.lowerBound * blockSize
            while remaining > 0 {
                let chunk = handle.readData(ofLength: min(remaining, 4 << 20))
                if chunk.isEmpty { break }
                hasher.update(data: chunk)
                remaining -= chunk.count
                counted?.add(chunk.count)
            }
            runs.append(Run(first: range.lowerBound, last: range.upperBound,
                            sha256: hasher.finalize().hex))
        }
        return BlockMap(imageSize: size, runs: runs)
    }

    /// The bmap file as bmaptool 3.x writes it; `BmapFileChecksum` is the SHA-256 of the file with
    /// that field set to 64 zeros.
    public var xml: String {
        let blocks = (imageSize + BlockMap.blockSize - 1) / BlockMap.blockSize
        let mapped = runs.reduce(0) { $0 + $1.last - $1.first + 1 }
        func text(checksum: String) -> String {
            var lines = [
                "<?xml version=\"1.0\" ?>",
                "<!-- Block map of an edgekit image: the blocks that hold data, for bmaptool copy. -->",
                "<bmap version=\"2.0\">",
                "    <ImageSize> \(imageSize) </ImageSize>",
                "    <BlockSize> \(BlockMap.blockSize) </BlockSize>",
                "    <BlocksCount> \(blocks) </BlocksCount>",
                "    <MappedBlocksCount> \(mapped) </MappedBlocksCount>",
                "    <ChecksumType> sha256 </ChecksumType>",
                "    <BmapFileChecksum> \(checksum) </BmapFileChecksum>",
                "    <BlockMap>",
            ]
            for run in runs {
                let span = run.first == run.last ? "\(run.first)" : "\(run.first)-\(run.last)"
                lines.append("        <Range chksum=\"\(run.sha256)\"> \(span) </Range>")
            }
            lines += ["    </BlockMap>", "</bmap>"]
            return lines.joined(separator: "\n") + "\n"
        }
        let zeroed = text(checksum: String(repeating: "0", count: 64))
        let sum = SHA256.hash(data: Data(zeroed.utf8)).hex
        return text(checksum: sum)
    }
}
