import CEdgeSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// A zstd stream decoder from the system's libzstd.so.1 (loaded on first use: the agent links no
/// zstd). Feed it compressed chunks in order; it hands out what they decode to.
public final class ZstdDecoder {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    private let stream: UnsafeMutableRawPointer
    private var output = [UInt8](repeating: 0, count: 1 << 20)
    /// Whether the input so far ends at a frame's end (a cut stream does not).
    public private(set) var atFrameEnd = true

    public init() throws(Failure) {
        var error: UnsafePointer<CChar>?
        guard let stream = edgekit_zstd_open(&error) else {
            throw Failure(description: error.map { String(cString: $0) } ?? "no zstd decoder")
        }
        self.stream = stream
    }

    deinit { edgekit_zstd_close(stream) }

    /// Decodes `chunk`, handing each run of decoded bytes to `body`.
    public func decode(_ chunk: Data, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try chunk.withUnsafeBytes { (input: UnsafeRawBufferPointer) in
            var used = 0
            // Until the chunk is consumed and the decoder has nothing more to flush (a full output
            // buffer may hold back bytes that need no further input).
            while true {
                var made = 0
                var error: UnsafePointer<CChar>?
                let result = output.withUnsafeMutableBytes {
                    edgekit_zstd_decode(stream, input.baseAddress, input.count, &used, $0.baseAddress, $0.count, &made, &error)
                }
                guard result >= 0 else { throw Failure(description: "corrupt zstd data: " + (error.map { String(cString: $0) } ?? "unknown")) }
                atFrameEnd = result == 0
                if made > 0 { try output.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<made])) } }
                // A frame's end is flushed completely; calling again would start the next frame.
                if used == input.count && (atFrameEnd || made < output.count) { return }
            }
        }
    }
}
