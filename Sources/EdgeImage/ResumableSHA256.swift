import Foundation

/// SHA-256 (FIPS 180-4) whose running state can be saved and resumed later, in another process.
///
/// Why not swift-crypto: its hasher state cannot be exported. A site image differs from the cached
/// system disk only from the site partition on, so the system level saves the state after hashing
/// everything before it, and stamping a site hashes only the site's own bytes (docs/image.md).
public struct ResumableSHA256: Sendable, Equatable {
    private var state: [UInt32] = [
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
    ]
    private var pending: [UInt8] = []
    private var length: UInt64 = 0

    public init() {}

    public mutating func update<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        length += UInt64(bytes.count)
        let contiguous = bytes.withContiguousStorageIfAvailable { buffer -> Bool in
            absorb(UnsafeRawBufferPointer(buffer))
            return true
        }
        if contiguous == nil {
            let copy = [UInt8](bytes)
            copy.withUnsafeBytes { absorb($0) }
        }
    }

    public mutating func update(_ data: Data) {
        length += UInt64(data.count)
        data.withUnsafeBytes { absorb($0) }
    }

    /// Fills the pending block, then compresses whole blocks straight from `input`.
    private mutating func absorb(_ input: UnsafeRawBufferPointer) {
        var offset = 0
        if !pending.isEmpty {
            let take = min(64 - pending.count, input.count)
            pending.append(contentsOf: input[0..<take])
            offset = take
            guard pending.count == 64 else { return }
            pending.withUnsafeBytes { ResumableSHA256.compress(&state, $0.baseAddress!) }
            pending.removeAll(keepingCapacity: true)
        }
        while input.count - offset >= 64 {
            ResumableSHA256.compress(&state, input.baseAddress! + offset)
            offset += 64
        }
        if offset < input.count { pending.append(contentsOf: input[offset...]) }
    }

    public func finalize() -> [UInt8] {
        var copy = self
        let bitLength = length &* 8
        var tail: [UInt8] = [0x80]
        let padding = (55 - Int(length % 64) + 64) % 64
        tail += [UInt8](repeating: 0, count: padding)
        tail += (0..<8).reversed().map { UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64($0))) }
        tail.withUnsafeBytes { copy.absorb($0) }
        return copy.state.flatMap { word in (0..<4).reversed().map { UInt8(truncatingIfNeeded: word >> (8 * UInt32($0))) } }
    }

    public func hex() -> String { finalize().map { String(format: "%02x", $0) }.joined() }

    /// The running state as text: eight words, the bytes not yet compressed, and the length.
    public var exported: String {
        let words = state.map { String(format: "%08x", $0) }.joined()
        let rest = pending.map { String(format: "%02x", $0) }.joined()
        return "sha256-state:\(words):\(rest):\(length)"
    }

    public init?(exported text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "sha256-state", parts[1].count == 64, parts[2].count % 2 == 0, parts[2].count < 128,
            let length = UInt64(parts[3])
        else { return nil }
        func bytes(_ hex: Substring) -> [UInt8]? {
            var result: [UInt8] = []
            var index = hex.startIndex
            while index < hex.endIndex {
                let next = hex.index(index, offsetBy: 2)
                guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
                result.append(byte)
                index = next
            }
            return result
        }
        guard let stateBytes = bytes(parts[1]), let pending = bytes(parts[2]), UInt64(pending.count) == length % 64 else { return nil }
        state = (0..<8).map { i in stateBytes[i * 4..<i * 4 + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
        self.pending = pending
        self.length = length
    }

    private static let k: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    private static func compress(_ state: inout [UInt32], _ pointer: UnsafeRawPointer) {
        @inline(__always) func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        let block = pointer.assumingMemoryBound(to: UInt8.self)
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
        for i in 0..<16 {
            w[i] = UInt32(block[i * 4]) << 24 | UInt32(block[i * 4 + 1]) << 16 | UInt32(block[i * 4 + 2]) << 8 | UInt32(block[i * 4 + 3])
        }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var a = state[0], b = state[1], c = state[2], d = state[3], e = state[4], f = state[5], g = state[6], h = state[7]
        for i in 0..<64 {
            let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let choose = (e & f) ^ (~e & g)
            let t1 = h &+ s1 &+ choose &+ k[i] &+ w[i]
            let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let majority = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ majority
            h = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
        }
        state[0] &+= a; state[1] &+= b; state[2] &+= c; state[3] &+= d
        state[4] &+= e; state[5] &+= f; state[6] &+= g; state[7] &+= h
        }
    }

    /// Hashes `length` bytes of the file at `path` from `offset` into this state.
    public mutating func update(file path: String, offset: Int = 0, length: Int? = nil) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ImageError("cannot read \(path)") }
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        var remaining = length ?? Int.max
        while remaining > 0 {
            let chunk = handle.readData(ofLength: min(remaining, 4 << 20))
            if chunk.isEmpty { break }
            update(chunk)
            remaining -= chunk.count
        }
        if let length, remaining > 0 { throw ImageError("\(path) ended \(remaining) bytes early while hashing") }
    }
}
