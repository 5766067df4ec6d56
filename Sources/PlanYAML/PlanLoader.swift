import CYaml
import EdgeErrors
import EdgeModel
import Foundation
import Yams

/// Reads `plan.yaml` strictly (unknown keys and wrong types are errors, with their line) and checks
/// every rule of docs/plan.md, reporting all problems at once.
public enum PlanLoader {
    /// The file name inside a plan folder.
    public static let fileName = "plan.yaml"

    /// The largest plan read, 1 MiB: thousands of sites. Anything bigger is not a hand-written plan
    /// and would only cost memory.
    public static let maximumBytes = 1 << 20

    /// Deepest nesting of lists and mappings accepted; a plan needs five (plan, sites, site,
    /// routers, router). The limit keeps a `[[[[…` bomb from exhausting the stack.
    public static let maximumDepth = 16

    /// Loads `DIR/plan.yaml`.
    public static func load(directory: String) throws -> Plan {
        let path = (directory as NSString).appendingPathComponent(fileName)
        let bytes = try PlanFile.contents(path, directory: directory)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw PlanError([PlanDiagnostic(file: fileName, line: nil, message: "not UTF-8 text")], code: "plan.not-utf8")
        }
        return try parse(text, file: fileName)
    }

    /// Parses plan text; `file` only names the source in diagnostics.
    public static func parse(_ text: String, file: String = fileName) throws -> Plan {
        guard text.utf8.count <= maximumBytes else {
            throw PlanError([PlanDiagnostic(file: file, line: nil, message: PlanFile.tooLarge(text.utf8.count))], code: "plan.too-large")
        }
        // Before Yams builds anything: an alias expands to a copy of its anchor, and Yams hashes
        // mapping keys whole, so a few hundred bytes of nested aliases cost minutes of CPU.
        if let refusal = YAMLShape.refusal(text, file: file) {
            throw PlanError([refusal], code: refusal.message == YAMLShape.tooDeep ? "plan.too-deep" : "plan.alias")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw PlanError([PlanDiagnostic(file: file, error)], code: "plan.yaml-syntax", cause: error)
        }
        guard let root else {
            throw PlanError([PlanDiagnostic(file: file, line: nil, message: "the plan is empty")], code: "plan.empty")
        }
        return try Plan.reading(PlanNode(root), file: file)
    }
}

// MARK: - Reading the file

/// `plan.yaml` read without surprises: a folder, FIFO, device or dangling link is named as what it
/// is, never waited on or read without end.
enum PlanFile {
    static func contents(_ path: String, directory: String) throws -> [UInt8] {
        func refuse(_ message: String, code: ErrorCode = "plan.unreadable") -> PlanError {
            PlanError([PlanDiagnostic(file: path, line: nil, message: message)], code: code)
        }
        // O_NONBLOCK: opening a FIFO must not wait for a writer.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let failure = errno
            throw refuse(whyMissing(path, directory: directory, errno: failure))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw refuse("cannot read: \(String(cString: strerror(errno)))") }
        let kind = info.st_mode & S_IFMT
        guard kind == S_IFREG else {
            throw refuse("not a file but \(describe(kind))\(linkNote(path)); \(PlanLoader.fileName) must be a text file")
        }
        guard info.st_size <= PlanLoader.maximumBytes else { throw refuse(tooLarge(Int(info.st_size)), code: "plan.too-large") }
        // Read at most one byte past the limit: the file may grow after fstat.
        var bytes = [UInt8](repeating: 0, count: PlanLoader.maximumBytes + 1)
        var count = 0
        while count < bytes.count {
            let got = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if got == 0 { break }
            if got < 0 {
                if errno == EINTR { continue }
                throw refuse("cannot read: \(String(cString: strerror(errno)))")
            }
            count += got
        }
        guard count <= PlanLoader.maximumBytes else { throw refuse(tooLarge(count), code: "plan.too-large") }
        return Array(bytes[..<count])
    }

    static func tooLarge(_ count: Int) -> String {
        "the plan is \(count) bytes, more than the \(PlanLoader.maximumBytes) (1 MiB) a plan may hold; is this the right file?"
    }

    static func whyMissing(_ path: String, directory: String, errno failure: Int32) -> String {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            return "plan folder \(directory) does not exist"
        }
        if !isDirectory.boolValue { return "\(directory) is a file, not a plan folder" }
        if failure == ENOENT {
            if let target = linkTarget(path) { return "a link to \(target), which does not exist" }
            return "no \(PlanLoader.fileName) in \(directory) (create one with `edgekit plan init \(directory) --name NAME --relay HOST`)"
        }
        if failure == ELOOP { return "a link that loops back on itself; \(PlanLoader.fileName) must be a text file" }
        return "cannot read: \(String(cString: strerror(failure)))"
    }

    static func describe(_ kind: mode_t) -> String {
        switch kind {
        case S_IFDIR: "a folder"
        case S_IFIFO: "a named pipe (FIFO)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "a special file"
        }
    }

    static func linkNote(_ path: String) -> String {
        linkTarget(path).map { " (a link to \($0))" } ?? ""
    }

    static func linkTarget(_ path: String) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: path)
    }
}

// MARK: - Refusing YAML features a plan has no use for

/// Walks libyaml's events, before any node is built, for what a hand-written plan never needs and
/// a hostile one abuses: anchors and aliases (exponential expansion) and deep nesting (stack).
/// Syntax errors are left to `Yams.compose`, which reports them with their line.
enum YAMLShape {
    static func refusal(_ text: String, file: String) -> PlanDiagnostic? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return nil }
        defer { yaml_parser_delete(&parser) }
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBufferPointer { buffer -> PlanDiagnostic? in
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var depth = 0
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    // libyaml stops deep flow nesting itself (it scans ahead); say it in plan words.
                    guard let problem = parser.problem, String(cString: problem).contains("nesting level") else { return nil }
                    return PlanDiagnostic(file: file, line: Int(parser.problem_mark.line) + 1, message: tooDeep)
                }
                defer { yaml_event_delete(&event) }
                let line = Int(event.start_mark.line) + 1
                var anchor: UnsafeMutablePointer<yaml_char_t>?
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return nil
                case YAML_ALIAS_EVENT:
                    return refuse(file, line, "alias \"*\(name(event.data.alias.anchor))\"")
                case YAML_SCALAR_EVENT:
                    anchor = event.data.scalar.anchor
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    anchor = event.type == YAML_SEQUENCE_START_EVENT ? event.data.sequence_start.anchor : event.data.mapping_start.anchor
                    depth += 1
                    if depth > PlanLoader.maximumDepth {
                        return PlanDiagnostic(file: file, line: line, message: tooDeep)
                    }
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    depth -= 1
                default:
                    break
                }
                if let anchor { return refuse(file, line, "anchor \"&\(name(anchor))\"") }
            }
        }
    }

    static let tooDeep = "lists and mappings nest more than \(PlanLoader.maximumDepth) deep; a plan needs five levels"

    static func refuse(_ file: String, _ line: Int, _ what: String) -> PlanDiagnostic {
        PlanDiagnostic(file: file, line: line, message: "YAML \(what): anchors and aliases are not allowed in a plan; write each value out")
    }

    /// An anchor's name, cut short: it is echoed in a one-line message.
    static func name(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String {
        guard let pointer else { return "" }
        let text = String(cString: pointer)
        return text.count > 40 ? String(text.prefix(40)) + "…" : text
    }
}

// MARK: - From Yams' nodes

extension PlanNode {
    /// Yams' node tree as the plan reader's (lines as Yams marks them; 0 where it has none).
    init(_ node: Node) {
        let line = node.mark?.line ?? 0
        switch node {
        case .scalar(let scalar): self = .scalar(scalar.string, plain: scalar.style == .plain, line: line)
        case .mapping(let mapping): self = .mapping(mapping.map { (PlanNode($0.key), PlanNode($0.value)) }, line: line)
        case .sequence(let sequence): self = .sequence(sequence.map(PlanNode.init), line: line)
        case .alias: self = .alias(line: line)
        }
    }
}

extension PlanDiagnostic {
    /// Yams' error, worded for the operator, at its line.
    init(file: String, _ error: YamlError) {
        switch error {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let where_ = context.map { " (\($0.text))" } ?? ""
            self.init(file: file, line: mark.line, message: "YAML syntax error: \(problem)\(where_)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            self.init(
                file: file, line: context.mark.line,
                message: "duplicate key \(duplicates.map { "\"\($0)\"" }.joined(separator: ", ")); each key may appear once")
        default:
            self.init(file: file, line: nil, message: "YAML error: \(error)")
        }
    }
}
