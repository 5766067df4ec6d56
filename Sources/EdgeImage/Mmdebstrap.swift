import EdgeSystem
import Foundation

/// Runs mmdebstrap and turns what it prints into progress: its phase ("I: installing remaining
/// packages inside the chroot...") and, because its stderr is a pseudo-terminal, the percentages
/// of the progress bars it draws only on a terminal (mmdebstrap(1), `--verbose`: "Instead of
/// progress bars…"). Nothing of it reaches our stderr; every line goes to `log`, and a failure
/// names mmdebstrap's last error line and the log.
enum Mmdebstrap {
    struct Outcome {
        var status: Int32
        var lastError: String?
    }

    static func run(_ arguments: [String], environment: [String: String], log: String, step: StepReporter) throws -> Outcome {
        guard let path = SystemCommand.find("mmdebstrap") else { throw SystemCommandError.missingTool("mmdebstrap") }
        guard FileManager.default.createFile(atPath: log, contents: nil), let logHandle = FileHandle(forWritingAtPath: log) else {
            throw ImageError("cannot write the mmdebstrap log \(log)")
        }
        defer { try? logHandle.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        // A pseudo-terminal where there is one, else a pipe (phases without percentages).
        var terminal: Int32 = -1
        let controller = KernelFiles.openPseudoterminal(&terminal, columns: 100)
        let pipe = Pipe()
        let reader: FileHandle
        if controller >= 0 {
            process.standardError = FileHandle(fileDescriptor: terminal, closeOnDealloc: false)
            reader = FileHandle(fileDescriptor: controller, closeOnDealloc: true)
        } else {
            process.standardError = pipe
            reader = pipe.fileHandleForReading
        }
        do {
            try process.run()
        } catch {
            if terminal >= 0 { close(terminal) }
            throw SystemCommandError.cannotStart("mmdebstrap", error.localizedDescription)
        }
        // Only the child (and its hooks) may hold the terminal side, so reading ends when they exit.
        if terminal >= 0 { close(terminal) }
        try? pipe.fileHandleForWriting.close()

        var parser = OutputParser()
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        let descriptor = reader.fileDescriptor
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }  // EIO from the pseudo-terminal once the child is gone
            for event in parser.feed(buffer[0..<count]) {
                switch event {
                case .line(let line):
                    logHandle.write(Data((line + "\n").utf8))
                case .phase(let phase):
                    step.advance(0, of: nil, detail: phase)
                case .percent(let percent):
                    step.advance(Int(percent), of: 100)
                }
            }
        }
        for event in parser.flush() {
            if case .line(let line) = event { logHandle.write(Data((line + "\n").utf8)) }
        }
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, lastError: parser.lastError)
    }

    /// Splits mmdebstrap's terminal output into lines, phases and bar percentages.
    struct OutputParser {
        enum Event: Equatable {
            case line(String)
            case phase(String)
            case percent(Double)
        }

        private var pending: [UInt8] = []
        private(set) var lastError: String?

        mutating func feed<Bytes: Sequence>(_ bytes: Bytes) -> [Event] where Bytes.Element == UInt8 {
            var events: [Event] = []
            for byte in bytes {
                if byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") {
                    events += segment()
                } else {
                    pending.append(byte)
                }
            }
            return events
        }

        mutating func flush() -> [Event] {
            segment()
        }

        private mutating func segment() -> [Event] {
            let text = OutputParser.withoutEscapes(String(decoding: pending, as: UTF8.self)).trimmingCharacters(in: .whitespaces)
            pending.removeAll(keepingCapacity: true)
            guard !text.isEmpty, text != "done" else { return [] }
            // A bar: "installing:   45.00 [=====>     ]" (print_progress in mmdebstrap).
            if let open = text.firstIndex(of: "[") {
                let before = text[..<open].split(separator: " ")
                if let last = before.last, let percent = Double(last) { return [.percent(percent)] }
            }
            var events: [Event] = [.line(text)]
            if text.hasPrefix("I: ") {
                var phase = String(text.dropFirst(3))
                while phase.hasSuffix(".") { phase.removeLast() }
                events.append(.phase(phase))
            } else if text.hasPrefix("E: ") {
                if !OutputParser.isWrapUp(text) || lastError == nil { lastError = text }
            }
            return events
        }

        /// mmdebstrap's own lines after a failure, which name no cause: "E: setup failed: " and
        /// "E: command failed: " followed by a failed hook's whole script, "E: mmdebstrap failed to
        /// run". The E: line before them (a hook's own, apt's) says what went wrong, so it is kept.
        static func isWrapUp(_ line: String) -> Bool {
            line.hasPrefix("E: setup failed: ") || line.hasPrefix("E: command failed: ") || line == "E: mmdebstrap failed to run"
        }

        /// Drops terminal control sequences (ESC [ … letter), such as the "erase line" before each bar.
        static func withoutEscapes(_ text: String) -> String {
            var result = ""
            var scalars = text.unicodeScalars.makeIterator()
            while let scalar = scalars.next() {
                if scalar == "\u{1B}" {
                    guard let next = scalars.next(), next == "[" else { continue }
                    while let inner = scalars.next(), !(("@"..."~").contains(inner)) {}
                    continue
                }
                if scalar.value < 0x20 || scalar.value == 0x7f { continue }
                result.unicodeScalars.append(scalar)
            }
            return result
        }
    }
}
