import CEdgeSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Copying file contents inside the kernel, and pseudo-terminals: the syscalls behind
/// `CEdgeSystem`, with Swift types only.
public enum KernelFiles {
    /// copy_file_range(2) of up to `length` bytes from `input` at `inputOffset` to `output` at
    /// `outputOffset`, both advanced; bytes copied, 0 at end of file, -1 with errno set.
    public static func copyRange(_ input: Int32, _ inputOffset: inout Int64, _ output: Int32, _ outputOffset: inout Int64,
                                 _ length: Int) -> Int {
        var from = CLongLong(inputOffset), to = CLongLong(outputOffset)
        defer { inputOffset = Int64(from); outputOffset = Int64(to) }
        return edgekit_copy_file_range(input, &from, output, &to, length)
    }

    /// Shares all blocks of `source` with `destination` (FICLONE); false where the filesystem
    /// cannot (ext4), and the caller copies instead.
    public static func reflink(_ destination: Int32, from source: Int32) -> Bool {
        edgekit_reflink(destination, source) == 0
    }

    /// A pseudo-terminal `columns` wide, for a tool that draws progress only on a terminal: the
    /// controlling side (returned) and the terminal side (stored in `terminal`); -1 when the
    /// system has none.
    public static func openPseudoterminal(_ terminal: inout Int32, columns: UInt16) -> Int32 {
        edgekit_open_pty(&terminal, columns)
    }
}
