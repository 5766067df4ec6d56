#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The kernel's block devices (`/sys/class/block`: disks and partitions by name), for noticing a
/// stick plugged in after boot without running blkid on every look.
enum StickWatch {
    static func blockDevices(sysfs: String = "/sys/class/block") -> Set<String> {
        Set((try? FileManager.default.contentsOfDirectory(atPath: sysfs)) ?? [])
    }
}
