#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import SystemCrypto

/// The age payload: ChaCha20-Poly1305 STREAM over 64 KiB chunks.
///
/// Each chunk's nonce is an 11-byte big-endian counter followed by a flag byte that is 1 only
/// on the last chunk, so truncation at a chunk boundary and reordering are both detected.
enum AgeStream {
    static let chunkSize = 64 * 1024
    static let tagSize = 16

    static func nonce(counter: UInt64, last: Bool) -> ChaChaPoly.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { bytes[10 - i] = UInt8(truncatingIfNeeded: counter >> (8 * UInt64(i))) }
        bytes[11] = last ? 1 : 0
        // 12 bytes is always a valid ChaChaPoly nonce; this does not depend on input.
        return try! ChaChaPoly.Nonce(data: bytes)
    }

    /// Encrypts `plaintext`; an empty plaintext is a single empty final chunk, and a plaintext
    /// that is a multiple of the chunk size ends with a full final chunk (never an empty one).
    static func seal(_ plaintext: Data, key: SymmetricKey) throws -> Data {
        let bytes = [UInt8](plaintext)
        var out = Data()
        out.reserveCapacity(bytes.count + (bytes.count / chunkSize + 1) * tagSize)
        var offset = 0
        var counter: UInt64 = 0
        repeat {
            let end = min(offset + chunkSize, bytes.count)
            let last = end == bytes.count
            let box = try ChaChaPoly.seal(bytes[offset..<end], using: key, nonce: nonce(counter: counter, last: last))
            out.append(box.ciphertext)
            out.append(box.tag)
            offset = end
            counter += 1
        } while offset < bytes.count
        return out
    }

    /// Decrypts and authenticates chunk by chunk, handing each verified chunk to `released`.
    ///
    /// Mirrors the reference reader: a full-size chunk is first tried as a middle chunk and
    /// then as a final one; a short chunk must be final; an empty final chunk is only allowed
    /// as the first chunk; nothing may follow the final chunk.
    static func open(_ payload: ArraySlice<UInt8>, key: SymmetricKey, released: (Data) -> Void) throws(AgeError) {
        let sealedChunkSize = chunkSize + tagSize
        var offset = payload.startIndex
        var counter: UInt64 = 0
        while true {
            let remaining = payload.endIndex - offset
            guard remaining > 0 else {
                throw AgeError(.payloadFailure, counter == 0
                    ? "payload has no chunks"
                    : "payload is truncated: chunk \(counter - 1) was not marked as the last one")
            }
            var last = remaining < sealedChunkSize
            if last && counter > 0 && remaining == tagSize {
                throw AgeError(.payloadFailure, "final chunk \(counter) is empty, which is only allowed when the whole payload is empty")
            }
            guard remaining >= tagSize else {
                throw AgeError(.payloadFailure, "chunk \(counter) is \(remaining) bytes, shorter than its authentication tag")
            }
            let end = offset + min(remaining, sealedChunkSize)
            let chunk = payload[offset..<end]
            var plaintext = openChunk(chunk, key: key, counter: counter, last: last)
            if plaintext == nil && !last {
                // A full-size chunk may also be the final one.
                last = true
                plaintext = openChunk(chunk, key: key, counter: counter, last: true)
            }
            guard let plaintext else {
                throw AgeError(.payloadFailure, "chunk \(counter) failed authentication (corrupted, reordered or truncated payload)")
            }
            released(plaintext)
            offset = end
            counter += 1
            if last {
                guard offset == payload.endIndex else {
                    throw AgeError(.payloadFailure, "\(payload.endIndex - offset) bytes of trailing data after the final chunk")
                }
                return
            }
        }
    }

    private static func openChunk(_ chunk: ArraySlice<UInt8>, key: SymmetricKey, counter: UInt64, last: Bool) -> Data? {
        guard let box = try? ChaChaPoly.SealedBox(nonce: nonce(counter: counter, last: last),
                                                  ciphertext: chunk.dropLast(tagSize), tag: chunk.suffix(tagSize)) else {
            return nil
        }
        return try? ChaChaPoly.open(box, using: key)
    }
}
