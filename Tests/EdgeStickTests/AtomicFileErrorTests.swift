import EdgeErrors
import EdgeSystem
import Foundation
import Testing

/// AtomicFile keeps the errno behind a failed write as the cause, and prints the same line.
@Suite struct AtomicFileErrorTests {
    @Test func aMissingFolderIsNamedAndKeepsItsErrno() throws {
        let path = "/nonexistent-\(UUID().uuidString)/file"
        do {
            try AtomicFile.write(Data("x".utf8), to: path, mode: 0o600, replace: true)
            Issue.record("wrote into a folder that does not exist")
        } catch let error as AtomicFileError {
            #expect(error.code == "file.cannot-write")
            #expect(error.input == path)
            #expect((error.cause as? POSIXError)?.code == .ENOENT)
            #expect(error.description == "cannot write \(path): No such file or directory")
        }
    }
}
