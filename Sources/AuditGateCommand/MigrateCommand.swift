import ArgumentParser
import AuditGateConfig
import AuditStore
import Foundation
import LibPQ

/// `auditgate migrate`: applies `schema/` idempotently with a privileged connection.
struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the schema migrations (idempotent); creates the roles if missing.")

    @Option(help: "Configuration file whose database.url is used when --database-url is not given.")
    var config = "config/auditgate.yaml"

    @Option(name: .customLong("database-url"), help: "A privileged libpq connection string or URI (creates roles and objects).")
    var databaseURL: String?

    @Option(name: .customLong("schema-dir"), help: "Folder of NNNN_name.sql migrations (default: schema/ of the installation).")
    var schemaDirectory: String?

    func run() throws {
        let url: String
        if let databaseURL {
            url = databaseURL
        } else {
            do {
                url = try ConfigurationLoader.load(path: config, environment: ProcessInfo.processInfo.environment).database.url
            } catch {
                throw ValidationError("no --database-url given and \(config) is not usable:\n\(error)")
            }
        }
        guard let directory = schemaDirectory ?? Migrator.locateSchemaDirectory() else {
            throw ValidationError("cannot find the schema/ folder; pass --schema-dir")
        }
        let migrator = try Migrator(directory: directory)
        let connection: PGConnection
        do {
            connection = try PGConnection(url, applicationName: "auditgate-migrate")
        } catch {
            printError("auditgate migrate: cannot connect: \(error)")
            throw ExitCode(2)
        }
        do {
            let applied = try migrator.apply(on: connection)
            if applied.isEmpty {
                print("schema up to date (\(migrator.migrations.count) migrations applied earlier)")
            } else {
                for migration in applied { print("applied \(String(format: "%04d", migration.version)) \(migration.name)") }
            }
        } catch {
            printError("auditgate migrate: \(error)")
            throw ExitCode(1)
        }
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
