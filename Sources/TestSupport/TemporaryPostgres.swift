import AuditStore
import Foundation
import LibPQ

/// The package's root folder, found from this file's path (tests run from anywhere).
public let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// Starts a process with its standard output and error going to files (never to pipes, so that a
/// server it leaves behind cannot keep a reader waiting). Uses posix_spawn and waitpid directly:
/// Foundation's `Process.waitUntilExit` was seen to hang here under the test runner.
public func spawnProcess(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, stdout: String, stderr: String
) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let env = (environment.map { ProcessInfo.processInfo.environment.merging($0) { $1 } } ?? ProcessInfo.processInfo.environment)
        .map { "\($0.key)=\($0.value)" }
    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }
    var pid: pid_t = 0
    let status = posix_spawn(&pid, executable, &actions, nil, argv, envp)
    guard status == 0 else {
        throw CommandFailure(status: status, output: "", errors: "cannot start \(executable): \(String(cString: strerror(status)))")
    }
    return pid
}

/// Waits for a process and returns its exit status (128 + signal when killed).
public func waitForExit(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let signal = status & 0x7f
    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
}

/// Runs a command and returns its standard output; throws with its stderr when it fails.
@discardableResult
public func runCommand(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> String {
    let base = NSTemporaryDirectory() + "auditgate-cmd-" + UUID().uuidString
    defer {
        unlink(base + ".out")
        unlink(base + ".err")
    }
    let pid = try spawnProcess(executable, arguments, environment: environment, stdout: base + ".out", stderr: base + ".err")
    let status = waitForExit(pid)
    let output = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
    guard status == 0 else {
        let errors = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
        throw CommandFailure(status: status, output: output, errors: errors)
    }
    return output
}

public struct CommandFailure: Error, CustomStringConvertible {
    public var status: Int32
    public var output: String
    public var errors: String
    public var description: String { "exit \(status)\nstdout: \(output)\nstderr: \(errors)" }
}

/// A throwaway PostgreSQL cluster of its own, for tests that stop, kill or restart the server.
/// Started by `scripts/postgres.sh`, the same code the test command and the run command use.
public final class TemporaryPostgres: @unchecked Sendable {
    public let directory: String
    public private(set) var port: Int

    public init() throws {
        directory = NSTemporaryDirectory() + "auditgate-pg-" + UUID().uuidString.prefix(8).lowercased()
        port = 0
        port = try Self.script("pg_start \"$1\" && echo $PGPORT", directory)
            .split(separator: "\n").last.flatMap { Int($0) } ?? 0
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A connection URL on this cluster (trust authentication on loopback).
    public func url(user: String = "postgres", database: String = "postgres") -> String {
        "postgresql://\(user)@127.0.0.1:\(port)/\(database)"
    }

    /// A clean shutdown (`pg_ctl stop -m fast`).
    public func stop() {
        _ = try? Self.script("pg_stop \"$1\"", directory)
    }

    /// Starts the cluster again on the same port.
    public func start() throws {
        try Self.script("pg_start \"$1\" \"$2\"", directory, String(port))
    }

    /// SIGKILL to the postmaster: PostgreSQL's own crash recovery runs on the next start.
    public func kill9() throws {
        let pidFile = try String(contentsOfFile: directory + "/postmaster.pid", encoding: .utf8)
        guard let pid = pidFile.split(separator: "\n").first.flatMap({ Int32($0) }) else { return }
        kill(pid, SIGKILL)
        try? FileManager.default.removeItem(atPath: directory + "/postmaster.pid")
    }

    @discardableResult
    static func script(_ body: String, _ arguments: String...) throws -> String {
        try runCommand("/bin/bash", ["-c", "set -e; source \"\(packageRoot)/scripts/postgres.sh\"; \(body)", "_"] + arguments)
    }
}

/// A fresh, migrated database for one test, on the suite's shared server: the one the test command
/// started (`AUDITGATE_TEST_DATABASE_URL`, a superuser URL) or, without it, a cluster of the tests' own.
public struct TestDatabase: Sendable {
    public let name: String
    public let host: String
    public let port: Int

    public init(on cluster: TemporaryPostgres? = nil) throws {
        let base = try cluster?.url() ?? SharedServer.url()
        guard let components = URLComponents(string: base), let host = components.host, let port = components.port else {
            throw CommandFailure(status: -1, output: "", errors: "bad server URL \(base)")
        }
        self.host = host
        self.port = port
        name = "agtest_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        let admin = try PGConnection(base)
        try admin.execute("CREATE DATABASE \(name)")
        let connection = try PGConnection(url(user: "postgres"))
        try Migrator(directory: packageRoot + "/schema").apply(on: connection)
    }

    public func url(user: String) -> String { "postgresql://\(user)@\(host):\(port)/\(name)" }
    public var superuserURL: String { url(user: "postgres") }
    public var writerURL: String { url(user: "auditgate_writer") }
    public var readerURL: String { url(user: "auditgate_reader") }

    public func connect(as user: String = "postgres") throws -> PGConnection { try PGConnection(url(user: user)) }

    /// Runs one query as the superuser and returns the first column of the first row.
    public func scalar(_ sql: String) throws -> String? {
        try connect().execute(sql).string(0, 0)
    }
}

/// The server shared by every test in a run.
enum SharedServer {
    nonisolated(unsafe) private static var cluster: TemporaryPostgres?
    private static let lock = NSLock()

    static func url() throws -> String {
        if let url = ProcessInfo.processInfo.environment["AUDITGATE_TEST_DATABASE_URL"], !url.isEmpty { return url }
        lock.lock()
        defer { lock.unlock() }
        if cluster == nil { cluster = try TemporaryPostgres() }
        return cluster!.url()
    }
}

/// The folder holding the built `auditgate` and `auditgate-report` executables.
public let binDirectory: String = {
    if let dir = ProcessInfo.processInfo.environment["AUDITGATE_BIN_DIR"], !dir.isEmpty { return dir }
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    for _ in 0..<4 {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("auditgate").path) { return url.path }
    }
    return packageRoot + "/.build/debug"
}()

/// A new empty folder under the system's temporary directory.
public func temporaryDirectory(_ prefix: String = "auditgate-test") -> String {
    let path = NSTemporaryDirectory() + prefix + "-" + UUID().uuidString.prefix(8).lowercased()
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
