import Foundation

/// The processor an ELF executable is built for: its header's `e_machine` (System V ABI, "ELF
/// Header"; the values in glibc's elf.h). The image builder reads it so that an agent built for
/// another architecture is refused before it reaches an image that could not run it.
enum ELFMachine: UInt16, CustomStringConvertible {
    case x86_64 = 62
    case aarch64 = 183

    /// The machine Debian's architecture `name` runs, for the architectures edgekit builds.
    init?(debianArchitecture name: String) {
        switch name {
        case "amd64": self = .x86_64
        case "arm64": self = .aarch64
        default: return nil
        }
    }

    /// The machine `file`'s header names; nil when it is not a little-endian ELF file or names
    /// another machine.
    init?(file: String) {
        guard let handle = FileHandle(forReadingAtPath: file) else { return nil }
        defer { try? handle.close() }
        guard let header = try? handle.read(upToCount: 20), header.count == 20 else { return nil }
        let bytes = [UInt8](header)
        // "\x7fELF", then EI_DATA (byte 5) 1: little-endian; e_machine is bytes 18-19.
        guard bytes[0..<4] == [0x7f, 0x45, 0x4c, 0x46], bytes[5] == 1 else { return nil }
        self.init(rawValue: UInt16(bytes[18]) | UInt16(bytes[19]) << 8)
    }

    var description: String {
        switch self {
        case .x86_64: "x86-64"
        case .aarch64: "aarch64"
        }
    }
}
