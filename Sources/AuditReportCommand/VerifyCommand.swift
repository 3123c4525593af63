import ArgumentParser
import AuditCore
import AuditStore
import Foundation
import LibPQ

/// `auditgate-report verify`: recomputes every hash chain in the store.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Recompute every hash chain in the store; exit 1 naming the first broken record.")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Only records from this time on (RFC 3339 or YYYY-MM-DD, UTC).") var from: String?
    @Option(help: "Only records before this time (exclusive).") var to: String?

    func run() throws {
        let connection = try database.connect()
        let reader = ChainReader(connection: connection)
        let report: VerificationReport
        do {
            report = try reader.verify(from: try from.map(PeriodBound.parse), to: try to.map(PeriodBound.parse))
        } catch {
            FileHandle.standardError.write(Data("auditgate-report verify: \(error)\n".utf8))
            throw ExitCode(2)
        }
        for chain in report.chains {
            let state = chain.failure == nil ? "intact" : "BROKEN"
            print("chain \(chain.chainID): seq \(chain.firstSeq)...\(chain.lastSeq), \(chain.count) records, head \(chain.leavingHash.hexString.prefix(16)) \(state)")
        }
        if let failure = report.firstFailure {
            print("FAILED: \(failure)")
            throw ExitCode(1)
        }
        print("OK: \(report.chains.count) chain(s), \(report.recordCount) records verified")
    }
}

/// Where the report tool finds the store: `--database` or `AUDITGATE_DATABASE_URL`.
struct DatabaseOptions: ParsableArguments {
    @Option(help: "libpq connection string or URI (default: $AUDITGATE_DATABASE_URL); a read-only role suffices.")
    var database: String?

    func connect() throws -> PGConnection {
        guard let url = database ?? ProcessInfo.processInfo.environment["AUDITGATE_DATABASE_URL"], !url.isEmpty else {
            throw ValidationError("no database: pass --database URL or set AUDITGATE_DATABASE_URL")
        }
        do {
            let connection = try PGConnection(url, applicationName: "auditgate-report")
            try connection.execute("SET TIME ZONE 'UTC'")
            try connection.execute("SET default_transaction_read_only = on")
            return connection
        } catch {
            FileHandle.standardError.write(Data("auditgate-report: cannot connect: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

/// Reads `--from`/`--to`: RFC 3339 timestamps, or `YYYY-MM-DD` as midnight UTC.
enum PeriodBound {
    static func parse(_ text: String) throws -> String {
        let date = /^\d{4}-\d{2}-\d{2}$/
        let stamp = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})$/
        if text.wholeMatch(of: date) != nil { return text + "T00:00:00Z" }
        if text.wholeMatch(of: stamp) != nil { return text }
        throw ValidationError("'\(text)' is not an RFC 3339 timestamp (2026-10-01T00:00:00Z) or a date (2026-10-01)")
    }
}
