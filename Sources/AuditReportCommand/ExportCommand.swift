import ArgumentParser
import AuditCore
import AuditEvidence
import AuditStore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The period options shared by `export`, `summary` and `run`.
struct PeriodOptions: ParsableArguments {
    @Option(help: "A month (2026-10), quarter (2026-Q4) or day (2026-10-05), read in --tz.") var period: String?
    @Option(help: "Start, inclusive: RFC 3339 or YYYY-MM-DD (midnight in --tz).") var from: String?
    @Option(help: "End, exclusive: RFC 3339 or YYYY-MM-DD.") var to: String?
    @Option(help: "IANA time zone for reading dates and writing timestamps.") var tz = "UTC"

    func resolve() throws -> ReportPeriod {
        do {
            return try ReportPeriod.parse(period: period, from: from, to: to, timeZone: tz)
        } catch {
            throw ValidationError(error.description)
        }
    }
}

func loadSigningKey(_ path: String?) throws -> Ed25519PrivateKey? {
    guard let path else { return nil }
    guard let pem = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw ValidationError("cannot read the signing key \(path)")
    }
    do {
        return try Ed25519PrivateKey(pem: pem)
    } catch {
        throw ValidationError("\(path) is not an Ed25519 private key (make one with `auditgate-report keygen --out FILE`): \(error)")
    }
}

/// `auditgate-report export`: a signed evidence package for a period.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a signed evidence package (CSV, JSON Lines, summary, integrity, manifest) for a period.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var periodOptions: PeriodOptions
    @Option(help: "Only this user's exchanges.") var user: String?
    @Option(help: "Only this team's exchanges.") var team: String?
    @Flag(name: .customLong("include-bodies"), help: "Add request_body and response_body (as the gateway kept them).")
    var includeBodies = false
    @Option(name: .customLong("signing-key"), help: "Ed25519 private key (PEM) to sign manifest.json.") var signingKey: String?
    @Option(help: "The previous package's folder: its manifest's SHA-256 is recorded, chaining the packages.")
    var previous: String?
    @Option(help: "Folder to write the package to (created; must be empty).") var out: String

    func run() throws {
        let period = try periodOptions.resolve()
        let key = try loadSigningKey(signingKey)
        let connection = try database.connect()
        var exporter = PackageExporter(connection: connection)
        let onTerminal = isatty(2) == 1
        if onTerminal {
            exporter.progress = { rows in
                FileHandle.standardError.write(Data("\rexporting: \(rows) exchanges".utf8))
            }
        }
        let manifest: EvidenceManifest
        do {
            manifest = try exporter.export(
                ExportRequest(
                    period: period, user: user, team: team, includeBodies: includeBodies, signingKey: key,
                    previousDirectory: previous, outputDirectory: out))
        } catch {
            if onTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
            FileHandle.standardError.write(Data("auditgate-report export: \(error)\n".utf8))
            throw ExitCode(1)
        }
        if onTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
        print("package \(out): \(manifest.counts.exchanges) exchanges, period \(manifest.period.from) to \(manifest.period.to) (\(period.zoneName))")
        for chain in manifest.chains {
            print("  chain \(chain.chainID): seq \(chain.firstSeq)...\(chain.lastSeq), \(chain.count) records, \(chain.verified ? "verified" : "NOT VERIFIED")")
        }
        print(key == nil ? "  not signed (no --signing-key)" : "  signed: manifest.sig (key \(manifest.signature?.publicKeySHA256.prefix(16) ?? ""))")
        if manifest.chains.contains(where: { !$0.verified }) {
            FileHandle.standardError.write(Data("auditgate-report export: a chain does not verify across the period; see integrity.json\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// `auditgate-report run NAME`: one of the report definitions in `reports/`.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a report definition from reports/ for a period.")

    @Argument(help: "The report's name (its file in reports/ without .sql).") var name: String
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var periodOptions: PeriodOptions
    @Option(name: .customLong("reports-dir"), help: "Folder of report definitions (default: reports/ of the installation).")
    var reportsDirectory: String?
    @Option(name: .customLong("signing-key")) var signingKey: String?
    @Option(help: "Folder to write NAME.csv, NAME.json and the manifest to.") var out: String

    func run() throws {
        guard let directory = reportsDirectory ?? Migrator.locate(folder: "reports", override: ProcessInfo.processInfo.environment["AUDITGATE_REPORTS_DIR"]) else {
            throw ValidationError("cannot find the reports/ folder; pass --reports-dir")
        }
        let definition = try ReportDefinition.load(name: name, directory: directory)
        let period = try periodOptions.resolve()
        let key = try loadSigningKey(signingKey)
        let manifest = try definition.run(on: try database.connect(), period: period, directory: out, signingKey: key)
        print("\(definition.title): \(manifest.counts.exchanges) rows written to \(out)/\(name).csv and \(name).json")
    }
}
