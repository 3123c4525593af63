import AuditCore
import Foundation
import LibPQ

/// One file of `schema/`: `NNNN_name.sql`, applied in version order.
public struct Migration: Sendable, Equatable {
    public var version: Int
    public var name: String
    public var sql: String
    /// SHA-256 of the file, recorded when applied, so an edited migration is noticed rather than skipped.
    public var checksum: String { SHA256.hash(sql).hexString }
}

public enum MigrationError: Error, CustomStringConvertible {
    case noMigrations(String)
    case badFileName(String)
    case changedAfterApplied(version: Int, name: String)
    case failed(version: Int, name: String, PGError)

    public var description: String {
        switch self {
        case .noMigrations(let directory): "no migrations (NNNN_name.sql) found in \(directory)"
        case .badFileName(let name): "schema file \(name) is not named NNNN_name.sql"
        case .changedAfterApplied(let version, let name):
            "migration \(version) (\(name)) was changed after it was applied; add a new migration instead"
        case .failed(let version, let name, let error): "migration \(version) (\(name)) failed: \(error)"
        }
    }
}

/// Applies `schema/` idempotently: each migration once, in order, in its own transaction, recorded in
/// `audit.schema_migrations`; concurrent runs are serialised by an advisory lock.
public struct Migrator {
    public let migrations: [Migration]

    public init(migrations: [Migration]) { self.migrations = migrations.sorted { $0.version < $1.version } }

    /// Reads `NNNN_name.sql` files from a directory.
    public init(directory: String) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".sql") }
        var migrations: [Migration] = []
        for name in names {
            let stem = name.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]) else {
                throw MigrationError.badFileName(name)
            }
            let sql = try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
            migrations.append(Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql))
        }
        guard !migrations.isEmpty else { throw MigrationError.noMigrations(directory) }
        self.init(migrations: migrations)
    }

    /// Finds `schema/`: `$AUDITGATE_SCHEMA_DIR`, `./schema`, or beside the executable's package.
    public static func locateSchemaDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        locate(folder: "schema", override: environment["AUDITGATE_SCHEMA_DIR"])
    }

    /// Looks for a project folder (`schema`, `reports`) from the working directory, then next to the
    /// installed binary (`../share/auditgate/NAME`), then up from a build folder (`.build/debug/…`).
    public static func locate(folder: String, override: String?) -> String? {
        if let override, !override.isEmpty { return override }
        var candidates = [FileManager.default.currentDirectoryPath + "/" + folder]
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        candidates.append(executable.appendingPathComponent("../share/auditgate/\(folder)").path)
        var directory = executable
        for _ in 0..<5 {
            candidates.append(directory.appendingPathComponent(folder).path)
            directory = directory.deletingLastPathComponent()
        }
        var isDirectory: ObjCBool = false
        return candidates.first { FileManager.default.fileExists(atPath: $0, isDirectory: &isDirectory) && isDirectory.boolValue }
    }

    /// Applies what is pending; returns the migrations applied by this run (empty when up to date).
    @discardableResult
    public func apply(on connection: PGConnection) throws -> [Migration] {
        try connection.execute("""
            CREATE SCHEMA IF NOT EXISTS audit;
            CREATE TABLE IF NOT EXISTS audit.schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                applied_by text NOT NULL DEFAULT current_user
            );
            """)
        var applied: [Migration] = []
        for migration in migrations {
            let didApply = try connection.transaction { () throws -> Bool in
                // 0x41554454 = "AUDT": one migrator at a time per database.
                try connection.execute("SELECT pg_advisory_xact_lock(1096107092)")
                let existing = try connection.execute(
                    "SELECT checksum FROM audit.schema_migrations WHERE version = $1", [String(migration.version)])
                if existing.rowCount > 0 {
                    guard existing.string(0, 0) == migration.checksum else {
                        throw MigrationError.changedAfterApplied(version: migration.version, name: migration.name)
                    }
                    return false
                }
                do {
                    try connection.execute(migration.sql)
                    try connection.execute("RESET ROLE")
                } catch let error as PGError {
                    throw MigrationError.failed(version: migration.version, name: migration.name, error)
                }
                try connection.execute(
                    "INSERT INTO audit.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    [String(migration.version), migration.name, migration.checksum])
                return true
            }
            if didApply { applied.append(migration) }
        }
        return applied
    }
}
