import CEdgeSystem
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// A tool started with posix_spawn, as `SystemCommand` runs them: the parent's ends of the pipes it
/// asked for, and its exit read with `waitpid`. (Foundation's `Process` is not in
/// FoundationEssentials, which the agent's libraries import instead of Foundation.)
struct SpawnedTool {
    /// Where one of the tool's standard streams goes.
    enum Stream {
        /// /dev/null.
        case null
        /// A pipe whose other end the parent keeps (`input`, `output`, `errors`).
        case pipe
        /// The parent's standard error (progress the operator should see).
        case parentError
        /// A file the tool reads (its standard input).
        case file(String)
    }

    let pid: pid_t
    /// The write end of the tool's stdin, when it is a pipe; the caller closes it.
    let input: Int32?
    /// The read ends of its stdout and stderr, when they are pipes; the caller closes them.
    let output: Int32?
    let errors: Int32?

    /// Starts `path` with `arguments` (argv[0] is `path`) and `environment` (ours when nil), in our
    /// working directory, every signal at its default and none blocked, no descriptor of ours
    /// inherited but the three it is given (closed from 3 up in the child). Throws the system's
    /// reason when it cannot start.
    static func start(_ path: String, _ arguments: [String], environment: [String: String]?,
                      stdin: Stream, stdout: Stream, stderr: Stream) throws(SpawnFailure) -> SpawnedTool {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Both ends close on exec; dup2 onto 0/1/2 gives the tool its copy without the flag.
        var parentEnds: [Int32] = []
        var childEnds: [Int32] = []
        defer { childEnds.forEach { close($0) } }
        func connect(_ stream: Stream, to target: Int32, toolReads: Bool) throws(SpawnFailure) -> Int32? {
            switch stream {
            case .null:
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", toolReads ? O_RDONLY : O_WRONLY, 0)
                return nil
            case .parentError:
                posix_spawn_file_actions_adddup2(&actions, 2, target)
                return nil
            case .file(let path):
                posix_spawn_file_actions_addopen(&actions, target, path, O_RDONLY, 0)
                return nil
            case .pipe:
                var ends: [Int32] = [-1, -1]
                guard edgekit_pipe_cloexec(&ends) == 0 else {
                    let failure = errno
                    parentEnds.forEach { close($0) }
                    throw SpawnFailure(errno: failure)
                }
                let (toolEnd, ourEnd) = toolReads ? (ends[0], ends[1]) : (ends[1], ends[0])
                childEnds.append(toolEnd)
                parentEnds.append(ourEnd)
                posix_spawn_file_actions_adddup2(&actions, toolEnd, target)
                return ourEnd
            }
        }
        let input = try connect(stdin, to: 0, toolReads: true)
        let output = try connect(stdout, to: 1, toolReads: false)
        let errors = try connect(stderr, to: 2, toolReads: false)
        // Then nothing else of ours: a descriptor opened without O_CLOEXEC (a socket, a device) would
        // otherwise stay open in the tool for as long as it runs, as Foundation's Process never let it.
        _ = edgekit_spawn_closefrom(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Threads of Dispatch and Swift concurrency block most signals; a tool must not inherit that.
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer {
            argv.forEach { free($0) }
            envp?.forEach { free($0) }
        }
        var pid: pid_t = 0
        let code = envp.map { posix_spawn(&pid, path, &actions, &attributes, argv, $0) }
            ?? posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        guard code == 0 else {
            parentEnds.forEach { close($0) }
            throw SpawnFailure(errno: code)
        }
        return SpawnedTool(pid: pid, input: input, output: output, errors: errors)
    }

    /// Waits for the tool to end: its exit status, or the signal that ended it.
    func wait() -> (status: Int32, signal: Int32?) {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return (-1, nil) }
        }
        let signal = status & 0x7f
        return signal == 0 ? ((status >> 8) & 0xff, nil) : (signal, signal)
    }

    /// Writes `data` to the tool's stdin on another thread, then closes it: a tool that prints
    /// before reading all its input cannot deadlock us, and one that exits without reading it
    /// costs an EPIPE, not our life (SIGPIPE is ignored from the first use).
    func feed(_ data: Data) {
        guard let input else { return }
        _ = SpawnedTool.ignoreBrokenPipes
        let bytes = [UInt8](data)
        Threads.start {
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = write(input, buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        break
                    }
                    offset += written
                }
            }
            close(input)
        }
    }

    private static let ignoreBrokenPipes: Void = { signal(SIGPIPE, SIG_IGN) }()
}

/// Why a tool could not be started: the system's word for it.
struct SpawnFailure: Error, CustomStringConvertible {
    var errno: Int32
    var description: String { String(cString: strerror(errno)) }
}
