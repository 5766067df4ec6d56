import EdgeSystem
import Foundation
import Testing
import TestSupport

/// The one writer of secret-bearing files: the mode is right from the first byte, whatever the
/// umask, an existing file is never replaced unless asked, and a failed write leaves nothing.
@Suite(.serialized) struct AtomicFileTests {
    /// stat(2) of `path`: permission bits and size.
    func status(_ path: String) -> (mode: Int, size: Int)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (Int(info.st_mode & 0o7777), Int(info.st_size))
    }

    @Test func aSecretIsOwnerOnlyUnderAWideOpenUmask() throws {
        try TemporaryDirectory.with { dir in
            let path = dir.file("wireguard.key").path
            let old = umask(0)
            defer { umask(old) }
            try AtomicFile.write(Data("secret\n".utf8), to: path, mode: 0o600, replace: false)
            #expect(status(path)?.mode == 0o600)
            #expect(status(path)?.size == 7)
            try AtomicFile.write(Data("public\n".utf8), to: dir.file("operator.pub").path, mode: 0o644, replace: false)
            #expect(status(dir.file("operator.pub").path)?.mode == 0o644)
        }
    }

    @Test func anExistingFileIsKeptUnlessReplacing() throws {
        try TemporaryDirectory.with { dir in
            let path = dir.file("master.key").path
            try AtomicFile.write(Data("first".utf8), to: path, mode: 0o600, replace: false)
            #expect(throws: AtomicFileError.alreadyExists(path)) {
                try AtomicFile.write(Data("second".utf8), to: path, mode: 0o600, replace: false)
            }
            #expect(FileManager.default.contents(atPath: path) == Data("first".utf8))
            try AtomicFile.write(Data("third".utf8), to: path, mode: 0o600, replace: true)
            #expect(FileManager.default.contents(atPath: path) == Data("third".utf8))
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["master.key"], "no partial file left")
        }
    }

    @Test func aFailedWriteLeavesNothing() throws {
        try TemporaryDirectory.with { dir in
            let path = dir.file("missing-folder/key").path
            #expect(throws: AtomicFileError.self) {
                try AtomicFile.write(Data("x".utf8), to: path, mode: 0o600, replace: true)
            }
            let left = try FileManager.default.contentsOfDirectory(atPath: dir.path)
            #expect(left.isEmpty, "\(left)")
        }
    }
}

@Suite struct WireGuardShowTests {
    @Test func keyTabValueLinesBecomePairs() {
        let text = "private-key\t(hidden)\nlisten-port\t51820\n\nfwmark\toff\nnot a pair\n"
        #expect(WireGuardShow.pairs(text) == ["private-key": "(hidden)", "listen-port": "51820", "fwmark": "off"])
    }
}
