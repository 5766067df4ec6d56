import Foundation

/// SHA-256 (FIPS 180-4) whose running state can be saved and resumed later, in another process.
///
/// Why not SystemCrypto's SHA256: libcrypto's hasher state cannot be exported. A site image differs
/// from the cached system disk only from the site partition on, so the system level saves the state
/// after hashing everything before it, and stamping a site hashes only the site's own bytes
/// (docs/image.md).
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
            pending.withUnsafeBytes { block in
                state.withUnsafeMutableBufferPointer { ResumableSHA256.compress($0.baseAddress!, block.baseAddress!, blocks: 1) }
            }
            pending.removeAll(keepingCapacity: true)
        }
        let blocks = (input.count - offset) / 64
        if blocks > 0 {
            state.withUnsafeMutableBufferPointer { ResumableSHA256.compress($0.baseAddress!, input.baseAddress! + offset, blocks: blocks) }
            offset += blocks * 64
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

    /// The round constants where the hot loop reads them without bounds checks.
    private nonisolated(unsafe) static let constants: UnsafeMutablePointer<UInt32> = {
        let pointer = UnsafeMutablePointer<UInt32>.allocate(capacity: 64)
        pointer.initialize(from: k, count: 64)
        return pointer
    }()

    /// The SHA-256 compression function over `blocks` consecutive 64-byte blocks (FIPS 180-4, 6.2.2).
    /// Written over raw pointers so the optimiser keeps everything in registers: about twice as
    /// fast as the same code over arrays.
    private static func compress(_ state: UnsafeMutablePointer<UInt32>, _ data: UnsafeRawPointer, blocks: Int) {
        @inline(__always) func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        @inline(__always) func round(_ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: inout UInt32,
                                     _ e: UInt32, _ f: UInt32, _ g: UInt32, _ h: inout UInt32, _ kw: UInt32) {
            // Ch and Maj in their shorter equivalent forms: g ^ (e & (f ^ g)), (a & b) | (c & (a | b)).
            let t1 = h &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ (g ^ (e & (f ^ g))) &+ kw
            let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) | (c & (a | b)))
            d &+= t1
            h = t1 &+ t2
        }
        let k = constants
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { buffer in
            let w = buffer.baseAddress!
            var a = state[0], b = state[1], c = state[2], d = state[3], e = state[4], f = state[5], g = state[6], h = state[7]
            for block in 0..<blocks {
                let base = data + block * 64
                for i in 0..<16 {
                    w[i] = UInt32(bigEndian: base.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                }
                for i in 16..<64 {
                    let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                    let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                    w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
                }
                let (a0, b0, c0, d0, e0, f0, g0, h0) = (a, b, c, d, e, f, g, h)
                // Eight rounds per pass with the variables' roles rotated instead of moved.
                var i = 0
                while i < 64 {
                    round(a, b, c, &d, e, f, g, &h, k[i] &+ w[i])
                    round(h, a, b, &c, d, e, f, &g, k[i + 1] &+ w[i + 1])
                    round(g, h, a, &b, c, d, e, &f, k[i + 2] &+ w[i + 2])
                    round(f, g, h, &a, b, c, d, &e, k[i + 3] &+ w[i + 3])
                    round(e, f, g, &h, a, b, c, &d, k[i + 4] &+ w[i + 4])
                    round(d, e, f, &g, h, a, b, &c, k[i + 5] &+ w[i + 5])
                    round(c, d, e, &f, g, h, a, &b, k[i + 6] &+ w[i + 6])
                    round(b, c, d, &e, f, g, h, &a, k[i + 7] &+ w[i + 7])
                    i += 8
                }
                a &+= a0; b &+= b0; c &+= c0; d &+= d0; e &+= e0; f &+= f0; g &+= g0; h &+= h0
            }
            state[0] = a; state[1] = b; state[2] = c; state[3] = d
            state[4] = e; state[5] = f; state[6] = g; state[7] = h
        }
    }

    /// Hashes `length` bytes of the file at `path` from `offset` into this state.
    public mutating func update(file path: String, offset: Int = 0, length: Int? = nil) throws {
        try update(file: path, offset: offset, length: length, counted: nil)
    }

    /// The same, telling `counted` every chunk's size (progress).
    mutating func update(file path: String, offset: Int = 0, length: Int? = nil, counted: ByteCounter?) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ImageError("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var position = offset
        var remaining = length ?? Int.max
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        while remaining > 0 {
            let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, min(remaining, $0.count), off_t(position)) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw ImageError("cannot read \(path): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            self.length += UInt64(count)
            buffer.withUnsafeBytes { absorb(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            position += count
            remaining -= count
            counted?.add(count)
        }
        if length != nil, remaining > 0 { throw ImageError("\(path) ended \(remaining) bytes early while hashing") }
    }
}
