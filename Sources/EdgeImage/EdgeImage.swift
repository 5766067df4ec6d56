/// Rootfs, overlays, archives and disk images (issue "Image builder").
/// The only code that touches libarchive will live in `Archive.swift` here.
public enum EdgeImage {}
